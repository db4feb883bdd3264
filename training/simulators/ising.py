"""Two-dimensional Ising ferromagnet on an L x L square lattice with periodic boundaries.

    H = -J sum_<ij> s_i s_j,   s_i = +-1,   J = 1,   k_B = 1

Temperatures are in units of J / k_B. Onsager's solution gives the critical
temperature T_c = 2 / ln(1 + sqrt 2) = 2.26919..., the energy per spin and,
below T_c, the spontaneous magnetisation (Yang's formula); both are here as
references for the Monte Carlo and the models trained on its samples.

Sampling is vectorised over many independent chains (one temperature each):

* Metropolis on sublattices: the sites are split into groups with no two
  neighbours in one group (a checkerboard for even L), and each group is
  updated at once. One sweep = one attempted flip per site.
* Wolff cluster flips (Wolff 1989) for chains near T_c, where Metropolis
  slows down critically: a cluster grows from a random seed through aligned
  neighbours with probability p = 1 - exp(-2 / T) and is flipped. The growth
  is a breadth-first search run for all chains at once.

:func:`simulate` measures, before sampling, the integrated autocorrelation
time tau_int of |m| and of E at every temperature (pilot chains, Sokal's
automatic window) and sets the equilibration to ``20 tau`` and the spacing
between stored configurations to ``2 tau`` (at least the given minimums);
the measured values are returned in ``diagnostics``.
"""
from __future__ import annotations

import dataclasses
import functools
import math
from concurrent.futures import ThreadPoolExecutor

import numpy as np

T_CRITICAL = 2.0 / math.log1p(math.sqrt(2.0))
DEFAULT_TEMPERATURES = tuple(np.round(np.linspace(1.0, 3.5, 26), 6))
WOLFF_WINDOW = 0.7  # Wolff flips for chains with |T - T_c| < WOLFF_WINDOW
CHAIN_BLOCK = 256  # chains per vectorised block; fixed so results do not depend on the thread count
PARAMETER_RANGES = {"J": 1.0, "k_B": 1.0, "boundary": "periodic", "temperature": [1.0, 3.5], "T_c": T_CRITICAL}


@dataclasses.dataclass
class IsingSamples:
    """spins (n, L, L) int8 +-1, temperatures (n,), and how the chains were run."""

    spins: np.ndarray
    temperatures: np.ndarray
    diagnostics: dict


# ----------------------------------------------------------------------------- lattice

@functools.lru_cache(maxsize=None)
def sublattices(L: int) -> np.ndarray:
    """Boolean masks (groups, L, L) that split the periodic lattice into groups without neighbours.

    Greedy colouring in row-major order: two groups (a checkerboard) for even
    L, more for odd L, where the periodic lattice is not bipartite. Runs once
    per L (cached, read-only); the Monte Carlo updates never loop over sites.
    """
    if L < 2:
        raise ValueError(f"The lattice size L must be at least 2, received {L}.")
    colour = -np.ones((L, L), int)
    for i in range(L):
        for j in range(L):
            taken = {colour[(i + di) % L, (j + dj) % L] for di, dj in ((1, 0), (-1, 0), (0, 1), (0, -1))}
            colour[i, j] = min(c for c in range(5) if c not in taken)
    groups = np.stack([colour == c for c in range(colour.max() + 1)])
    groups.flags.writeable = False
    return groups


def neighbour_sum(spins: np.ndarray) -> np.ndarray:
    """Sum of the four nearest neighbours of every site, same shape and dtype as ``spins``."""
    h = np.roll(spins, 1, axis=-1)
    h += np.roll(spins, -1, axis=-1)
    h += np.roll(spins, 1, axis=-2)
    h += np.roll(spins, -1, axis=-2)
    return h


def energy_per_spin(spins: np.ndarray) -> np.ndarray:
    """E / N = -(1/N) sum over bonds of s_i s_j, counting each bond once; shape (n,)."""
    s = spins.astype(np.int32)
    bonds = s * np.roll(s, 1, axis=-1) + s * np.roll(s, 1, axis=-2)
    return -bonds.sum(axis=(-2, -1)) / (s.shape[-1] * s.shape[-2])


def magnetisation(spins: np.ndarray) -> np.ndarray:
    """m = (1/N) sum_i s_i; shape (n,)."""
    return spins.astype(np.int32).sum(axis=(-2, -1)) / (spins.shape[-1] * spins.shape[-2])


