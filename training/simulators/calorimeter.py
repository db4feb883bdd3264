"""Parametrised (GFlash-style) showers in the CaloGAN lead / liquid-argon calorimeter.

Geometry (hep-lbdl/CaloGAN, ``generation/src/DetectorConstruction.cc`` and
``SteppingAction``/``WhichZBin``/``WhichXYbin`` at commit 79b63a7): 80 cells of
2 mm Pb + 4 mm LAr, 480 mm deep, read out in three layers by the depth z from
the front face:

    layer 0: 0 <= z < 90 mm,    3 x 96 cells of 160 x 5 mm   (x, y)
    layer 1: 90 <= z < 437 mm,  12 x 12 cells of 40 x 40 mm
    layer 2: 437 <= z < 480 mm, 12 x 6 cells of 40 x 80 mm

inside a +-240 mm window around the beam axis (particles enter at x = y = 0,
normal incidence). Energy outside the window goes to ``overflow[layer]``;
energy behind z = 480 mm leaks out and is lost. The CaloGAN readout sums the
deposits in lead *and* argon, so by default the total deposited energy is
recorded, with no sampling fraction and no sampling fluctuations.

Units: incident energies in GeV, cell energies in MeV (the CaloGAN HDF5
layout), lengths in mm unless a name says X0 (radiation lengths), R_M
(Moliere radii) or lambda (interaction lengths).

Electromagnetic showers (e+, gamma) follow Grindhammer & Peters,
hep-ex/0001020, with the constants as coded in Geant4 GFlash
(``GVFlashHomoShowerTuning.hh``, ``GFlashSamplingShowerTuning.hh``,
``GFlashSamplingShowerParameterisation.cc``):

    dE = E f(t) dt f(r) dr dphi / 2pi,   t in X0, r in R_M
    f(t) = Gamma(alpha, beta),  T = (alpha - 1) / beta,  <t> = alpha / beta
    f(r) = p 2 r R_C^2 / (r^2 + R_C^2)^2 + (1 - p) 2 r R_T^2 / (r^2 + R_T^2)^2

ln T and ln alpha are drawn per shower from a correlated normal (sampling-
calorimeter parametrisation of an effective Pb/LAr medium, see
:data:`MEDIUM`); the energy is deposited in N_spot equal "spots", each at a
depth drawn from the spot profile Gamma(alpha_s, beta_s), a radius drawn from
f(r) evaluated at tau = t / T, and a uniform azimuth. Photons first travel a
conversion depth ~ Exp(mean 9/7 X0) (Geant4 GFlash ``GenerateExponential``).
The effective medium replaces the layered Pb/LAr structure by a homogeneous
one (z = t X0_eff): the fine 6 mm sampling structure is not resolved.

Charged pions (pi+) use a simple, documented, approximate model
(:func:`_hadron_shower_spots`): a minimum-ionising track up to the first
inelastic interaction at depth ~ Exp(lambda_pi), then an EM part (fraction
f_em, drawn per shower from a Beta distribution around the Groom / Gabriel
mean 1 - (E/E0)^(k-1)) with the EM profile, and a hadronic part that loses an
invisible fraction (nuclear binding, escaping neutrons) and is spread with a
Bock-type Gamma profile in lambda_I and a wide radial profile. The stack is
only ~1.3 lambda_I deep, so pions leak heavily. Constants marked
*approximate* are rough and from memory of the cited reviews; they set the
scale, not precision.

Randomness: every shower has its own stream (``SeedSequence(seed,
spawn_key=(1, i))``) and the incident energies another (``spawn_key=(0,)``),
so the output depends only on ``seed`` and the shower index, never on
``block_size``.
"""
from __future__ import annotations

import math
import os
from pathlib import Path

import numpy as np

# ---------------------------------------------------------------------------- geometry (CaloGAN)

