"""Two-dimensional lattice field theories for flow-based sampling: actions, exact results, HMC, observables.

Lattice and units
-----------------
Fields live on an L x L periodic square lattice with unit lattice spacing;
every quantity is dimensionless (in lattice units). A batch of real fields is
a float array ``(n, L, L)``; a complex field is ``(n, L, L, 2)`` holding its
real and imaginary parts. ``mu`` runs over the two positive directions, and
``x + mu`` wraps around (``np.roll``). The probability density of every model
is ``exp(-S) / Z``.

Real phi^4 (Albergo, Kanwar & Shanahan, PRD 100, 034515 (2019), eq. 2)
---------------------------------------------------------------------
    S(phi) = sum_x [ -2 sum_mu phi_x phi_{x+mu} + (4 + m2) phi_x^2 + lam phi_x^4 ]
           = sum_x [ sum_mu (phi_{x+mu} - phi_x)^2 + m2 phi_x^2 + lam phi_x^4 ]

i.e. the continuum action  int (d phi)^2 + m^2 phi^2 + lam phi^4  without the
usual factor 1/2 on the kinetic term. Their benchmark point is L = 8,
m2 = -4, lam = 8 (a double-well on-site potential 8 phi^4 - 0 phi^2 with the
hopping term driving it towards the Ising transition). For lam = 0, m2 > 0 the
theory is Gaussian, S = phi^T A phi with A(p) = p_hat^2 + m2 in momentum space,
p_hat^2 = 4 sin^2(p1/2) + 4 sin^2(p2/2); since exp(-phi^T A phi) =
exp(-phi^T (2A) phi / 2) the propagator is (2A)^{-1}:

    G(x) = <phi_x phi_0> = (1/V) sum_p exp(i p.x) / (2 (p_hat^2 + m2)),  p = 2 pi k / L.

Complex phi^4 (the NeuralRG / holographic-mapping model)
-------------------------------------------------------
The O(2) model in the hopping-parameter form of Luescher & Weisz (Nucl. Phys.
B 290, 25 (1987)), as coded in li012589/NeuralRG, ``source/phi4complex.py``
(energy = x^T K x + lam sum_x (|x|^2 - 1)^2 with K = 1 on the diagonal and
-kappa to each of the 2d neighbours), which Hu, Li, Wang & You (arXiv:1903.00804,
PRR 2, 023369 (2020)) sample with the same code. With phi = phi1 + i phi2:

    S(phi) = sum_x [ |phi_x|^2 - 2 kappa sum_mu Re(phi_x^* phi_{x+mu}) + lam (|phi_x|^2 - 1)^2 ]

The action is U(1) invariant (phi -> e^{i a} phi). Per component it maps onto
the convention above: phi = phi_A / sqrt(kappa) turns it into
S_A(phi_A; m2, lam_A) + V lam with  4 + m2 = (1 - 2 lam) / kappa  and
lam_A = lam / kappa^2 (for the complex field, with phi_A^4 read as |phi_A|^4).

Continuous (Hubbard-Stratonovich) Ising model of NeuralRG (Li & Wang, PRL 121, 260601 (2018))
---------------------------------------------------------------------------------------------
Ising spins s = +-1 with  -beta H = K sum_x sum_mu s_x s_{x+mu}  (K = J / T,
2 L^2 bonds on the torus; for L = 2 the two bonds between a pair both count,
where NeuralRG's adjacency matrix counts one; for L >= 3 the two agree).
Write the bond sum as s^T (K A) s / 2 with A = sum_mu (T_mu + T_mu^{-1}) the
adjacency matrix (eigenvalues a(p) = 2 cos p1 + 2 cos p2), and shift the diagonal,
M = K A + offset I, so that M is positive definite; s^T s = N costs only the
constant exp(N offset / 2). The Gaussian identity

    exp(s^T M s / 2) = (2 pi)^{-N/2} det(M)^{-1/2} int dx exp(-x^T M^{-1} x / 2 + s.x)

and sum_s exp(s.x) = prod_i 2 cosh x_i integrate the spins out. NeuralRG's
continuous model has the action (its ``source/ising.py`` energy, where
softplus(2x) - x - ln 2 = ln cosh x)

    S(x) = x^T M^{-1} x / 2 - sum_i ln cosh x_i

and, with N = L^2,

    ln Z_cont = ln Z_Ising(K) + N offset / 2 + (N/2) ln(2 pi) + (1/2) ln det M - N ln 2.

NeuralRG takes offset = 0.1 - min eig(K A) (= 0.1 + 4 K for even L); that is the
default here. Given x, the spins are independent with P(s_i = +1 | x) = (1 + tanh x_i)/2.
M is translation invariant, so M^{-1} x and ln det M come from FFTs.

Reconciling the reference repository's numbers (li012589/NeuralRG, ``etc/exactz.md``,
L = 16, T = 1/K = 2.269185314213022): its column "lnZ" = 238.642256635 is
ln Z_Ising (Kaufman), reproduced by :func:`ising_log_z_exact` to 1e-10; its column
"fix" = 354.233483222 is *not* a corrected ln Z but the HS constant alone,
ln Z_cont - ln Z_Ising (:func:`hs_ising_log_z` minus :func:`ising_log_z_exact`);
its column "sum/n" = 2.31592086 = (238.642 + 354.233) / 256 is the continuous
model's ln Z per site. The exact ln Z of NeuralRG's continuous model at T_c is
therefore 592.875739858, and its variational free energy E_q[ln q + S] is
bounded below by -592.876.

Exact finite-lattice Ising partition function (Kaufman, Phys. Rev. 76, 1232 (1949))
----------------------------------------------------------------------------------
For the isotropic L x L torus (see also Beale, PRL 76, 78 (1996), eq. 1-3):

    Z = (1/2) (2 sinh 2K)^{N/2} (Z1 + Z2 + Z3 + Z4),
    Z1 = prod_{r=0}^{L-1} 2 cosh(L g_{2r+1} / 2),  Z2 = prod 2 sinh(L g_{2r+1} / 2),
    Z3 = prod_{r=0}^{L-1} 2 cosh(L g_{2r} / 2),    Z4 = prod 2 sinh(L g_{2r} / 2),
    cosh g_l = cosh 2K coth 2K - cos(pi l / L)  (l >= 1),   g_0 = 2K + ln tanh K.

g_0 changes sign at K_c = ln(1 + sqrt 2)/2, so Z4 < 0 above T_c; the sum is
evaluated as a signed log-sum-exp in float64. (NeuralRG's ``paperPlot/exactz.py``
takes g_0 = |g_0| from arccosh, which differs above T_c on small lattices.)
The formula holds for odd L too; the tests check it against enumeration on
2 x 2, 3 x 3 and 4 x 4.

Sampling and statistics
-----------------------
:func:`hmc` is Hybrid Monte Carlo (Duane, Kennedy, Pendleton & Roweth, PLB 195,
216 (1987)): unit-mass momenta, leapfrog, Metropolis accept/reject, vectorised
over independent chains. Observables take fields in Markov-time order (for HMC
output, ``samples.reshape(-1, L, L)``: time-major, chains inner) and give errors
from a jackknife over contiguous blocks, valid once a block is much longer than
the autocorrelation time. tau_int is defined as 1/2 + sum_{t>=1} rho(t) (so that
var(mean) = 2 tau_int var / N; an AR(1) process with coefficient rho has
tau_int = (1 + rho) / (2 (1 - rho))), summed up to Sokal's automatic window
(Madras & Sokal, J. Stat. Phys. 50, 109 (1988); Wolff, CPC 156, 143 (2004)).
"""
from __future__ import annotations

