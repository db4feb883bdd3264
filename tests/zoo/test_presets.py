"""The family contract, checked for every preset of every family with no per-family code.

Each preset is built with its family's ``tiny_overrides`` (milliseconds), and
every endpoint it declares goes through the same checks: finite outputs of the
declared shapes, config and .keras round trips, a SavedModel export that answers
as ``predict`` does (1e-5) through every signature, the local server answering
the same, and one fine-tuning step where the family allows it.

Exports (the slowest checks) run once per structure: presets of one model class with the same
endpoints and input ranks differ only in sizes (lattice sizes, temperatures, particles), which
the export does not depend on.
"""
import dataclasses
import json

import keras
import numpy as np
import pytest
import tensorflow as tf

import zoo
from zoo import artifacts, cards

PRESETS = zoo.list_models()
SHIPPED = [n for n in PRESETS if zoo.has_weights(n)]


def structure(name) -> tuple:
    """What an export depends on: the model class, its endpoints and their inputs' ranks."""
    model = tiny(name)
    endpoints = tuple(sorted((e.name, tuple(len(shape) for shape in e.input_shapes.values())) for e in model.endpoints()))
    return type(model).__name__, endpoints


def one_per_structure(names) -> list:
    chosen = {}
    for name in names:
        chosen.setdefault(structure(name), name)
    return sorted(chosen.values())


def tiny(name, seed=0):
    keras.utils.set_random_seed(seed)
    family = zoo.get_family(zoo.get_spec(name).family)
    return zoo.load(name, pretrained=False, **family.tiny_config(zoo.get_spec(name)))


EXPORTED = one_per_structure(PRESETS)


def endpoint_inputs(model, endpoint, n=3, seed=0):
    return model.random_inputs(n, seed=seed, endpoint=endpoint.name)


def as_numpy(outputs):
    return {k: np.asarray(v) for k, v in outputs.items()} if isinstance(outputs, dict) else np.asarray(outputs)


def declared_shape_matches(shape, declared):
    return len(shape) == len(declared) and all(d is None or d == s for s, d in zip(shape, declared))


def close(a, b, atol=1e-5):
    """a == b to float32 arithmetic, for arrays or for dicts of named outputs (multi-output models)."""
    if isinstance(b, dict):
        assert sorted(a) == sorted(b)
        for key in b:
            close(a[key], b[key], atol)
        return
    a, b = np.asarray(a), np.asarray(b)
    scale = max(1.0, float(np.max(np.abs(b))) if np.size(b) else 1.0)
    np.testing.assert_allclose(a, b, atol=atol * scale, rtol=1e-5)


@pytest.mark.parametrize("name", PRESETS)
def test_every_endpoint_gives_finite_outputs_of_the_declared_shapes(name):
    model = tiny(name)
    endpoints = model.endpoints()
    assert endpoints[0].name == "serving_default"
    assert len({e.name for e in endpoints}) == len(endpoints)
    for endpoint in endpoints:
        outputs = model.run_endpoint(endpoint.name, endpoint_inputs(model, endpoint))
        assert sorted(outputs) == sorted(t.name for t in endpoint.outputs), endpoint.name
        for spec in endpoint.outputs:
            value = outputs[spec.name]
            assert value.shape[0] == 3 and declared_shape_matches(value.shape, spec.shape), (endpoint.name, spec, value.shape)
            assert np.all(np.isfinite(value))


@pytest.mark.parametrize("name", PRESETS)
def test_predict_is_the_serving_default_endpoint_and_keras_call(name):
    model = tiny(name)
    x = model.random_inputs(4, seed=1)
    feed = x if len(x) > 1 else next(iter(x.values()))
    predicted = model.predict(feed)
    close(predicted, as_numpy(model(feed, training=False)))
    close(predicted, keras.Model.predict(model, feed, verbose=0))


@pytest.mark.parametrize("name", PRESETS)
def test_get_config_round_trip(name):
    model = tiny(name)
    clone = type(model).from_config(model.get_config())
    clone.build_with_examples()
    assert clone.get_config() == model.get_config()


