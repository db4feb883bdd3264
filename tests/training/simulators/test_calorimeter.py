"""GFlash-style CaloGAN calorimeter simulator: layout, reproducibility, physics checks.

Tolerances are several standard errors of fixed-seed samples, so the checks are deterministic and not flaky.
"""
import math

import numpy as np
import pytest

from training.simulators import calorimeter as calo

X0 = calo.MEDIUM["X0_mm"]
SHAPES = {"energy": (1,), "layer_0": (3, 96), "layer_1": (12, 12), "layer_2": (12, 6), "overflow": (3,)}


def fixed(particle, n, energy, seed=11, **kw):
    return calo.simulate(particle, n, seed, energies=np.full(n, energy), return_truth=True, **kw)


def fraction(showers):
    return calo.deposited_energy_mev(showers) / (1e3 * showers["energy"][:, 0])


def layer0_fraction(showers):
    return showers["layer_0"].sum(axis=(1, 2), dtype=np.float64) / calo.deposited_energy_mev(showers)


def se(x):
    return np.std(x, ddof=1) / math.sqrt(len(x))


@pytest.mark.parametrize("particle", ["e+", "gamma", "pi+", "eplus", "piplus"])
def test_layout_dtypes_and_nonnegative(particle, tmp_path):
    showers = calo.simulate(particle, 12, seed=1)
    assert set(showers) == set(calo.DATASET_NAMES) == set(SHAPES)
    for name, shape in SHAPES.items():
        assert showers[name].shape == (12, *shape) and showers[name].dtype == np.float32
        assert np.all(showers[name] >= 0) and np.all(np.isfinite(showers[name]))
    assert np.all((showers["energy"] >= 1) & (showers["energy"] <= 100))
    path = calo.write_hdf5(tmp_path / "showers.hdf5", showers)
    back = calo.read_hdf5(path)
    assert set(back) == set(calo.DATASET_NAMES)
    for name in calo.DATASET_NAMES:
        np.testing.assert_array_equal(back[name], showers[name])
    assert [p.name for p in tmp_path.iterdir()] == ["showers.hdf5"]  # no temporary file left behind


def test_geometry_constants():
    assert calo.DEPTH_MM == 480.0 and calo.LAYER_EDGES_MM == (0.0, 90.0, 437.0, 480.0)
    assert calo.CELL_SIZES_MM == ((160.0, 5.0), (40.0, 40.0), (40.0, 80.0))
    m = calo.MEDIUM  # values derived in the notes from PDG constants
    assert m["X0_mm"] == pytest.approx(15.6, abs=0.1) and m["RM_mm"] == pytest.approx(35.5, abs=0.5)
    assert m["Ec_MeV"] == pytest.approx(9.3, abs=0.1) and m["Fs"] == pytest.approx(2.6, abs=0.02)
    assert m["e_hat"] == pytest.approx(0.69, abs=0.01) and m["lambda_I_mm"] == pytest.approx(374.6, abs=1)


@pytest.mark.parametrize("particle", ["e+", "gamma", "pi+"])
def test_seed_reproducible_and_block_size_independent(particle):
    a = calo.simulate(particle, 25, seed=7, block_size=64, noise_mev=2.0, threshold_mev=1.0)
    b = calo.simulate(particle, 25, seed=7, block_size=4, noise_mev=2.0, threshold_mev=1.0)
    c = calo.simulate(particle, 25, seed=8, noise_mev=2.0, threshold_mev=1.0)
    for name in calo.DATASET_NAMES:
        np.testing.assert_array_equal(a[name], b[name])
    assert not np.array_equal(a["layer_1"], c["layer_1"])


def test_em_energy_conservation_matches_leakage():
    special = pytest.importorskip("scipy.special")
    s = fixed("e+", 200, 50.0)
    f = fraction(s)
    t_s, alpha_s, beta_s = calo.spot_profile(s["truth"]["T"], s["truth"]["alpha"])
    contained = special.gammainc(alpha_s, beta_s * calo.DEPTH_MM / X0)  # expected fraction before 480 mm
    assert f.mean() > 0.9 + 5 * se(f)
    assert np.all(f <= 1 + 1e-5)
    # the per-shower difference is spot-sampling noise around 0
    d = f - contained
    assert abs(d.mean()) < 5 * se(d) + 1e-4
    assert s["overflow"].sum() / calo.deposited_energy_mev(s).sum() < 0.01


def test_centre_of_gravity_follows_profile():
    s = fixed("e+", 200, 50.0)
    t_s, alpha_s, beta_s = calo.spot_profile(s["truth"]["T"], s["truth"]["alpha"])
    cog = s["truth"]["mean_depth_mm"] / X0  # deposits incl. leakage, X0 from the front face (e+ start at 0)
    d = cog - alpha_s / beta_s
    assert abs(d.mean()) < 5 * se(d) + 0.01
    # the spot profile's mean depth is that of the energy profile <t> = alpha / beta within ~10%
    mean_t = s["truth"]["alpha"] / s["truth"]["beta"]
    assert abs(cog.mean() / mean_t.mean() - 1) < 0.12


