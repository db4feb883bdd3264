"""The Ising recipes' evaluation functions on planted data, and fine-tuning of the Ising presets."""
import numpy as np
import pytest

import zoo
from training import finetune
from training.recipes import classifiers, rbm
from training.simulators import ising


def test_crossing_is_interpolated_where_the_mean_output_passes_one_half():
    grid = np.array([2.0, 2.1, 2.2, 2.3, 2.4])
    assert classifiers.crossing_temperature(grid, [1.0, 0.9, 0.7, 0.3, 0.1]) == pytest.approx(2.25)
    assert np.isnan(classifiers.crossing_temperature(grid, [0.9] * 5))


def test_finite_size_extrapolation_recovers_a_planted_critical_temperature():
    sizes = [16, 32, 64]
    crossings = [2.27 + 0.8 / L for L in sizes]
    fit = classifiers.finite_size_extrapolation(sizes, crossings, [1e-3] * 3)
    assert fit["tc"] == pytest.approx(2.27, abs=1e-9) and fit["slope"] == pytest.approx(0.8, abs=1e-6)
    noisy = classifiers.finite_size_extrapolation(sizes, [c + d for c, d in zip(crossings, (2e-3, -2e-3, 1e-3))], [1e-3] * 3)
    assert noisy["tc_error"] > 1e-3  # scatter beyond the error bars inflates the uncertainty


def test_bootstrap_error_shrinks_with_more_samples():
    grid = np.linspace(2.0, 2.5, 11)
    rng = np.random.default_rng(0)
    few = [rng.random(20) < 1 / (1 + np.exp((t - 2.27) * 20)) for t in grid]
    many = [rng.random(2000) < 1 / (1 + np.exp((t - 2.27) * 20)) for t in grid]
    _, error_few = classifiers.crossing_with_error(grid, [f.astype(float) for f in few], 100)
    value, error_many = classifiers.crossing_with_error(grid, [m.astype(float) for m in many], 100)
    assert error_many < error_few and abs(value - 2.27) < 0.02


def test_rbm_comparison_of_identical_samples_has_zero_relative_error():
    spins = ising.simulate(256, seed=4, L=4, temperatures=[2.5]).spins
    metrics = rbm.compare_observables(spins, spins, 2.5)
    assert all(metrics[f"{k}_relative_error"] == 0 for k in rbm.OBSERVABLES)


def test_ising_cnn_fine_tunes_into_a_new_preset_folder(tmp_path):
    data = ising.simulate(64, seed=5, L=8, temperatures=[1.5, 3.5])
    np.savez(tmp_path / "spins.npz", spins=data.spins.astype("float32"), target=classifiers.labels(data.temperatures))
    out = tmp_path / "my-ising"
    metadata = finetune.finetune("ising-cnn", tmp_path / "spins.npz", out, epochs=1, batch_size=16, verbose=0)
    assert metadata["parent"]["preset"] == "ising-cnn"
    tuned = zoo.load(str(out))
    assert tuned.predict(data.spins[:3], verbose=0).shape == (3, 1)


def test_rbm_fine_tuning_explains_how_to_continue_training(tmp_path):
    np.savez(tmp_path / "spins.npz", spins=np.ones((4, 8, 8), "float32"), target=np.zeros((4, 1), "float32"))
    name = zoo.list_models()[[n.startswith("rbm-") for n in zoo.list_models()].index(True)]
    if not zoo.has_weights(name):
        pytest.skip(f"{name} has no shipped weights")
    with pytest.raises(ValueError, match="without targets"):
        finetune.finetune(name, tmp_path / "spins.npz", tmp_path / "out", epochs=1)
    assert not (tmp_path / "out").exists()

