"""CaloGAN behind the server: the exported ``generate`` signature gives what ``model.generate`` gives
for the same per-shower seeds, in any batch; bad energies and seeds are 400s; the export holds the generator only."""
import threading

import numpy as np
import pytest

pytest.importorskip("fastapi")
from fastapi.testclient import TestClient  # noqa: E402

import zoo  # noqa: E402
from serving.export import export_model  # noqa: E402
from serving.server import BatchingParameters, create_app  # noqa: E402

NAME = "calogan-eplus"
SHAPES = {"layer_0": (3, 96), "layer_1": (12, 12), "layer_2": (12, 6)}


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    model = zoo.load(NAME, pretrained=False, latent_size=4, discriminator_filters=2)
    base = tmp_path_factory.mktemp("models")
    export_model(model, base / NAME / "1")
    return model, base


@pytest.fixture(scope="module")
def served(exported):
    model, base = exported
    with TestClient(create_app(base, poll_seconds=0)) as client:
        yield model, client


def requests(n=5, seed=3):
    rng = np.random.default_rng(seed)
    return rng.uniform(1.0, 100.0, n).astype("float32"), rng.integers(0, 2**40, n).astype("int64")


def post(client, body):
    return client.post(f"/v1/models/{NAME}:predict", json=body)


def columnar(energies, seeds, signature=None):
    body = {"inputs": {"energies": np.asarray(energies).tolist(), "seed": np.asarray(seeds).tolist()}}
    return body if signature is None else {"signature_name": signature, **body}


def assert_same_showers(received, expected):
    """Equal up to float32 rounding: rtol 1e-5, and atol 1e-6 of the layer's largest cell (a fresh generator's
    cells are ~1e-4 GeV, so a fixed atol would compare nothing)."""
    assert set(received) == set(SHAPES)
    for name, want in expected.items():
        got = np.asarray(received[name], dtype="float32")
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6 * float(np.max(np.abs(want))), err_msg=name)


@pytest.mark.parametrize("signature", ["generate", "serving_default", None])
def test_served_showers_are_the_models_for_the_same_seeds(served, signature):
    model, client = served
    energies, seeds = requests()
    response = post(client, columnar(energies, seeds, signature))
    assert response.status_code == 200, response.text
    outputs = {k: np.asarray(v, dtype="float32") for k, v in response.json()["outputs"].items()}
    for name, shape in SHAPES.items():
        assert outputs[name].shape == (len(energies), *shape)
        assert np.all(outputs[name] >= 0) and np.all(np.isfinite(outputs[name]))
    assert max(float(v.max()) for v in outputs.values()) > 0  # showers, not zeros
    assert_same_showers(outputs, model.run_endpoint("generate", {"energies": energies, "seed": seeds}))


def test_row_format_gives_one_shower_per_instance(served):
    model, client = served
    energies, seeds = requests(3, seed=4)
    instances = [{"energies": float(e), "seed": int(s)} for e, s in zip(energies, seeds)]
    response = post(client, {"signature_name": "generate", "instances": instances})
    assert response.status_code == 200, response.text
    rows = response.json()["predictions"]
    assert len(rows) == 3
    stacked = {k: np.stack([np.asarray(r[k], dtype="float32") for r in rows]) for k in SHAPES}
    assert_same_showers(stacked, model.run_endpoint("generate", {"energies": energies, "seed": seeds}))


def test_a_shower_is_the_same_alone_or_in_a_batch(served):
    _, client = served
    energies, seeds = requests(6, seed=5)
    batch = post(client, columnar(energies, seeds, "generate")).json()["outputs"]
    for i in range(len(energies)):
        alone = post(client, columnar(energies[i:i + 1], seeds[i:i + 1], "generate")).json()["outputs"]
        assert_same_showers(alone, {k: np.asarray(v, dtype="float32")[i:i + 1] for k, v in batch.items()})
    # the seed, not the position in the batch, decides the shower: swapping two rows swaps their showers
    swapped = post(client, columnar(energies[[1, 0]], seeds[[1, 0]], "generate")).json()["outputs"]
    assert_same_showers(swapped, {k: np.asarray(v, dtype="float32")[[1, 0]] for k, v in batch.items()})
    # and different seeds at one energy give different showers
    same_energy = post(client, columnar([50.0, 50.0], [1, 2], "generate")).json()["outputs"]
    cells = np.concatenate([np.reshape(same_energy[k], (2, -1)) for k in SHAPES], axis=1)
    assert not np.allclose(cells[0], cells[1], rtol=1e-3, atol=0)


