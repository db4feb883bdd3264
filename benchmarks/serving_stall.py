"""How long a costly request stalls the server's other clients, and a soak with costly requests in the mix.

    python benchmarks/serving_stall.py [--soak-seconds 120] [--quick]

The presets behind the costly requests are exported and served by `zoo serve` in a subprocess (without and
with --batching), pinned to half of the cores; the clients run here on the other half (serving_load.core_split).
For each costly request (a small body asking for a lot of work):

- a cheap client sends scinet-heliocentric predicts at batch 1 back to back, and a second one model status
  GETs, on their own keep-alive connections;
- after a quiet second (the baseline), the costly request is sent once from another thread;
- reported: the cheap requests' p50, p99 and worst latency while the costly one was in flight, next to the
  baseline, and the costly request's own time. The stall is the in-flight p99 (target: under 0.1 s).

The soak then runs --soak-seconds of 8 cheap clients and 1 client sending the costly requests in rotation,
reporting the cheap clients' p99 and the server's peak resident memory (VmHWM).
All traffic goes to 127.0.0.1, is bounded in count and time, and stops by itself.
Results: benchmarks/results/serving_stall.json.
"""
from __future__ import annotations

import argparse
import http.client
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, os.path.dirname(__file__))
from common import free_port, stop_process, write_results  # noqa: E402
from serving_load import core_split  # noqa: E402

from serving.export import export  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results" / "serving_stall.json"
CHEAP = "scinet-heliocentric"


def costly_requests(quick: bool) -> dict:
    """Name -> (model, body): the audit's repros, small bodies asking for seconds of work."""
    seeds = 3000 if quick else 30_000
    rng = np.random.default_rng(0)
    requests = {
        f"realnvp-phi4-L8 sample, {seeds} seeds": (
            "realnvp-phi4-L8", {"signature_name": "sample", "inputs": {"seed": list(range(seeds))}}),
        "calogan-eplus generate, 8000 energies": (
            "calogan-eplus", {"signature_name": "generate", "inputs": {
                "energies": np.round(rng.uniform(1, 100, 8000), 1).tolist(), "seed": list(range(8000))}}),
        "translator-schrodinger, N = 100000": (
            "translator-schrodinger", {"inputs": np.round(-1.0 - 0.5 * np.sin(np.arange(100_000) / 20), 3)[None].tolist()}),
    }
    if not quick:
        requests[f"neuralrg-ising-L16 sample, {seeds} seeds"] = (
            "neuralrg-ising-L16", {"signature_name": "sample", "inputs": {"seed": list(range(seeds))}})
    return {k: (m, json.dumps(b).encode()) for k, (m, b) in requests.items()}


class Server:
    """`zoo serve FOLDER` on a free loopback port, pinned to the server's half of the cores."""

    def __init__(self, folder, batching: bool):
        self.port = free_port()
        command = [sys.executable, "-m", "zoo", "serve", str(folder), "--port", str(self.port), "--poll-seconds", "0"]
        if batching:
            command += ["--batching"]
        cores = core_split()[0]
        self.process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                        preexec_fn=lambda: os.sched_setaffinity(0, cores))
        deadline = time.time() + 300
        while time.time() < deadline:
            try:
                if request(self.port, "GET", f"/v1/models/{CHEAP}")[0] == 200:
                    return
            except OSError:
                time.sleep(0.5)
        self.stop()
        raise RuntimeError("the server did not start within 300 s")

    def peak_rss_mib(self) -> float:
        with open(f"/proc/{self.process.pid}/status") as f:
            return next(int(line.split()[1]) for line in f if line.startswith("VmHWM")) / 1024

    def stop(self):
        stop_process(self.process)


_connections = threading.local()


def request(port: int, method: str, path: str, body: bytes | None = None) -> tuple:
    """(status, seconds) of one request on this thread's keep-alive connection."""
    connection = getattr(_connections, str(port), None)
    if connection is None:
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=600)
        setattr(_connections, str(port), connection)
    start = time.perf_counter()
    try:
        connection.request(method, path, body=body, headers={"Content-Type": "application/json"})
        response = connection.getresponse()
        response.read()
    except OSError:
        setattr(_connections, str(port), None)
        raise
    return response.status, time.perf_counter() - start


