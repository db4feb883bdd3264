"""CaloGAN shower-shape evaluation: exact distances, hand-built showers, classifier test, energy response.

Samples come from fixed seeds, so every check is deterministic; statistical tolerances are several of the
standard errors that the functions themselves report (or that follow from the arithmetic).
"""
import math

import numpy as np
import pytest

from training.evaluation import showers as S
from training.simulators import calorimeter as calo

N_SIM = 1500


def empty(n=1):
    return {name: np.zeros((n, *shape)) for name, shape in zip(S.LAYERS, calo.LAYER_SHAPES)}


def simulated(particle, n, seed):
    """Simulator showers in GeV and their incident energies (n,) in GeV."""
    sim = calo.simulate(particle, n, seed)
    return {name: sim[name] / 1e3 for name in S.LAYERS}, sim["energy"][:, 0].astype(float)


@pytest.fixture(scope="module")
def positrons():
    return simulated("e+", N_SIM, 1), simulated("e+", N_SIM, 2)


@pytest.fixture(scope="module")
def pions():
    return simulated("pi+", N_SIM, 3)


# ---------------------------------------------------------------------------- W1 and KS

def test_w1_closed_forms():
    a = np.random.default_rng(0).normal(size=1000)
    assert S.wasserstein_1(a, a + 0.7) == pytest.approx(0.7, abs=1e-12)  # a shift moves every quantile by delta
    assert S.wasserstein_1(a, a[::-1].copy()) == 0.0
    assert S.wasserstein_1([0.0], [0.0, 1.0]) == pytest.approx(0.5)  # half the mass moves by 1
    assert S.wasserstein_1([0, 0, 1], [0, 1]) == pytest.approx(1 / 6)  # quantiles differ on u in (1/2, 2/3]
    assert S.wasserstein_1([0, 0, 1], [0, 1]) == S.wasserstein_1([0, 1], [0, 0, 1])


def test_w1_matches_scipy_for_unequal_sizes():
    stats = pytest.importorskip("scipy.stats")
    rng = np.random.default_rng(1)
    for a, b in ((rng.normal(size=137), rng.exponential(size=250)), (rng.integers(0, 4, 31), rng.integers(0, 4, 17))):
        assert S.wasserstein_1(a, b) == pytest.approx(stats.wasserstein_distance(a, b), rel=1e-12, abs=1e-14)


def test_ks_known_cases():
    assert S.ks_statistic([1, 2, 3], [1, 2, 3]) == 0.0
    assert S.ks_statistic([1, 2, 3], [4, 5]) == 1.0  # disjoint supports
    assert S.ks_statistic([1, 2, 3], [2, 3, 4]) == pytest.approx(1 / 3)
    assert S.ks_statistic([0], [0, 1]) == pytest.approx(0.5)
    stats = pytest.importorskip("scipy.stats")
    rng = np.random.default_rng(2)
    a, b = rng.normal(size=300), rng.normal(0.2, 1.3, size=170)
    assert S.ks_statistic(a, b) == pytest.approx(stats.ks_2samp(a, b).statistic, abs=1e-12)


# ---------------------------------------------------------------------------- shape variables

def test_cell_centres_follow_the_geometry():
    for layer, ((nx, ny), (dx, dy)) in enumerate(zip(calo.LAYER_SHAPES, calo.CELL_SIZES_MM)):
        x, y = S.cell_centres(layer)
        assert len(x) == nx and len(y) == ny
        np.testing.assert_allclose(np.diff(x), dx) and np.testing.assert_allclose(np.diff(y), dy)
        np.testing.assert_allclose(x + x[::-1], 0, atol=1e-9)  # symmetric about the beam axis
        assert x[0] == -calo.HALF_WIDTH_MM + dx / 2 and y[-1] == calo.HALF_WIDTH_MM - dy / 2