import functools
import math

import numpy as np

from training.simulators.checks import check_scalar
from zoo.mcmc import as_series as _as_series
from zoo.mcmc import autocorrelation, hmc, integrated_autocorrelation_time  # noqa: F401  (lattice's API)
from zoo.mcmc import check_finite as _check_finite

K_CRITICAL = 0.5 * math.log1p(math.sqrt(2.0))  # Onsager: sinh 2K_c = 1
ALBERGO_POINT = {"L": 8, "m2": -4.0, "lam": 8.0}  # the benchmark point of Albergo, Kanwar & Shanahan (2019)
HMC_DEFAULTS = {"step_size": 0.1, "n_steps": 10, "burn_in": 200, "n_chains": 16}  # tuned at ALBERGO_POINT


# ----------------------------------------------------------------------------- input checks

def _as_field(phi, name: str = "phi", components: int | None = None) -> np.ndarray:
    """float64 view of a batch of fields, checked: (n, L, L) or, with ``components``, (n, L, L, components)."""
    phi = np.asarray(phi)
    if not (np.issubdtype(phi.dtype, np.floating) or np.issubdtype(phi.dtype, np.integer)):
        raise ValueError(f"{name} must hold real numbers, received dtype {phi.dtype}.")
    expected = "(n, L, L)" if components is None else f"(n, L, L, {components})"
    ndim = 3 if components is None else 4
    if (phi.ndim != ndim or phi.shape[1] != phi.shape[2] or phi.shape[1] < 2
            or (components is not None and phi.shape[3] != components)):
        raise ValueError(f"{name} must have shape {expected} with L >= 2 (a batch of periodic L x L lattices), "
                         f"received shape {phi.shape}; add a batch axis with {name}[None] for one field.")
    _check_finite(phi, name)
    return phi.astype(np.float64, copy=False)


