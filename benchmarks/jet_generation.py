"""Jet generation speed: our generator against bare Pythia 8 + FastJet, worker processes and Ray, side by side.

    python benchmarks/jet_generation.py [--events 400] [--jets 1500]

1. Wrapper overhead: the same events (same seed) through ``generate_chunk`` (selection, tau_21,
   padding, records) and through a bare loop of ``pythia.next()``, clustering and trimming,
   interleaved; aim: overhead under 10 %.
2. Jets per second on 2 cores (``--jets`` per class on 2 worker processes), and the time it implies
   for 100k jets per class (aim: under one hour).
3. Ray on 2 local workers against one process on the same chunks: the speed-up.

Results: benchmarks/results/jet_generation.json.
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, os.path.dirname(__file__))
from common import write_results  # noqa: E402

from training.simulators import jets  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results" / "jet_generation.json"


def bare_chunk(process: str, chunk: int, seed: int, events: int) -> int:
    """The generator's own work on one chunk: Pythia events, anti-kt clustering, trimming the hardest jet."""
    maker = jets.JetMaker(process, jets.chunk_seed(seed, process, chunk), jets.JetSelection())
    kept = 0
    for _ in range(events):
        maker.pythia.next()
        sequence = maker.fastjet.ClusterSequence(maker.visible_particles(), maker.jet_definition)
        hardest = maker.fastjet.sorted_by_pt(sequence.inclusive_jets(125.0))
        if hardest:
            trimmed = maker.trimmer(hardest[0])
            kept += 250.0 < trimmed.pt() < 300.0 and abs(trimmed.eta()) < 2.0
    return kept


def overhead(events: int, rounds: int = 3) -> dict:
    times = {"bare": [], "wrapper": []}
    for r in range(rounds):
        for process in ("w", "qcd"):
            start = time.perf_counter()
            bare_chunk(process, r, 11, events)
            times["bare"].append(time.perf_counter() - start)
            start = time.perf_counter()
            jets.generate_chunk(process, r, 11, jets.JetSelection(), events)
            times["wrapper"].append(time.perf_counter() - start)
    bare, wrapper = sum(times["bare"]), sum(times["wrapper"])
    return {"events": events * 2 * rounds, "bare_events_per_s": events * 2 * rounds / bare,
            "wrapper_events_per_s": events * 2 * rounds / wrapper, "overhead": wrapper / bare - 1.0,
            "aim_overhead_below": 0.10}


def timed_run(folder: Path, name: str, n_jets: int, **options) -> float:
    start = time.perf_counter()
    jets.generate(folder / f"{name}.h5", n_jets, seed=21, quiet=True, **options)
    return time.perf_counter() - start


def scaling(n_jets: int) -> dict:
    import ray

    with tempfile.TemporaryDirectory() as folder:
        folder = Path(folder)
        serial = timed_run(folder, "serial", n_jets, backend="serial")
        processes = timed_run(folder, "processes", n_jets, backend="processes", workers=2)
        ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
        try:
            on_ray = timed_run(folder, "ray", n_jets, backend="ray", workers=2)
        finally:
            ray.shutdown()
    jets_made = 2 * n_jets
    rate = jets_made / processes
    return {
        "jets_per_class": n_jets, "cores": 2,
        "serial_jets_per_s": jets_made / serial, "processes_jets_per_s": rate, "ray_jets_per_s": jets_made / on_ray,
        "jets_per_s_per_core": rate / 2, "processes_speedup": serial / processes, "ray_speedup": serial / on_ray,
        "hours_for_100k_per_class_on_2_cores": 2 * 100_000 / rate / 3600, "aim_hours_below": 1.0,
    }


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=400, help="events per chunk in the overhead comparison")
    parser.add_argument("--jets", type=int, default=1500, help="jets per class in the scaling runs")
    args = parser.parse_args(argv)
    results = {"machine": f"{os.cpu_count()} CPU cores", "pythia8mc": jets.package_version("pythia8mc"),
               "fastjet": jets.package_version("fastjet"), "overhead": overhead(args.events),
               "scaling": scaling(args.jets)}
    write_results(RESULTS, results)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