CELL_PB_MM = 2.0  # DetectorConstruction.cc: 2 mm G4_Pb absorber per cell
CELL_LAR_MM = 4.0  # DetectorConstruction.cc: 4 mm liquid argon per cell
N_CELLS = 80
DEPTH_MM = N_CELLS * (CELL_PB_MM + CELL_LAR_MM)  # 480 mm
LAYER_EDGES_MM = (0.0, 90.0, 437.0, DEPTH_MM)  # WhichZBin: z < -150, < 197, >= 197 mm; front face at -240 mm
HALF_WIDTH_MM = 240.0  # WhichXYbin: readout window x, y in (-240, 240) mm
LAYER_SHAPES = ((3, 96), (12, 12), (12, 6))  # [x_bin, y_bin] per layer (CaloGAN convention, row = x)
CELL_SIZES_MM = tuple((2 * HALF_WIDTH_MM / nx, 2 * HALF_WIDTH_MM / ny) for nx, ny in LAYER_SHAPES)
DATASET_NAMES = ("energy", "layer_0", "layer_1", "layer_2", "overflow")
PARTICLES = {"e+": "e+", "eplus": "e+", "gamma": "gamma", "pi+": "pi+", "piplus": "pi+"}

_LAYER_SIZES = tuple(nx * ny for nx, ny in LAYER_SHAPES)
_LAYER_OFFSETS = tuple(int(v) for v in np.cumsum((0,) + _LAYER_SIZES[:-1]))
_N_READOUT = sum(_LAYER_SIZES)  # 504 cells
_OVERFLOW = _N_READOUT  # indices 504, 505, 506: overflow of layers 0, 1, 2
_LOST = _N_READOUT + 3  # index 507: longitudinal leakage (discarded)
_N_BINS = _LOST + 1

# ---------------------------------------------------------------------------- materials
# PDG "Atomic and nuclear properties of materials" (values from memory, as collected in the
# project notes; the LAr density is CaloGAN's custom material, 1.390 g/cm^3).
# X0 and lambda in g/cm^2, E_c (electrons) in MeV, dE/dx_min in MeV cm^2/g.
LEAD = {"Z": 82.0, "A": 207.2, "density": 11.35, "X0": 6.37, "Ec": 7.43, "lambda_I": 199.6,
        "lambda_pi": 226.2, "dedx_min": 1.122, "thickness_cm": CELL_PB_MM / 10}
ARGON = {"Z": 18.0, "A": 39.95, "density": 1.390, "X0": 19.55, "Ec": 32.84, "lambda_I": 119.7,
         "lambda_pi": 152.0, "dedx_min": 1.519, "thickness_cm": CELL_LAR_MM / 10}
# lambda_pi (pion inelastic interaction length) values are *approximate* (PDG tables from memory, unverified).
E_S_MEV = 21.2  # scale energy of the Moliere radius (GFlash / PDG: E_s = 21.2 MeV)


def effective_medium(passive=LEAD, active=ARGON) -> dict:
    """Homogeneous medium equivalent to one Pb/LAr cell, as GFlash builds it.

    Mass weights w_i = d_i rho_i / sum d_j rho_j (GFlashSamplingShowerParameterisation.cc):
    Z_eff = sum w_i Z_i, 1/X0_eff = sum w_i / X0_i (g/cm^2), 1/R_M = sum w_i (E_c,i / X0_i) / E_s,
    E_c,eff = X0_eff sum w_i E_c,i / X0_i, and the same harmonic mass-weighted mean for the interaction
    lengths. F_s = X0_eff / (d_passive + d_active) is the sampling frequency (cells per X0) and
    e_hat = e/mip = 1 / (1 + 0.007 (Z_passive - Z_active)) the GFlash electron-to-mip ratio.
    Returns lengths in mm, energies in MeV.
    """
    areal = [m["thickness_cm"] * m["density"] for m in (passive, active)]  # g/cm^2 per cell
    w = np.array(areal) / sum(areal)
    rho = sum(areal) / (passive["thickness_cm"] + active["thickness_cm"])
    mats = (passive, active)
    x0_g = 1.0 / sum(wi / m["X0"] for wi, m in zip(w, mats))
    ec_over_x0 = sum(wi * m["Ec"] / m["X0"] for wi, m in zip(w, mats))
    rm_g = E_S_MEV / ec_over_x0
    lam_i_g = 1.0 / sum(wi / m["lambda_I"] for wi, m in zip(w, mats))
    lam_pi_g = 1.0 / sum(wi / m["lambda_pi"] for wi, m in zip(w, mats))
    to_mm = 10.0 / rho
    cell_cm = passive["thickness_cm"] + active["thickness_cm"]
    return {
        "density": rho, "Z": float(sum(wi * m["Z"] for wi, m in zip(w, mats))),
        "X0_mm": x0_g * to_mm, "RM_mm": rm_g * to_mm, "Ec_MeV": x0_g * ec_over_x0,
        "lambda_I_mm": lam_i_g * to_mm, "lambda_pi_mm": lam_pi_g * to_mm,
        "Fs": x0_g * to_mm / (10.0 * cell_cm),
        "e_hat": 1.0 / (1.0 + 0.007 * (passive["Z"] - active["Z"])),
        # mean dE/dx of a minimum-ionising particle averaged over a cell, MeV/mm (~0.565: 3.39 MeV per cell)
        "mip_MeV_per_mm": sum(m["dedx_min"] * m["density"] * m["thickness_cm"] for m in mats) / (10.0 * cell_cm),
    }