def _check_lattice_size(L) -> int:
    if isinstance(L, bool) or not isinstance(L, (int, np.integer)) or L < 2:
        raise ValueError(f"The lattice size L must be an integer >= 2, received {L!r}.")
    return int(L)


# ----------------------------------------------------------------------------- lattice helpers

def neighbour_sum(phi: np.ndarray) -> np.ndarray:
    """sum_mu (phi_{x+mu} + phi_{x-mu}) on the lattice axes 1 and 2 (periodic); any trailing axes ride along."""
    return (np.roll(phi, -1, axis=1) + np.roll(phi, 1, axis=1)
            + np.roll(phi, -1, axis=2) + np.roll(phi, 1, axis=2))


def forward_bonds(phi: np.ndarray) -> np.ndarray:
    """sum_mu phi_x phi_{x+mu} at every site: each of the 2 L^2 bonds once."""
    return phi * (np.roll(phi, -1, axis=1) + np.roll(phi, -1, axis=2))


@functools.cache
def lattice_momenta(L: int) -> tuple:
    """(p1, p2) grids (L, L) of the momenta 2 pi k / L, in numpy's FFT order, read-only."""
    p = 2.0 * np.pi * np.fft.fftfreq(L)
    p1, p2 = np.meshgrid(p, p, indexing="ij")
    for array in (p1, p2):
        array.flags.writeable = False
    return p1, p2


def adjacency_eigenvalues(L: int) -> np.ndarray:
    """Eigenvalues a(p) = 2 cos p1 + 2 cos p2 of the torus adjacency sum_mu (T_mu + T_mu^{-1}), (L, L)."""
    p1, p2 = lattice_momenta(_check_lattice_size(L))
    return 2.0 * np.cos(p1) + 2.0 * np.cos(p2)


# ----------------------------------------------------------------------------- real phi^4

def phi4_action(phi, m2: float, lam: float) -> np.ndarray:
    """S(phi) of Albergo et al. (module docstring) for fields (n, L, L); returns (n,).

    The hopping term -2 phi_x phi_{x+mu} couples each bond once; (4 + m2) phi^2 is
    the diagonal of the lattice Laplacian (2 d = 4) plus the bare mass.
    """
    return _phi4_action(_as_field(phi), check_scalar(m2, "m2"), check_scalar(lam, "lam"))