def test_single_cell_shower():
    showers = empty()
    showers["layer_1"][0, 5, 7] = 2.0
    v = S.shape_variables(showers, np.array([4.0]))
    assert list(v) == list(S.VARIABLES) and all(x.shape == (1,) for x in v.values())
    expected = {"E_0": 0, "E_1": 2, "E_2": 0, "E_tot": 2, "f_0": 0, "f_1": 1, "f_2": 0, "E_tot/E_inc": 0.5,
                "depth": 1, "depth_width": 0, "width_weighted": 0, "width_0": 0, "width_1": 0, "width_2": 0,
                "sparsity_0": 0, "sparsity_1": 1 / 144, "sparsity_2": 0, "E_max_0": 0, "E_max_1": 2, "E_max_2": 0,
                "max_ratio_0": 0, "max_ratio_1": 0, "max_ratio_2": 0}
    assert {k: pytest.approx(x[0], abs=1e-12) for k, x in v.items()} == expected


@pytest.mark.parametrize("layer", [0, 1, 2])
def test_depth_of_a_shower_in_one_layer(layer):
    showers = empty(2)
    showers[S.LAYERS[layer]][:, 1, 2] = [1.0, 30.0]
    showers[S.LAYERS[layer]][1, 0, 0] = 10.0
    v = S.shape_variables(showers, np.array([1.0, 50.0]))
    np.testing.assert_allclose(v["depth"], layer)
    np.testing.assert_allclose(v["depth_width"], 0, atol=1e-7)
    np.testing.assert_allclose(v[f"f_{layer}"], 1)
    np.testing.assert_allclose(v[f"sparsity_{layer}"], np.array([1, 2]) / np.prod(calo.LAYER_SHAPES[layer]))
    np.testing.assert_allclose(v[f"max_ratio_{layer}"], [0, 1 / 3])


def test_lateral_widths_of_two_cell_showers():
    showers = empty()
    showers["layer_0"][0, 1, 47:49] = 1.0  # neighbouring 5 mm strips: half the pitch
    showers["layer_1"][0, 5, 5] = showers["layer_1"][0, 6, 6] = 1.0  # diagonal 40 x 40 mm cells
    showers["layer_2"][0, 5, 2] = showers["layer_2"][0, 6, 3] = 1.0  # diagonal 40 x 80 mm cells
    v = S.shape_variables(showers, np.array([3.0]))
    assert v["width_0"][0] == pytest.approx(2.5)
    assert v["width_1"][0] == pytest.approx(20 * math.sqrt(2))
    assert v["width_2"][0] == pytest.approx(math.hypot(20, 40))
    assert v["width_weighted"][0] == pytest.approx((2.5 + 20 * math.sqrt(2) + math.hypot(20, 40)) / 3)
    assert v["max_ratio_0"][0] == v["max_ratio_1"][0] == 1.0 and v["E_max_2"][0] == 1.0
    column = empty()
    column["layer_0"][0, :, 30] = 1.0  # layer 0 is measured along y only: a spread in x has width 0
    assert S.shape_variables(column, np.array([3.0]))["width_0"][0] == 0.0


def test_longitudinal_moments():
    showers = empty()
    showers["layer_0"][0, 1, 47:49] = 1.0  # E_0 = 2, width 2.5 mm
    showers["layer_2"][0, 3, 3] = 6.0  # E_2 = 6, width 0
    v = S.shape_variables(showers, np.array([10.0]))
    assert v["depth"][0] == pytest.approx(12 / 8)
    assert v["depth_width"][0] == pytest.approx(math.sqrt(24 / 8 - (12 / 8) ** 2))
    assert (v["f_0"][0], v["f_1"][0], v["f_2"][0]) == pytest.approx((0.25, 0, 0.75))
    assert v["width_weighted"][0] == pytest.approx(2 * 2.5 / 8)
    assert v["E_tot/E_inc"][0] == pytest.approx(0.8)


def test_empty_layers_and_showers_are_finite(pions):
    showers, incident = pions
    punched = {k: v.copy() for k, v in showers.items()}
    punched["layer_0"][:] = 0.0
    nothing = empty(3)
    for batch, energies in ((punched, incident), (nothing, np.array([1.0, 10.0, 0.0]))):
        v = S.shape_variables(batch, energies)
        assert all(np.all(np.isfinite(x)) for x in v.values())
    assert all(np.all(x == 0) for x in S.shape_variables(nothing, np.array([1.0, 10.0, 0.0])).values())
    v = S.shape_variables(punched, incident)
    assert np.all(v["f_0"] == 0) and np.all(v["width_0"] == 0) and np.all(v["max_ratio_0"] == 0)