# ----------------------------------------------------------------------------- updates

def _thresholds(temperatures: np.ndarray) -> tuple:
    """uint32 thresholds for accepting flips that raise the energy by 4 J and 8 J.

    A flip with s_i h_i = x > 0 costs dE = 2 x; it is accepted when a uniform
    32-bit integer is below exp(-2 x / T) * 2^32 (resolution 2^-32).
    """
    beta = 1.0 / np.asarray(temperatures, float)
    scale = float(2**32)
    t2 = np.minimum(np.floor(np.exp(-4.0 * beta) * scale), scale - 1).astype(np.uint32)
    t4 = np.minimum(np.floor(np.exp(-8.0 * beta) * scale), scale - 1).astype(np.uint32)
    return t2[:, None, None], t4[:, None, None]


def metropolis_sweep(spins: np.ndarray, temperatures: np.ndarray, rng: np.random.Generator, groups=None) -> None:
    """One Metropolis sweep of every chain in place; ``spins`` (n, L, L) int8, ``temperatures`` (n,).

    One uniform 32-bit integer per site per sweep: every site belongs to one
    group, so each group reads its own, unused entries of the array.
    """
    groups = sublattices(spins.shape[-1]) if groups is None else groups
    t2, t4 = _thresholds(temperatures)
    r = np.frombuffer(rng.bytes(4 * spins.size), np.uint32).reshape(spins.shape)
    for mask in groups:
        x = spins * neighbour_sum(spins)  # s_i h_i in {-4, ..., 4}; the flip costs 2 x
        flip = (x == 2) & (r < t2)
        flip |= (x == 4) & (r < t4)
        flip |= x <= 0
        flip &= mask
        spins *= 1 - 2 * flip.view(np.int8)


