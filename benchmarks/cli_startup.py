"""Start-up cost of the command line's quick questions, next to a bare Python and a TensorFlow import.

    python benchmarks/cli_startup.py [--repeats 5]

Median wall time of fresh processes, rounds interleaved in one run (these machines are noisy). Aim: `zoo cite`,
`zoo info` (a name or a preset folder), `zoo list PATTERN` and a typo'd name each under 0.5 s on 2 cores,
answered from cached declarations and metadata without importing TensorFlow. Results:
benchmarks/results/cli_startup.json.
"""
from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, os.path.dirname(__file__))
from common import write_results  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results" / "cli_startup.json"
REPO = Path(__file__).resolve().parents[1]
ZOO = [sys.executable, "-m", "zoo"]
QUICK = {"list": ZOO + ["list"], "list_prefix": ZOO + ["list", "jet"], "info": ZOO + ["info", "scinet-pendulum"],
         "info_folder": ZOO + ["info", "zoo/pretrained/calogan-eplus"], "cite": ZOO + ["cite", "calogan-eplus"],
         "cite_folder": ZOO + ["cite", "zoo/pretrained/ising-cnn"], "typo": ZOO + ["info", "scinet-pendulm"],
         "version": ZOO + ["--version"]}
CONTEXT = {"bare_python": [sys.executable, "-c", "pass"],
           "import_tensorflow": [sys.executable, "-c", "import tensorflow"]}


def seconds(command) -> float:
    start = time.perf_counter()
    subprocess.run(command, capture_output=True, cwd=REPO)  # a typo exits 2, by design
    return time.perf_counter() - start


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args(argv)
    commands = {**QUICK, **CONTEXT}
    times = {name: [] for name in commands}
    for _ in range(args.repeats):
        for name, command in commands.items():
            times[name].append(seconds(command))
    results = {name: {"median_seconds": round(statistics.median(t), 3)} for name, t in times.items()}
    slowest = max(results[name]["median_seconds"] for name in QUICK)
    results["aim"] = "every quick command (cite, info, list, a typo) under 0.5 s on 2 cores"
    results["slowest_quick_seconds"] = slowest
    results["aim_met"] = slowest < 0.5
    results["slowest_quick_over_bare_python"] = round(slowest / results["bare_python"]["median_seconds"], 2)
    write_results(RESULTS, results)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