def _phi4_action(phi, m2, lam):
    phi2 = phi * phi
    return (-2.0 * forward_bonds(phi) + (4.0 + m2) * phi2 + lam * phi2 * phi2).sum(axis=(1, 2))


def phi4_force(phi, m2: float, lam: float) -> np.ndarray:
    """dS/dphi_x = -2 sum_mu (phi_{x+mu} + phi_{x-mu}) + 2 (4 + m2) phi_x + 4 lam phi_x^3, (n, L, L).

    Each site sits on 4 bonds, hence both neighbours per direction; HMC moves
    the momenta by minus this.
    """
    return _phi4_force(_as_field(phi), check_scalar(m2, "m2"), check_scalar(lam, "lam"))


def _phi4_force(phi, m2, lam):
    return -2.0 * neighbour_sum(phi) + 2.0 * (4.0 + m2) * phi + 4.0 * lam * phi ** 3


def free_field_propagator(L: int, m2: float) -> np.ndarray:
    """Exact <phi_x phi_0> (L, L) of the lam = 0 action: (1/V) sum_p e^{ipx} / (2 (p_hat^2 + m2)).

    Index [x1, x2] is the separation (x1, x2) mod L. Needs m2 > 0: at m2 <= 0 the
    zero mode p = 0 is not damped and the Gaussian is not normalisable.
    """
    L = _check_lattice_size(L)
    m2 = check_scalar(m2, "m2", positive=True)
    p1, p2 = lattice_momenta(L)
    p_hat2 = 4.0 * np.sin(p1 / 2) ** 2 + 4.0 * np.sin(p2 / 2) ** 2
    return np.fft.ifft2(1.0 / (2.0 * (p_hat2 + m2))).real


# ----------------------------------------------------------------------------- complex phi^4

def complex_phi4_action(phi, kappa: float, lam: float) -> np.ndarray:
    """S(phi) of the complex (O(2)) phi^4 model for fields (n, L, L, 2) = (Re, Im); returns (n,).

    S = sum_x [|phi_x|^2 - 2 kappa sum_mu Re(phi_x^* phi_{x+mu}) + lam (|phi_x|^2 - 1)^2];
    kappa is the hopping parameter, lam -> infinity pins |phi| = 1 (the XY model at
    coupling 2 kappa).
    """
    return _complex_phi4_action(_as_field(phi, components=2), check_scalar(kappa, "kappa"), check_scalar(lam, "lam"))


def _complex_phi4_action(phi, kappa, lam):
    modulus2 = (phi * phi).sum(axis=-1)
    hopping = forward_bonds(phi).sum(axis=-1)
    return (modulus2 - 2.0 * kappa * hopping + lam * (modulus2 - 1.0) ** 2).sum(axis=(1, 2))


def complex_phi4_force(phi, kappa: float, lam: float) -> np.ndarray:
    """dS/dphi_a = 2 phi_a - 2 kappa sum_mu (phi_{a,x+mu} + phi_{a,x-mu}) + 4 lam (|phi|^2 - 1) phi_a, (n, L, L, 2)."""
    return _complex_phi4_force(_as_field(phi, components=2), check_scalar(kappa, "kappa"), check_scalar(lam, "lam"))


def _complex_phi4_force(phi, kappa, lam):
    modulus2 = (phi * phi).sum(axis=-1, keepdims=True)
    return 2.0 * phi - 2.0 * kappa * neighbour_sum(phi) + 4.0 * lam * (modulus2 - 1.0) * phi


# ----------------------------------------------------------------------------- Ising, exact

def _log_2cosh(y: np.ndarray) -> np.ndarray:
    y = np.abs(y)
    return y + np.log1p(np.exp(-2.0 * y))


