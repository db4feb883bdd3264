"""Helpers shared by the benchmark scripts (run as scripts, so this folder is on sys.path)."""
from __future__ import annotations

import json
import socket
import statistics
import time
from pathlib import Path


def free_port() -> int:
    """A free TCP port on 127.0.0.1: benchmarks never send traffic anywhere else."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def write_results(path, results: dict) -> None:
    """Write the results as JSON (and print them)."""
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    Path(path).write_text(json.dumps(results, indent=2) + "\n")
    print(json.dumps(results, indent=2))


def median_seconds(fn, repeats: int) -> float:
    """Median wall time of ``repeats`` calls of ``fn``."""
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)
