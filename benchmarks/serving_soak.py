"""Soak of the local server with mixed valid, malformed and oversized requests from 64 concurrent clients.

    python benchmarks/serving_soak.py [--seconds 60] [--clients 64]

ising-cnn and scinet-heliocentric are exported and served by `zoo serve` in a
subprocess (once without, once with batching), pinned to half of the cores; the
client threads run in this process on the other half (see serving_load.core_split),
so the load cannot starve the server. Each client sends, in a fixed rotation:
valid single requests (most of the traffic), malformed ones (spins 0.5,
non-square lattices, booleans, broken JSON), oversized ones (more rows than
--max-rows-per-request) and large valid ones (the row limit itself). Reported:
- status counts per kind: the targets are zero 5xx, zero hangs (client timeout
  30 s), zero valid requests failed, every malformed or oversized one a 4xx;
- p50/p99 latency of the small valid requests, overall and while a large request
  was in flight (large requests run off the event loop);
- the server's resident memory: the peak growth (VmHWM) of the largest allowed
  request sent alone, and baseline, peak and peak growth under the mixed load,
  next to the size of that request's float32 arrays (what the row limit bounds).
At 64 clients the single server core is saturated, so latencies are mostly queueing.
All traffic goes to 127.0.0.1, is bounded in time, and stops by itself.
Results: benchmarks/results/serving_soak.json.
"""
from __future__ import annotations

import argparse
import http.client
import json
import os
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, os.path.dirname(__file__))
from common import write_results  # noqa: E402
from serving_load import Server, core_split  # noqa: E402

from serving.export import export  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results" / "serving_soak.json"
MAX_ROWS = 2048
CNN, HELIO = "ising-cnn", "scinet-heliocentric"


def lattice(rows: int, L: int, value=None) -> list:
    if value is not None:
        return np.full((rows, L, L), value).tolist()
    return np.where(np.random.default_rng(rows + L).random((rows, L, L)) < 0.5, -1.0, 1.0).tolist()


def requests() -> list:
    """(kind, model, body bytes, expected status class) in the rotation every client follows."""
    def body(value):
        return json.dumps(value).encode()

    helio_one = body({"instances": [[0.5, 1.0]]})
    valid = [("valid", HELIO, helio_one, 2), ("valid", CNN, body({"instances": lattice(1, 16)}), 2),
             ("valid", CNN, body({"instances": lattice(1, 8)}), 2), ("valid", CNN, body({"instances": lattice(1, 12)}), 2)]
    malformed = [("malformed", CNN, body({"instances": lattice(1, 8, 0.5)}), 4),
                 ("malformed", CNN, body({"instances": np.ones((1, 8, 9)).tolist()}), 4),
                 ("malformed", HELIO, b'{"instances": [[true, 1.0]]}', 4),
                 ("malformed", HELIO, b'{"instances": [[0.5, ', 4)]
    oversized = [("oversized", HELIO, body({"instances": [[0.5, 1.0]] * (MAX_ROWS + 1)}), 4)]
    large = [("large", HELIO, body({"instances": np.random.default_rng(1).uniform(-3, 3, (MAX_ROWS, 2)).tolist()}), 2)]
    return valid * 4 + malformed + oversized + large  # 16 valid : 4 malformed : 1 oversized : 1 large


class Stats:
    def __init__(self):
        self.lock = threading.Lock()
        self.status = {}
        self.latency = {"small": [], "small_while_large": []}
        self.large_in_flight = 0
        self.hangs = 0
        self.valid_failed = 0
        self.wrong_class = 0


