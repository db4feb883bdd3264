"""Fine-tuning from pretrained weights: a new preset folder, clear errors, fewer steps than from scratch."""
import numpy as np
import pytest

import zoo
from training.evaluation.scinet import question_inputs
from training.finetune import finetune, steps_to_target
from training.simulators import pendulum
from zoo import artifacts

NAME = "scinet-pendulum"
pytestmark = pytest.mark.skipif(not zoo.has_weights(NAME), reason="no shipped weights")


def stiff_pendulums(n, seed):
    """Pendulums outside the preset's training range: kappa in [12, 16]."""
    return pendulum.simulate(n, seed, kappa_range=(12.0, 16.0))


@pytest.fixture
def data_file(tmp_path):
    d = stiff_pendulums(600, seed=21)
    path = tmp_path / "stiff.npz"
    np.savez(path, observations=d.observations, question=d.question, target=d.answer)
    return path


def test_finetune_writes_a_loadable_preset_folder_naming_its_parent(data_file, tmp_path):
    out = tmp_path / "stiff-pendulum"
    metadata = finetune(NAME, data_file, out, epochs=2, freeze=["encoder"], verbose=0)
    parent = artifacts.read_json(zoo.preset_folder(NAME) / "metadata.json")
    assert metadata["parent"]["preset"] == NAME
    assert metadata["parent"]["weights_sha256"] == parent["files"]["model.weights.h5"]
    assert metadata["finetuning"]["frozen"] == ["encoder"]
    assert "base_model: scinet-pendulum" in (out / "README.md").read_text()
    model = zoo.load(str(out))
    encoder_before = zoo.load(NAME).encoder_layers[0].get_weights()[0]
    np.testing.assert_array_equal(model.encoder_layers[0].get_weights()[0], encoder_before)  # frozen
    assert np.isfinite(metadata["metrics"]["validation_error_after"])


@pytest.mark.parametrize(
    "arrays, message",
    [
        ({"observations": np.zeros((10, 49)), "question": np.zeros((10, 1)), "target": np.zeros((10, 1))}, r"'observations' has shape \(10, 49\)"),
        ({"observations": np.zeros((10, 50)), "question": np.zeros((10, 1))}, "expected 'target'"),
        ({"observations": np.zeros((10, 50)), "question": np.zeros((10, 1)), "target": np.zeros((9, 1))}, "9 samples"),
        ({"observations": np.zeros((10, 50)), "question": np.zeros((10, 1)), "target": np.zeros((10, 2))}, r"'target' has shape \(10, 2\)"),
        ({"observations": np.full((10, 50), np.nan), "question": np.zeros((10, 1)), "target": np.zeros((10, 1))}, "NaN"),
    ],
)
def test_bad_data_files_are_refused_and_nothing_is_written(tmp_path, arrays, message):
    path = tmp_path / "bad.npz"
    np.savez(path, **arrays)
    out = tmp_path / "out"
    with pytest.raises(ValueError, match=message):
        finetune(NAME, path, out, epochs=1, verbose=0)
    assert not out.exists()


def test_unknown_file_type(tmp_path):
    (tmp_path / "data.csv").write_text("1,2")
    with pytest.raises(ValueError, match=r"\.npz or \.h5"):
        finetune(NAME, tmp_path / "data.csv", tmp_path / "out", verbose=0)


def test_pretrained_weights_reach_the_target_in_fewer_steps_than_scratch():
    train_data, held_out = stiff_pendulums(4000, seed=31), stiff_pendulums(1000, seed=32)
    train = (question_inputs(train_data), train_data.answer)
    validation = (question_inputs(held_out), held_out.answer)
    pretrained = steps_to_target(zoo.load(NAME), train, validation, 0.05, 300, learning_rate=1e-3)
    scratch = steps_to_target(zoo.load(NAME, pretrained=False), train, validation, 0.05, 300, learning_rate=1e-3)
    assert pretrained is not None and (scratch is None or pretrained < scratch), (pretrained, scratch)