MEDIUM = effective_medium()  # X0 ~ 15.6 mm, R_M ~ 35.5 mm, E_c ~ 9.3 MeV, Z ~ 69.4, F_s ~ 2.6, e_hat ~ 0.69

# ---------------------------------------------------------------------------- EM constants (GFlash)
C_S_SQRT_GEV = 0.11  # GFlash default sampling term c_s (GeV^1/2); PDG rule of thumb gives ~0.108 for 4 mm LAr
PHOTON_CONVERSION_X0 = 9.0 / 7.0  # mean photon conversion depth in X0 (Geant4 GFlash GenerateExponential)
_T_MIN, _ALPHA_MIN, _SIGMA_MAX = 1.0, 1.1, 0.5  # Geant4 GFlash clamps in sampling mode (per the project notes)

# ---------------------------------------------------------------------------- hadronic constants (approximate)
FEM_E0_GEV = 1.0  # Groom / Gabriel: <f_em> = 1 - (E/E0)^(k-1), E0 ~ 1 GeV (PDG calorimetry review; approximate)
FEM_K = 0.82  # k ~ 0.80-0.87 (same source; approximate)
FEM_CONCENTRATION = 8.0  # Beta(mu kappa, (1-mu) kappa) per shower: sd(f_em) ~ 0.16 at mu = 0.4 (approximate)
INVISIBLE_MEAN = 0.35  # invisible (binding, neutron) fraction of the non-EM energy, 20-40% (Wigmans; approximate)
INVISIBLE_CONCENTRATION = 20.0  # Beta concentration of the invisible fraction (approximate)
# Bock et al., NIM 186 (1981) 533, hadronic component (x/lambda)^(a-1) exp(-d x/lambda) from the first
# interaction, x in lambda_I: a = 0.6165 + 0.3193 ln E, d = 0.9099 - 0.0237 ln E (from memory; approximate)
BOCK_A = (0.6165, 0.3193)
BOCK_D = (0.9099, -0.0237)
HAD_CORE_LAMBDA, HAD_TAIL_LAMBDA, HAD_CORE_P = 0.1, 0.4, 0.6  # radial core/tail radii in lambda_I (approximate)
HAD_SPOT_FRACTION = 0.25  # hadronic spots per GeV relative to EM: fewer, larger spots = larger fluctuations


# ---------------------------------------------------------------------------- EM parametrisation

def em_profile_moments(energy_gev, medium=MEDIUM):
    """Means, widths and correlation of (ln T, ln alpha) for single EM showers, y = E / E_c,eff.

    Homogeneous part (GVFlashHomoShowerTuning.hh): <ln T_h> = ln(ln y - 0.812),
    <ln alpha_h> = ln(0.81 + (0.458 + 2.26/Z) ln y). Sampling corrections
    (GFlashSamplingShowerTuning.hh): <ln T> = ln(T_h - 0.55/F_s - 0.69 (1 - e_hat)),
    <ln alpha> = ln(alpha_h - 0.476/F_s), sigma(ln T) = 1/(-2.5 + 1.25 ln y),
    sigma(ln alpha) = 1/(-0.82 + 0.79 ln y), rho = 0.784 - 0.023 ln y. Arguments of the logarithms
    and widths are clamped (widths <= 0.5) so that very soft showers (pion EM parts) stay defined.
    """
    ln_y = np.log(np.maximum(np.asarray(energy_gev, float) * 1e3 / medium["Ec_MeV"], 1.0))
    z, fs, e_hat = medium["Z"], medium["Fs"], medium["e_hat"]
    t_hom = np.maximum(ln_y - 0.812, 1e-3)
    a_hom = 0.81 + (0.458 + 2.26 / z) * ln_y
    mean_ln_t = np.log(np.maximum(t_hom - 0.55 / fs - 0.69 * (1 - e_hat), 0.1))
    mean_ln_a = np.log(np.maximum(a_hom - 0.476 / fs, _ALPHA_MIN))
    sigma_t = 1.0 / np.maximum(-2.5 + 1.25 * ln_y, 1.0 / _SIGMA_MAX)
    sigma_a = 1.0 / np.maximum(-0.82 + 0.79 * ln_y, 1.0 / _SIGMA_MAX)
    rho = np.clip(0.784 - 0.023 * ln_y, -1.0, 1.0)
    return mean_ln_t, mean_ln_a, sigma_t, sigma_a, rho