def cheap_client(port: int, stop: threading.Event, log: list, kind: str) -> None:
    """Back-to-back cheap requests, each logged as (start time, seconds, status)."""
    body = json.dumps({"instances": [[0.5, 1.0]]}).encode()
    while not stop.is_set():
        started = time.perf_counter()
        if kind == "predict":
            status, seconds = request(port, "POST", f"/v1/models/{CHEAP}:predict", body)
        else:
            status, seconds = request(port, "GET", f"/v1/models/{CHEAP}")
        log.append((started, seconds, status))


def summary(seconds: list) -> dict:
    if not seconds:
        return {"n": 0}
    ordered = sorted(seconds)
    return {"n": len(ordered), "p50_ms": 1e3 * ordered[len(ordered) // 2],
            "p99_ms": 1e3 * ordered[min(len(ordered) - 1, int(0.99 * len(ordered)))], "max_ms": 1e3 * ordered[-1]}


def stall(port: int, model: str, body: bytes) -> dict:
    """The cheap clients' latencies before and during one costly request."""
    stop, logs = threading.Event(), {"predict": [], "status": []}
    clients = [threading.Thread(target=cheap_client, args=(port, stop, logs[k], k)) for k in logs]
    for c in clients:
        c.start()
    time.sleep(1.0)
    started = time.perf_counter()
    status, costly_seconds = request(port, "POST", f"/v1/models/{model}:predict", body)
    ended = time.perf_counter()
    stop.set()
    for c in clients:
        c.join(timeout=600)
    result = {"costly_status": status, "costly_seconds": costly_seconds}
    for kind, log in logs.items():
        # a cheap request overlapping the costly one's flight counts as in flight
        during = [s for t, s, _ in log if t + s >= started and t <= ended]
        before = [s for t, s, _ in log if t + s < started]
        result[kind] = {"baseline": summary(before), "during": summary(during),
                        "errors": sum(1 for *_, code in log if code != 200)}
    return result


def soak(server: Server, costly: dict, seconds: float, cheap_clients: int = 8) -> dict:
    stop, log, costly_log = threading.Event(), [], []

    def costly_client():
        while not stop.is_set():
            for model, body in costly.values():
                if stop.is_set():
                    break
                costly_log.append(request(server.port, "POST", f"/v1/models/{model}:predict", body))

    threads = [threading.Thread(target=cheap_client, args=(server.port, stop, log, "predict"))
               for _ in range(cheap_clients)] + [threading.Thread(target=costly_client)]
    for t in threads:
        t.start()
    time.sleep(seconds)
    stop.set()
    for t in threads:
        t.join(timeout=900)
    return {"seconds": seconds, "cheap_clients": cheap_clients, "cheap": summary([s for _, s, _ in log]),
            "cheap_errors": sum(1 for *_, code in log if code != 200), "costly_requests": len(costly_log),
            "costly_errors": sum(1 for code, _ in costly_log if code != 200),
            "server_peak_rss_mib": server.peak_rss_mib()}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--soak-seconds", type=float, default=120)
    parser.add_argument("--quick", action="store_true", help="smaller costly requests, no neuralrg-ising-L16")
    parser.add_argument("--cases", default="", help="only the costly requests whose name contains this")
    parser.add_argument("--out", default=str(RESULTS))
    args = parser.parse_args(argv)
    costly = {k: v for k, v in costly_requests(args.quick).items() if args.cases in k}
    results = {"machine": {"cores": len(os.sched_getaffinity(0)), "server_cores": core_split()[0]},
               "target_stall_p99_ms": 100.0}
    with tempfile.TemporaryDirectory() as folder:
        export(sorted({CHEAP, *(m for m, _ in costly.values())}), folder)
        for batching in (False, True):
            server = Server(folder, batching)
            try:
                mode = "batching" if batching else "plain"
                results[mode] = {name: stall(server.port, model, body) for name, (model, body) in costly.items()}
                if args.soak_seconds > 0:
                    results[mode]["soak"] = soak(server, costly, args.soak_seconds)
            finally:
                server.stop()
    write_results(args.out, results)
    return 0


if __name__ == "__main__":
    sys.exit(main())