def _log_abs_2sinh(y: np.ndarray) -> np.ndarray:
    y = np.abs(y)
    with np.errstate(divide="ignore"):
        return y + np.log(-np.expm1(-2.0 * y))  # -inf at y = 0


def _signed_logsumexp(logs: np.ndarray, signs: np.ndarray) -> float:
    finite = np.isfinite(logs)
    top = logs[finite].max()
    total = float(np.sum(signs[finite] * np.exp(logs[finite] - top)))
    if total <= 0:
        raise ArithmeticError(f"Kaufman's sum is not positive ({total}); float64 cancellation.")
    return float(top + math.log(total))


def ising_log_z_exact(L: int, K: float) -> float:
    """Exact ln Z of the L x L periodic Ising model at coupling K = J / T > 0 (Kaufman 1949).

    Z = sum_s exp(K sum_x sum_mu s_x s_{x+mu}); see the module docstring for the
    formula. The four products are the even/odd fermion-parity sectors of the
    transfer matrix with periodic and antiperiodic boundary conditions.
    """
    L = _check_lattice_size(L)
    K = check_scalar(K, "K", positive=True)
    l = np.arange(2 * L)
    gamma = np.arccosh(np.cosh(2 * K) / np.tanh(2 * K) - np.cos(np.pi * l / L))
    gamma[0] = 2 * K + math.log(math.tanh(K))  # signed: negative above T_c
    half = 0.5 * L * gamma
    odd, even = half[1::2], half[0::2]
    logs = np.array([_log_2cosh(odd).sum(), _log_abs_2sinh(odd).sum(),
                     _log_2cosh(even).sum(), _log_abs_2sinh(even).sum()])
    signs = np.array([1.0, np.prod(np.sign(odd)), 1.0, np.prod(np.sign(even))])
    N = L * L
    return -math.log(2.0) + 0.5 * N * math.log(2 * math.sinh(2 * K)) + _signed_logsumexp(logs, signs)


# ----------------------------------------------------------------------------- continuous (HS) Ising

def hs_default_offset(L: int, K: float) -> float:
    """NeuralRG's diagonal shift 0.1 - min eig(K A), which makes M = K A + offset I have smallest eigenvalue 0.1."""
    return 0.1 - float((K * adjacency_eigenvalues(L)).min())


def _hs_spectrum(L: int, K: float, offset) -> tuple:
    """Eigenvalues (L, L) of M = K A + offset I, checked positive (else the Gaussian identity fails), and the offset."""
    K = check_scalar(K, "K")
    offset = hs_default_offset(L, K) if offset is None else check_scalar(offset, "offset")
    spectrum = K * adjacency_eigenvalues(L) + offset
    if spectrum.min() <= 0:
        raise ValueError(f"K A + offset I must be positive definite; with K = {K} and offset = {offset} its smallest "
                         f"eigenvalue is {spectrum.min():.6g}. Expected offset > {-(K * adjacency_eigenvalues(L)).min():.6g}.")
    return spectrum, offset


def _log_cosh(x: np.ndarray) -> np.ndarray:
    return _log_2cosh(x) - math.log(2.0)


def hs_ising_action(x, K: float, offset: float | None = None) -> np.ndarray:
    """S(x) = x^T M^{-1} x / 2 - sum_i ln cosh x_i of the continuous Ising model, x (n, L, L); returns (n,).

    -S is NeuralRG's log-density up to its constant -ln Z_cont (:func:`hs_ising_log_z`).
    M^{-1} is applied in momentum space, where M = K A + offset I is diagonal.
    """
    x = _as_field(x, "x")
    return _hs_ising_action(x, _hs_spectrum(x.shape[1], K, offset)[0])


def _hs_inverse_coupling(x, spectrum):
    """M^{-1} x, with M diagonal in momentum space."""
    return np.fft.ifft2(np.fft.fft2(x) / spectrum).real


