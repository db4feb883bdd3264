"""A family defined only under tests/ goes through load, export, serve, fine-tune, checkpoints and card rendering.

Nothing outside tests/ knows the toy family (tests/zoo/toy_family.py): it is
registered at run time here, and through the ``physics_model_zoo.families``
entry-point group in a fresh process, as a third-party package would be.
"""
import dataclasses
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import keras
import numpy as np
import pytest
import tensorflow as tf

import zoo
from tests.zoo import toy_family
from training import finetune, loop
from training.recipes import common
from zoo import artifacts, cards

NAME = "toy-autoencoder"
REPO = Path(__file__).resolve().parents[2]


@dataclasses.dataclass(frozen=True)
class ToyRecipe(common.Seeds):
    preset: str = NAME
    n_train: int = 256
    n_evaluation: int = 64


def points(n, seed):
    """Points on a 2D plane in 4D: a linear code of 2 reconstructs them exactly."""
    rng = np.random.default_rng(seed)
    return (rng.normal(size=(n, 2)) @ np.array([[1.0, 0.5, 0.0, -1.0], [0.0, 1.0, 2.0, 0.5]])).astype("float32")


@pytest.fixture(scope="module")
def toy(tmp_path_factory):
    """The toy family registered with its preset folder trained and written as a recipe would."""
    base = tmp_path_factory.mktemp("toy-pretrained")
    zoo.register_family(dataclasses.replace(toy_family.FAMILY, pretrained_dir=base))
    keras.utils.set_random_seed(0)
    model = zoo.load(NAME, pretrained=False)
    model.compile(optimizer=keras.optimizers.Adam(0.05))
    history = model.fit(points(256, 1), epochs=30, batch_size=64, verbose=0).history
    error = model.fine_tuning_error({"x": points(64, 1_000_003)}, None)
    metrics = {"reconstruction_rms": error}
    targets = common.check_targets([("reconstruction_rms", "<=", 0.5)], metrics)
    metadata = common.run_metadata(ToyRecipe(), metrics, targets, history,
                                   data=common.data_record(ToyRecipe(), "points", {}, {}), code_size=2)
    artifacts.write_preset(base / NAME, model, metadata)
    yield base
    from zoo.registry import unregister_family

    unregister_family("toy")


def test_the_toy_family_is_listed_and_loads_with_its_weights(toy):
    assert NAME in zoo.list_models() and zoo.get_spec(NAME).family == "toy"
    model = zoo.load(NAME)
    x = points(5, 7)
    np.testing.assert_allclose(model.predict(x), x, atol=0.5)
    assert model.run_endpoint("encode", x)["code"].shape == (5, 2)
    frozen = zoo.load(NAME, trainable=["decoder"])
    assert not frozen.encoder.trainable and frozen.decoder.trainable
    with pytest.raises(ValueError, match="unknown layer group"):
        zoo.load(NAME, trainable=["head"])


def test_export_and_serve_both_endpoints(toy, tmp_path):
    from fastapi.testclient import TestClient

    from serving.export import export
    from serving.server import create_app

    export([NAME], tmp_path)
    loaded = tf.saved_model.load(str(tmp_path / NAME / "1"))
    assert sorted(loaded.signatures) == ["encode", "serving_default"]
    model, x = zoo.load(NAME), points(3, 8)
    np.testing.assert_allclose(loaded.signatures["encode"](x=tf.constant(x))["code"].numpy(),
                               model.run_endpoint("encode", x)["code"], atol=1e-5)
    with TestClient(create_app(tmp_path, poll_seconds=0)) as client:
        metadata = client.get(f"/v1/models/{NAME}/metadata").json()["metadata"]["signature_def"]["signature_def"]
        assert metadata["encode"]["outputs"]["code"]["tensor_shape"]["dim"][1]["size"] == "2"
        served = client.post(f"/v1/models/{NAME}:predict", json={"instances": x.tolist()}).json()["predictions"]
        np.testing.assert_allclose(served, model.predict(x), atol=1e-5)