@pytest.mark.parametrize("name", PRESETS)
def test_keras_file_round_trip(name, tmp_path):
    model = tiny(name)
    x = model.random_inputs(4, seed=2)
    path = tmp_path / "model.keras"
    model.save(path)
    restored = keras.saving.load_model(path, safe_mode=True)
    feed = x if len(x) > 1 else next(iter(x.values()))
    close(as_numpy(restored(feed)), as_numpy(model(feed)), atol=1e-6)


@pytest.fixture(scope="module")
def tiny_exports(tmp_path_factory):
    """One tiny model of each structure exported once (SavedModel per preset), with the models themselves."""
    from serving.export import export_model

    base = tmp_path_factory.mktemp("tiny-exports")
    models = {}
    for name in EXPORTED:
        models[name] = tiny(name)
        export_model(models[name], base / name / "1")
    return base, models


@pytest.mark.parametrize("name", EXPORTED)
def test_export_answers_as_predict_through_every_endpoint(name, tiny_exports):
    base, models = tiny_exports
    model, loaded = models[name], tf.saved_model.load(str(base / name / "1"))
    assert sorted(loaded.signatures) == sorted(e.name for e in model.endpoints())
    for endpoint in model.endpoints():
        inputs = endpoint_inputs(model, endpoint, seed=3)
        served = loaded.signatures[endpoint.name](**{k: tf.constant(v) for k, v in inputs.items()})
        expected = model.run_endpoint(endpoint.name, inputs)
        for key, value in expected.items():
            if endpoint.stochastic:  # a sampler: same shape and the values the check accepts
                assert served[key].shape == value.shape
                continue
            close(served[key].numpy(), value)


@pytest.fixture(scope="module")
def server(tiny_exports):
    from fastapi.testclient import TestClient

    from serving.server import create_app

    base, models = tiny_exports
    with TestClient(create_app(base, poll_seconds=0)) as client:
        yield client, models


@pytest.mark.parametrize("name", EXPORTED)
def test_served_predictions_and_metadata_follow_the_declaration(name, server):
    client, models = server
    model = models[name]
    metadata = client.get(f"/v1/models/{name}/metadata").json()["metadata"]["signature_def"]["signature_def"]
    assert sorted(metadata) == sorted(e.name for e in model.endpoints())
    for endpoint in model.endpoints():
        assert sorted(metadata[endpoint.name]["inputs"]) == sorted(endpoint.input_names)
        assert sorted(metadata[endpoint.name]["outputs"]) == sorted(t.name for t in endpoint.outputs)
        inputs = endpoint_inputs(model, endpoint, seed=4)
        body = {"signature_name": endpoint.name, "inputs": {k: v.tolist() for k, v in inputs.items()}}
        response = client.post(f"/v1/models/{name}:predict", json=body)
        assert response.status_code == 200, response.text
        outputs = response.json()["outputs"]
        expected = model.run_endpoint(endpoint.name, inputs)
        if len(expected) == 1:
            outputs = {next(iter(expected)): outputs}
        for key, value in expected.items():
            served = np.asarray(outputs[key], "float32")
            assert served.shape == value.shape
            if not endpoint.stochastic:
                close(served, value)


@pytest.mark.parametrize("name", PRESETS)
def test_fine_tuning_one_step_follows_the_declaration(name, tmp_path):
    from training import finetune

    tuning = tiny(name).fine_tuning
    if tuning.refusal:
        with pytest.raises(ValueError, match="does not apply"):
            finetune.finetune(name, tmp_path / "unused.npz", tmp_path / "tuned", verbose=0)
        return
    assert set(tuning.groups) == set(tiny(name).layer_groups())
    if name not in EXPORTED:
        pytest.skip("fine-tuning runs once per structure (EXPORTED): the weights' values do not change the step")
    if not zoo.has_weights(name):
        pytest.skip("fine-tuning starts from shipped weights")
    model, folder = zoo.load(name), zoo.preset_folder(name)
    inputs = model.checked_inputs(model.random_inputs(40, seed=5))
    target = None
    if tuning.needs_target:
        target = np.clip(np.asarray(model.predict(finetune.feed(inputs))), 0, 1)  # a valid target for any loss
    path = tmp_path / "data.npz"
    np.savez(path, **inputs, **({} if target is None else {"target": target}))
    groups = list(tuning.groups)
    metadata = finetune.finetune(name, path, tmp_path / "tuned", epochs=1, batch_size=16, freeze=groups[:1],
                                 reinitialize=groups[1:2], verbose=0)
    tuned = zoo.load(tmp_path / "tuned")
    assert np.isfinite(metadata["metrics"]["validation_error_after"])
    assert metadata["parent"]["weights_sha256"] == artifacts.read_metadata(folder)["files"][artifacts.WEIGHTS_FILE]
    parent = zoo.load(name)
    for frozen, original in zip(tuned.layer_groups()[groups[0]], parent.layer_groups()[groups[0]]):
        for a, b in zip(frozen.get_weights(), original.get_weights()):
            np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("name", PRESETS)
