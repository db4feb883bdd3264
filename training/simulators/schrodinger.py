"""Zero-energy Schroedinger equation in 1D: random potentials V_i -> densities n_i = psi(x_i)^2.

The task (Wang, Zhai & You, arXiv:1901.11103)
---------------------------------------------
A recurrent network reads a potential sampled on a grid and outputs, site by
site, the density of the solution of the time-independent Schroedinger
equation that starts from fixed initial values. Their knowledge distiller finds
that the hidden state encodes the wave function, g = (psi, psi'), and distils
its update to the Euler transfer matrix

    g_{i+1} = [[1, a], [a V_i, 1]] g_i,

i.e. the discretised equation below. This module is the data generator: it
solves the equation accurately (not with that Euler rule, which is provided
only for comparison: :func:`euler_transfer`).

Equation, units and conventions
-------------------------------
Units with hbar^2 / 2m = 1, so that  -psi'' + V psi = E psi  reads

    d^2 psi / dx^2 = (V(x) - E) psi,     E = 0 for the data.

x and a are lengths in these units, V and E energies (1 / length^2).

* Grid: x_i = x0 + i a, i = 0 .. N-1, with a = GRID_SPACING = 0.1 and x0 = 0
  for the data (:func:`grid`). A batch of potentials is a float array (n, N)
  holding V_i = V(x_i).
* Between grid points V(x) is the linear interpolation of the grid values. This
  makes the continuum problem well defined for any grid data, rough potentials
  included; the solution depends on the grid values only (x0 does not enter).
* Initial values psi(x_0) = PSI0 = 1, psi'(x_0) = DPSI0 = 0, so n_0 = 1. psi is
  the initial-value solution, not a normalised eigenstate, and n_i = psi_i^2 is
  not normalised.

Accurate solver (:func:`solve`)
-------------------------------
psi'' = q(x) psi with q = V - E is the linear system g' = A(x) g,
A = [[0, 1], [q, 0]]. Each grid interval is split into ``substeps`` (default
SUBSTEPS = 16) steps of h = a / substeps, and each step is the fourth-order
Magnus integrator with two Gauss-Legendre nodes t_{1,2} = (1/2 -+ sqrt(3)/6) h
(Iserles & Norsett, Phil. Trans. R. Soc. A 357, 983 (1999); Blanes, Casas &
Ros, BIT 40, 434 (2000)):

    Omega = (h/2) (A_1 + A_2) - (sqrt(3) h^2 / 12) [A_1, A_2] = [[c, h], [h qbar, -c]],
    c = (sqrt(3) h^2 / 12) (q_1 - q_2),   qbar = (q_1 + q_2) / 2,
    exp(Omega) = C I + S Omega,   C = cosh w, S = sinh(w) / w, w^2 = c^2 + h^2 qbar

(cos and sin / w when w^2 < 0: Omega is traceless, so Omega^2 = w^2 I). The
step is exact for a constant potential at any h (so the free particle, the
infinite well and flat regions carry rounding error only) and unimodular, so
the Wronskian psi_1 psi_2' - psi_1' psi_2 is kept to rounding; its error is
O(h^4) and comes from the slope of V inside an interval (and from the kinks
where two slopes meet, which sit on step boundaries). The step matrices of an
interval are multiplied out vectorised over the batch and all intervals, and
only the product of N - 1 interval matrices is sequential.

Measured accuracy (max over sites of |psi - psi_ref| / max |psi_ref|, psi_ref at
64 substeps, 300 potentials of 2000 sites per class): at the default 16
substeps the worst row is 7.0e-11 (smooth-shallow), 8.9e-9 (smooth-deep) and
9.8e-8 (rough, where V has the steepest slopes); every doubling of
``substeps`` divides the error by 16.0. 5000 potentials of 2000 sites take
about 8 s on one CPU core.
Against closed forms: exact to rounding (< 1e-12) for constant potentials
(sin, cos, cosh); for the harmonic oscillator V = x^2 the linear interpolation
lies above x^2 by (x - x_i)(x_{i+1} - x), whose mean a^2 / 6 acts as an energy
shift: solving at E + a^2 / 6 reproduces the eigenfunctions H_n(x) exp(-x^2/2)
on [-5, 1.5] to 3e-7 at a = 0.1 (O(a^4)); without the shift the error is
4e-3, O(a^2). The interpolation, not the integrator, is then what limits.

The Euler rule (:func:`euler_transfer`)
---------------------------------------
psi_{i+1} = psi_i + a psi'_i,  psi'_{i+1} = psi'_i + a (V_i - E) psi_i: forward
Euler on the grid, first order in a. Its matrix has determinant 1 - a^2 (V_i - E)
instead of 1, so in a well (V < 0) the amplitude grows by
prod_i (1 - a^2 V_i)^{1/2} ~ exp(a^2 sum_i |V_i| / 2), and its phase drifts by
O(a^2 |V|^{3/2}) per site. At a = 0.1 and with the classes below it departs
from the physics within a few sites: max_i |n_Euler - n| / max_i n over the
first 10 / 100 sites has median 0.06 / 3.3 (smooth-shallow), 1.6 / 4e4
(smooth-deep) and 0.12 / 1.3e2 (rough) (300 potentials per class; over 1000
sites with V ~ -20 the growth factor alone is ~e^100). It is the discretisation
the network distils, not the physics the data come from.

Potential classes (:data:`POTENTIAL_CLASSES`, the three of the source talk)
-------------------------------------------------------------------------
All three are negative everywhere (classically allowed at E = 0), so psi
oscillates with local wave number k(x) = sqrt(-V) and, where V varies slowly,
the WKB amplitude |psi| ~ A |V|^{-1/4}; psi(0) = 1, psi'(0) = 0 fixes
A ~ |V(0)|^{1/4}, hence n ~ sqrt(|V(0)| / |V(x)|) = O(1). What makes n grow is
Bragg (parametric) resonance: a Fourier component of V at wave number 2k pumps
psi exponentially (the Mathieu instability; for a random potential this is
Anderson localisation, the initial-value solution growing at the Lyapunov rate
gamma). The ranges below keep that growth small over the lengths in use (up to
1000 sites for training, 2000 for the test set, i.e. x up to 200).

* "smooth-shallow": V = -V0 (1 + 0.5 f(x)), V0 ~ U[0.5, 3], V in [-4.5, -0.25].
* "smooth-deep":    the same with V0 ~ U[5, 20], V in [-30, -2.5].
  f(x) = sum_{m=1}^{4} c_m cos(2 pi x / lambda_m + phi_m) with c_m ~ U[0, 1]
  normalised to sum 1 (so |f| <= 1), phi_m ~ U[0, 2 pi) and wavelengths
  lambda_m ~ U[8, 30] (shallow) and U[3, 10] (deep). The shortest wavelength is
  above the first-order Bragg wavelength pi / k_min (6.3 for shallow, where
  k_min = sqrt(0.25); 2.0 for deep, k_min = sqrt(2.5)), so only the weak
  second-order resonances remain. With the wavelengths 2..10 first suggested,
  5% of shallow draws (and 0.05% of deep ones) passed n = 1e4 by 2000 sites.
* "rough": V = -V0 + sigma u(x), V0 ~ U[1, 10], sigma = 0.5 sqrt(V0) and u
  piecewise constant on blocks of b sites, b ~ U{1, 2, 3} per potential, the
  block values i.i.d. U[-1, 1]; V in [-(10 + 0.5 sqrt(10)), -0.5] = [-11.58, -0.5].
  In the Born approximation the Lyapunov rate of psi'' + (k^2 - sigma u) psi = 0
  with block length l = b a is gamma = S(2k) / (8 k^2), S(q) = (sigma^2 / 3) l
  sinc^2(q l / 2), so with sigma^2 = 0.25 k^2, gamma <= 0.25 l / 24 <= 0.003
  and n grows by at most ~exp(2 gamma x) = e^1.25 on average by x = 200;
  sigma proportional to sqrt(V0) makes that bound the same for every V0.
  (0.75 sqrt(V0) instead: 1% of draws above n = 1e3 and 0.025% above 1e4.)

Measured max_i n_i over 2000 sites, 20000 potentials per class
(random_potentials(kind, 5000, 2000, seed) for seed = 100 .. 103; quantiles
50% / 90% / 99% / 99.9% / 99.99% / max):

    smooth-shallow  1.32  1.54  1.71  2.47  5.12  6.02
    smooth-deep     1.37  1.58  1.80  2.87  13.0  59.9
    rough           3.14  13.8  60.4  208   395   478

so every draw stayed below DENSITY_BOUND = 1e4, the documented bound.

Randomness
----------
:func:`random_potentials` draws from ``numpy.random.default_rng(seed)``: first
the per-potential parameters, then the rough noise site-major, so that for a
fixed ``n`` a longer draw extends a shorter one with the same seed (the first N
sites are the same potentials). :func:`mixed_dataset` gives each class its own
child of ``SeedSequence(seed)`` and shuffles with a fourth.
"""
from __future__ import annotations