def em_shower_parameters(energy_gev, z1, z2, medium=MEDIUM):
    """Per-shower (T, alpha, beta) from two independent standard normals z1, z2 (Grindhammer & Peters):

    ln T = <ln T> + sigma_T (sqrt((1+rho)/2) z1 + sqrt((1-rho)/2) z2),
    ln alpha = <ln alpha> + sigma_a (sqrt((1+rho)/2) z1 - sqrt((1-rho)/2) z2), beta = (alpha - 1) / T,
    clamped to T >= 1, alpha >= 1.1 as in Geant4. T is in X0, beta in 1/X0.
    """
    m_t, m_a, s_t, s_a, rho = em_profile_moments(energy_gev, medium)
    plus, minus = np.sqrt((1 + rho) / 2), np.sqrt((1 - rho) / 2)
    t_max = np.maximum(np.exp(m_t + s_t * (plus * z1 + minus * z2)), _T_MIN)
    alpha = np.maximum(np.exp(m_a + s_a * (plus * z1 - minus * z2)), _ALPHA_MIN)
    return t_max, alpha, (alpha - 1) / t_max


def spot_profile(t_max, alpha, medium=MEDIUM):
    """Longitudinal profile of the spots (GFlash sampling tuning): T_s = T (0.813 + 0.0019 Z),
    alpha_s = alpha (0.844 + 0.0026 Z), beta_s = (alpha_s - 1) / T_s. Spots are distributed slightly
    differently from the energy profile to reproduce the fluctuations of single showers; the mean
    deposited depth is alpha_s / beta_s (close to alpha / beta: ~ +8% for Z_eff ~ 69)."""
    z = medium["Z"]
    t_s = t_max * (0.813 + 0.0019 * z)
    alpha_s = alpha * (0.844 + 0.0026 * z)
    return t_s, alpha_s, (alpha_s - 1) / t_s


def n_spots(energy_gev, c_s=C_S_SQRT_GEV):
    """GFlash sampling spot count N = (10.3 / c_s) E^0.959 (E in GeV); ~8,000 at 100 GeV. At least 1."""
    return np.maximum(np.ceil(10.3 / c_s * np.asarray(energy_gev, float) ** 0.959), 1).astype(np.int64)