def test_compare_shapes(positrons, pions):
    (a, ea), (b, eb) = positrons
    same = S.compare_shapes(a, a, ea, ea)
    assert list(same) == list(S.VARIABLES)
    assert all(d == {"w1": 0.0, "w1_over_std": 0.0, "ks": 0.0} for d in same.values())
    independent, different = S.compare_shapes(a, b, ea, eb), S.compare_shapes(a, pions[0], ea, pions[1])
    # two simulator samples differ by sampling noise only: KS ~ sqrt(2 / N) ~ 0.05 at most 0.1 (p ~ 4e-4 each)
    assert max(d["ks"] for d in independent.values()) < 0.1
    assert different["f_2"]["ks"] > 0.5 and different["E_tot/E_inc"]["w1_over_std"] > 10
    constant = S.compare_variables({"x": np.ones(5)}, {"x": np.full(4, 2.0)})
    assert constant["x"] == {"w1": 1.0, "w1_over_std": math.inf, "ks": 1.0}


# ---------------------------------------------------------------------------- classifier two-sample test

def test_classifier_cannot_separate_two_simulator_samples(positrons):
    (a, ea), (b, eb) = positrons
    result = S.classifier_two_sample_auc(a, b, ea, eb, seed=0)
    # held-out AUC of an uninformative score: sd = sqrt((n1 + n2 + 1) / (12 n1 n2)) ~ 0.015 for 750 + 750
    expected_error = math.sqrt((N_SIM + 1) / (12 * (N_SIM / 2) ** 2))
    assert result["auc_error"] == pytest.approx(expected_error, rel=0.25)
    assert abs(result["auc"] - 0.5) < 5 * result["auc_error"] + 0.01
    assert result["n_train"] == result["n_test"] == N_SIM


def test_classifier_separates_positrons_from_pions(positrons, pions):
    (a, ea), _ = positrons
    result = S.classifier_two_sample_auc(a, pions[0], ea, pions[1], seed=0)
    assert result["auc"] > 0.9


def test_classifier_is_deterministic(positrons, pions):
    (a, ea), _ = positrons
    small = {k: v[:200] for k, v in a.items()}
    pi_small = {k: v[:150] for k, v in pions[0].items()}
    runs = [S.classifier_two_sample_auc(small, pi_small, ea[:200], pions[1][:150], seed=3, epochs=2)
            for _ in range(2)]
    assert runs[0] == runs[1]


def test_cell_features():
    showers = empty()
    showers["layer_2"][0, 11, 5] = 1e-3  # 1 MeV: log(2)
    x = S.cell_features(showers, np.array([20.0]))
    assert x.shape == (1, 505) and x.dtype == np.float32
    assert x[0, 503] == pytest.approx(math.log(2)) and x[0, 504] == pytest.approx(math.log(20))
    assert np.count_nonzero(x[0, :504]) == 1


# ---------------------------------------------------------------------------- energy response

def test_energy_response_recovers_a_gaussian_response():
    rng = np.random.default_rng(5)
    n, mean, sigma = 4000, 0.9, 0.05
    incident = rng.uniform(1, 100, n)
    showers = empty(n)
    showers["layer_1"][:, 6, 6] = incident * rng.normal(mean, sigma, n)
    r = S.energy_response(showers, incident, [1, 50, 100])
    assert r["n"].sum() == n
    np.testing.assert_allclose(r["mean_error"], sigma / np.sqrt(r["n"]), rtol=0.05)
    res = sigma / mean  # Gaussian: se(s / m) ~ (s / m) sqrt(1 / 2n + (s / m)^2 / n)
    np.testing.assert_allclose(r["resolution_error"], res * np.sqrt(1 / (2 * r["n"]) + res ** 2 / r["n"]), rtol=0.1)
    assert np.all(np.abs(r["mean"] - mean) < 4 * r["mean_error"])
    assert np.all(np.abs(r["resolution"] - res) < 4 * r["resolution_error"])