def _hs_ising_action(x, spectrum):
    return 0.5 * (x * _hs_inverse_coupling(x, spectrum)).sum(axis=(1, 2)) - _log_cosh(x).sum(axis=(1, 2))


def _hs_ising_force(x, spectrum):
    return _hs_inverse_coupling(x, spectrum) - np.tanh(x)


def hs_ising_force(x, K: float, offset: float | None = None) -> np.ndarray:
    """dS/dx = M^{-1} x - tanh x, (n, L, L): the Gaussian pull against the spins' mean field."""
    x = _as_field(x, "x")
    return _hs_ising_force(x, _hs_spectrum(x.shape[1], K, offset)[0])


def hs_ising_log_z(L: int, K: float, offset: float | None = None) -> float:
    """Exact ln int dx exp(-S(x)) of the continuous Ising model (module docstring for the constants).

    = ln Z_Ising(K) + N offset / 2 + (N / 2) ln 2 pi + (1/2) ln det(K A + offset I) - N ln 2.
    offset = None takes NeuralRG's 0.1 - min eig(K A).
    """
    L = _check_lattice_size(L)
    spectrum, offset = _hs_spectrum(L, K, offset)
    N = L * L
    constant = 0.5 * N * offset + 0.5 * N * math.log(2 * math.pi) + 0.5 * float(np.log(spectrum).sum()) - N * math.log(2)
    return ising_log_z_exact(L, K) + constant


def hs_ising_fields_from_spins(spins, K: float, seed: int, offset: float | None = None) -> np.ndarray:
    """Exact draws of the continuous field given Ising spins: x | s ~ N(M s, M), M = K A + offset I.

    The joint weight exp(-x^T M^{-1} x / 2 + s.x) has the Ising model as its s-marginal and
    the continuous model as its x-marginal (module docstring), so exact Ising samples give exact
    samples of exp(-S(x)). M and M^{1/2} are applied in momentum space.
    """
    s = _as_field(spins, "spins")
    spectrum, _ = _hs_spectrum(s.shape[1], K, offset)
    noise = np.random.default_rng(seed).standard_normal(s.shape)
    return np.fft.ifft2(np.fft.fft2(s) * spectrum + np.fft.fft2(noise) * np.sqrt(spectrum)).real


