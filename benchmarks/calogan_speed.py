"""CaloGAN generation speed on this machine's CPU: per shower next to the simulator, and served showers per second.

    python benchmarks/calogan_speed.py [--preset calogan-eplus] [--json results.json] [--seconds 5]

Measured side by side in one run (run on demand, not in CI), and reported as ratios:

- generation: ``model.generate(energies, seed)`` at batch 1, 128 and 1024, and the
  simulator (``training.simulators.calorimeter.simulate``) on ``--simulated`` showers,
  interleaved over ``--rounds`` rounds, best round of each; milliseconds per shower and
  the simulator's time over the generator's.
- serving: the preset exported (generator only) and served by ``zoo serve`` in a
  subprocess, first without and then with server-side batching (``--batching
  --max-batch-size --batch-timeout-micros``, as TF Serving's batching parameters);
  ``--clients`` client threads (64), each on its own keep-alive connection, each request
  ``--showers-per-request`` showers (1) of the ``generate`` signature, alternating off and on
  over ``--serving-rounds`` rounds (a fresh server each); the median showers per second of
  each, their ratio (the target: at least 3 at 64 clients) and each round's. As in
  ``benchmarks/serving_load.py``, the server is pinned to the first half of the cores and
  the clients to the rest (recorded), so the clients cannot starve the server.

Without installed weights the preset is built with fresh weights (``pretrained=False``,
same architecture and cost), and the report says so. All traffic goes to 127.0.0.1.
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
import urllib.request
from pathlib import Path

import numpy as np

sys.path.insert(0, os.path.dirname(__file__))
from common import free_port, record_preset_results, stop_process, write_results  # noqa: E402

import zoo  # noqa: E402
from serving.export import export_model  # noqa: E402
from training.recipes.calogan import time_per_shower  # noqa: E402
from training.simulators import calorimeter  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results" / "calogan.json"

BATCHES = (1, 128, 1024)


def load(preset: str):
    """(model, note): the preset's weights if installed, else fresh weights of the same architecture."""
    if zoo.has_weights(preset):
        return zoo.load(preset), "pretrained weights"
    return zoo.load(preset, pretrained=False), "fresh weights (pretrained=False: no weights installed; same cost)"


