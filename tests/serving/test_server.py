"""The local server against TF Serving's REST protocol: status, metadata, predict, versions, errors."""
import shutil
import socket
import threading
import time

import numpy as np
import pytest

fastapi = pytest.importorskip("fastapi")
from fastapi.testclient import TestClient  # noqa: E402

import zoo  # noqa: E402
from serving import export  # noqa: E402
from serving.client import RestClient, ServingError  # noqa: E402
from serving.server import BatchingParameters, create_app  # noqa: E402

HELIO, PENDULUM = "scinet-heliocentric", "scinet-pendulum"


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    base = tmp_path_factory.mktemp("models")
    export.export([HELIO, PENDULUM], base)
    return base


@pytest.fixture
def client(exported):
    with TestClient(create_app(exported, poll_seconds=0)) as c:
        yield c


def test_status_and_labels(client):
    body = client.get(f"/v1/models/{HELIO}").json()
    assert body == {"model_version_status": [{"version": "1", "state": "AVAILABLE", "status": {"error_code": "OK", "error_message": ""}}]}
    assert client.get(f"/v1/models/{HELIO}/versions/1").status_code == 200
    assert client.get(f"/v1/models/{HELIO}/labels/stable").json()["model_version_status"][0]["version"] == "1"


def test_metadata_lists_named_signatures(client):
    meta = client.get(f"/v1/models/{PENDULUM}/metadata").json()
    assert meta["model_spec"] == {"name": PENDULUM, "signature_name": "", "version": "1"}
    sigs = meta["metadata"]["signature_def"]["signature_def"]
    assert set(sigs) >= {"serving_default", "encode"}
    assert set(sigs["serving_default"]["inputs"]) == {"observations", "question"}
    assert sigs["serving_default"]["outputs"]["position"]["dtype"] == "DT_FLOAT"
    assert [d["size"] for d in sigs["serving_default"]["inputs"]["observations"]["tensor_shape"]["dim"]] == ["-1", "50"]


def test_row_and_columnar_predict_match_the_keras_model(client):
    x = np.array([[0.5, 1.0], [-2.0, 3.0]], dtype="float32")
    expected = zoo.load(HELIO).predict(x, verbose=0)
    rows = client.post(f"/v1/models/{HELIO}:predict", json={"instances": x.tolist()}).json()
    np.testing.assert_allclose(rows["predictions"], expected, atol=1e-5)
    cols = client.post(f"/v1/models/{HELIO}/versions/1:predict", json={"inputs": {"initial_angles": x.tolist()}}).json()
    np.testing.assert_allclose(cols["outputs"], expected, atol=1e-5)
    latents = client.post(f"/v1/models/{HELIO}:predict", json={"signature_name": "encode", "inputs": x.tolist()}).json()
    np.testing.assert_allclose(latents["outputs"], zoo.load(HELIO).encode(x), atol=1e-5)


def test_tf_serving_documentation_examples(client):
    """The request shapes of TF Serving's REST API documentation, on a two-input model."""
    obs = np.cos(np.linspace(0, 5, 50)).round(4).tolist()
    row = {"signature_name": "serving_default", "instances": [{"observations": obs, "question": [1.0]}, {"observations": obs, "question": [2.0]}]}
    preds = client.post(f"/v1/models/{PENDULUM}:predict", json=row).json()["predictions"]
    assert np.asarray(preds).shape == (2, 1)
    col = {"signature_name": "serving_default", "inputs": {"observations": [obs, obs], "question": [[1.0], [2.0]]}}
    np.testing.assert_allclose(client.post(f"/v1/models/{PENDULUM}:predict", json=col).json()["outputs"], preds, atol=1e-6)


