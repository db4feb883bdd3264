"""The server as a careless or hostile client meets it: never a hang, never a 5xx for bad input,
one bad request never fails another, and one request's size is bounded."""
import concurrent.futures
import json
import os

import numpy as np
import pytest

pytest.importorskip("fastapi")
from fastapi.testclient import TestClient  # noqa: E402
from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

import zoo  # noqa: E402
from serving.export import export_model  # noqa: E402
from serving.server import BatchingParameters, create_app  # noqa: E402

CNN, PENDULUM = "ising-cnn", "scinet-pendulum"


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    """Tiny, fresh models of two families (a one-input lattice model, a two-input SciNet): fast to export."""
    base = tmp_path_factory.mktemp("models")
    for name in (CNN, PENDULUM):
        family = zoo.get_family(zoo.get_spec(name).family)
        export_model(zoo.load(name, pretrained=False, **family.tiny_config(zoo.get_spec(name))), base / name / "1")
    return base


def spins(n, L, M=None, seed=0):
    return np.where(np.random.default_rng(seed).random((n, L, M or L)) < 0.5, -1.0, 1.0).tolist()


def post_concurrently(client, bodies, name=CNN):
    """Send every body at once; a hang fails the test at the timeout instead of blocking the suite."""
    with concurrent.futures.ThreadPoolExecutor(len(bodies)) as pool:
        futures = [pool.submit(client.post, f"/v1/models/{name}:predict", json=b) for b in bodies]
        return [f.result(timeout=60) for f in futures]


@pytest.fixture(scope="module")
def batching_client(exported):
    with TestClient(create_app(exported, poll_seconds=0, batching=BatchingParameters(64, 200_000))) as c:
        yield c


def test_requests_of_different_lattice_sizes_in_one_batch_all_get_answers(batching_client):
    """Before: np.concatenate failed outside the try, the futures never settled and valid requests hung."""
    bodies = [{"instances": spins(1, L, seed=i)} for i, L in enumerate([8, 16, 8, 12, 16, 8])]
    bodies.append({"instances": spins(1, 8, 9)})  # not square: a 400 of its own
    responses = post_concurrently(batching_client, bodies)
    assert [r.status_code for r in responses] == [200] * 6 + [400]
    assert "square" in responses[-1].json()["error"]


def test_one_malformed_request_does_not_fail_its_batch(batching_client):
    """Before: a spins = 0.5 lattice failed the in-graph check and every request in its batch got a 400."""
    bodies = [{"instances": spins(1, 8, seed=i)} for i in range(12)]
    bodies.insert(5, {"instances": np.full((1, 8, 8), 0.5).tolist()})
    responses = post_concurrently(batching_client, bodies)
    codes = [r.status_code for r in responses]
    assert codes[5] == 400 and codes.count(200) == 12, codes
    assert "+-1" in responses[5].json()["error"]


def test_batched_answers_equal_single_answers(exported, batching_client):
    bodies = [{"instances": spins(1, 8, seed=i)} for i in range(8)]
    batched = [r.json()["predictions"] for r in post_concurrently(batching_client, bodies)]
    with TestClient(create_app(exported, poll_seconds=0)) as plain:
        single = [plain.post(f"/v1/models/{CNN}:predict", json=b).json()["predictions"] for b in bodies]
    # conv sums of 3 x 3 x 4 terms and a pooled mean in another order: a few float32 ulps of outputs <= 1
    np.testing.assert_allclose(batched, single, atol=64 * np.finfo(np.float32).eps)


@pytest.fixture(scope="module")
def client(exported):
    with TestClient(create_app(exported, poll_seconds=0, max_rows=100, max_request_bytes=1 << 20)) as c:
        yield c


def test_rows_per_request_are_bounded_with_a_clear_400(client):
    response = client.post(f"/v1/models/{CNN}:predict", json={"instances": spins(101, 4)})
    assert response.status_code == 400
    assert "101 rows" in response.json()["error"] and "--max-rows-per-request" in response.json()["error"]
    assert client.post(f"/v1/models/{CNN}:predict", json={"instances": spins(100, 4)}).status_code == 200


PENDULUM_OK = {"inputs": {"observations": [[0.5] * 50], "question": [[1.0]]}}


def observation_starting_with(first: bytes) -> bytes:
    """A pendulum request whose first observation value is the raw JSON text ``first``."""
    row = b", ".join([first] + [b"0.5"] * 49)
    return b'{"inputs": {"observations": [[' + row + b']], "question": [[1.0]]}}'


@pytest.mark.parametrize("raw", [
    b'{"instances": [[' + b"1" * 400 + b"]]}",                          # a 400-digit number
    b'{"signature_name": ["serving_default"], "instances": [[1.0]]}',   # a list, not a string
    b'{"signature_name": {"a": 1}, "instances": [[1.0]]}',              # a dict
    b"[" * 5000 + b"]" * 5000,                                          # 5000 levels deep
    observation_starting_with(b"true"),                                 # a boolean
    observation_starting_with(b'"1"'),                                  # a numeric string
    observation_starting_with(b"null"),
    observation_starting_with(b"[0.5]"),                                # one level too deep
    observation_starting_with(b"1e39"),                                 # beyond float32
    observation_starting_with(b"NaN"),                                  # not JSON
], ids=["400-digits", "name-list", "name-dict", "deep", "bool", "string", "null", "too-deep", "huge", "nan"])
def test_bad_bodies_get_a_400_never_a_500(client, raw):
    response = client.post(f"/v1/models/{PENDULUM}:predict", content=raw, headers={"Content-Type": "application/json"})
    assert response.status_code == 400, (raw[:80], response.status_code, response.text[:200])
    assert "error" in response.json()


