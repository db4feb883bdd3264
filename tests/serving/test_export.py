"""SavedModel exports: TF Serving's layout, named signatures, same outputs as the Keras model."""
import numpy as np
import pytest
import tensorflow as tf

import zoo
from serving import export

SHIPPED = [n for n in zoo.list_models() if zoo.has_weights(n)]


def one_per_family(names) -> list:
    """The preset of each family with the smallest weights file: tests/zoo/test_presets.py exports every
    preset's architecture (tiny), so shipped weights are exported here once per family."""
    chosen = {}
    for name in names:
        size = (zoo.preset_folder(name) / "model.weights.h5").stat().st_size
        family = zoo.get_spec(name).family
        if family not in chosen or size < chosen[family][1]:
            chosen[family] = (name, size)
    return sorted(name for name, _ in chosen.values())


@pytest.mark.parametrize("name", one_per_family(SHIPPED))
def test_export_round_trip(name, tmp_path):
    """The shipped weights answer the same through every exported signature as through the model's endpoints."""
    path = export.export_preset(name, tmp_path)
    assert path == tmp_path / name / "1" and (path / "saved_model.pb").exists()
    model = zoo.load(name)
    loaded = tf.saved_model.load(str(path))
    assert sorted(loaded.signatures) == sorted(e.name for e in model.endpoints())
    for endpoint in model.endpoints():
        inputs = model.random_inputs(5, endpoint=endpoint.name)
        served = loaded.signatures[endpoint.name](**{k: tf.constant(v) for k, v in inputs.items()})
        for key, expected in model.run_endpoint(endpoint.name, inputs).items():
            assert served[key].shape == expected.shape
            if not endpoint.stochastic:
                np.testing.assert_allclose(served[key].numpy(), expected, atol=1e-5 * max(1.0, np.abs(expected).max()))


def test_a_preset_folder_exports_under_its_folder_name(tmp_path):
    name = SHIPPED[0] if SHIPPED else pytest.skip("nothing shipped")
    path = export.export_preset(str(zoo.preset_folder(name)), tmp_path / "models")
    assert path == tmp_path / "models" / name / "1"


def test_versions_and_models_config(tmp_path):
    name = SHIPPED[0] if SHIPPED else pytest.skip("nothing shipped")
    export.export([name], tmp_path)
    export.export([name], tmp_path)
    assert sorted(p.name for p in (tmp_path / name).iterdir()) == ["1", "2"]
    config = (tmp_path / "models.config").read_text()
    assert f"name: '{name}'" in config and "version_labels { key: 'stable' value: 2 }" in config
    with pytest.raises(FileExistsError, match="already exists"):
        export.export_preset(name, tmp_path, version=2)
    assert not [p for p in (tmp_path / name).iterdir() if p.name.startswith(".")]


def test_container_base_path_and_batching_file(tmp_path):
    name = SHIPPED[0] if SHIPPED else pytest.skip("nothing shipped")
    export.export([name], tmp_path, base_path="/models", batching_parameters=True)
    assert f"base_path: '/models/{name}'" in (tmp_path / "models.config").read_text()
    from serving.server import read_batching_parameters

    params = read_batching_parameters(tmp_path / "batching_parameters.txt")
    assert (params.max_batch_size, params.batch_timeout_micros) == (64, 2000)