import math

import numpy as np

from training.simulators.checks import check_scalar

GRID_SPACING = 0.1  # a, in units where hbar^2 / 2m = 1
PSI0 = 1.0  # psi(x_0)
DPSI0 = 0.0  # psi'(x_0)
SUBSTEPS = 16  # Magnus steps per grid interval: worst relative error 1e-7 over 2000 rough sites
DENSITY_BOUND = 1e4  # every measured max n_i over 2000 sites stayed below this (module docstring)

POTENTIAL_CLASSES = ("smooth-shallow", "smooth-deep", "rough")
SMOOTH_MODES = 4  # Fourier modes in f(x)
MODULATION_DEPTH = 0.5  # V = -V0 (1 + depth f), |f| <= 1
CLASS_PARAMETERS = {
    "smooth-shallow": {"V0": (0.5, 3.0), "wavelength": (8.0, 30.0)},
    "smooth-deep": {"V0": (5.0, 20.0), "wavelength": (3.0, 10.0)},
    "rough": {"V0": (1.0, 10.0), "sigma_over_sqrt_V0": 0.5, "block_sites": (1, 3)},
}

_GAUSS_NODES = (0.5 - math.sqrt(3.0) / 6.0, 0.5 + math.sqrt(3.0) / 6.0)
_CHUNK_ELEMENTS = 1 << 20  # rows x intervals solved at once: bounds the memory of the interval matrices