def test_replacing_the_head_keeps_the_encoder_and_resets_the_decoder(data_file, tmp_path):
    out = tmp_path / "new-head"
    finetune(NAME, data_file, out, epochs=1, freeze=["encoder"], reinitialize=["decoder"], verbose=0)
    parent, child = zoo.load(NAME), zoo.load(str(out))
    np.testing.assert_array_equal(child.encoder_layers[0].get_weights()[0], parent.encoder_layers[0].get_weights()[0])
    assert not np.allclose(child.decoder_layers[0].get_weights()[0], parent.decoder_layers[0].get_weights()[0])
    assert artifacts.read_json(out / "metadata.json")["finetuning"]["reinitialized"] == ["decoder"]


def test_siamese_fine_tunes_with_a_frozen_embedding(tmp_path):
    from training.simulators import orbits

    pairs = orbits.simulate(64, seed=6)
    np.savez(tmp_path / "pairs.npz", first=pairs.first, second=pairs.second, target=pairs.label[:, None])
    before = zoo.load("siamese-kepler").embed(pairs.first[:4])
    metadata = finetune("siamese-kepler", tmp_path / "pairs.npz", tmp_path / "tuned", epochs=1,
                                 batch_size=16, freeze=["embedding"], verbose=0)
    assert metadata["finetuning"]["frozen"] == ["embedding"]
    np.testing.assert_allclose(zoo.load(str(tmp_path / "tuned")).embed(pairs.first[:4]), before, atol=1e-6)


def test_unknown_layer_groups_name_the_family_groups(data_file, tmp_path):
    with pytest.raises(ValueError, match=r"unknown layer group\(s\) \['head'\].*\['decoder', 'encoder'\]"):
        finetune(NAME, data_file, tmp_path / "out", epochs=1, freeze=["head"], verbose=0)
    assert not (tmp_path / "out").exists()


def test_an_occupied_out_folder_is_never_replaced(data_file, tmp_path):
    """`--out v` where v holds notes and the data itself: refused, and nothing in v is touched."""
    out = tmp_path / "v"
    (out / "sub").mkdir(parents=True)
    (out / "notes.txt").write_text("x")
    with pytest.raises(FileExistsError, match="never replaced"):
        finetune(NAME, data_file, out, epochs=1, verbose=0)
    assert (out / "notes.txt").read_text() == "x" and (out / "sub").is_dir()


def test_a_preset_folder_is_replaced_only_with_force(data_file, tmp_path):
    out = tmp_path / "tuned"
    finetune(NAME, data_file, out, epochs=1, verbose=0)
    with pytest.raises(FileExistsError, match="--force"):
        finetune(NAME, data_file, out, epochs=1, verbose=0)
    finetune(NAME, data_file, out, epochs=1, verbose=0, force=True)


def test_a_fine_tuned_folder_fine_tunes_again(data_file, tmp_path):
    finetune(NAME, data_file, tmp_path / "first", epochs=1, verbose=0)
    metadata = finetune(str(tmp_path / "first"), data_file, tmp_path / "second", epochs=1, verbose=0)
    assert metadata["parent"]["preset"] == NAME and metadata["parent"]["source"] == str(tmp_path / "first")


def test_a_target_on_another_grid_than_its_inputs_is_refused_in_one_line(tmp_path):
    """The translator's density axis is open in the declaration; it must follow the potentials' grid."""
    from training.finetune import read_data

    model = zoo.load("translator-schrodinger")
    inputs = model.random_inputs(4)
    grid = inputs["potentials"].shape[1]
    path = tmp_path / "densities.npz"
    np.savez(path, target=np.zeros((4, grid + 7)), **inputs)
    with pytest.raises(ValueError, match=rf"rows have shape \({grid + 7},\); expected \({grid},\)") as caught:
        read_data(path, model)
    assert "\n" not in str(caught.value)


def test_labels_as_a_flat_vector_are_taken_as_one_column(tmp_path):
    from training.finetune import read_data

    model = zoo.load(NAME)
    d = stiff_pendulums(10, seed=22)
    path = tmp_path / "flat.npz"
    np.savez(path, observations=d.observations, question=d.question, target=d.answer.reshape(-1))
    _, target = read_data(path, model)
    np.testing.assert_array_equal(target, d.answer.reshape(-1, 1))