def radial_parameters(tau, energy_gev, medium=MEDIUM):
    """Core radius R_C, tail radius R_T (in R_M) and core probability p at tau = t / T.

    Homogeneous coefficients (GVFlashHomoShowerTuning.hh), E in GeV, Z = Z_eff:
    R_C = z1 + z2 tau, z1 = 0.0251 + 0.00319 ln E, z2 = 0.1162 - 0.000381 Z;
    R_T = k1 (exp(k3 (tau - k2)) + exp(k4 (tau - k2))), k1 = 0.659 - 0.00309 Z, k2 = 0.645,
    k3 = -2.59, k4 = 0.3585 + 0.0412 ln E;
    p = p1 exp((p2 - tau)/p3 - exp((p2 - tau)/p3)), p1 = 2.632 - 0.00094 Z, p2 = 0.401 + 0.00187 Z,
    p3 = 1.313 - 0.0686 ln E. Sampling corrections (GFlashSamplingShowerTuning.hh):
    R_C += -0.0203 (1 - e_hat) + 0.0397 exp(-tau) / F_s, R_T += -0.14 (1 - e_hat) - 0.495 exp(-tau) / F_s,
    p += (1 - e_hat) (0.348 - 0.642 exp(-(tau - 1)^2) / F_s). Radii are kept positive and p in [0, 1].
    """
    z, fs, e_hat = medium["Z"], medium["Fs"], medium["e_hat"]
    ln_e = np.log(np.asarray(energy_gev, float))
    exp_tau = np.exp(-tau)
    r_core = 0.0251 + 0.00319 * ln_e + (0.1162 - 0.000381 * z) * tau - 0.0203 * (1 - e_hat) + 0.0397 * exp_tau / fs
    k1, k4 = 0.659 - 0.00309 * z, 0.3585 + 0.0412 * ln_e
    r_tail = (k1 * (np.exp(-2.59 * (tau - 0.645)) + np.exp(k4 * (tau - 0.645)))
              - 0.14 * (1 - e_hat) - 0.495 * exp_tau / fs)
    arg = (0.401 + 0.00187 * z - tau) / (1.313 - 0.0686 * ln_e)
    p = (2.632 - 0.00094 * z) * np.exp(arg - np.exp(arg)) + (1 - e_hat) * (0.348 - 0.642 * np.exp(-(tau - 1) ** 2) / fs)
    return np.maximum(r_core, 1e-3), np.maximum(r_tail, 1e-3), np.clip(p, 0.0, 1.0)


def _two_component_radius(u_choice, u_r, r_core, r_tail, p_core):
    """Inverse CDF of p 2rR_C^2/(r^2+R_C^2)^2 + (1-p) (same with R_T): r = R sqrt(u / (1 - u))."""
    radius = np.where(u_choice < p_core, r_core, r_tail)
    return radius * np.sqrt(u_r / (1.0 - u_r))


def mean_em_fraction(energy_gev):
    """Mean EM fraction of a pion shower, 1 - (E/E0)^(k-1) (Groom / Gabriel; approximate), kept in [0.05, 0.95]."""
    return np.clip(1.0 - (np.asarray(energy_gev, float) / FEM_E0_GEV) ** (FEM_K - 1.0), 0.05, 0.95)


# ---------------------------------------------------------------------------- spots of one shower
# Each function returns a dict of per-spot arrays: z (mm from the front face), kind (0 EM, 1 hadronic,
# 2 on-axis), tau (t / T for EM spots), e_rad (shower energy for the radial parameters, GeV), u (2, N)
# uniforms for the radius, and the spot energies in MeV. All randomness comes from ``gen``.

def _em_spots(gen, energy_gev, start_mm, t_max, alpha, c_s, sampling):
    t_s, alpha_s, beta_s = spot_profile(t_max, alpha)
    n = int(n_spots(energy_gev, c_s))
    t = gen.gamma(alpha_s, size=n) / beta_s
    u = gen.random((3, n))
    e = np.full(n, energy_gev / n)
    if sampling:  # Geant4 GFlash ApplySampling: dE' ~ Gamma(shape dE / c_s^2, scale c_s^2), dE in GeV
        e = gen.gamma(e / c_s**2) * c_s**2
    return {"z": start_mm + t * MEDIUM["X0_mm"], "tau": t / t_max, "e_rad": np.full(n, energy_gev),
            "kind": np.zeros(n, np.int8), "u": u, "e": e * 1e3}


