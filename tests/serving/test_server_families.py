"""The local server with the Ising and Siamese families: any lattice size, free energies, embeddings."""
import re

import numpy as np
import pytest

pytest.importorskip("fastapi")
from fastapi.testclient import TestClient  # noqa: E402

import zoo  # noqa: E402
from serving import export  # noqa: E402
from serving.server import create_app  # noqa: E402

CNN, RBM, SIAMESE = "ising-cnn", "rbm-ising-L8-T2.27", "siamese-kepler"


@pytest.fixture(scope="module")
def client(tmp_path_factory):
    names = [n for n in (CNN, RBM, SIAMESE) if zoo.has_weights(n)]
    if len(names) < 3:
        pytest.skip(f"not shipped yet: {sorted({CNN, RBM, SIAMESE} - set(names))}")
    base = tmp_path_factory.mktemp("models")
    export.export(names, base)
    with TestClient(create_app(base, poll_seconds=0)) as c:
        yield c


def spins(n, L, seed=0):
    return np.where(np.random.default_rng(seed).random((n, L, L)) < 0.5, -1.0, 1.0).astype("float32")


@pytest.mark.parametrize("L", [16, 24])
def test_classifier_serves_any_lattice_size(client, L):
    x = spins(3, L)
    body = client.post(f"/v1/models/{CNN}:predict", json={"instances": x.tolist()}).json()
    np.testing.assert_allclose(body["predictions"], zoo.load(CNN).predict(x, verbose=0), atol=1e-5)


def test_rbm_serves_free_energies(client):
    x = spins(4, 8, seed=1)
    body = client.post(f"/v1/models/{RBM}:predict", json={"inputs": {"spins": x.tolist()}}).json()
    np.testing.assert_allclose(body["outputs"], zoo.load(RBM).predict(x, verbose=0), rtol=1e-5)


def test_siamese_serves_pairs_and_embeddings(client):
    rng = np.random.default_rng(2)
    first, second = rng.uniform(0.5, 1.0, (5, 4)).astype("float32"), rng.uniform(0.5, 1.0, (5, 4)).astype("float32")
    model = zoo.load(SIAMESE)
    pairs = client.post(f"/v1/models/{SIAMESE}:predict",
                        json={"inputs": {"first": first.tolist(), "second": second.tolist()}}).json()
    np.testing.assert_allclose(pairs["outputs"], model.predict({"first": first, "second": second}, verbose=0), atol=1e-5)
    embedded = client.post(f"/v1/models/{SIAMESE}:predict", json={"signature_name": "embed", "inputs": first.tolist()}).json()
    np.testing.assert_allclose(embedded["outputs"], model.embed(first), atol=1e-5)


def test_wrong_lattice_size_for_the_rbm_is_a_400(client):
    response = client.post(f"/v1/models/{RBM}:predict", json={"instances": spins(2, 6).tolist()})
    assert response.status_code == 400 and "error" in response.json()


@pytest.mark.parametrize("bad,message", [
    (np.full((2, 8, 8), 0.5), "must be \\+-1"),
    (np.ones((2, 8, 6)), "square"),
    (np.ones((2, 2, 2)), "L >= 3"),
])
def test_classifier_export_checks_spins_like_predict(client, bad, message):
    response = client.post(f"/v1/models/{CNN}:predict", json={"instances": bad.tolist()})
    assert response.status_code == 400
    assert re.search(message, response.json()["error"]), response.json()


def test_zero_one_spins_are_converted_by_the_export(client):
    x = spins(2, 8, seed=3)
    body = client.post(f"/v1/models/{CNN}:predict", json={"instances": ((x + 1) / 2).tolist()}).json()
    np.testing.assert_allclose(body["predictions"], zoo.load(CNN).predict(x, verbose=0), atol=1e-5)