def generation(model, batches, n_simulated: int, rounds: int, seed: int = 0) -> dict:
    """Milliseconds per shower of the generator at each batch and of the simulator, interleaved in rounds."""
    rng = np.random.default_rng(seed)
    energies = {b: rng.uniform(1.0, 100.0, b) for b in batches}
    calls = {f"gan_batch_{b}": (b, lambda b=b: model.generate(energies[b], seed=seed, batch_size=b)) for b in batches}
    calls["simulator"] = (n_simulated, lambda: calorimeter.simulate(model.particle, n_simulated, seed))
    for _, call in calls.values():  # warm-up: tracing, first allocations
        call()
    best = {k: float("inf") for k in calls}
    for _ in range(rounds):
        for key, (n, call) in calls.items():
            repeats = 1 if key == "simulator" else max(1, min(20, 2048 // n))
            best[key] = min(best[key], time_per_shower(call, repeats) / n)
    ms = {k: 1e3 * v for k, v in best.items()}
    return {"ms_per_shower": ms, "simulated_showers": n_simulated,
            "simulator_over_gan": {k: ms["simulator"] / v for k, v in ms.items() if k != "simulator"}}


# ----------------------------------------------------------------------------- serving

def core_split() -> tuple:
    """(server cores, client cores): half each, or everything for both on one core."""
    cores = sorted(os.sched_getaffinity(0))
    half = max(1, len(cores) // 2)
    return (cores[:half], cores[half:]) if len(cores) > 1 else (cores, cores)


class Server:
    """``zoo serve FOLDER`` in a subprocess on a free loopback port, pinned to ``cores``."""

    def __init__(self, folder, name: str, cores, batching: dict | None):
        self.port = free_port()
        command = [sys.executable, "-m", "zoo", "serve", str(folder), "--port", str(self.port), "--poll-seconds", "5"]
        if batching:
            command += ["--batching", "--max-batch-size", str(batching["max_batch_size"]),
                        "--batch-timeout-micros", str(batching["batch_timeout_micros"])]
        self.process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        os.sched_setaffinity(self.process.pid, cores)  # before it loads TensorFlow, whose threads inherit it
        deadline = time.time() + 120
        while time.time() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"the server exited with code {self.process.returncode}: {' '.join(command)}")
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{self.port}/v1/models/{name}", timeout=1).read()
                return
            except OSError:
                time.sleep(0.2)
        self.stop()
        raise RuntimeError("the server did not start within 120 s")

    def stop(self):
        stop_process(self.process)


def request_body(rows: int, seed: int) -> bytes:
    rng = np.random.default_rng(seed)
    return json.dumps({"signature_name": "generate", "inputs": {
        "energies": rng.uniform(1.0, 100.0, rows).round(3).tolist(),
        "seed": rng.integers(0, 2**40, rows).tolist()}}).encode()


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of process ``pid`` so far (/proc/PID/stat)."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def served_showers_per_second(port: int, name: str, clients: int, rows: int, seconds: float,
                              server_pid: int) -> dict:
    """Showers per second with ``clients`` threads, each on one keep-alive connection, for ``seconds``
    (after one warm-up request per client), and how busy the server's and the clients' cores were (CPU seconds
    per second of each process over the cores it is pinned to: near 1, that side was the bottleneck)."""
    path = f"/v1/models/{name}:predict"
    counts, errors = [0] * clients, [0] * clients
    start_line = threading.Barrier(clients + 1)
    times = {}

    def worker(i):
        body = request_body(rows, seed=i)
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=60)

        def post() -> bool:
            nonlocal connection
            try:
                connection.request("POST", path, body=body, headers={"Content-Type": "application/json"})
                response = connection.getresponse()
                response.read()
                return response.status == 200
            except (OSError, http.client.HTTPException):
                connection.close()  # reconnect on the next request
                connection = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
                return False

        try:
            post()  # warm-up
            start_line.wait(timeout=300)
            while time.perf_counter() < times["stop"]:
                if post():
                    counts[i] += 1
                else:
                    errors[i] += 1
        finally:
            connection.close()

    threads = [threading.Thread(target=worker, args=(i,), daemon=True) for i in range(clients)]
    for t in threads:
        t.start()
    times["stop"] = float("inf")
    start_line.wait(timeout=300)
    begin, server_cpu, client_cpu = time.perf_counter(), cpu_seconds(server_pid), time.process_time()
    times["stop"] = begin + seconds
    for t in threads:
        t.join()
    elapsed = time.perf_counter() - begin
    server_cpu, client_cpu = cpu_seconds(server_pid) - server_cpu, time.process_time() - client_cpu
    server_cores, client_cores = core_split()
    return {"showers_per_s": sum(counts) * rows / elapsed, "requests": sum(counts), "errors": sum(errors),
            "seconds": elapsed, "server_cpu_busy": server_cpu / elapsed / len(server_cores),
            "client_cpu_busy": client_cpu / elapsed / len(client_cores)}


def serving(model, name: str, clients: int, rows: int, seconds: float, batching: dict, rounds: int) -> dict:
    """Served showers per second without and with batching, alternating over ``rounds`` rounds (a fresh server
    each time); the ratio of the medians, and each round's ratio to show the spread."""
    server_cores, client_cores = core_split()
    previous = os.sched_getaffinity(0)
    results = {"server_cores": server_cores, "client_cores": client_cores, "clients": clients,
               "showers_per_request": rows, "batching_parameters": batching, "rounds": []}
    with tempfile.TemporaryDirectory(prefix="zoo-calogan-bench-") as folder:
        export_model(model, Path(folder) / name / "1")
        os.sched_setaffinity(0, client_cores)
        try:
            for _ in range(rounds):
                measured = {}
                for mode, parameters in (("no_batching", None), ("batching", batching)):
                    server = Server(folder, name, server_cores, parameters)
                    try:
                        measured[mode] = served_showers_per_second(server.port, name, clients, rows, seconds,
                                                                   server.process.pid)
                    finally:
                        server.stop()
                measured["ratio"] = measured["batching"]["showers_per_s"] / measured["no_batching"]["showers_per_s"]
                results["rounds"].append(measured)
        finally:
            os.sched_setaffinity(0, previous)
    for mode in ("no_batching", "batching"):
        results[mode] = {key: float(np.median([r[mode][key] for r in results["rounds"]]))
                         for key in results["rounds"][0][mode]}
    results["batching_over_no_batching"] = results["batching"]["showers_per_s"] / results["no_batching"]["showers_per_s"]
    return results


# ----------------------------------------------------------------------------- report