def test_a_5000_digit_version_is_a_404(client):
    response = client.post(f"/v1/models/{PENDULUM}/versions/{'5' * 5000}:predict", json=PENDULUM_OK)
    assert response.status_code == 404


def test_a_chunked_body_is_refused_once_it_passes_the_limit(client):
    def chunks():
        yield b'{"instances": ['
        for _ in range(20000):
            yield b"[" + b"0.5, " * 49 + b"0.5],"
        yield b"[0.5]]}"

    response = client.post(f"/v1/models/{PENDULUM}:predict", content=chunks(), headers={"Content-Type": "application/json"})
    assert response.status_code == 400 and "exceeds the limit" in response.json()["error"]


def test_grpc_refuses_a_claimed_shape_before_allocating_it():
    """Before: a 64-byte request declaring [67108864, 3] with one float_val was expanded to 800 MB."""
    import tensorflow as tf
    from tensorflow.core.framework import tensor_pb2, tensor_shape_pb2, types_pb2

    from serving.grpc_server import checked_ndarray
    from serving.repository import BadRequest

    proto = tensor_pb2.TensorProto(dtype=types_pb2.DT_FLOAT, float_val=[1.0], tensor_shape=tensor_shape_pb2.TensorShapeProto(
        dim=[tensor_shape_pb2.TensorShapeProto.Dim(size=67108864), tensor_shape_pb2.TensorShapeProto.Dim(size=3)]))
    with pytest.raises(BadRequest, match="more than the 1000 elements"):
        checked_ndarray("x", proto, max_elements=1000)
    small = tensor_pb2.TensorProto(dtype=types_pb2.DT_FLOAT, float_val=[1.0], tensor_shape=tensor_shape_pb2.TensorShapeProto(
        dim=[tensor_shape_pb2.TensorShapeProto.Dim(size=2), tensor_shape_pb2.TensorShapeProto.Dim(size=3)]))
    with pytest.raises(BadRequest, match=r"\(6 values\) but carries 1"):
        checked_ndarray("x", small, max_elements=1000)
    exact = tf.make_tensor_proto(np.ones((2, 3), "float32"))
    np.testing.assert_array_equal(checked_ndarray("x", exact, max_elements=1000), np.ones((2, 3)))


JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=5),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4),
    max_leaves=30,
)
BODIES = st.one_of(
    JSON_VALUES,
    st.fixed_dictionaries({"instances": JSON_VALUES}),
    st.fixed_dictionaries({"inputs": JSON_VALUES}),
    st.fixed_dictionaries({"signature_name": JSON_VALUES, "instances": JSON_VALUES}),
    st.fixed_dictionaries({"inputs": st.fixed_dictionaries({"observations": JSON_VALUES, "question": JSON_VALUES})}),
)
PATHS = st.sampled_from([f"{PENDULUM}:predict", f"{CNN}:predict", f"{PENDULUM}/versions/1:predict",
                         f"{PENDULUM}/labels/x:predict", "nothing:predict", f"{CNN}:classify", f"{CNN}/metadata"])


@settings(max_examples=int(os.environ.get("ZOO_FUZZ_EXAMPLES", 150)), deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(path=PATHS, body=BODIES)
def test_fuzzed_requests_are_answered_with_2xx_or_4xx(client, path, body):
    """A fixed example budget keeps CI time bounded; benchmarks/serving_fuzz.py runs a longer search."""
    response = client.post(f"/v1/models/{path}", content=json.dumps(body).encode())
    assert response.status_code < 500, (path, body, response.text[:300])
    assert client.post(f"/v1/models/{PENDULUM}:predict", json=PENDULUM_OK).status_code == 200


def test_a_large_request_runs_in_chunks_with_the_same_answers(exported, monkeypatch):
    """The model's activations are bounded by one chunk, whatever the request's rows."""
    from serving import repository

    signature = repository.load_servable(PENDULUM, 1, exported / PENDULUM / "1").signature(None)
    x = {"observations": np.random.default_rng(0).uniform(0, 1, (50, 50)).astype("float32"),
         "question": np.random.default_rng(1).uniform(0, 10, (50, 1)).astype("float32")}
    whole = signature(x)
    calls = []
    real = signature.function
    monkeypatch.setattr(signature, "function", lambda **t: calls.append(len(t["question"])) or real(**t))
    monkeypatch.setattr(repository, "CALL_ROWS", 16)
    chunked = signature(x)
    assert calls == [16, 16, 16, 2]
    np.testing.assert_allclose(chunked["position"], whole["position"], atol=64 * np.finfo(np.float32).eps)