# ----------------------------------------------------------------------------- input checks

def _check_finite(array: np.ndarray, name: str) -> None:
    bad = int(np.size(array) - np.count_nonzero(np.isfinite(array)))
    if bad:
        raise ValueError(f"{name} holds {bad} non-finite values (NaN or inf); expected finite numbers.")


def _as_potentials(potentials, name: str = "potentials") -> np.ndarray:
    """float64 view of a batch of potentials, checked: shape (n, N), n >= 1, N >= 1, finite."""
    potentials = np.asarray(potentials)
    if potentials.dtype == bool or not (np.issubdtype(potentials.dtype, np.floating)
                                        or np.issubdtype(potentials.dtype, np.integer)):
        raise ValueError(f"{name} must hold real numbers, received dtype {potentials.dtype}.")
    if potentials.ndim != 2 or potentials.shape[0] < 1 or potentials.shape[1] < 1:
        raise ValueError(f"{name} must have shape (n, N): n potentials of N grid values each (n, N >= 1), "
                         f"received shape {potentials.shape}; add a batch axis with {name}[None] for one potential.")
    _check_finite(potentials, name)
    return potentials.astype(np.float64, copy=False)


def _check_count(value, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ValueError(f"{name} must be a positive integer, received {value!r}.")
    return int(value)


def _check_kind(kind) -> str:
    if kind not in POTENTIAL_CLASSES:
        raise ValueError(f"Unknown potential class {kind!r}; expected one of {', '.join(POTENTIAL_CLASSES)}.")
    return kind


def _per_row(value, n: int, name: str) -> np.ndarray:
    """A scalar or an (n,) array of finite numbers as a float64 (n,) array (one value per potential)."""
    array = np.asarray(value, dtype=np.float64) if np.ndim(value) else np.asarray(check_scalar(value, name))
    if array.ndim > 1 or (array.ndim == 1 and array.shape[0] != n):
        raise ValueError(f"{name} must be a number or an array of shape ({n},), one per potential, "
                         f"received shape {array.shape}.")
    _check_finite(array, name)
    return np.broadcast_to(array, (n,)).astype(np.float64)


# ----------------------------------------------------------------------------- grid and potentials

def grid(length: int, a: float = GRID_SPACING, x0: float = 0.0) -> np.ndarray:
    """Grid points x_i = x0 + i a, i = 0 .. length - 1, float64 (length,)."""
    length = _check_count(length, "length")
    return check_scalar(x0, "x0") + check_scalar(a, "a", positive=True) * np.arange(length)


def potential_range(kind: str) -> tuple:
    """(min V, max V) that every potential of class ``kind`` obeys (module docstring), both negative."""
    parameters = CLASS_PARAMETERS[_check_kind(kind)]
    v0_low, v0_high = parameters["V0"]
    if kind == "rough":
        s = parameters["sigma_over_sqrt_V0"]
        return -(v0_high + s * math.sqrt(v0_high)), -(v0_low - s * math.sqrt(v0_low))
    return -v0_high * (1.0 + MODULATION_DEPTH), -v0_low * (1.0 - MODULATION_DEPTH)


def _smooth_profile(rng: np.random.Generator, n: int, x: np.ndarray, wavelength: tuple) -> np.ndarray:
    """f(x) = sum_m c_m cos(2 pi x / lambda_m + phi_m), c_m >= 0 summing to 1, so |f| <= 1; (n, N)."""
    weights = rng.uniform(0.0, 1.0, size=(n, SMOOTH_MODES))
    weights /= weights.sum(axis=1, keepdims=True)
    wave_numbers = 2.0 * np.pi / rng.uniform(*wavelength, size=(n, SMOOTH_MODES))
    phases = rng.uniform(0.0, 2.0 * np.pi, size=(n, SMOOTH_MODES))
    profile = np.zeros((n, x.size))
    for m in range(SMOOTH_MODES):
        profile += weights[:, m:m + 1] * np.cos(wave_numbers[:, m:m + 1] * x + phases[:, m:m + 1])
    return profile


def _smooth_potentials(rng, n, x, parameters) -> np.ndarray:
    depth = rng.uniform(*parameters["V0"], size=(n, 1))
    return -depth * (1.0 + MODULATION_DEPTH * _smooth_profile(rng, n, x, parameters["wavelength"]))


def _rough_potentials(rng, n, length, parameters) -> np.ndarray:
    """-V0 + sigma u with u i.i.d. U[-1, 1] on blocks of b sites; noise drawn site-major (prefix-stable)."""
    depth = rng.uniform(*parameters["V0"], size=(n, 1))
    sigma = parameters["sigma_over_sqrt_V0"] * np.sqrt(depth)
    low, high = parameters["block_sites"]
    block = rng.integers(low, high + 1, size=(n, 1))
    values = rng.uniform(-1.0, 1.0, size=(length, n)).T  # column j is the same for every length > j
    noise = np.take_along_axis(values, np.arange(length) // block, axis=1)
    return -depth + sigma * noise


def random_potentials(kind: str, n: int, length: int, seed: int) -> np.ndarray:
    """``n`` potentials of class ``kind`` on ``length`` grid points x_i = i GRID_SPACING, float64 (n, length).

    Seeded by ``numpy.random.default_rng(seed)``; with the same ``n`` and seed, a
    longer draw starts with the shorter one. Classes and ranges: module docstring.
    """
    kind = _check_kind(kind)
    n, length = _check_count(n, "n"), _check_count(length, "length")
    rng = np.random.default_rng(seed)
    parameters = CLASS_PARAMETERS[kind]
    if kind == "rough":
        return _rough_potentials(rng, n, length, parameters)
    return _smooth_potentials(rng, n, grid(length), parameters)


# ----------------------------------------------------------------------------- accurate solver

def _cos_sinc(w2: np.ndarray) -> tuple:
    """C = cosh w, S = sinh(w) / w for w = sqrt(w2); cos and sin(w) / w of sqrt(-w2) where w2 < 0; S(0) = 1."""
    w = np.sqrt(np.abs(w2))
    above = w2 > 0
    below = ~above
    C, S = np.empty_like(w2), np.empty_like(w2)
    C[above], C[below] = np.cosh(w[above]), np.cos(w[below])
    S[above] = np.sinh(w[above]) / w[above]
    w_below = w[below]
    S[below] = np.sin(w_below) / np.where(w_below > 0, w_below, 1.0)
    S[below & (w == 0)] = 1.0
    return C, S


def _magnus_step(q1: np.ndarray, q2: np.ndarray, h: float) -> tuple:
    """exp(Omega) of one fourth-order Magnus step from q at the two Gauss nodes: (m00, m01, m10, m11)."""
    c = (math.sqrt(3.0) / 12.0 * h * h) * (q1 - q2)
    q_mean = 0.5 * (q1 + q2)
    C, S = _cos_sinc(c * c + h * h * q_mean)
    return C + S * c, S * h, S * (h * q_mean), C - S * c


def _matmul2(left: tuple, right: tuple) -> tuple:
    """Product of two fields of 2 x 2 matrices held as (m00, m01, m10, m11)."""
    l00, l01, l10, l11 = left
    r00, r01, r10, r11 = right
    return l00 * r00 + l01 * r10, l00 * r01 + l01 * r11, l10 * r00 + l11 * r10, l10 * r01 + l11 * r11


def interval_transfer_matrices(q: np.ndarray, a: float, substeps: int) -> tuple:
    """Exact-to-O(h^4) transfer matrices of every grid interval, (m00, m01, m10, m11) each (n, N - 1).

    g(x_{i+1}) = M_i g(x_i) for psi'' = q psi with q linear on [x_i, x_{i+1}]:
    the product of ``substeps`` Magnus steps, later steps on the left.
    """
    q_left, slope = q[:, :-1], np.diff(q, axis=1)
    h = a / substeps
    total = None
    for j in range(substeps):
        q1 = q_left + slope * ((j + _GAUSS_NODES[0]) / substeps)
        q2 = q_left + slope * ((j + _GAUSS_NODES[1]) / substeps)
        step = _magnus_step(q1, q2, h)
        total = step if total is None else _matmul2(step, total)
    return total


def _propagate(matrices: tuple, psi0: np.ndarray, dpsi0: np.ndarray) -> tuple:
    """Apply the interval matrices in sequence from (psi0, dpsi0); returns psi, dpsi (n, N)."""
    m00, m01, m10, m11 = (np.ascontiguousarray(m.T) for m in matrices)  # site-major: one row per step
    steps, n = m00.shape
    psi, dpsi = np.empty((steps + 1, n)), np.empty((steps + 1, n))
    p, d = psi0, dpsi0
    psi[0], dpsi[0] = p, d
    for i in range(steps):
        p, d = m00[i] * p + m01[i] * d, m10[i] * p + m11[i] * d
        psi[i + 1], dpsi[i + 1] = p, d
    return psi.T, dpsi.T


def solve(potentials, a: float = GRID_SPACING, psi0=PSI0, dpsi0=DPSI0, energy=0.0,
          substeps: int = SUBSTEPS) -> tuple:
    """Accurate psi and psi' at the grid points for psi'' = (V(x) - E) psi, V linear between grid values.

    Args:
        potentials: V_i, (n, N) (the grid values; see the module docstring).
        a: grid spacing (> 0).
        psi0, dpsi0: psi and psi' at x_0: numbers or one per potential, (n,).
        energy: E, a number or one per potential, (n,).
        substeps: fourth-order Magnus steps per grid interval (error ~ substeps^-4).

    Returns:
        psi, dpsi, float64 (n, N). A positive potential (forbidden region)
        makes psi grow like exp(int sqrt(V)) and can overflow to inf.
    """
    V = _as_potentials(potentials)
    a = check_scalar(a, "a", positive=True)
    substeps = _check_count(substeps, "substeps")
    n, N = V.shape
    q = V - _per_row(energy, n, "energy")[:, None]
    p0, d0 = _per_row(psi0, n, "psi0"), _per_row(dpsi0, n, "dpsi0")
    psi, dpsi = np.empty((n, N)), np.empty((n, N))
    rows = max(1, _CHUNK_ELEMENTS // max(N - 1, 1))
    for start in range(0, n, rows):
        block = slice(start, start + rows)
        matrices = interval_transfer_matrices(q[block], a, substeps)
        psi[block], dpsi[block] = _propagate(matrices, p0[block], d0[block])
    return psi, dpsi


def densities(potentials, a: float = GRID_SPACING, psi0=PSI0, dpsi0=DPSI0, energy=0.0,
              substeps: int = SUBSTEPS) -> np.ndarray:
    """n_i = psi(x_i)^2 from :func:`solve`, float64 (n, N); n_0 = psi0^2 (= 1 by default)."""
    psi, _ = solve(potentials, a=a, psi0=psi0, dpsi0=dpsi0, energy=energy, substeps=substeps)
    return psi * psi


# ----------------------------------------------------------------------------- the distilled Euler rule

def euler_transfer(potentials, a: float = GRID_SPACING, psi0=PSI0, dpsi0=DPSI0, energy=0.0) -> tuple:
    """g_{i+1} = [[1, a], [a (V_i - E), 1]] g_i with g = (psi, psi'): the rule of Wang, Zhai & You.

    Forward Euler on the grid, first order in a (module docstring for how far it
    drifts); for comparison with :func:`solve`, not for data. Returns psi, dpsi (n, N).
    """
    V = _as_potentials(potentials)
    a = check_scalar(a, "a", positive=True)
    n, N = V.shape
    q = np.ascontiguousarray((V - _per_row(energy, n, "energy")[:, None]).T)
    psi, dpsi = np.empty((N, n)), np.empty((N, n))
    p, d = _per_row(psi0, n, "psi0"), _per_row(dpsi0, n, "dpsi0")
    psi[0], dpsi[0] = p, d
    for i in range(N - 1):
        p, d = p + a * d, d + a * q[i] * p
        psi[i + 1], dpsi[i + 1] = p, d
    return psi.T, dpsi.T


# ----------------------------------------------------------------------------- data sets

def dataset(kind: str, n: int, length: int, seed: int) -> tuple:
    """(potentials, densities), both float32 (n, length), for class ``kind`` on the default grid.

    The densities are solved from the float32-rounded potentials, so each pair is
    consistent to the solver's accuracy rather than to float32 rounding of V.
    """
    potentials = random_potentials(kind, n, length, seed).astype(np.float32)
    return potentials, densities(potentials).astype(np.float32)


def mixed_dataset(n: int, length: int, seed: int) -> tuple:
    """(potentials, densities, labels): the three classes in equal shares (+-1), shuffled.

    potentials and densities float32 (n, length); labels int64 (n,) index
    POTENTIAL_CLASSES. Class k draws from child k of SeedSequence(seed), the
    shuffle from child 3.
    """
    n, length = _check_count(n, "n"), _check_count(length, "length")
    children = np.random.SeedSequence(seed).spawn(len(POTENTIAL_CLASSES) + 1)
    counts = [n // 3 + (k < n % 3) for k in range(len(POTENTIAL_CLASSES))]
    potentials = np.concatenate([random_potentials(kind, count, length, child) for kind, count, child
                                 in zip(POTENTIAL_CLASSES, counts, children) if count])
    labels = np.repeat(np.arange(len(POTENTIAL_CLASSES)), counts)
    order = np.random.default_rng(children[-1]).permutation(n)
    potentials, labels = potentials[order].astype(np.float32), labels[order]
    return potentials, densities(potentials).astype(np.float32), labels
