"""Start-up cost of the command line: `zoo list` (no TensorFlow) next to `zoo info` (builds a model).

    python benchmarks/cli_startup.py [--repeats 5]

Median wall time of fresh processes, side by side in one run. Aim: `zoo list` under 0.5 s.
Results: benchmarks/results/cli_startup.json.
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
COMMANDS = {"list": ["list"], "list_pattern": ["list", "rbm"], "info": ["info", "scinet-pendulum"], "version": ["--version"]}


def seconds(argv, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        subprocess.run([sys.executable, "-m", "zoo", *argv], capture_output=True, check=True)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args(argv)
    results = {name: {"median_seconds": seconds(command, args.repeats)} for name, command in COMMANDS.items()}
    results["aim"] = "zoo list under 0.5 s"
    results["aim_met"] = results["list"]["median_seconds"] < 0.5
    write_results(RESULTS, results)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
