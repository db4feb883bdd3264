"""Latency, throughput, soak and memory of the local TF Serving-compatible server, on 127.0.0.1 only.

    python benchmarks/serving_load.py [--soak-seconds 600] [--out benchmarks/results/serving.json]

Requests go over one keep-alive connection per client thread, as TF Serving's
own clients do. With --soak-seconds 0 the soak is skipped and the last one
in --out is kept.

Every preset is exported to a temporary folder and served by `zoo serve`
started as a subprocess (once without and once with server-side batching).
On a machine with two or more cores the server is pinned to the first half of
the cores and this process (the clients) to the rest, so that 64 client threads
cannot starve the server of CPU (sched_setaffinity; the split is recorded).
Measured side by side in one run:
- where one request's time goes inside the server: JSON parsing, checking,
  the model call and JSON writing, each timed in this process on the same body;
- latency p50/p99 at batch 1 for each preset, next to the bare SavedModel
  signature call in this process: the server's overhead;
- requests/s with 1, 16 and 64 concurrent clients, batching off and on, for
  scinet-heliocentric and for ising-cnn at L = 32;
- a soak: a fixed request rate against every preset at once for
  --soak-seconds, counting errors and sampling the server's resident memory.
All traffic goes to 127.0.0.1, is bounded in count and time, and stops by itself.
"""
from __future__ import annotations

import argparse
import http.client
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse
import urllib.request
from pathlib import Path

import numpy as np
import tensorflow as tf

import zoo
from common import free_port, write_results
from serving.export import export

PRESETS = [n for n in zoo.list_models() if zoo.has_weights(n)]



def request_body(name) -> bytes:
    model = zoo.load(name)
    x = {k: v.tolist() for k, v in model.random_inputs(1).items()}
    return json.dumps({"inputs": x}).encode()


_connections = threading.local()


def post(url, body) -> float:
    """One predict request on this thread's keep-alive connection; returns the seconds it took."""
    parsed = urllib.parse.urlsplit(url)
    connection = getattr(_connections, parsed.netloc, None)
    if connection is None:
        connection = http.client.HTTPConnection(parsed.hostname, parsed.port, timeout=30)
        setattr(_connections, parsed.netloc, connection)
    start = time.perf_counter()
    connection.request("POST", parsed.path, body=body, headers={"Content-Type": "application/json"})
    response = connection.getresponse()
    response.read()
    if response.status != 200:
        raise OSError(f"HTTP {response.status}")
    return time.perf_counter() - start


def core_split() -> tuple:
    """(server cores, client cores): half each, or everything for both on one core."""
    cores = sorted(os.sched_getaffinity(0))
    half = max(1, len(cores) // 2)
    return (cores[:half], cores[half:]) if len(cores) > 1 else (cores, cores)


class Server:
    def __init__(self, folder, batching: bool, extra=()):
        self.port = free_port()
        command = [sys.executable, "-m", "zoo", "serve", str(folder), "--port", str(self.port), "--poll-seconds", "5",
                   *extra]
        if batching:
            command += ["--batching", "--max-batch-size", "64", "--batch-timeout-micros", "2000"]
        server_cores = core_split()[0]
        self.process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                        preexec_fn=lambda: os.sched_setaffinity(0, server_cores))
        self.base = f"http://127.0.0.1:{self.port}"
        deadline = time.time() + 120
        while time.time() < deadline:
            try:
                urllib.request.urlopen(f"{self.base}/v1/models/{PRESETS[0]}", timeout=1).read()
                return
            except OSError:
                time.sleep(0.2)
        raise RuntimeError("the server did not start within 120 s")

    def rss_mib(self, field: str = "VmRSS") -> float:
        """Resident memory now (VmRSS) or its peak so far (VmHWM), MiB."""
        with open(f"/proc/{self.process.pid}/status") as f:
            return next(int(line.split()[1]) for line in f if line.startswith(field)) / 1024

    def stop(self):
        self.process.terminate()
        self.process.wait(timeout=60)