def test_depth_of_maximum_grows_with_log_energy():
    low, high = fixed("e+", 150, 5.0), fixed("e+", 150, 80.0)
    ln_t_low, ln_t_high = np.log(low["truth"]["T"]), np.log(high["truth"]["T"])
    expected = calo.em_profile_moments(80.0)[0] - calo.em_profile_moments(5.0)[0]
    diff = ln_t_high.mean() - ln_t_low.mean()
    tol = 5 * math.hypot(se(ln_t_low), se(ln_t_high))
    assert diff > 0 and abs(diff - expected) < tol + 0.02
    # T itself grows by about ln(80/5) X0 (GFlash: T ~ ln y - const)
    assert high["truth"]["T"].mean() - low["truth"]["T"].mean() == pytest.approx(math.log(16), rel=0.3)
    # visible in the readout: less energy in the front layer at high energy
    f_low, f_high = layer0_fraction(low), layer0_fraction(high)
    assert f_low.mean() - f_high.mean() > 5 * math.hypot(se(f_low), se(f_high))


def test_photons_start_deeper_than_electrons():
    e, g = fixed("e+", 200, 20.0), fixed("gamma", 200, 20.0)
    start = g["truth"]["start_mm"]
    assert np.all(e["truth"]["start_mm"] == 0)
    expected = calo.PHOTON_CONVERSION_X0 * X0  # exponential: sd = mean
    assert abs(start.mean() - expected) < 5 * expected / math.sqrt(len(start))
    depth_e, depth_g = e["truth"]["mean_depth_mm"], g["truth"]["mean_depth_mm"]
    assert depth_g.mean() - depth_e.mean() > 5 * math.hypot(se(depth_e), se(depth_g))
    f_e, f_g = layer0_fraction(e), layer0_fraction(g)
    assert f_e.mean() - f_g.mean() > 5 * math.hypot(se(f_e), se(f_g))


def test_pions_deposit_less_and_fluctuate_more():
    e, pi = fixed("e+", 150, 30.0), fixed("pi+", 150, 30.0)
    f_e, f_pi = fraction(e), fraction(pi)
    assert f_e.mean() - f_pi.mean() > 5 * math.hypot(se(f_e), se(f_pi))
    assert np.std(f_pi) / f_pi.mean() > 10 * np.std(f_e) / f_e.mean()
    # pions that cross without interacting leave only the MIP signal, ~0.565 MeV/mm * 480 mm
    mip = calo.MEDIUM["mip_MeV_per_mm"] * calo.DEPTH_MM
    crossing = ~(pi["truth"]["start_mm"] < calo.DEPTH_MM)
    assert crossing.sum() > 10
    np.testing.assert_allclose(calo.deposited_energy_mev(pi)[crossing], mip, rtol=1e-4)


def test_sampling_fluctuations_follow_c_s():
    s = fixed("e+", 200, 20.0, sampling=True)
    f = fraction(s)
    sigma = calo.C_S_SQRT_GEV / math.sqrt(20.0)  # ~2.5%, far above leakage fluctuations at 20 GeV
    assert abs(f.mean() - 1) < 5 * sigma / math.sqrt(len(f)) + 0.002
    assert abs(np.std(f, ddof=1) / sigma - 1) < 5 / math.sqrt(2 * (len(f) - 1)) + 0.05


def test_noise_and_threshold():
    s = calo.simulate("e+", 10, seed=3, energies=np.full(10, 10.0), noise_mev=5.0, threshold_mev=12.0)
    cells = np.concatenate([s[f"layer_{i}"].reshape(10, -1) for i in range(3)], axis=1)
    assert np.all((cells == 0) | (cells >= 12.0))
    noisy = calo.simulate("e+", 10, seed=3, energies=np.full(10, 10.0), noise_mev=5.0)
    quiet = calo.simulate("e+", 10, seed=3, energies=np.full(10, 10.0))
    assert (noisy["layer_1"] > 0).sum() > (quiet["layer_1"] > 0).sum()


@pytest.mark.parametrize("kwargs, message", [
    ({"particle": "proton"}, "proton"),
    ({"n": 0}, "n must be"),
    ({"n": 2.5}, "n must be"),
    ({"energies": [1.0, -2.0, 3.0]}, "-2.0"),
    ({"energies": [1.0, np.nan, 3.0]}, "nan"),
    ({"energies": [1.0, 2.0]}, "n = 3"),
    ({"energy_range": (0.0, 10.0)}, "energy_range"),
    ({"energy_range": (1.0, np.inf)}, "energy_range"),
    ({"noise_mev": -1.0}, "noise_mev"),
    ({"block_size": 0}, "block_size"),
])
def test_input_errors(kwargs, message):
    args = {"particle": "e+", "n": 3, "seed": 0, **kwargs}
    with pytest.raises(ValueError, match=message):
        calo.simulate(**args)