def test_energy_response_of_simulator_showers(positrons, pions):
    (a, ea), (b, eb) = positrons
    bins = [1, 25, 50, 75, 100]
    ra, rb = S.energy_response(a, ea, bins), S.energy_response(b, eb, bins)
    response = S.shape_variables(a, ea)["E_tot/E_inc"]
    which = np.digitize(ea, bins) - 1
    np.testing.assert_allclose(ra["mean"], [response[which == k].mean() for k in range(4)], rtol=1e-12)
    assert np.all((ra["mean"] > 0.95) & (ra["mean"] <= 1.0))  # 30 X0 deep, no sampling: ~ full containment
    same = S.compare_response(ra, rb)
    assert np.all(np.abs(same["mean_ratio"] - 1) < 4 * same["mean_ratio_error"]) and same["mean_ok"]
    assert np.all(np.abs(same["resolution_ratio"] - 1) < 4 * same["resolution_ratio_error"])
    assert S.compare_response(ra, ra)["worst_resolution_deviation"] == 0.0
    vs_pions = S.compare_response(ra, S.energy_response(*pions, bins))
    assert not vs_pions["mean_ok"] and not vs_pions["resolution_ok"] and vs_pions["worst_mean_deviation"] > 0.3


def test_energy_response_empty_bins_and_mismatched_bins(positrons):
    (a, ea), _ = positrons
    r = S.energy_response(a, ea, [0.0, 0.5, 100.0])  # nothing below 1 GeV
    assert r["n"][0] == 0 and np.isnan(r["mean"][0]) and np.isfinite(r["mean"][1])
    assert S.compare_response(r, r)["worst_mean_deviation"] == 0.0
    with pytest.raises(ValueError):
        S.compare_response(r, S.energy_response(a, ea, [1.0, 100.0]))


# ---------------------------------------------------------------------------- figures

def test_shape_histograms_and_average_images_are_drawn_on_the_given_axes(positrons, pions):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    (a, ea), _ = positrons
    names = ["f_0", "depth", "width_0"]
    ref, gen = ({k: v[k] for k in names} for v in (S.shape_variables(a, ea), S.shape_variables(*pions)))
    fig, axes = plt.subplots(3, 3)
    try:
        S.draw_shape_histograms(axes[0], ref, gen, S.compare_variables(ref, gen))
        S.draw_average_images(axes[1:], a, pions[0])
        assert [ax.get_xlabel() for ax in axes[0]] == [S.VARIABLES[k] for k in names]
        assert axes[1, 0].get_title() == "simulator, layer 0" and axes[2, 2].get_title() == "generated, layer 2"
    finally:
        plt.close(fig)


# ---------------------------------------------------------------------------- the CaloChallenge protocol

def test_high_level_features_of_a_single_cell_shower():
    showers = empty()
    showers["layer_1"][0, 5, 7] = 2.0
    f = S.high_level_features(showers, np.array([4.0]))
    x, y = S.cell_centres(1)
    assert f["E_1/E_inc"][0] == pytest.approx(0.5) and f["E_0/E_inc"][0] == f["E_2/E_inc"][0] == 0
    assert (f["centroid_x_1"][0], f["centroid_y_1"][0]) == pytest.approx((x[5], y[7]))
    assert f["width_x_1"][0] == f["width_y_1"][0] == 0
    assert f["max_share_1"][0] == 1 and f["sparsity_1"][0] == pytest.approx(1 / 144)
    assert f["E_tot/E_inc"][0] == pytest.approx(0.5)
    assert all(np.isfinite(v).all() for v in f.values())


def test_high_level_widths_of_a_two_cell_shower():
    """Equal energy in two cells one pitch apart along y: centroid between them, width half the pitch."""
    showers = empty()
    showers["layer_2"][0, 3, 2] = showers["layer_2"][0, 3, 3] = 1.0
    f = S.high_level_features(showers, np.array([2.0]))
    pitch_y = calo.CELL_SIZES_MM[2][1]
    _, y = S.cell_centres(2)
    assert f["centroid_y_2"][0] == pytest.approx((y[2] + y[3]) / 2)
    assert f["width_y_2"][0] == pytest.approx(pitch_y / 2) and f["width_x_2"][0] == pytest.approx(0, abs=1e-9)
    assert f["max_share_2"][0] == pytest.approx(0.5)