def test_training_declaration(name):
    model = tiny(name)
    spec = model.training_spec
    assert spec.own_train_step or spec.loss is not None
    if spec.own_train_step:
        assert spec.multiworker_refusal, "a model with its own train_step says why multiworker is refused"
    model.compile(optimizer=keras.optimizers.Adam(1e-3), loss=spec.loss)
    declared = model.optimizers_to_checkpoint()
    assert declared and all(isinstance(o, keras.optimizers.Optimizer) and v for o, v in declared.values())


@pytest.mark.parametrize("name", SHIPPED)
def test_shipped_files_verify_and_metrics_present(name):
    metadata = artifacts.verify_preset(zoo.preset_folder(name))
    assert metadata["name"] == name
    assert artifacts.CONFIG_FILE in metadata["files"] and artifacts.WEIGHTS_FILE in metadata["files"]
    assert metadata["metrics"] and all(np.all(np.isfinite(np.asarray(v, float))) for v in metadata["metrics"].values())
    assert metadata["targets"], "every shipped preset records its quality targets"
    for target in metadata["targets"]:
        assert target["measured"] == metadata["metrics"][target["metric"]]
    assert "benchmarks" not in metadata, "benchmark results live under benchmarks/results, not in shipped folders"
    import h5py

    with h5py.File(zoo.preset_folder(name) / artifacts.WEIGHTS_FILE) as f:
        assert "optimizer" not in f, "shipped weights must not carry optimizer state"
    assert metadata["data"]["evaluation_seed"] not in (metadata["data"]["train_seed"], metadata["data"]["validation_seed"])


@pytest.mark.parametrize("name", SHIPPED)
def test_card_is_present_and_rendered_from_metadata(name):
    path = cards.card_path(name)
    assert path.exists(), f"model card {path} is missing; run `zoo card {name}`"
    text = path.read_text()
    assert text == cards.render_card(name), "the card differs from what its metadata.json renders"
    assert text.startswith("---\nlibrary_name: keras\n") and "model-index:" in text
    metadata = json.loads((zoo.preset_folder(name) / artifacts.METADATA_FILE).read_text())
    for target in metadata["targets"]:
        assert target["metric"] in text
    family = zoo.get_family(zoo.get_spec(name).family)
    assert family.intended_use in text and family.limitations in text
    assert family.bibtex and f"```bibtex\n{family.bibtex}" in text
    assert family.task and f"type: {family.task}\n" in text, "the Hub task says what the model does"
    for endpoint in zoo.load(name, pretrained=False, **family.tiny_config(zoo.get_spec(name))).endpoints():
        assert f"| `{endpoint.name}` |" in text


@pytest.mark.parametrize("name", SHIPPED)
def test_shipped_weights_load_and_match_the_tiny_declaration(name):
    model = zoo.load(name)
    fresh = tiny(name)
    assert [e.name for e in model.endpoints()] == [e.name for e in fresh.endpoints()]
    predicted = as_numpy(model.predict(model.validate_inputs(model.example_inputs(2))))
    for value in (predicted.values() if isinstance(predicted, dict) else [predicted]):
        assert np.all(np.isfinite(value))


def test_every_preset_is_shipped():
    assert SHIPPED == PRESETS, f"presets without weights: {sorted(set(PRESETS) - set(SHIPPED))}"


def test_every_family_declares_its_card_and_a_tiny_config():
    for family in {zoo.get_spec(n).family: zoo.get_family(zoo.get_spec(n).family) for n in PRESETS}.values():
        assert family.intended_use and family.limitations and family.presets
        assert family.module.startswith("zoo.models.")
        assert dataclasses.is_dataclass(family)