def wolff_update(spins: np.ndarray, temperatures: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """One Wolff cluster flip per chain, in place; returns the cluster sizes (n,).

    Every bond between a newly added site and an aligned neighbour outside the
    cluster is tried once with p = 1 - exp(-2/T) (a site reached through two
    bonds in one shell joins if either try succeeds). All chains grow
    together, one breadth-first shell per iteration, on flat site indices, so
    the work is proportional to the cluster sizes.
    """
    n, L, _ = spins.shape
    N = L * L
    flat = spins.reshape(-1)
    chain = np.arange(n)
    seeds = chain * N + rng.integers(N, size=n)
    seed_spin = flat[seeds]
    p_add = 1.0 - np.exp(-2.0 / np.asarray(temperatures, float))
    in_cluster = np.zeros(n * N, bool)
    in_cluster[seeds] = True
    frontier = seeds
    while frontier.size:
        c, site = np.divmod(frontier, N)
        i, j = np.divmod(site, L)
        base = c * N
        neighbours = np.concatenate([
            base + ((i + 1) % L) * L + j, base + ((i - 1) % L) * L + j,
            base + i * L + (j + 1) % L, base + i * L + (j - 1) % L,
        ])
        owner = neighbours // N
        neighbours = neighbours[~in_cluster[neighbours] & (flat[neighbours] == seed_spin[owner])]
        neighbours = np.unique(neighbours[rng.random(neighbours.size) < p_add[neighbours // N]])
        in_cluster[neighbours] = True
        frontier = neighbours
    in_cluster = in_cluster.reshape(spins.shape)
    np.negative(spins, out=spins, where=in_cluster)
    return in_cluster.sum(axis=(1, 2))


def initial_spins(temperatures: np.ndarray, L: int, rng: np.random.Generator) -> np.ndarray:
    """Ordered start (random overall sign) below T_c, random start above: avoids long-lived stripe states."""
    n = len(temperatures)
    spins = np.where(rng.random((n, L, L)) < 0.5, -1, 1).astype(np.int8)
    ordered = np.asarray(temperatures) < T_CRITICAL
    spins[ordered] = np.where(rng.random(int(ordered.sum())) < 0.5, -1, 1).astype(np.int8)[:, None, None]
    return spins


class ChainBlock:
    """A block of independent chains advanced together: Metropolis sweeps plus Wolff flips near T_c."""

    def __init__(self, temperatures, L, rng, wolff_window=WOLFF_WINDOW):
        self.temperatures = np.asarray(temperatures, float)
        self.rng = rng
        self.groups = sublattices(L)
        self.spins = initial_spins(self.temperatures, L, rng)
        self.critical = np.flatnonzero(np.abs(self.temperatures - T_CRITICAL) < wolff_window)

    def sweep(self, count: int = 1) -> None:
        for _ in range(count):
            metropolis_sweep(self.spins, self.temperatures, self.rng, self.groups)
            if self.critical.size:
                near = self.spins[self.critical]
                wolff_update(near, self.temperatures[self.critical], self.rng)
                self.spins[self.critical] = near

    def record(self, sweeps: int) -> tuple:
        """Run ``sweeps`` sweeps; return |m| and E/N after each, both (chains, sweeps)."""
        m, e = np.empty((len(self.spins), sweeps)), np.empty((len(self.spins), sweeps))
        for t in range(sweeps):
            self.sweep()
            m[:, t], e[:, t] = np.abs(magnetisation(self.spins)), energy_per_spin(self.spins)
        return m, e


# ----------------------------------------------------------------------------- statistics

def integrated_autocorrelation_time(series: np.ndarray, c: float = 5.0) -> float:
    """tau_int = 1/2 + sum_{t>=1} rho(t) with Sokal's window (smallest W >= c tau(W)).

    ``series`` is (chains, time) from independent chains at one temperature;
    the autocorrelation is averaged over chains. A constant series (a frozen
    observable) has tau_int = 1/2 by convention.
    """
    x = np.atleast_2d(np.asarray(series, float))
    x = x - x.mean(axis=1, keepdims=True)
    n = x.shape[1]
    spectrum = np.fft.rfft(x, n=2 * n, axis=1)
    acf = np.fft.irfft(spectrum * np.conj(spectrum), axis=1)[:, :n].sum(axis=0)
    if acf[0] <= 0:
        return 0.5
    rho = acf / acf[0]
    tau = 0.5 + np.cumsum(rho[1:])
    window = np.arange(1, n)
    inside = np.flatnonzero(window >= c * tau)
    return float(tau[inside[0]] if inside.size else tau[-1])


def binned_mean_and_error(values: np.ndarray, max_bins: int = 64) -> tuple:
    """Mean and standard error of correlated samples, with the error of bin means (binning analysis).

    The samples are grouped into up to ``max_bins`` consecutive bins; for
    correlated data the naive error underestimates, the error of bin means
    does not once the bins are longer than the correlation time.
    """
    values = np.asarray(values, float)
    bins = max(2, min(max_bins, len(values)))
    means = np.array([chunk.mean() for chunk in np.array_split(values, bins)])
    return float(values.mean()), float(means.std(ddof=1) / math.sqrt(bins))


def _jackknife(values: np.ndarray, statistic, bins: int = 32) -> tuple:
    """Estimate and jackknife error of a nonlinear ``statistic`` (e.g. a variance) over bins."""
    chunks = np.array_split(np.asarray(values, float), bins)
    full = statistic(np.concatenate(chunks))
    leave_one_out = np.array([statistic(np.concatenate(chunks[:k] + chunks[k + 1:])) for k in range(bins)])
    error = math.sqrt((bins - 1) / bins * np.sum((leave_one_out - leave_one_out.mean()) ** 2))
    return float(full), float(error)


def observables(spins: np.ndarray, temperature: float) -> dict:
    """Energy per spin, |m|, specific heat and susceptibility per spin, each as (value, error).

        c = N (<e^2> - <e>^2) / T^2,   chi = N (<m^2> - <|m|>^2) / T

    with e = E/N and m the magnetisation per spin; errors by binning (means)
    and jackknife over bins (fluctuations).
    """
    N = spins.shape[-1] * spins.shape[-2]
    e, m = energy_per_spin(spins), np.abs(magnetisation(spins))
    bins = max(2, min(32, len(e)))
    return {
        "energy": binned_mean_and_error(e),
        "abs_magnetisation": binned_mean_and_error(m),
        "specific_heat": _jackknife(e, lambda v: N * v.var() / temperature**2, bins),
        "susceptibility": _jackknife(m, lambda v: N * v.var() / temperature, bins),
    }


# ----------------------------------------------------------------------------- exact results

def _elliptic_k(k: np.ndarray) -> np.ndarray:
    """Complete elliptic integral of the first kind K(k) (modulus k) by the arithmetic-geometric mean."""
    a, b = np.ones_like(k), np.sqrt(np.clip(1.0 - k**2, 1e-300, None))  # K diverges (log) at k = 1, i.e. T_c
    for _ in range(40):
        a, b = (a + b) / 2, np.sqrt(a * b)
    return np.pi / (2 * a)


def onsager_energy(temperature) -> np.ndarray:
    """Exact energy per spin of the infinite lattice (Onsager 1944)."""
    beta = 1.0 / np.asarray(temperature, float)
    k = 2 * np.sinh(2 * beta) / np.cosh(2 * beta) ** 2
    return -1 / np.tanh(2 * beta) * (1 + 2 / np.pi * (2 * np.tanh(2 * beta) ** 2 - 1) * _elliptic_k(k))


def onsager_magnetisation(temperature) -> np.ndarray:
    """Spontaneous magnetisation (1 - sinh(2/T)^-4)^(1/8) below T_c, zero above (Yang 1952)."""
    t = np.asarray(temperature, float)
    inside = np.clip(1 - np.sinh(2 / t) ** -4.0, 0, None)
    return np.where(t < T_CRITICAL, inside ** 0.125, 0.0)


def exact_enumeration(L: int, temperature: float) -> dict:
    """<e>, <|m|>, specific heat and susceptibility per spin by summing all 2^(L^2) states (L <= 4)."""
    if L > 4:
        raise ValueError(f"Exact enumeration holds 2^(L^2) states; L = {L} is too large (at most 4).")
    N = L * L
    codes = np.arange(2**N, dtype=np.int64)
    spins = (1 - 2 * ((codes[:, None] >> np.arange(N)) & 1)).astype(np.int8).reshape(-1, L, L)
    e, m = energy_per_spin(spins), np.abs(magnetisation(spins))
    log_w = -N * e / temperature
    w = np.exp(log_w - log_w.max())
    log_z = float(np.log(w.sum()) + log_w.max())
    w /= w.sum()
    mean = lambda x: float(np.sum(w * x))  # noqa: E731
    return {
        "energy": mean(e),
        "abs_magnetisation": mean(m),
        "specific_heat": N * (mean(e**2) - mean(e) ** 2) / temperature**2,
        "susceptibility": N * (mean(m**2) - mean(m) ** 2) / temperature,
        "entropy": mean(e) / temperature + log_z / N,  # s = (e - f) / T with f = -T log Z / N
    }


def entropy_per_spin(L: int, temperature: float, seed: int, points: int = 41, samples: int = 400) -> tuple:
    """Entropy per spin and its statistical error, by thermodynamic integration from infinite temperature.

        s(beta) = ln 2 + beta e(beta) - integral_0^beta e(b) db,

    with e(b) the Monte Carlo mean energy per spin at inverse temperature b
    (e(0) = 0), on ``points`` equally spaced b, integrated by Simpson's rule.
    The error propagates the binning errors of the means; the end point
    dominates it. The entropy is the lower bound of any model's held-out
    negative log-likelihood per spin.
    """
    if points % 2 == 0:
        raise ValueError(f"Simpson's rule needs an odd number of points, received {points}.")
    beta = np.linspace(0.0, 1.0 / temperature, points)
    temperatures = 1.0 / beta[1:]
    data = simulate(samples * (points - 1), seed, L=L, temperatures=temperatures, samples_per_chain=4)
    means = [binned_mean_and_error(energy_per_spin(data.spins[data.temperatures == t])) for t in temperatures]
    e = np.array([0.0] + [m for m, _ in means])
    sigma = np.array([0.0] + [err for _, err in means])
    weights = np.full(points, 2.0)
    weights[1::2], weights[0], weights[-1] = 4.0, 1.0, 1.0
    weights *= (beta[1] - beta[0]) / 3
    gradient = -weights
    gradient[-1] += beta[-1]  # s depends on e(beta) also through beta e(beta)
    value = math.log(2.0) + beta[-1] * e[-1] - weights @ e
    return float(value), float(np.sqrt(np.sum((gradient * sigma) ** 2)))


# ----------------------------------------------------------------------------- data sets

def _check_temperatures(temperatures) -> np.ndarray:
    t = np.asarray(temperatures, float).reshape(-1)
    if t.size == 0 or not np.all(np.isfinite(t)) or np.any(t <= 0):
        raise ValueError(f"Temperatures must be finite and positive, received {temperatures!r}.")
    return t


def _run_blocks(chain_temperatures, L, seed, work, threads):
    """Run ``work(block)`` on blocks of CHAIN_BLOCK chains, each with its own seeded generator."""
    starts = range(0, len(chain_temperatures), CHAIN_BLOCK)
    generators = [np.random.default_rng(s) for s in np.random.SeedSequence(seed).spawn(len(starts))]

    def one(k_start):
        k, start = k_start
        return work(ChainBlock(chain_temperatures[start:start + CHAIN_BLOCK], L, generators[k]))

    with ThreadPoolExecutor(max_workers=threads) as pool:
        return list(pool.map(one, enumerate(starts)))


def measure_autocorrelation(temperatures, L: int, seed: int, chains: int = 64, equilibration: int = 200,
                            sweeps: int = 400, threads: int = 2) -> dict:
    """tau_int of |m| and of E per temperature, in sweeps, from ``chains`` pilot chains each."""
    temperatures = _check_temperatures(temperatures)
    chain_temperatures = np.repeat(temperatures, chains)

    def pilot(block):
        block.sweep(equilibration)
        return block.record(sweeps)

    results = _run_blocks(chain_temperatures, L, seed, pilot, threads)
    m = np.concatenate([r[0] for r in results])
    e = np.concatenate([r[1] for r in results])
    taus = {}
    for k, t in enumerate(temperatures):
        rows = slice(k * chains, (k + 1) * chains)
        taus[float(t)] = {
            "abs_magnetisation": integrated_autocorrelation_time(m[rows]),
            "energy": integrated_autocorrelation_time(e[rows]),
        }
    return taus


PILOT_CHAINS = 16  # pilot chains per temperature of a large sample


def simulate(n: int, seed: int, L: int = 32, temperatures=DEFAULT_TEMPERATURES, samples_per_chain: int = 8,
             min_equilibration: int = 100, min_spacing: int = 1, threads: int = 2) -> IsingSamples:
    """``n`` configurations spread evenly (round robin) over ``temperatures``.

    Each chain stores ``samples_per_chain`` configurations. The equilibration
    (``max(min_equilibration, 20 tau)`` sweeps) and the spacing between stored
    configurations (``max(min_spacing, ceil(2 tau))``) come from the largest
    integrated autocorrelation time tau of |m| and E measured on pilot chains
    (seed ``seed + 1``; 16 per temperature, or as many as the sample's own chains there, at least 4: a
    small sample does not pay for a large pilot, and the largest of noisier taus errs on the long side);
    see ``diagnostics``.
    """
    if int(n) < 1:
        raise ValueError(f"n must be a positive number of configurations, received {n}.")
    if int(L) < 2:
        raise ValueError(f"The lattice size L must be at least 2, received {L}.")
    temperatures = _check_temperatures(temperatures)
    chains = -(-int(n) // samples_per_chain)
    pilot_chains = min(PILOT_CHAINS, max(4, -(-chains // len(temperatures))))
    taus = measure_autocorrelation(temperatures, L, seed + 1, chains=pilot_chains, sweeps=300, threads=threads)
    tau_max = max(max(v.values()) for v in taus.values())
    equilibration = max(min_equilibration, int(math.ceil(20 * tau_max)))
    spacing = max(min_spacing, int(math.ceil(2 * tau_max)))
    chain_temperatures = temperatures[np.arange(chains) % len(temperatures)]

    def produce(block):
        block.sweep(equilibration)
        stored = []
        for _ in range(samples_per_chain):
            block.sweep(spacing)
            stored.append(block.spins.copy())
        return np.stack(stored, axis=1)  # (chains, samples, L, L)

    spins = np.concatenate(_run_blocks(chain_temperatures, L, seed, produce, threads))
    sample_temperatures = np.repeat(chain_temperatures, samples_per_chain)
    spins = spins.reshape(-1, L, L)[: int(n)]
    return IsingSamples(
        spins=spins,
        temperatures=sample_temperatures[: int(n)],
        diagnostics={
            "L": int(L), "chains": int(chains), "samples_per_chain": int(samples_per_chain), "pilot_chains": pilot_chains,
            "equilibration_sweeps": equilibration, "spacing_sweeps": spacing,
            "tau_int": {f"{t:.4g}": v for t, v in taus.items()}, "tau_int_max": tau_max,
            "wolff_window": WOLFF_WINDOW, "seed": int(seed),
        },
    )