def latency(server, name, body, n=200) -> dict:
    url = f"{server.base}/v1/models/{name}:predict"
    for _ in range(10):
        post(url, body)
    times = sorted(post(url, body) for _ in range(n))
    return {"p50_ms": 1e3 * times[n // 2], "p99_ms": 1e3 * times[int(n * 0.99) - 1]}


def bare_latency(folder, name, body, n=200) -> float:
    fn = tf.saved_model.load(str(folder / name / "1")).signatures["serving_default"]
    inputs = {k: tf.constant(np.asarray(v, "float32")) for k, v in json.loads(body)["inputs"].items()}
    for _ in range(10):
        fn(**inputs)
    times = []
    for _ in range(n):
        start = time.perf_counter()
        fn(**inputs)
        times.append(time.perf_counter() - start)
    return 1e3 * statistics.median(times)


def throughput(server, name, body, clients: int, seconds: float = 5.0) -> float:
    url = f"{server.base}/v1/models/{name}:predict"
    counts = [0] * clients
    stop = time.time() + seconds

    def worker(i):
        while time.time() < stop:
            post(url, body)
            counts[i] += 1

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return sum(counts) / seconds


def breakdown(folder, name, body, n=200) -> dict:
    """Median microseconds of each step the server takes for one request, timed in this process."""
    from serving.repository import load_servable
    from serving.server import decode_json, encode_json, format_outputs, parse_predict_body

    signature = load_servable(name, 1, folder / name / "1").signature(None)
    steps = {
        "parse_json": lambda: decode_json(body),
        "check_inputs": lambda: signature.check("serving_default", parse_predict_body(decode_json(body), signature)[0]),
        "model_call": lambda: signature(signature.check("serving_default", parse_predict_body(decode_json(body), signature)[0])),
    }
    outputs = steps["model_call"]()
    steps["write_json"] = lambda: encode_json(format_outputs(outputs, "columnar"))
    times = {}
    for key, step in steps.items():
        samples = []
        for _ in range(n):
            start = time.perf_counter()
            step()
            samples.append(time.perf_counter() - start)
        times[key] = 1e6 * statistics.median(samples)
    times["check_inputs"] -= times["parse_json"]  # each step timed with the ones before it; keep its own share
    times["model_call"] -= times["parse_json"] + times["check_inputs"]
    return {f"{k}_us": v for k, v in times.items()}


def ising_body(L: int = 32) -> bytes:
    spins = np.where(np.random.default_rng(0).random((1, L, L)) < 0.5, -1.0, 1.0)
    return json.dumps({"instances": spins.tolist()}).encode()


def soak(server, bodies: dict, seconds: float, rate_per_second: float = 50.0) -> dict:
    errors, sent, rss = 0, 0, [server.rss_mib()]
    interval, start = 1.0 / rate_per_second, time.time()
    names = list(bodies)
    while time.time() - start < seconds:
        name = names[sent % len(names)]
        try:
            post(f"{server.base}/v1/models/{name}:predict", bodies[name])
        except (OSError, http.client.HTTPException):
            errors += 1
            _connections.__dict__.clear()  # reconnect after a failure
        sent += 1
        if sent % int(rate_per_second * 10) == 0:
            rss.append(server.rss_mib())
        time.sleep(max(0.0, start + sent * interval - time.time()))
    rss.append(server.rss_mib())
    return {"requests": sent, "errors": errors, "seconds": seconds, "rss_mib_start": rss[0], "rss_mib_end": rss[-1],
            "rss_mib_max": max(rss), "rss_growth_mib": rss[-1] - rss[0]}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--soak-seconds", type=float, default=600)
    parser.add_argument("--throughput-seconds", type=float, default=5)
    parser.add_argument("--out", default="benchmarks/results/serving.json")
    args = parser.parse_args(argv)
    folder = Path(tempfile.mkdtemp(prefix="zoo-serving-bench-"))
    export(PRESETS, folder)
    bodies = {name: request_body(name) for name in PRESETS}
    server_cores, client_cores = core_split()
    os.sched_setaffinity(0, client_cores)
    results = {"cpu_cores": os.cpu_count(), "server_cores": server_cores, "client_cores": client_cores,
               "presets": {}, "throughput_rps": {}, "ising_cnn_L32_throughput_rps": {}}
    for batching in (False, True):
        server = Server(folder, batching)
        try:
            mode = "batching" if batching else "no_batching"
            if not batching:
                results["rss_mib_all_presets_loaded"] = server.rss_mib()
                for name in PRESETS:
                    served = latency(server, name, bodies[name])
                    bare = bare_latency(folder, name, bodies[name])
                    results["presets"][name] = {**served, "bare_signature_p50_ms": bare,
                                                "server_overhead_p50_ms": served["p50_ms"] - bare,
                                                **breakdown(folder, name, bodies[name])}
            name = "scinet-heliocentric"
            results["throughput_rps"][mode] = {
                str(c): throughput(server, name, bodies[name], c, args.throughput_seconds) for c in (1, 16, 64)
            }
            results["ising_cnn_L32_throughput_rps"][mode] = {
                str(c): throughput(server, "ising-cnn", ising_body(32), c, args.throughput_seconds) for c in (1, 64)
            }
            if batching and args.soak_seconds > 0:
                results["soak"] = soak(server, bodies, args.soak_seconds)
            elif batching and Path(args.out).exists():  # keep the last soak when this run skips it
                results["soak"] = json.loads(Path(args.out).read_text()).get("soak")
        finally:
            server.stop()
    plain, batched = results["throughput_rps"]["no_batching"], results["throughput_rps"]["batching"]
    results["batching_speedup_at_64_clients"] = batched["64"] / plain["64"]
    ising = results["ising_cnn_L32_throughput_rps"]
    results["ising_cnn_L32_batching_speedup_at_64_clients"] = ising["batching"]["64"] / ising["no_batching"]["64"]
    results["worst_server_overhead_p50_ms"] = max(p["server_overhead_p50_ms"] for p in results["presets"].values())
    write_results(args.out, results)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