def test_separation_power_limits():
    rng = np.random.default_rng(0)
    a = rng.normal(size=5000)
    assert S.separation_power(a, a) == 0
    assert S.separation_power(a, a + 100) == pytest.approx(1.0)
    # two unit Gaussians 1 sigma apart: (1/2) int (p - q)^2 / (p + q) dx = 0.2041 (scipy quad); counting noise
    # adds ~ bins / N to the histogram estimate and the binning moves it by a few per cent
    assert S.separation_power(a, rng.normal(1.0, 1.0, 5000)) == pytest.approx(0.2041, rel=0.1)


def gaussians(n, dims, shift, seed):
    rng = np.random.default_rng(seed)
    b = rng.normal(size=(n, dims))
    b[:, 0] += shift
    return rng.normal(size=(n, dims)), b


def test_challenge_classifier_planted_cases():
    """Same distribution: AUC 0.5 within its errors, JSD ~ 0. A shift of d = 1 sigma in one of 4 features: the
    best possible AUC is Phi(d / sqrt 2) = 0.760, which a trained classifier approaches from below."""
    same = S.challenge_classifier(*gaussians(2000, 4, 0.0, 1), seed=0, epochs=5)
    assert abs(same["auc"] - 0.5) < 4 * same["auc_error"] + 0.01
    assert abs(same["jsd"]) < 0.05 and same["n_test"] == 800
    shifted = S.challenge_classifier(*gaussians(2000, 4, 1.0, 2), seed=0, epochs=5)
    best = 0.5 * (1 + math.erf(0.5))
    assert best - 0.05 - 4 * shifted["auc_error"] < shifted["auc"] < best + 4 * shifted["auc_error"]
    assert shifted["jsd"] > 0.05 and 1 <= shifted["best_epoch"] <= shifted["epochs_run"] == 5
    with pytest.raises(ValueError, match=r"\(2000, 4\) and \(2000, 3\)"):
        S.challenge_classifier(np.zeros((2000, 4)), np.zeros((2000, 3)))


def test_frechet_distance_closed_form():
    """Gaussians N(0, I) and N(delta e_0, 4 I) in 3 dims: |delta|^2 + 3 (1 + 4 - 2 * 2) = delta^2 + 3."""
    rng = np.random.default_rng(0)
    a, b = rng.normal(size=(200_000, 3)), rng.normal(size=(200_000, 3)) * 2
    b[:, 0] += 0.5
    assert S.frechet_distance(a, b) == pytest.approx(0.25 + 3, rel=0.01)
    assert S.frechet_distance(a, a) == pytest.approx(0, abs=1e-9)


def test_fpd_and_kpd_planted_cases():
    """One distribution: FPD and KPD zero within their errors (the extrapolation removes the 1 / N bias).
    A mean shift of 0.5 sigma in one of 5 features: FPD = 0.25 (the standardisation by the reference's own
    sample spread moves it by ~1 / sqrt(N)), and KPD is many errors above 0."""
    a, b = gaussians(6000, 5, 0.0, 3)
    fpd, kpd = S.frechet_physics_distance(a, b, seed=0), S.kernel_physics_distance(a, b, seed=0)
    assert abs(fpd["fpd"]) < 4 * fpd["fpd_error"] + 2e-3
    assert abs(kpd["kpd"]) < 4 * kpd["kpd_error"]
    a, b = gaussians(6000, 5, 0.5, 4)
    fpd, kpd = S.frechet_physics_distance(a, b, seed=0), S.kernel_physics_distance(a, b, seed=0)
    assert fpd["fpd"] == pytest.approx(0.25, abs=4 * fpd["fpd_error"] + 0.03)
    assert kpd["kpd"] > 10 * kpd["kpd_error"]


def test_challenge_metrics_of_simulator_samples(positrons, pions):
    """Every measure is present and finite; two positron samples are closer than positrons and pions."""
    (a, ea), (b, eb) = positrons
    floor = S.challenge_metrics(a, b, ea, eb, seed=0, epochs=2)
    apart = S.challenge_metrics(a, pions[0], ea, pions[1], seed=0, epochs=2)
    assert all(np.isfinite(v) for v in floor.values()) and set(floor) == set(apart)
    assert floor["auc_high"] < 0.6 and apart["auc_high"] > 0.9
    assert floor["fpd"] < apart["fpd"] and floor["kpd"] < apart["kpd"]
    assert floor["separation/E_2/E_inc"] < apart["separation/E_2/E_inc"]