def test_fine_tuning_with_its_own_train_step(toy, tmp_path):
    data = tmp_path / "data.npz"
    np.savez(data, x=points(200, 21) * 1.5)
    metadata = finetune.finetune(NAME, data, tmp_path / "tuned", epochs=2, batch_size=32, freeze=["encoder"], verbose=0)
    assert metadata["finetuning"]["error_name"] == "held-out reconstruction RMS"
    tuned, parent = zoo.load(tmp_path / "tuned"), zoo.load(NAME)
    np.testing.assert_array_equal(tuned.encoder.get_weights()[0], parent.encoder.get_weights()[0])
    assert "base_model: toy-autoencoder" in (tmp_path / "tuned" / "README.md").read_text()


def test_card_comes_from_the_family_declaration(toy):
    text = cards.render_card(NAME)
    assert "Proving the family contract." in text and "Linear: a code of 2" in text
    assert "### Toy section" in text and "The code has 2 numbers." in text
    assert "| `encode` | `x` (None, 4): four numbers | `code` (None, 2): the code |" in text
    assert "reconstruction_rms" in text and "family `toy`" in text


def test_checkpoints_keep_every_optimizer_of_an_own_train_step_model(toy, tmp_path):
    keras.utils.set_random_seed(1)
    model = zoo.load(NAME, pretrained=False)
    loop.fit_resumable(model, keras.optimizers.Adam(0.01), None, (points(128, 3), None), None, 2, 32, tmp_path, verbose=0)
    resumed = zoo.load(NAME, pretrained=False)
    resumed.compile(optimizer=keras.optimizers.Adam(0.01))
    epoch, _ = loop.restore_checkpoint(tmp_path, resumed)
    assert epoch == 2
    for a, b in zip(model.optimizer.variables, resumed.optimizer.variables):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))


def test_the_custom_multiworker_loop_refuses_it_with_its_reason(toy):
    from training.distribute import train_custom_loop

    with pytest.raises(ValueError, match="own train_step only"):
        train_custom_loop(tf.distribute.get_strategy(), lambda: zoo.load(NAME, pretrained=False),
                          lambda: keras.optimizers.SGD(0.1), points(8, 0), points(8, 0), 4, 1)


def test_a_demo_declared_on_the_training_side_runs_with_its_arguments(toy, capsys, monkeypatch):
    from training import recipes
    from zoo_cli import main

    monkeypatch.setitem(recipes.DEMOS, "toy", lambda argv: print("toy demo", argv) or 0)
    assert main(["demo", "toy", "--flag"]) == 0
    assert "toy demo ['--flag']" in capsys.readouterr().out


def test_a_third_party_family_registers_through_entry_points(toy, tmp_path):
    """A package that declares the entry point is found in a fresh process with no registration call."""
    package = tmp_path / "site"
    (package / "toyzoo").mkdir(parents=True)
    (package / "toyzoo" / "__init__.py").write_text(Path(toy_family.__file__).read_text().replace(
        '"zoo_toy"', '"zoo_toy_ep"').replace("toy-autoencoder", "toy-ep-autoencoder").replace('name="toy"', 'name="toy-ep"'))
    info = package / "toyzoo-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: toyzoo\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text("[physics_model_zoo.families]\ntoy = toyzoo:FAMILY\n")
    script = textwrap.dedent("""
        import zoo
        model = zoo.load("toy-ep-autoencoder", pretrained=False)
        print(zoo.get_spec("toy-ep-autoencoder").family, [e.name for e in model.endpoints()])
    """)
    env = dict(os.environ, PYTHONPATH=f"{package}{os.pathsep}{REPO}")
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "toy-ep ['serving_default', 'encode']" in result.stdout


def test_a_folder_of_an_uninstalled_family_names_the_module_it_needs(toy, tmp_path):
    copy = tmp_path / "copy"
    import shutil

    shutil.copytree(zoo.preset_folder(NAME), copy)
    config = json.loads((copy / "config.json").read_text())
    config["class_name"] = "zoo_missing>Nowhere"
    (copy / "config.json").write_text(json.dumps(config))
    metadata = json.loads((copy / "metadata.json").read_text())
    metadata["files"]["config.json"] = artifacts.sha256_file(copy / "config.json")
    metadata["family_module"] = "mygroup.zoo_families"
    (copy / "metadata.json").write_text(json.dumps(metadata))
    with pytest.raises(artifacts.ArtifactError, match="'mygroup.zoo_families'"):
        zoo.load(copy)
