"""The jet taggers behind the server: a client sends raw constituents to the ``constituents``
signature and gets P(W) without this package's preprocessing; bad jets are 400s naming the problem."""
import numpy as np
import pytest

pytest.importorskip("fastapi")
from fastapi.testclient import TestClient  # noqa: E402

import zoo  # noqa: E402
from serving.export import export_model  # noqa: E402
from serving.server import create_app  # noqa: E402
from zoo.models.jets import toy_jets  # noqa: E402

NAME = "jet-cnn-w-vs-qcd"


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    spec = zoo.get_spec(NAME)
    model = zoo.load(NAME, pretrained=False, **zoo.get_family(spec.family).tiny_config(spec))
    base = tmp_path_factory.mktemp("models")
    export_model(model, base / NAME / "1")
    with TestClient(create_app(base, poll_seconds=0)) as client:
        yield model, client


def post(client, instances, signature):
    return client.post(f"/v1/models/{NAME}:predict", json={"signature_name": signature, "instances": instances})


def test_raw_constituents_give_what_python_gives(served):
    model, client = served
    jets = toy_jets(4, seed=9)
    response = post(client, jets.tolist(), "constituents")
    assert response.status_code == 200, response.text
    np.testing.assert_allclose(response.json()["predictions"], model.tag_constituents(jets), atol=1e-5)
    images = post(client, jets.tolist(), "preprocess").json()["predictions"]
    np.testing.assert_allclose(images, model.preprocess(jets), atol=1e-6)


@pytest.mark.parametrize("jets, signature, words", [
    ([[[-5.0, 0.0, 0.0], [10.0, 0.1, 0.1]]], "constituents", "negative p_T"),
    ([[[0.0, 0.0, 0.0], [0.0, 0.1, 0.1]]], "constituents", "no constituent"),
    ([[[1.0, 0.0, 0.0, 4.0]]], "constituents", "3"),
    (np.zeros((1, 32, 32)).tolist(), "serving_default", "25"),
])
def test_bad_jets_are_400s_naming_the_problem(served, jets, signature, words):
    response = post(served[1], jets, signature)
    assert response.status_code == 400, response.text
    assert words in response.json()["error"]
