"""Speed of the Ising family: Monte Carlo throughput, time to a training set, classifier and RBM throughput.

Run on demand (not in CI): ``python benchmarks/ising_speed.py``. Everything is
measured in one process, side by side. Results go to
benchmarks/results/ising.json and, per preset, to benchmarks/results/presets.json,
which the cards read (they are re-rendered).
"""
from __future__ import annotations

import os
import sys
import time

import numpy as np

import zoo
from zoo import artifacts
from training.recipes.classifiers import RECIPES
from training.simulators import ising


sys.path.insert(0, os.path.dirname(__file__))
from common import median_seconds, record_preset_results, write_results  # noqa: E402

AIM_ATTEMPTS_PER_SECOND = 1e8


def metropolis_throughput(L=32, chains=1024, sweeps=20) -> dict:
    """Spin-flip attempts per second, one thread on one array and two threads on blocks of 256 chains."""
    temperatures = np.full(chains, ising.T_CRITICAL)
    rng = np.random.default_rng(0)
    spins, groups = ising.initial_spins(temperatures, L, rng), ising.sublattices(L)

    def one_thread():
        for _ in range(sweeps):
            ising.metropolis_sweep(spins, temperatures, rng, groups)

    def two_threads():
        ising._run_blocks(temperatures, L, 0, lambda block: [ising.metropolis_sweep(block.spins, block.temperatures,
                                                                                      block.rng, block.groups)
                                                              for _ in range(sweeps)], threads=2)

    attempts = chains * L * L * sweeps
    one, two = median_seconds(one_thread, 3), median_seconds(two_threads, 3)
    return {"metropolis_attempts_per_second_1_thread": attempts / one,
            "metropolis_attempts_per_second_2_threads": attempts / two,
            "metropolis_two_threads_over_one": one / two,
            "metropolis_aim_attempts_per_second": AIM_ATTEMPTS_PER_SECOND}


def wolff_throughput(L=32, chains=1024) -> dict:
    temperatures = np.full(chains, ising.T_CRITICAL)
    rng = np.random.default_rng(1)
    spins, groups = ising.initial_spins(temperatures, L, rng), ising.sublattices(L)
    for _ in range(100):  # equilibrate at T_c first: the cluster size depends on the state
        ising.metropolis_sweep(spins, temperatures, rng, groups)
        ising.wolff_update(spins, temperatures, rng)
    sizes = []
    seconds = median_seconds(lambda: sizes.append(ising.wolff_update(spins, temperatures, rng).mean()), 5)
    return {"wolff_seconds_per_update_1024_chains_at_tc": seconds,
            "wolff_mean_cluster_fraction_at_tc": float(np.mean(sizes)) / L**2}


def training_set_time() -> dict:
    recipe = RECIPES["ising-cnn"]
    start = time.perf_counter()
    data = ising.simulate(recipe.n_train, seed=424242, L=recipe.L, temperatures=recipe.temperatures)
    return {"training_set_seconds": time.perf_counter() - start, "training_set_configurations": len(data.spins),
            "training_set_L": recipe.L, "training_set_temperatures": len(recipe.temperatures),
            "training_set_tau_int_max": data.diagnostics["tau_int_max"]}


def classifier_throughput(batch=1024, L=32) -> dict:
    model = zoo.load("ising-cnn")
    spins = np.where(np.random.default_rng(2).random((batch, L, L)) < 0.5, -1.0, 1.0).astype("float32")
    model.predict(spins, verbose=0, batch_size=batch)
    predict = median_seconds(lambda: model.predict(spins, verbose=0, batch_size=batch), 5)
    call = median_seconds(lambda: model(spins), 5)
    return {"cnn_predict_samples_per_second_batch_1024_L32": batch / predict,
            "cnn_call_samples_per_second_batch_1024_L32": batch / call}


def rbm_throughput(name, n=1024, steps=1000) -> dict:
    model = zoo.load(name)
    model.sample(n, gibbs_steps=10)
    seconds = median_seconds(lambda: model.sample(n, gibbs_steps=steps), 3)
    return {"rbm_gibbs_steps_times_chains_per_second": n * steps / seconds}


def memory(shipped) -> dict:
    """Peak resident memory of this process (simulations, models loaded) and the shipped weight files."""
    import resource

    sizes = {f"weights_kib_{n}": (zoo.preset_folder(n) / artifacts.WEIGHTS_FILE).stat().st_size / 1024
             for n in shipped if n == "ising-cnn" or n.endswith("T2.27")}
    return {"process_peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, **sizes}


def main() -> int:
    results = {"cpu_cores": os.cpu_count()}
    results.update(metropolis_throughput())
    results.update(wolff_throughput())
    results.update(training_set_time())
    shipped = [n for n in zoo.list_models() if zoo.has_weights(n) and zoo.get_spec(n).family in ("classifiers", "rbm")]
    if "ising-cnn" in shipped:
        results.update(classifier_throughput())
    rbms = [n for n in shipped if n.startswith("rbm-")]
    if rbms:
        results.update(rbm_throughput(rbms[0]))
    results.update(memory(shipped))
    write_results(os.path.join(os.path.dirname(__file__), "results", "ising.json"), results)
    for name in shipped:
        record_preset_results(name, preset_view(name, results), "benchmarks/ising_speed.py")
    return 0


def preset_view(name: str, results: dict) -> dict:
    """The measurements that describe preset ``name`` itself: the classifier's or the RBM's throughput and
    its weight size. The Monte Carlo figures describe the simulator and stay in results/ising.json; the
    benchmark's own pilot tau_int is not the training run's, which the card states."""
    own = "cnn_" if name == "ising-cnn" else "rbm_"
    keys = [k for k in results if k.startswith(own)] + ["cpu_cores", "process_peak_rss_mib", f"weights_kib_{name}"]
    if name == "ising-cnn":
        keys += ["training_set_L", "training_set_configurations", "training_set_seconds", "training_set_temperatures"]
    return {k: results[k] for k in keys if k in results}


if __name__ == "__main__":
    raise SystemExit(main())