def ising_swendsen_wang(L: int, K: float, n_samples: int, seed: int, n_chains: int = 16, burn_in: int = 100,
                        thin: int = 1) -> np.ndarray:
    """Swendsen-Wang cluster Monte Carlo of the periodic L x L Ising model at K: spins (n_samples, n_chains, L, L).

    Each sweep bonds equal neighbours with probability 1 - exp(-2K), finds the clusters (scipy's connected
    components over all chains at once) and gives every cluster a fresh random sign (Swendsen & Wang, PRL 58,
    86 (1987)). At K_c its autocorrelation time grows only as about L^0.35, a few sweeps at L = 16.
    """
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    L, K = _check_lattice_size(L), check_scalar(K, "K", positive=True)
    rng = np.random.default_rng(seed)
    site = np.arange(n_chains * L * L).reshape(n_chains, L, L)
    neighbours = (np.roll(site, -1, axis=1), np.roll(site, -1, axis=2))
    spins = rng.choice(np.array([-1, 1], np.int8), size=(n_chains, L, L))
    p_bond = -math.expm1(-2.0 * K)
    samples = np.empty((n_samples, n_chains, L, L), np.int8)
    for sweep in range(burn_in + n_samples * thin):
        rows, cols = [], []
        for axis, neighbour in zip((1, 2), neighbours):
            bonded = (spins == np.roll(spins, -1, axis=axis)) & (rng.random(spins.shape) < p_bond)
            rows.append(site[bonded])
            cols.append(neighbour[bonded])
        rows, cols = np.concatenate(rows), np.concatenate(cols)
        graph = coo_matrix((np.ones(rows.size, np.int8), (rows, cols)), shape=(site.size, site.size))
        n_clusters, label = connected_components(graph, directed=False)
        spins = rng.choice(np.array([-1, 1], np.int8), size=n_clusters)[label].reshape(spins.shape)
        done = sweep - burn_in + 1
        if done > 0 and done % thin == 0:
            samples[done // thin - 1] = spins
    return samples


# ----------------------------------------------------------------------------- Hybrid Monte Carlo

def phi4_hmc(L: int, m2: float, lam: float, n_samples: int, seed: int, n_chains: int = HMC_DEFAULTS["n_chains"],
             step_size: float = HMC_DEFAULTS["step_size"], n_steps: int = HMC_DEFAULTS["n_steps"],
             burn_in: int = HMC_DEFAULTS["burn_in"], thin: int = 1):
    """HMC samples of real phi^4 on L x L: (n_samples, n_chains, L, L) and the acceptance rate.

    Chains start from small Gaussian noise and run ``burn_in`` trajectories
    before storage. The defaults (trajectory length 1, step 0.1 jittered by
    +-20%) give 88% acceptance and tau_int(S) ~ 2 trajectories at Albergo et
    al.'s point L = 8, m2 = -4, lam = 8; the step must
    shrink roughly as lam^{-1/2} at larger lam (the phi^4 force stiffens).
    """
    return model_hmc("phi4", L, {"m2": m2, "lam": lam}, n_samples, seed, n_chains, step_size, n_steps, burn_in, thin)


def _unchecked_kernels(model: str, L: int, couplings: dict) -> tuple:
    """(action, force, field components) of a model, without input checks: a diverging HMC trajectory (inf / NaN
    fields) must be rejected by :func:`hmc`, not raise."""
    if model == "phi4":
        m2, lam = check_scalar(couplings["m2"], "m2"), check_scalar(couplings["lam"], "lam")
        return functools.partial(_phi4_action, m2=m2, lam=lam), functools.partial(_phi4_force, m2=m2, lam=lam), 1
    if model == "hs_ising":
        spectrum, _ = _hs_spectrum(L, couplings["K"], couplings.get("offset"))
        return (functools.partial(_hs_ising_action, spectrum=spectrum),
                functools.partial(_hs_ising_force, spectrum=spectrum), 1)
    if model == "complex_phi4":
        kappa, lam = check_scalar(couplings["kappa"], "kappa"), check_scalar(couplings["lam"], "lam")
        return (functools.partial(_complex_phi4_action, kappa=kappa, lam=lam),
                functools.partial(_complex_phi4_force, kappa=kappa, lam=lam), 2)
    raise ValueError(f"Unknown lattice model {model!r}; expected 'phi4', 'hs_ising' or 'complex_phi4'.")


def model_hmc(model: str, L: int, couplings: dict, n_samples: int, seed: int,
              n_chains: int = HMC_DEFAULTS["n_chains"], step_size: float = HMC_DEFAULTS["step_size"],
              n_steps: int = HMC_DEFAULTS["n_steps"], burn_in: int = HMC_DEFAULTS["burn_in"], thin: int = 1):
    """HMC samples of a lattice model ("phi4", "hs_ising" or "complex_phi4" with its couplings):
    (n_samples, n_chains, L, L[, 2]) and the acceptance rate; chains start from small noise, ``burn_in``
    trajectories are dropped."""
    L = _check_lattice_size(L)
    action, force, components = _unchecked_kernels(model, L, couplings)
    rng = np.random.default_rng(seed)
    phi0 = 0.1 * rng.standard_normal((n_chains, L, L) + ((components,) if components > 1 else ()))
    burn_seed, run_seed = rng.integers(2 ** 63, size=2)
    if burn_in > 0:
        warm, _ = hmc(action, force, phi0, burn_in, step_size, n_steps, burn_seed)
        phi0 = warm[-1]
    return hmc(action, force, phi0, n_samples, step_size, n_steps, run_seed, thin=thin)


# ----------------------------------------------------------------------------- statistics

def mean_with_error(series) -> tuple:
    """(mean, error) of a correlated series (T,) or (T, n_chains): error = sqrt(2 tau_int var / (T n_chains))."""
    x = _as_series(series)
    tau = integrated_autocorrelation_time(x)
    return float(x.mean()), float(math.sqrt(2.0 * tau * x.var() / x.size))


def block_mean_with_error(series, n_bins: int) -> tuple:
    """(mean, error) of a Markov-time ordered series from the scatter of ``n_bins`` contiguous block means."""
    value, error = _jackknife(lambda mean: mean, [np.asarray(series, np.float64)], n_bins)
    return float(value), float(error)


def _jackknife(statistic, arrays, n_bins: int):
    """Estimate and jackknife error of ``statistic(*block_means)`` over contiguous blocks along axis 0."""
    n = arrays[0].shape[0]
    if not 2 <= n_bins <= n:
        raise ValueError(f"n_bins must be between 2 and the number of fields ({n}), received {n_bins}.")
    edges = np.linspace(0, n, n_bins + 1).astype(int)
    sums = [np.add.reduceat(a, edges[:-1], axis=0) for a in arrays]
    counts = np.diff(edges).reshape((-1,) + (1,) * (arrays[0].ndim - 1))
    total = [s.sum(axis=0) for s in sums]
    full = statistic(*[t / n for t in total])
    leave_out = np.stack([statistic(*[(t - s[k]) / (n - counts[k]) for t, s in zip(total, sums)])
                          for k in range(n_bins)])
    error = np.sqrt((n_bins - 1) / n_bins * ((leave_out - leave_out.mean(axis=0)) ** 2).sum(axis=0))
    return full, error


def magnetisation(phi) -> np.ndarray:
    """Per-configuration magnetisation m = (1/V) sum_x phi_x, (n,)."""
    return _as_field(phi).mean(axis=(1, 2))


def two_point_function(phi, connected: bool = True, n_bins: int = 20) -> tuple:
    """G(y) = (1/V) sum_x <phi_{x+y} phi_x> (- <m>^2 if connected), averaged over translations: (G, error), each (L, L).

    Index [y1, y2] is the separation mod L; errors from a jackknife over
    ``n_bins`` contiguous blocks of the (Markov-time ordered) fields. The
    translation average is a circular correlation, computed with FFTs.
    """
    phi = _as_field(phi)
    V = phi.shape[1] * phi.shape[2]
    f = np.fft.fft2(phi)
    per_config = np.fft.ifft2(f * np.conj(f)).real / V
    m = phi.mean(axis=(1, 2))[:, None, None]
    if connected:
        return _jackknife(lambda c, mean: c - mean ** 2, [per_config, m], n_bins)
    return _jackknife(lambda c: c, [per_config], n_bins)


def susceptibility(phi, n_bins: int = 20) -> tuple:
    """chi = sum_x G_c(x) = V (<m^2> - <m>^2), with its jackknife error: (chi, error)."""
    phi = _as_field(phi)
    V = phi.shape[1] * phi.shape[2]
    m = magnetisation(phi)
    value, error = _jackknife(lambda m1, m2: V * (m2 - m1 ** 2), [m, m * m], n_bins)
    return float(value), float(error)


def binder_cumulant(phi, n_bins: int = 20) -> tuple:
    """U = 1 - <m^4> / (3 <m^2>^2) with its jackknife error: 0 for a Gaussian m, 2/3 deep in the ordered phase."""
    m = magnetisation(phi)
    value, error = _jackknife(lambda m2, m4: 1.0 - m4 / (3.0 * m2 ** 2), [m ** 2, m ** 4], n_bins)
    return float(value), float(error)