@pytest.mark.parametrize(
    "path, body, status, message",
    [
        (f"/v1/models/{HELIO}:predict", "{not json", 400, "JSON parse error"),
        (f"/v1/models/{HELIO}:predict", {"instances": [[1.0, 2.0, 3.0]]}, 400, "input 'initial_angles' has shape (1, 3)"),
        (f"/v1/models/{HELIO}:predict", {"instances": [["a", "b"]]}, 400, "must hold numbers; received ['str']"),
        (f"/v1/models/{HELIO}:predict", {"signature_name": "nope", "instances": [[1.0, 2.0]]}, 400, "signature_name 'nope'"),
        (f"/v1/models/{HELIO}:predict", {"instances": [[1.0, 2.0]], "inputs": [[1.0, 2.0]]}, 400, "exactly one of"),
        (f"/v1/models/{HELIO}:predict", {"instances": []}, 400, "The batch is empty"),
        (f"/v1/models/{PENDULUM}:predict", {"inputs": {"observations": [[0.0] * 50]}}, 400, "missing ['question']"),
        (f"/v1/models/{PENDULUM}:predict", {"inputs": {"observations": [[0.0] * 50], "question": [[1.0], [2.0]]}}, 400, "batch size"),
        (f"/v1/models/{HELIO}:classify", {"instances": [[1.0, 2.0]]}, 400, "only :predict"),
        ("/v1/models/unknown:predict", {"instances": [[1.0, 2.0]]}, 404, "'unknown'"),
        (f"/v1/models/{HELIO}/versions/7:predict", {"instances": [[1.0, 2.0]]}, 404, "Specific"),
        (f"/v1/models/{HELIO}/labels/canary:predict", {"instances": [[1.0, 2.0]]}, 404, "label: canary"),
    ],
)
def test_errors_name_the_bad_field(client, path, body, status, message):
    response = client.post(path, content=body) if isinstance(body, str) else client.post(path, json=body)
    assert response.status_code == status
    assert message in response.json()["error"]
    assert "Traceback" not in response.text


def test_nan_and_oversized_requests(exported):
    with TestClient(create_app(exported, poll_seconds=0, max_request_bytes=2000)) as c:
        r = c.post(f"/v1/models/{HELIO}:predict", content='{"instances": [[NaN, 1.0]]}')
        assert r.status_code == 400 and "NaN" in r.json()["error"]
        r = c.post(f"/v1/models/{HELIO}:predict", json={"instances": [[1.0, 2.0]] * 500})
        assert r.status_code == 400 and "exceeds the limit" in r.json()["error"]
        assert c.get(f"/v1/models/{HELIO}").status_code == 200  # still serving