def _hadron_shower_spots(gen, energy_gev, c_s, sampling):
    """pi+: MIP track to the first interaction, then an EM part and a hadronic part (approximate model).

    * first inelastic interaction at z_int ~ Exp(lambda_pi,eff ~ 438 mm), lambda_pi from the (approximate)
      PDG pion interaction lengths of Pb and Ar; about 1/3 of pions cross the 480 mm stack without one;
    * before it (and all along the stack if there is none) the pion deposits dE/dx_min averaged over a
      cell, ~0.565 MeV/mm (3.39 MeV per cell, PDG dE/dx_min of Pb and LAr; no relativistic rise,
      no Landau fluctuations), on the beam axis;
    * the remaining energy splits into f_em ~ Beta around :func:`mean_em_fraction` (an EM shower with the
      GFlash EM parametrisation starting at z_int: all pi0 photons are lumped into one shower) and a
      hadronic part of which a fraction ~ Beta(mean 0.35) is invisible; the visible hadronic energy
      goes into HAD_SPOT_FRACTION times as many spots as an EM shower of that energy, with depth
      ~ Gamma(a, d) in lambda_I from z_int (Bock et al.) and a core+tail radial profile with radii
      0.1 and 0.4 lambda_I (core probability 0.6).
    """
    z_int = gen.exponential(MEDIUM["lambda_pi_mm"])
    mu = float(mean_em_fraction(energy_gev))
    f_em = gen.beta(FEM_CONCENTRATION * mu, FEM_CONCENTRATION * (1 - mu))
    f_inv = gen.beta(INVISIBLE_CONCENTRATION * INVISIBLE_MEAN, INVISIBLE_CONCENTRATION * (1 - INVISIBLE_MEAN))
    z1, z2 = gen.standard_normal(2)
    track_end = min(z_int, DEPTH_MM)
    edges = np.asarray(LAYER_EDGES_MM)
    lengths = np.clip(track_end - edges[:-1], 0.0, np.diff(edges))
    mip_mev = lengths * MEDIUM["mip_MeV_per_mm"]
    parts = [{"z": (edges[:-1] + edges[1:]) / 2, "tau": np.zeros(3), "e_rad": np.ones(3),
              "kind": np.full(3, 2, np.int8), "u": np.full((3, 3), 0.5), "e": mip_mev}]
    rest_gev = energy_gev - mip_mev.sum() * 1e-3
    if z_int < DEPTH_MM and rest_gev > 0:
        e_em = f_em * rest_gev
        t_max, alpha, _ = em_shower_parameters(e_em, z1, z2)
        parts.append(_em_spots(gen, e_em, z_int, float(t_max), float(alpha), c_s, sampling))
        e_had = (1 - f_em) * (1 - f_inv) * rest_gev
        a = max(BOCK_A[0] + BOCK_A[1] * math.log(rest_gev), 0.5)
        d = BOCK_D[0] + BOCK_D[1] * math.log(rest_gev)
        n = max(int(math.ceil(HAD_SPOT_FRACTION * n_spots(e_had, c_s))), 1)
        x = gen.gamma(a, size=n) / d
        u = gen.random((3, n))
        e = np.full(n, e_had / n)
        if sampling:
            e = gen.gamma(e / c_s**2) * c_s**2
        parts.append({"z": z_int + x * MEDIUM["lambda_I_mm"], "tau": np.zeros(n), "e_rad": np.full(n, e_had),
                      "kind": np.ones(n, np.int8), "u": u, "e": e * 1e3})
    return {k: np.concatenate([p[k] for p in parts], axis=-1) for k in parts[0]}, z_int


# ---------------------------------------------------------------------------- binning

_WX = np.array([w[0] for w in CELL_SIZES_MM])
_WY = np.array([w[1] for w in CELL_SIZES_MM])
_NX = np.array([shape[0] for shape in LAYER_SHAPES])
_NY = np.array([shape[1] for shape in LAYER_SHAPES])
_OFF = np.array(_LAYER_OFFSETS)