def markdown(results: dict) -> str:
    lines = [f"CaloGAN speed, {results['preset']} ({results['weights']}), {results['machine']}", "",
             "| what | ms per shower | simulator / this |", "|---|---:|---:|"]
    generation_ = results["generation"]
    for key, ms in generation_["ms_per_shower"].items():
        ratio = generation_["simulator_over_gan"].get(key)
        lines.append(f"| {key.replace('_', ' ')} | {ms:.4g} | {'' if ratio is None else f'{ratio:.3g}'} |")
    served = results.get("serving")
    if served:
        lines += ["", (f"Served `generate` through `zoo serve`: {served['clients']} client threads, "
                       f"{served['showers_per_request']} shower(s) per request; server on cores "
                       f"{served['server_cores']}, clients on {served['client_cores']}."), "",
                  "| server | showers / s | requests | errors | server cores busy | client cores busy |",
                  "|---|---:|---:|---:|---:|---:|"]
        for mode in ("no_batching", "batching"):
            m = served[mode]
            label = mode.replace("_", " ") if mode == "no_batching" else "batching " + ", ".join(
                f"{k}={v}" for k, v in served["batching_parameters"].items())
            lines.append(f"| {label} | {m['showers_per_s']:.1f} | {m['requests']:.0f} | {m['errors']:.0f} | "
                         f"{m['server_cpu_busy']:.0%} | {m['client_cpu_busy']:.0%} |")
        spread = ", ".join(f"{r['ratio']:.2f}" for r in served["rounds"])
        lines += ["", (f"Medians of {len(served['rounds'])} alternating rounds (a fresh server each). Batching "
                       f"on / off at {served['clients']} clients: **{served['batching_over_no_batching']:.2f}x** "
                       f"(target: >= 3x; per round: {spread}).")]
    return "\n".join(lines)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default="calogan-eplus")
    parser.add_argument("--batches", type=int, nargs="+", default=list(BATCHES))
    parser.add_argument("--simulated", type=int, default=200, help="simulator showers per timing")
    parser.add_argument("--rounds", type=int, default=3, help="interleaved rounds of the generation timings")
    parser.add_argument("--clients", type=int, default=64)
    parser.add_argument("--showers-per-request", type=int, default=1)
    parser.add_argument("--seconds", type=float, default=5.0, help="duration of each served-throughput measurement")
    parser.add_argument("--serving-rounds", type=int, default=3, help="alternating rounds of batching off and on")
    parser.add_argument("--max-batch-size", type=int, default=64)
    parser.add_argument("--batch-timeout-micros", type=int, default=2000)
    parser.add_argument("--no-serving", action="store_true", help="measure generation only")
    parser.add_argument("--json", default=str(RESULTS), help="also write the results here")
    args = parser.parse_args(argv)

    start = time.perf_counter()
    model, weights = load(args.preset)
    print(f"{args.preset}: {weights}", flush=True)
    results = {"preset": args.preset, "weights": weights, "machine": f"{len(os.sched_getaffinity(0))} CPU cores",
               "generation": generation(model, args.batches, args.simulated, args.rounds)}
    if not args.no_serving:
        batching = {"max_batch_size": args.max_batch_size, "batch_timeout_micros": args.batch_timeout_micros}
        results["serving"] = serving(model, args.preset, args.clients, args.showers_per_request, args.seconds,
                                     batching, args.serving_rounds)
    results["benchmark_seconds"] = time.perf_counter() - start
    print(markdown(results))
    print(f"\n(benchmark wall time {results['benchmark_seconds']:.0f} s)")
    if args.json:
        write_results(args.json, results)
    if weights == "pretrained weights":
        record_preset_results(args.preset, card_numbers(results), "benchmarks/calogan_speed.py")
    return 0


def card_numbers(results: dict) -> dict:
    """The flat numbers a preset card's speed table shows."""
    ms = results["generation"]["ms_per_shower"]
    numbers = {f"{k} (ms per shower)": v for k, v in ms.items()}
    if "serving" in results:
        served = results["serving"]
        numbers.update({f"served showers/s, {served['clients']} clients, no batching":
                        served["no_batching"]["showers_per_s"],
                        f"served showers/s, {served['clients']} clients, batching": served["batching"]["showers_per_s"],
                        "batching / no batching": served["batching_over_no_batching"]})
    return {**numbers, "machine": results["machine"]}


if __name__ == "__main__":
    raise SystemExit(main())