def test_batching_gives_the_same_answers(exported):
    x = np.random.default_rng(0).uniform(-3, 3, (40, 2)).astype("float32")
    with TestClient(create_app(exported, poll_seconds=0)) as c:
        plain = [c.post(f"/v1/models/{HELIO}:predict", json={"instances": x[i:i + 1].tolist()}).json() for i in range(40)]
    with TestClient(create_app(exported, poll_seconds=0, batching=BatchingParameters(16, 20000))) as c:
        results = [None] * 40

        def call(i):
            results[i] = c.post(f"/v1/models/{HELIO}:predict", json={"instances": x[i:i + 1].tolist()}).json()

        threads = [threading.Thread(target=call, args=(i,)) for i in range(40)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    # a batch of 16 and a batch of 1 sum the same dot products in other orders: each of the decoder's three
    # layers of fan-in <= 150 is good to fan_in * eps32 relative to its terms (angles of order pi), and a
    # prediction on the +-pi cut may come out on either side of it, so compare angles modulo 2 pi.
    tolerance = 3 * 150 * np.finfo(np.float32).eps * np.pi
    for a, b in zip(plain, results):
        difference = np.angle(np.exp(1j * (np.asarray(a["predictions"]) - np.asarray(b["predictions"]))))
        assert np.max(np.abs(difference)) <= tolerance, np.max(np.abs(difference))


def test_new_versions_are_picked_up_and_broken_ones_refused(exported, tmp_path):
    base = tmp_path / "models"
    shutil.copytree(exported / PENDULUM, base / PENDULUM)
    with TestClient(create_app(base, poll_seconds=0)) as c:
        repo = c.app.state.repository
        shutil.copytree(base / PENDULUM / "1", base / PENDULUM / "2")
        broken = base / PENDULUM / "3"
        shutil.copytree(base / PENDULUM / "1", broken)
        (broken / "saved_model.pb").write_bytes(b"half-written")
        repo.refresh()
        versions = {s["version"]: s["state"] for s in c.get(f"/v1/models/{PENDULUM}").json()["model_version_status"]}
        assert versions == {"3": "END", "2": "AVAILABLE", "1": "AVAILABLE"}
        body = {"inputs": {"observations": [[0.0] * 50], "question": [[1.0]]}}
        assert c.post(f"/v1/models/{PENDULUM}:predict", json=body).status_code == 200  # latest good version serves
        assert c.post(f"/v1/models/{PENDULUM}/versions/3:predict", json=body).status_code == 404


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_real_server_on_loopback_with_the_client(exported):
    import uvicorn

    port = _free_port()
    server = uvicorn.Server(uvicorn.Config(create_app(exported, poll_seconds=0), host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    try:
        deadline = time.time() + 30
        while not server.started and time.time() < deadline:
            time.sleep(0.05)
        client = RestClient(f"http://127.0.0.1:{port}")
        assert client.status(HELIO)["model_version_status"][0]["state"] == "AVAILABLE"
        assert np.asarray(client.predict(HELIO, instances=[[0.5, 1.0]])).shape == (1, 50, 2)
        assert np.asarray(client.predict(HELIO, inputs=[[0.5, 1.0]], signature_name="encode", label="stable")).shape == (1, 2)
        assert sorted(client.signatures(HELIO)) == ["encode", "serving_default"]
        arrays = client.predict_arrays(HELIO, {"initial_angles": np.array([[0.5, 1.0]], "float32")}, signature_name="encode")
        assert list(arrays) == ["latent_means"] and arrays["latent_means"].shape == (1, 2)
        with pytest.raises(ServingError, match="HTTP 404"):
            client.predict("nope", instances=[[1.0]])
    finally:
        server.should_exit = True
        thread.join(timeout=30)


def test_grpc_predict_and_metadata(exported):
    pytest.importorskip("tensorflow_serving.apis")
    import grpc

    from serving.client import GrpcClient
    from serving.grpc_server import start_grpc_server
    from serving.repository import ModelRepository

    server, port = start_grpc_server(ModelRepository(exported), port=0)
    client = GrpcClient(f"127.0.0.1:{port}")
    try:
        x = np.array([[0.5, 1.0], [-2.0, 3.0]], dtype="float32")
        out = client.predict(HELIO, {"initial_angles": x})
        np.testing.assert_allclose(out["angles"], zoo.load(HELIO).predict(x, verbose=0), atol=1e-5)
        latents = client.predict(HELIO, {"initial_angles": x}, signature_name="encode", label="stable")["latent_means"]
        assert latents.shape == (2, 2)
        sigs = client.signatures(PENDULUM)
        assert set(sigs["serving_default"].inputs) == {"observations", "question"}
        with pytest.raises(grpc.RpcError) as e:
            client.predict(HELIO, {"initial_angles": np.zeros((1, 3), "float32")})
        assert e.value.code() == grpc.StatusCode.INVALID_ARGUMENT and "shape (1, 3)" in e.value.details()
        with pytest.raises(grpc.RpcError) as e:
            client.predict("nope", {"x": x})
        assert e.value.code() == grpc.StatusCode.NOT_FOUND
    finally:
        client.close()
        server.stop(grace=None)


def test_sigterm_drains_in_flight_requests(exported):
    import signal
    import subprocess
    import sys

    port = _free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "zoo", "serve", str(exported), "--port", str(port), "--poll-seconds", "0",
         "--batching", "--batch-timeout-micros", "2000000"],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )
    try:
        client = RestClient(f"http://127.0.0.1:{port}", timeout=60)
        deadline = time.time() + 120
        while True:
            try:
                client.status(HELIO)
                break
            except OSError:
                assert time.time() < deadline and process.poll() is None, "server did not start"
                time.sleep(0.2)
        answer = {}
        thread = threading.Thread(target=lambda: answer.update(p=client.predict(HELIO, instances=[[0.5, 1.0]])))
        thread.start()
        time.sleep(0.5)  # the request now waits in the 2 s batching window
        process.send_signal(signal.SIGTERM)
        thread.join(timeout=60)
        assert np.asarray(answer["p"]).shape == (1, 50, 2)
        assert process.wait(timeout=60) in (0, -signal.SIGTERM)  # uvicorn re-raises SIGTERM once drained
    finally:
        if process.poll() is None:
            process.kill()


def test_polling_picks_up_a_new_version_while_running(exported, tmp_path):
    base = tmp_path / "models"
    shutil.copytree(exported / HELIO, base / HELIO)
    with TestClient(create_app(base, poll_seconds=0.2)) as c:
        assert [s["version"] for s in c.get(f"/v1/models/{HELIO}").json()["model_version_status"]] == ["1"]
        shutil.copytree(base / HELIO / "1", base / HELIO / ".incoming")
        (base / HELIO / ".incoming").rename(base / HELIO / "2")  # appears whole, as `zoo export` does it
        deadline = time.time() + 30
        while time.time() < deadline:
            versions = [s["version"] for s in c.get(f"/v1/models/{HELIO}").json()["model_version_status"]]
            if "2" in versions:
                break
            time.sleep(0.1)
        assert versions == ["2", "1"]
        assert c.post(f"/v1/models/{HELIO}:predict", json={"instances": [[0.1, 0.2]]}).status_code == 200