def _cell_index(z, x, y):
    """Flat index 0..507 for each deposit: readout cells, overflow[layer] (504 + layer) or lost (507).

    Bins follow CaloGAN's WhichXYbin: index = floor((x + 240 mm) / cell width), row = x."""
    layer = np.searchsorted(np.asarray(LAYER_EDGES_MM[1:]), z, side="right")  # 0, 1, 2, or 3 = behind
    lc = np.minimum(layer, 2)
    inside = (np.abs(x) < HALF_WIDTH_MM) & (np.abs(y) < HALF_WIDTH_MM)
    nx, ny = _NX[lc], _NY[lc]
    ix = np.clip(((x + HALF_WIDTH_MM) // _WX[lc]).astype(np.int64), 0, nx - 1)
    iy = np.clip(((y + HALF_WIDTH_MM) // _WY[lc]).astype(np.int64), 0, ny - 1)
    index = np.where(inside, _OFF[lc] + ix * ny + iy, _OVERFLOW + lc)
    return np.where(layer == 3, _LOST, index)


def _deposit_block(spots_per_shower):
    """Sum the spots of a block of showers into (n_block, 508) MeV, vectorised over all their spots."""
    counts = np.array([s["z"].size for s in spots_per_shower])
    cat = {k: np.concatenate([s[k] for s in spots_per_shower], axis=-1) for k in spots_per_shower[0]}
    kind, u = cat["kind"], cat["u"]
    r_core, r_tail, p = radial_parameters(cat["tau"], cat["e_rad"])
    r_em = _two_component_radius(u[0], u[1], r_core, r_tail, p) * MEDIUM["RM_mm"]
    if np.any(kind):  # pi+: hadronic spots (1) get a wider profile in lambda_I, MIP spots (2) sit on the axis
        r_had = _two_component_radius(u[0], u[1], HAD_CORE_LAMBDA, HAD_TAIL_LAMBDA, HAD_CORE_P) * MEDIUM["lambda_I_mm"]
        r = np.where(kind == 0, r_em, np.where(kind == 1, r_had, 0.0))
    else:
        r = r_em
    phi = 2 * np.pi * u[2]
    cells = _cell_index(cat["z"], r * np.cos(phi), r * np.sin(phi))
    owner = np.repeat(np.arange(len(spots_per_shower)), counts)
    return np.bincount(owner * _N_BINS + cells, weights=cat["e"], minlength=len(spots_per_shower) * _N_BINS
                       ).reshape(len(spots_per_shower), _N_BINS)


# ---------------------------------------------------------------------------- public API

def _validate(particle, n, energies, energy_range, noise_mev, threshold_mev, block_size):
    if particle not in PARTICLES:
        raise ValueError(f"Unknown particle {particle!r}; expected one of {sorted(PARTICLES)}.")
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 1:
        raise ValueError(f"n must be an integer >= 1, got {n!r}.")
    if energies is not None:
        energies = np.asarray(energies, dtype=float).reshape(-1)
        if energies.size != n:
            raise ValueError(f"energies must hold n = {n} values (GeV), got {energies.size}.")
        if not np.all(np.isfinite(energies)) or np.any(energies <= 0):
            bad = energies[~(np.isfinite(energies) & (energies > 0))][:3]
            raise ValueError(f"energies must be finite and > 0 GeV, got e.g. {bad.tolist()}.")
    lo, hi = (float(v) for v in energy_range)
    if not (math.isfinite(lo) and math.isfinite(hi) and 0 < lo <= hi):
        raise ValueError(f"energy_range must be finite with 0 < low <= high (GeV), got {tuple(energy_range)!r}.")
    for name, value in (("noise_mev", noise_mev), ("threshold_mev", threshold_mev)):
        if not (math.isfinite(value) and value >= 0):
            raise ValueError(f"{name} must be finite and >= 0 MeV, got {value!r}.")
    if isinstance(block_size, bool) or not isinstance(block_size, (int, np.integer)) or block_size < 1:
        raise ValueError(f"block_size must be an integer >= 1, got {block_size!r}.")
    return energies, (lo, hi)


def simulate(particle: str, n: int, seed: int, energies=None, energy_range=(1.0, 100.0), noise_mev: float = 0.0,
             threshold_mev: float = 0.0, sampling: bool = False, c_s: float = C_S_SQRT_GEV, block_size: int = 64,
             return_truth: bool = False) -> dict:
    """``n`` showers of ``particle`` ("e+", "gamma", "pi+"; or the CaloGAN names "eplus", "piplus").

    Incident energies (GeV) are ``energies`` or uniform in ``energy_range`` (CaloGAN: U[1, 100] GeV).
    Returns float32 arrays in the CaloGAN layout: ``energy`` (n, 1) GeV, ``layer_0`` (n, 3, 96),
    ``layer_1`` (n, 12, 12), ``layer_2`` (n, 12, 6) and ``overflow`` (n, 3), all in MeV.

    * ``sampling=False`` (default, like CaloGAN) records the total deposited energy. ``sampling=True``
      applies the GFlash sampling fluctuation to every spot, dE' ~ Gamma(dE/c_s^2, scale c_s^2) with
      dE in GeV, i.e. a calibrated sampled readout with sigma/E = c_s / sqrt(E).
    * ``noise_mev``: Gaussian electronic noise (sigma, MeV) added to every readout cell, not to overflow.
      Default 0; note that with a threshold of 0, noise biases sums upwards (negative cells are cut).
    * ``threshold_mev``: readout cells below it are set to 0 (always at least 0, so cells are >= 0).
    * ``block_size`` showers are binned together; it changes speed and memory, not the output.
    * ``return_truth`` adds ``truth``: per-shower start depth (mm; conversion or first-interaction depth),
      T, alpha, beta of the EM profile (NaN for pi+ without interaction), and the energy-weighted
      mean depth of all deposits including leakage (mm). :func:`write_hdf5` ignores it.
    """
    energies, energy_range = _validate(particle, n, energies, energy_range, float(noise_mev), float(threshold_mev),
                                       block_size)
    kind = PARTICLES[particle]
    n = int(n)
    if energies is None:
        energy_gen = np.random.Generator(np.random.PCG64(np.random.SeedSequence(seed, spawn_key=(0,))))
        energies = energy_gen.uniform(*energy_range, size=n)
    gens = [np.random.Generator(np.random.PCG64(np.random.SeedSequence(seed, spawn_key=(1, i)))) for i in range(n)]
    out = np.zeros((n, _N_BINS))
    truth = {k: np.full(n, np.nan) for k in ("start_mm", "T", "alpha", "beta", "mean_depth_mm")}
    for lo in range(0, n, block_size):
        block = []
        for i in range(lo, min(lo + block_size, n)):
            gen, e = gens[i], float(energies[i])
            if kind == "pi+":
                spots, truth["start_mm"][i] = _hadron_shower_spots(gen, e, c_s, sampling)
            else:
                z1, z2, u_start = *gen.standard_normal(2), gen.random()
                start = -math.log1p(-u_start) * PHOTON_CONVERSION_X0 * MEDIUM["X0_mm"] if kind == "gamma" else 0.0
                t_max, alpha, beta = (float(v) for v in em_shower_parameters(e, z1, z2))
                truth["start_mm"][i], truth["T"][i], truth["alpha"][i], truth["beta"][i] = start, t_max, alpha, beta
                spots = _em_spots(gen, e, start, t_max, alpha, c_s, sampling)
            if return_truth:
                truth["mean_depth_mm"][i] = np.average(spots["z"], weights=spots["e"]) if spots["e"].sum() > 0 else 0
            block.append(spots)
        deposits = _deposit_block(block)
        if noise_mev > 0:
            for j, i in enumerate(range(lo, lo + len(block))):
                deposits[j, :_N_READOUT] += gens[i].normal(0.0, noise_mev, _N_READOUT)
        cells = deposits[:, :_N_READOUT]
        cells[cells < max(threshold_mev, 0.0)] = 0.0
        cells[cells < 0] = 0.0
        out[lo:lo + len(block)] = deposits
    result = {"energy": energies.reshape(n, 1).astype(np.float32)}
    for i, shape in enumerate(LAYER_SHAPES):
        result[f"layer_{i}"] = out[:, _LAYER_OFFSETS[i]:_LAYER_OFFSETS[i] + _LAYER_SIZES[i]].reshape(n, *shape).astype(
            np.float32)
    result["overflow"] = out[:, _OVERFLOW:_OVERFLOW + 3].astype(np.float32)
    if return_truth:
        result["truth"] = truth
    return result


def deposited_energy_mev(showers: dict) -> np.ndarray:
    """Total recorded energy per shower, layers + overflow, in MeV (n,)."""
    return sum(showers[k].reshape(len(showers["energy"]), -1).sum(axis=1, dtype=np.float64)
               for k in DATASET_NAMES[1:])


def write_hdf5(path, showers: dict) -> Path:
    """Write the CaloGAN datasets (energy, layer_0, layer_1, layer_2, overflow) atomically: temp file + os.replace."""
    import h5py

    path = Path(path)
    missing = [k for k in DATASET_NAMES if k not in showers]
    if missing:
        raise ValueError(f"showers lacks the datasets {missing}; expected {list(DATASET_NAMES)}.")
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with h5py.File(temporary, "w") as f:
            for name in DATASET_NAMES:
                f.create_dataset(name, data=np.asarray(showers[name], np.float32))
        os.replace(temporary, path)
    finally:
        temporary.unlink(missing_ok=True)
    return path


def read_hdf5(path) -> dict:
    """The CaloGAN datasets of a file (ours or the public eplus/gamma/piplus.hdf5) as float32 arrays."""
    import h5py

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"No calorimeter file at {path}.")
    with h5py.File(path, "r") as f:
        return {name: f[name][()].astype(np.float32) for name in DATASET_NAMES if name in f}