def test_server_side_batching_keeps_each_requests_shower(exported):
    """Concurrent one-shower requests that the server may merge into one batch get the showers of their own seeds
    (whether or not they were merged: no assumption about timing)."""
    model, base = exported
    energies, seeds = requests(24, seed=6)
    expected = model.run_endpoint("generate", {"energies": energies, "seed": seeds})
    results = [None] * len(energies)
    with TestClient(create_app(base, poll_seconds=0, batching=BatchingParameters(16, 20000))) as client:

        def call(i):
            results[i] = post(client, columnar(energies[i:i + 1], seeds[i:i + 1], "generate"))

        threads = [threading.Thread(target=call, args=(i,)) for i in range(len(energies))]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    for i, response in enumerate(results):
        assert response.status_code == 200, response.text
        assert_same_showers(response.json()["outputs"], {k: v[i:i + 1] for k, v in expected.items()})


@pytest.mark.parametrize("energies, seeds, words", [
    ([0.0], [1], "energies"),
    ([10.0, -5.0], [1, 2], "energies"),
    ([10.0], [-1], "seed"),
    ([10.0], ["one"], "seed"),
    ([10.0], [[1]], "seed"),
    ([10.0, 20.0], [1], "batch size"),
    ([10.0], [2**63], "seed"),
])
def test_bad_requests_are_400s_naming_the_input(served, energies, seeds, words):
    response = post(served[1], columnar(energies, seeds, "generate"))
    assert response.status_code == 400, response.text
    assert words in response.json()["error"]
    assert "Traceback" not in response.text


def test_non_integer_seeds_are_400s(served):
    model, client = served
    with pytest.raises(ValueError, match="whole numbers"):  # what Python does with the same request
        model.run_endpoint("generate", {"energies": np.array([10.0], "float32"), "seed": np.array([1.5])})
    response = post(client, columnar([10.0], [1.5], "generate"))
    assert response.status_code == 400, response.text
    assert "seed" in response.json()["error"]


def test_energies_outside_the_trained_range_are_served(served):
    """Python warns (an extrapolation); the server answers with the same warning."""
    model, client = served
    with pytest.warns(UserWarning, match="the trained range is") as record:
        expected = model.run_endpoint("generate", {"energies": np.array([0.5, 150.0], "float32"),
                                                   "seed": np.array([1, 2], "int64")})
    response = post(client, columnar([0.5, 150.0], [1, 2], "generate"))
    assert response.status_code == 200, response.text
    assert_same_showers(response.json()["outputs"], expected)
    assert response.json()["warnings"] == [str(w.message).rstrip(".") for w in record]


def test_the_saved_model_holds_the_generator_only(exported):
    import tensorflow as tf

    model, base = exported
    loaded = tf.saved_model.load(str(base / NAME / "1"))
    saved = {v.name.split(":")[0] for v in loaded.variables}
    generator = {w.path for w in model.generator.weights}
    discriminator = {w.path for w in model.discriminator.weights}  # d0_conv/kernel, ..., energy_mbd/tensor, real/bias
    assert discriminator and not generator & discriminator  # the names tell the two networks apart
    assert saved == generator and not saved & discriminator
    assert not [n for n in saved if "discriminator" in n]
    assert len(loaded.variables) == len(model.generator.weights)
    assert sum(int(np.prod(v.shape)) for v in loaded.variables) == model.generator.count_params()


def test_metadata_lists_generate_with_an_int64_seed(served):
    _, client = served
    meta = client.get(f"/v1/models/{NAME}/metadata").json()
    signatures = meta["metadata"]["signature_def"]["signature_def"]
    assert set(signatures) == {"serving_default", "generate"}
    for signature in signatures.values():
        inputs, outputs = signature["inputs"], signature["outputs"]
        assert inputs["seed"]["dtype"] == "DT_INT64" and inputs["energies"]["dtype"] == "DT_FLOAT"
        assert [d["size"] for d in inputs["seed"]["tensor_shape"]["dim"]] == ["-1"]
        for name, shape in SHAPES.items():
            assert outputs[name]["dtype"] == "DT_FLOAT"
            assert [d["size"] for d in outputs[name]["tensor_shape"]["dim"]] == ["-1", *map(str, shape)]


def test_grpc_generate_with_int64_seeds(exported):
    pytest.importorskip("tensorflow_serving.apis")
    import grpc

    from serving.client import GrpcClient
    from serving.grpc_server import start_grpc_server
    from serving.repository import ModelRepository

    model, base = exported
    server, port = start_grpc_server(ModelRepository(base), port=0)
    client = GrpcClient(f"127.0.0.1:{port}")
    try:
        energies, seeds = requests(4, seed=7)
        outputs = client.predict(NAME, {"energies": energies, "seed": seeds}, signature_name="generate")
        assert_same_showers(outputs, model.run_endpoint("generate", {"energies": energies, "seed": seeds}))
        assert client.signatures(NAME)["generate"].inputs["seed"].dtype == 9  # DT_INT64
        with pytest.raises(grpc.RpcError) as e:
            client.predict(NAME, {"energies": np.array([0.0], "float32"), "seed": seeds[:1]}, signature_name="generate")
        assert e.value.code() == grpc.StatusCode.INVALID_ARGUMENT and "energies" in e.value.details()
    finally:
        client.close()
        server.stop(grace=None)