def client(base, rotation, offset, stop_at, stats: Stats):
    connection = http.client.HTTPConnection(base.split("//")[1].split(":")[0], int(base.rsplit(":", 1)[1]), timeout=30)
    i = offset
    while time.time() < stop_at:
        kind, model, body, expected = rotation[i % len(rotation)]
        i += 1
        if kind == "large":
            with stats.lock:
                stats.large_in_flight += 1
        overlapped = stats.large_in_flight > 0
        start = time.perf_counter()
        try:
            connection.request("POST", f"/v1/models/{model}:predict", body=body, headers={"Content-Type": "application/json"})
            response = connection.getresponse()
            response.read()
            status = response.status
        except TimeoutError:
            status = "hang"
        except (OSError, http.client.HTTPException):
            status = "connection_error"
            connection.close()
        elapsed = time.perf_counter() - start
        with stats.lock:
            if kind == "large":
                stats.large_in_flight -= 1
            stats.status.setdefault(kind, {}).setdefault(str(status), 0)
            stats.status[kind][str(status)] += 1
            if status == "hang":
                stats.hangs += 1
            if kind == "valid" and status != 200:
                stats.valid_failed += 1
            if not (isinstance(status, int) and status // 100 == expected):
                stats.wrong_class += 1
            if kind == "valid" and status == 200:
                stats.latency["small_while_large" if overlapped else "small"].append(elapsed)


def percentiles(samples) -> dict:
    if not samples:
        return {"n": 0}
    ordered = sorted(samples)
    return {"n": len(ordered), "p50_ms": 1e3 * ordered[len(ordered) // 2],
            "p99_ms": 1e3 * ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]}


def run(folder, batching: bool, seconds: float, clients: int) -> dict:
    server = Server(folder, batching, extra=["--max-rows-per-request", str(MAX_ROWS)])
    try:
        rotation = requests()
        for _, model, body, _ in rotation[:4]:  # warm up every model before the baseline
            connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=30)
            connection.request("POST", f"/v1/models/{model}:predict", body=body)
            connection.getresponse().read()
            connection.close()
        time.sleep(1.0)
        alone = server.rss_mib("VmHWM")
        largest = next(body for kind, _, body, _ in rotation if kind == "large")
        for _ in range(5):  # the largest allowed request, alone: its own peak memory
            connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=30)
            connection.request("POST", f"/v1/models/{HELIO}:predict", body=largest)
            connection.getresponse().read()
            connection.close()
        largest_alone_growth = server.rss_mib("VmHWM") - alone
        baseline = server.rss_mib()
        stats, stop_at = Stats(), time.time() + seconds
        samples = []
        threads = [threading.Thread(target=client, args=(server.base, rotation, 7 * k, stop_at, stats)) for k in range(clients)]
        for t in threads:
            t.start()
        while any(t.is_alive() for t in threads):
            samples.append(server.rss_mib())
            time.sleep(0.5)
        for t in threads:
            t.join()
        peak = server.rss_mib("VmHWM")
        five_xx = sum(n for kinds in stats.status.values() for code, n in kinds.items() if code.startswith("5"))
        latency = {key: percentiles(values) for key, values in stats.latency.items()}
        return {"status_counts": stats.status, "five_xx": five_xx, "hangs": stats.hangs,
                "valid_failed": stats.valid_failed, "unexpected_status_class": stats.wrong_class,
                "latency_valid": latency, "rss_mib_peak_growth_largest_request_alone": largest_alone_growth,
                "rss_mib_baseline": baseline, "rss_mib_peak": peak,
                "rss_mib_peak_growth": peak - baseline, "rss_mib_median_during": statistics.median(samples)}
    finally:
        server.stop()


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=60)
    parser.add_argument("--clients", type=int, default=64)
    args = parser.parse_args(argv)
    folder = Path(tempfile.mkdtemp(prefix="zoo-soak-"))
    export([CNN, HELIO], folder)
    server_cores, client_cores = core_split()
    os.sched_setaffinity(0, client_cores)
    largest_request_mib = MAX_ROWS * (2 + 50 * 2) * 4 / 2**20  # float32 inputs and outputs of the largest request
    results = {"seconds": args.seconds, "clients": args.clients, "max_rows_per_request": MAX_ROWS,
               "server_cores": server_cores, "client_cores": client_cores,
               "largest_request_arrays_mib": largest_request_mib}
    for batching in (False, True):
        results["batching" if batching else "no_batching"] = run(folder, batching, args.seconds, args.clients)
    runs = (results["no_batching"], results["batching"])
    results["targets_met"] = all(r["five_xx"] == 0 and r["hangs"] == 0 and r["valid_failed"] == 0 for r in runs)
    write_results(RESULTS, results)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
