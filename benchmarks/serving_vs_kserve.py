"""The zoo's TF Serving-compatible server next to KServe, on the same SavedModel, on 127.0.0.1 only.

    .venv/bin/python benchmarks/serving_vs_kserve.py [--rounds 7] [--requests 300] [--quick]
        [--out benchmarks/results/serving_vs_kserve.json]

Method
------
KServe is never a dependency of the project: the script installs it (newest
0.21.x, or the newest release if PyPI has no 0.21, which the output then says)
with the project's TensorFlow minor version into its own virtual environment,
~/.cache/zoo-bench/kserve-venv, and reuses that environment on later runs.
On the KServe side a small custom ``kserve.Model`` (written to the temporary
folder at run time) loads the SavedModel with ``tf.saved_model.load`` and calls
its ``serving_default`` signature; it speaks KServe's V1 protocol,
``POST /v1/models/NAME:predict`` with ``{"instances": [...]}``, which is also
TF Serving's row format, so both servers get byte-identical request bodies.

1. Every preset of ``zoo.list_models()`` is exported once to a temporary folder
   by a worker process, scinet-heliocentric first. A preset whose export takes
   longer than --export-timeout seconds is abandoned (the worker is killed and
   restarted for the rest) and listed under ``skipped``.
2. Both servers run at once as subprocesses on free ports of 127.0.0.1, with
   their defaults (uvicorn, one worker, uvloop + httptools on both sides),
   serving the same scinet-heliocentric SavedModel. On a machine with two or
   more cores both servers are pinned to the first half of the cores and this
   process (the clients) to the rest, as in serving_load.py.
3. Head to head, in alternating rounds (zoo, kserve, zoo, kserve, ...) so that
   slow drifts of a noisy machine hit both alike:
   - sequential: one client thread, one keep-alive connection per server,
     --requests requests at batch 1 per round; p50 and p99 of each round;
   - concurrent: --clients threads, each with its own keep-alive connection,
     each sending --requests requests per round; p50, p99 and requests/s.
   Each round starts with a few untimed warm-up requests and stops at
   --round-seconds whatever the count. Reported: every round's numbers, the
   median over rounds, and the zoo/kserve ratio of each pair of rounds with
   the median of those ratios (below 1: the zoo is faster). Ratios, not
   milliseconds, are what carry over from one machine to another.
4. The zoo server's overhead: one zoo server over every exported preset; for
   each, batch-1 latency through the server and the bare ``serving_default``
   signature called in this process on the same inputs, alternating over
   min(3, --rounds) rounds. Overhead = median server p50 - median bare p50.
5. Sanity: the answer to the benchmark request from either server must match
   the bare signature's.

Servers are always stopped (and die with this process if it is killed); all
traffic goes to 127.0.0.1 and every loop is bounded in count and time.
--quick: 3 rounds of 100 requests and a 10 s export limit.
"""
from __future__ import annotations

import argparse
import contextlib
import ctypes
import http.client
import json
import multiprocessing
import os
import platform
import queue
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from importlib import metadata
from pathlib import Path

import numpy as np

from common import free_port, stop_process, write_results

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # TensorFlow's C++ start-up chatter, here and in the children

REPO = Path(__file__).resolve().parent.parent
MODEL = "scinet-heliocentric"
KSERVE_WANTED = "0.21"
KSERVE_VENV = Path.home() / ".cache" / "zoo-bench" / "kserve-venv"
WARMUP_REQUESTS = 20
HTTP_TIMEOUT_S = 30
REQUIRED_EXPORT_S = 120  # the head-to-head model's export is never cut short before this
PACKAGES = ("kserve", "tensorflow", "fastapi", "uvicorn", "uvloop", "httptools", "orjson")  # recorded on both sides
SERVER_SETTINGS = ("both servers at their defaults: one uvicorn worker (uvloop, httptools), no batching; "
                   "zoo serve writes uvicorn's access line per request, KServe its access line plus its "
                   "kserve.trace latency lines (on by default); KServe's gRPC server is off; the zoo server "
                   "polls its folder every second (its default)")

KSERVE_MODEL_SOURCE = '''\
"""A KServe V1 predictor over one SavedModel's serving_default signature (written by serving_vs_kserve.py)."""
import argparse

import kserve
import numpy as np
import tensorflow as tf


class SavedModelPredictor(kserve.Model):
    def __init__(self, name, model_dir):
        super().__init__(name)
        self.model_dir = model_dir
        self.load()

    def load(self):
        self.signature = tf.saved_model.load(self.model_dir).signatures["serving_default"]
        self.specs = self.signature.structured_input_signature[1]
        self.ready = True
        return self.ready

    def predict(self, payload, headers=None):
        rows = payload["instances"]
        if all(isinstance(r, dict) for r in rows):
            columns = {k: [r[k] for r in rows] for k in self.specs}
        else:
            columns = {next(iter(self.specs)): rows}
        inputs = {k: tf.constant(np.asarray(v, self.specs[k].dtype.as_numpy_dtype)) for k, v in columns.items()}
        outputs = {k: v.numpy() for k, v in self.signature(**inputs).items()}
        if len(outputs) == 1:
            return {"predictions": next(iter(outputs.values()))}
        return {"predictions": [{k: v[i] for k, v in outputs.items()} for i in range(len(rows))]}


if __name__ == "__main__":
    parser = argparse.ArgumentParser(parents=[kserve.model_server.parser])
    parser.add_argument("--model_dir", required=True)
    args, _ = parser.parse_known_args()
    kserve.ModelServer().start([SavedModelPredictor(args.model_name, args.model_dir)])
'''


# ---------------------------------------------------------------- KServe's environment

def available_kserve_versions() -> list:
    """Versions of kserve on the package index, newest first (`pip index versions kserve`)."""
    out = subprocess.run([sys.executable, "-m", "pip", "index", "versions", "kserve"],
                         capture_output=True, text=True, timeout=180).stdout
    match = re.search(r"Available versions:\s*(.+)", out)
    return [v.strip() for v in match.group(1).split(",")] if match else []


def choose_kserve_version(versions: list) -> tuple:
    """(version to install, note): the newest 0.21.x, else the newest of all."""
    wanted = [v for v in versions if v.startswith(KSERVE_WANTED + ".")]
    if wanted:
        return wanted[0], f"KServe {wanted[0]} (the newest {KSERVE_WANTED}.x on PyPI)"
    if not versions:
        raise RuntimeError("`pip index versions kserve` listed no versions: is PyPI reachable?")
    return versions[0], f"KServe {KSERVE_WANTED} is not on PyPI; used the newest release, {versions[0]}"


def venv_versions(venv: Path) -> dict:
    """{package: version} of kserve and tensorflow in ``venv``, empty when it is missing or broken."""
    python = venv / "bin" / "python"
    if not python.exists():
        return {}
    code = ("import importlib.metadata as m, json\n"
            "def v(p):\n    try: return m.version(p)\n    except m.PackageNotFoundError: return None\n"
            f"print(json.dumps({{p: v(p) for p in {PACKAGES!r}}}))")
    done = subprocess.run([str(python), "-c", code], capture_output=True, text=True, timeout=60)
    return json.loads(done.stdout) if done.returncode == 0 else {}


def ensure_kserve_venv(version: str) -> dict:
    """Create (or reuse) the KServe virtual environment; returns its kserve and tensorflow versions."""
    tf_minor = ".".join(metadata.version("tensorflow").split(".")[:2])
    installed = venv_versions(KSERVE_VENV)
    if installed.get("kserve") == version and installed.get("tensorflow", "").startswith(tf_minor + "."):
        return installed
    print(f"installing kserve=={version} and tensorflow=={tf_minor}.* into {KSERVE_VENV} ...", flush=True)
    KSERVE_VENV.parent.mkdir(parents=True, exist_ok=True)
    subprocess.run([sys.executable, "-m", "venv", "--clear", str(KSERVE_VENV)], check=True, timeout=300)
    done = subprocess.run([str(KSERVE_VENV / "bin" / "pip"), "install", "-q", f"kserve=={version}",
                           f"tensorflow=={tf_minor}.*"], capture_output=True, text=True, timeout=1800)
    if done.returncode != 0:
        raise RuntimeError(f"pip could not install kserve=={version} on Python {platform.python_version()}:\n"
                           + done.stderr[-3000:])
    return venv_versions(KSERVE_VENV)


# ---------------------------------------------------------------- exports

def _export_worker(names, folder, messages):
    """In a worker process: export each preset to folder/models/NAME/1 and its batch-1 inputs to
    folder/inputs/NAME.npz, reporting ("start" | "done" | "failed", name, detail) on ``messages``."""
    import zoo
    from serving.export import export_model

    zoo.load(MODEL)  # warm-up: the first load of a process pays for setting up Keras and the registry
    messages.put(("ready", None, None))
    for name in names:
        messages.put(("start", name, None))
        start = time.perf_counter()
        try:
            model = zoo.load(name)
            staging = Path(folder) / "models" / f".staging-{name}"
            export_model(model, staging)
            np.savez(Path(folder) / "inputs" / f"{name}.npz", **model.random_inputs(1))
            (Path(folder) / "models" / name).mkdir()
            os.replace(staging, Path(folder) / "models" / name / "1")
            messages.put(("done", name, time.perf_counter() - start))
        except Exception as e:  # a preset that cannot be exported is skipped, not fatal
            messages.put(("failed", name, f"{type(e).__name__}: {e}"[:300]))
    messages.put(("end", None, None))


def _forget_export(folder: Path, name: str) -> None:
    for path in (folder / "models" / name, folder / "models" / f".staging-{name}"):
        shutil.rmtree(path, ignore_errors=True)


def export_presets(names: list, folder: Path, timeout_s: float, required: str) -> tuple:
    """({name: export seconds}, {name: why skipped}); a worker stuck past ``timeout_s`` on one preset
    is killed and a fresh one goes on with the rest. Failing to export ``required`` is an error."""
    (folder / "models").mkdir(parents=True, exist_ok=True)
    (folder / "inputs").mkdir(exist_ok=True)
    context = multiprocessing.get_context("spawn")
    pending, exported, skipped = list(names), {}, {}
    while pending:
        messages = context.Queue()
        worker = context.Process(target=_export_worker, args=(pending, str(folder), messages), daemon=True)
        worker.start()
        try:
            _follow_export_worker(worker, messages, timeout_s, required, pending, exported, skipped)
        finally:
            worker.kill()
            worker.join()
        for name in skipped:
            _forget_export(folder, name)
        if required in skipped:
            raise RuntimeError(f"{required} could not be exported: {skipped[required]}")
    return exported, skipped


def _follow_export_worker(worker, messages, timeout_s, required, pending, exported, skipped) -> None:
    """Record the worker's reports until it ends, or until it is stuck on one preset past its time limit:
    ``timeout_s``, or at least REQUIRED_EXPORT_S for ``required``."""
    current, started, ready_by = None, None, time.time() + 300
    while True:
        try:
            kind, name, detail = messages.get(timeout=1)
        except queue.Empty:
            if current is None and (time.time() > ready_by or not worker.is_alive()):
                raise RuntimeError("the export worker did not start, or stopped between presets") from None
            limit = max(timeout_s, REQUIRED_EXPORT_S) if current == required else timeout_s
            if current is None or (time.time() - started <= limit and worker.is_alive()):
                continue
            kind, name = "stuck", current
            detail = f"export took over {limit:g} s" if worker.is_alive() else "the export worker died"
        if kind == "ready":
            ready_by = float("inf")
        elif kind == "start":
            current, started = name, time.time()
        elif kind == "end":
            return
        else:  # "done", "failed" or "stuck"
            (exported if kind == "done" else skipped)[name] = detail
            pending.remove(name)
            current = None
            print(f"  exported {name} in {detail:.1f} s" if kind == "done" else f"  skipped {name}: {detail}",
                  flush=True)
            if kind == "stuck":
                return


# ---------------------------------------------------------------- servers

def core_split() -> tuple:
    """(server cores, client cores): half each, or everything for both on one core."""
    cores = sorted(os.sched_getaffinity(0))
    half = max(1, len(cores) // 2)
    return (cores[:half], cores[half:]) if len(cores) > 1 else (cores, cores)


def _child_setup(cores):
    """In the server process before exec: pin it to ``cores`` and have it get SIGTERM if we die."""
    def setup():
        os.sched_setaffinity(0, cores)
        with contextlib.suppress(Exception):
            ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    return setup


class Server:
    """A server subprocess on 127.0.0.1, ready once GET /v1/models/NAME answers 200 for every name."""

    def __init__(self, label: str, command: list, port: int, names: list, log_path: Path, cores,
                 env=None, startup_s: float = 300):
        self.label, self.command, self.port = label, command, port
        self.base = f"http://127.0.0.1:{port}"
        self.log_path = log_path
        with open(log_path, "wb") as log:
            self.process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, cwd=REPO, env=env,
                                            preexec_fn=_child_setup(cores))
        try:
            self._wait_ready(names, startup_s)
        except BaseException:
            self.stop()
            raise

    def _wait_ready(self, names, startup_s):
        deadline = time.time() + startup_s
        waiting = list(names)
        while waiting:
            if self.process.poll() is not None:
                raise RuntimeError(f"{self.label} exited with {self.process.returncode}:\n{self.log_tail()}")
            if time.time() > deadline:
                raise RuntimeError(f"{self.label} was not ready within {startup_s:g} s:\n{self.log_tail()}")
            try:
                urllib.request.urlopen(f"{self.base}/v1/models/{waiting[0]}", timeout=2).read()
                waiting.pop(0)
            except OSError:
                time.sleep(0.25)

    def log_tail(self, lines: int = 30) -> str:
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])

    def stop(self):
        stop_process(self.process, timeout=30)


def start_zoo_server(models_dir: Path, names: list, log_path: Path, cores, attempts: int = 3) -> Server:
    """`zoo serve` with its defaults; retried after a minute if it fails (serving/ may be mid-edit)."""
    for attempt in range(1, attempts + 1):
        port = free_port()
        command = [sys.executable, "-m", "zoo", "serve", str(models_dir), "--port", str(port)]
        try:
            return Server("zoo serve", command, port, names, log_path, cores)
        except RuntimeError as e:
            if attempt == attempts:
                raise
            print(f"  zoo serve failed to start (attempt {attempt}); retrying in 60 s:\n{e}", flush=True)
            time.sleep(60)


def start_kserve_server(model_dir: Path, work: Path, cores) -> Server:
    """KServe's ModelServer (gRPC off, everything else at its defaults) over the custom predictor."""
    script = work / "kserve_savedmodel.py"
    script.write_text(KSERVE_MODEL_SOURCE)
    port = free_port()
    command = [str(KSERVE_VENV / "bin" / "python"), str(script), "--model_dir", str(model_dir),
               "--model_name", MODEL, "--http_port", str(port), "--enable_grpc", "false"]
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    return Server("kserve", command, port, [MODEL], work / "kserve.log", cores, env=env)


# ---------------------------------------------------------------- clients

_connections = threading.local()


def post(server: Server, path: str, body: bytes) -> tuple:
    """One POST on this thread's keep-alive connection to ``server``: (seconds, response body)."""
    connection = getattr(_connections, server.base, None)
    if connection is None:
        connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=HTTP_TIMEOUT_S)
        setattr(_connections, server.base, connection)
    start = time.perf_counter()
    connection.request("POST", path, body=body, headers={"Content-Type": "application/json"})
    response = connection.getresponse()
    content = response.read()
    elapsed = time.perf_counter() - start
    if response.status != 200:
        raise RuntimeError(f"{server.label}: HTTP {response.status} {content[:300]!r}")
    return elapsed, content


def summarize(seconds: list, wall_s: float) -> dict:
    ms = 1e3 * np.asarray(seconds)
    return {"requests": len(ms), "p50_ms": float(np.percentile(ms, 50)), "p99_ms": float(np.percentile(ms, 99)),
            "mean_ms": float(ms.mean()), "requests_per_s": len(ms) / wall_s, "wall_s": wall_s}


def run_round(server: Server, name: str, body: bytes, requests: int, clients: int, limit_s: float) -> dict:
    """``clients`` threads each sending ``requests`` predict requests (after a warm-up), stopping at ``limit_s``."""
    path = f"/v1/models/{name}:predict"
    samples, errors = [[] for _ in range(clients)], []
    deadline = time.perf_counter() + limit_s

    def client(i):
        try:
            for _ in range(WARMUP_REQUESTS):
                post(server, path, body)
            barrier.wait()
            for _ in range(requests):
                if time.perf_counter() > deadline:
                    break
                samples[i].append(post(server, path, body)[0])
        except Exception as e:  # recorded; the round is then refused below
            errors.append(f"{type(e).__name__}: {e}")
            barrier.abort()

    barrier = threading.Barrier(clients + 1)
    threads = [threading.Thread(target=client, args=(i,), daemon=True) for i in range(clients)]
    for t in threads:
        t.start()
    with contextlib.suppress(threading.BrokenBarrierError):
        barrier.wait(timeout=limit_s)
    start = time.perf_counter()
    for t in threads:
        t.join(timeout=limit_s + 2 * HTTP_TIMEOUT_S)
    wall = time.perf_counter() - start
    if errors or any(t.is_alive() for t in threads):
        raise RuntimeError(f"{server.label} round failed: {errors[:3] or 'a client thread hung'}")
    return summarize([s for per_client in samples for s in per_client], wall)


def bare_round(signature, inputs: dict, requests: int, limit_s: float) -> dict:
    """The same as run_round for the bare signature called in this process."""
    for _ in range(WARMUP_REQUESTS):
        signature(**inputs)
    times, deadline, start = [], time.perf_counter() + limit_s, time.perf_counter()
    while len(times) < requests and time.perf_counter() < deadline:
        t0 = time.perf_counter()
        signature(**inputs)
        times.append(time.perf_counter() - t0)
    return summarize(times, time.perf_counter() - start)


def request_body(inputs: dict) -> bytes:
    """TF Serving's / KServe V1's row format for a batch of named inputs."""
    if len(inputs) == 1:
        instances = next(iter(inputs.values())).tolist()
    else:
        n = len(next(iter(inputs.values())))
        instances = [{k: v[i].tolist() for k, v in inputs.items()} for i in range(n)]
    return json.dumps({"instances": instances}).encode()


def load_bare(models_dir: Path, name: str, inputs: dict) -> tuple:
    """(serving_default of the exported SavedModel, its inputs as tensors of the signature's dtypes)."""
    import tensorflow as tf

    signature = tf.saved_model.load(str(models_dir / name / "1")).signatures["serving_default"]
    specs = signature.structured_input_signature[1]
    if set(specs) != set(inputs):
        raise KeyError(f"signature inputs {sorted(specs)} != random_inputs {sorted(inputs)}")
    return signature, {k: tf.constant(np.asarray(inputs[k], s.dtype.as_numpy_dtype)) for k, s in specs.items()}


def read_inputs(folder: Path, name: str) -> dict:
    with np.load(folder / "inputs" / f"{name}.npz") as npz:
        return {k: npz[k] for k in npz.files}


# ---------------------------------------------------------------- the measurements

def ratios(zoo_rounds: list, kserve_rounds: list, key: str) -> dict:
    per_round = [z[key] / k[key] for z, k in zip(zoo_rounds, kserve_rounds)]
    return {"median": statistics.median(per_round), "min": min(per_round), "max": max(per_round),
            "per_round": per_round}


def medians(rounds: list) -> dict:
    return {f"median_{k}": statistics.median(r[k] for r in rounds) for k in ("p50_ms", "p99_ms", "requests_per_s")}


def head_to_head(servers: dict, body: bytes, rounds: int, requests: int, clients: int, limit_s: float) -> dict:
    """Alternating rounds, zoo then kserve, ``rounds`` times; per-round numbers, medians and zoo/kserve ratios."""
    per_server = {label: [] for label in servers}
    for r in range(rounds):
        for label, server in servers.items():
            per_server[label].append(run_round(server, MODEL, body, requests, clients, limit_s))
        latest = (f"{k} p50 {v[-1]['p50_ms']:.3f} ms p99 {v[-1]['p99_ms']:.3f} ms" for k, v in per_server.items())
        print(f"  {clients} client(s), round {r + 1}/{rounds}: " + ", ".join(latest), flush=True)
    result = {label: {"rounds": rs, **medians(rs)} for label, rs in per_server.items()}
    result["ratio_zoo_over_kserve"] = {key.replace("_ms", ""): ratios(per_server["zoo"], per_server["kserve"], key)
                                       for key in ("p50_ms", "p99_ms", "requests_per_s")}
    return result


def same_answers(servers: dict, body: bytes, signature, inputs: dict) -> dict:
    """Largest absolute difference between each server's predictions and the bare signature's."""
    expected = {k: v.numpy() for k, v in signature(**inputs).items()}
    differences = {}
    for label, server in servers.items():
        predictions = json.loads(post(server, f"/v1/models/{MODEL}:predict", body)[1])["predictions"]
        if len(expected) == 1:
            diff = np.abs(np.asarray(predictions) - next(iter(expected.values()))).max()
        else:
            diff = max(np.abs(np.asarray([p[k] for p in predictions]) - v).max() for k, v in expected.items())
        differences[label] = float(diff)
    return {"max_abs_difference_from_bare_signature": differences,
            "ok": all(d <= 1e-5 for d in differences.values())}


def overhead(server: Server, folder: Path, names: list, rounds: int, requests: int, limit_s: float) -> dict:
    """Per preset: server and bare-signature batch-1 latency in alternating rounds, and their difference."""
    results, skipped = {}, {}
    for name in names:
        inputs = read_inputs(folder, name)
        try:
            signature, tensors = load_bare(folder / "models", name, inputs)
        except Exception as e:
            skipped[name] = f"{type(e).__name__}: {e}"[:300]
            continue
        body = request_body(inputs)
        served, bare = [], []
        for _ in range(rounds):
            served.append(run_round(server, name, body, requests, 1, limit_s))
            bare.append(bare_round(signature, tensors, requests, limit_s))
        p50s = {"server": statistics.median(r["p50_ms"] for r in served),
                "bare": statistics.median(r["p50_ms"] for r in bare)}
        results[name] = {"server_p50_ms": p50s["server"], "bare_signature_p50_ms": p50s["bare"],
                         "server_overhead_p50_ms": p50s["server"] - p50s["bare"],
                         "server_p99_ms": statistics.median(r["p99_ms"] for r in served),
                         "bare_signature_p99_ms": statistics.median(r["p99_ms"] for r in bare),
                         "server_rounds": served, "bare_rounds": bare}
        print(f"  {name}: server p50 {p50s['server']:.3f} ms, bare {p50s['bare']:.3f} ms, "
              f"overhead {p50s['server'] - p50s['bare']:.3f} ms", flush=True)
    return {"presets": results, "skipped": skipped}


# ---------------------------------------------------------------- report

def machine_info(server_cores, client_cores, kserve_versions: dict) -> dict:
    cpu = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                if line.startswith("model name")), platform.processor())
    return {"cpu": cpu, "cpu_count": os.cpu_count(), "server_cores": server_cores, "client_cores": client_cores,
            "memory_gib": round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30, 1),
            "platform": platform.platform(), "python": platform.python_version(),
            "load_average_at_start": os.getloadavg(),
            "zoo_env": {p: _version(p) for p in PACKAGES}, "kserve_env": kserve_versions}


def _version(package: str):
    with contextlib.suppress(metadata.PackageNotFoundError):
        return metadata.version(package)


def print_table(results: dict) -> None:
    print(f"\n{results['kserve']['note']}; model {MODEL}, batch 1, "
          f"{results['config']['rounds']} alternating rounds")
    print(f"{'':24}{'zoo p50':>10}{'kserve p50':>12}{'ratio':>8}{'zoo p99':>10}{'kserve p99':>12}{'ratio':>8}")
    for key, label in (("sequential", "1 client"), ("concurrent", f"{results['config']['clients']} clients")):
        r = results[key]
        print(f"{label:24}{r['zoo']['median_p50_ms']:10.3f}{r['kserve']['median_p50_ms']:12.3f}"
              f"{r['ratio_zoo_over_kserve']['p50']['median']:8.2f}{r['zoo']['median_p99_ms']:10.3f}"
              f"{r['kserve']['median_p99_ms']:12.3f}{r['ratio_zoo_over_kserve']['p99']['median']:8.2f}")
    c, label = results["concurrent"], f"requests/s, {results['config']['clients']} clients"
    print(f"{label:24}{c['zoo']['median_requests_per_s']:10.0f}{c['kserve']['median_requests_per_s']:12.0f}"
          f"{c['ratio_zoo_over_kserve']['requests_per_s']['median']:8.2f}")
    print("(ms; ratio = median over rounds of zoo/kserve)\n")
    print(f"{'preset':28}{'server p50':>12}{'bare p50':>10}{'overhead':>10}")
    for name, p in results["overhead"]["presets"].items():
        print(f"{name:28}{p['server_p50_ms']:12.3f}{p['bare_signature_p50_ms']:10.3f}"
              f"{p['server_overhead_p50_ms']:10.3f}")
    for name, why in results["overhead"]["skipped"].items():
        print(f"{name:28}skipped: {why}")


# ---------------------------------------------------------------- main

def parse_args(argv):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--requests", type=int, default=300, help="per round (per client thread under load)")
    parser.add_argument("--clients", type=int, default=8, help="client threads of the concurrent rounds")
    parser.add_argument("--export-timeout", type=float, default=30.0, help="skip presets slower to export (s)")
    parser.add_argument("--round-seconds", type=float, default=60.0, help="a round stops here whatever its count")
    parser.add_argument("--quick", action="store_true", help="3 rounds of 100 requests, 10 s export limit")
    parser.add_argument("--out", default=str(REPO / "benchmarks" / "results" / "serving_vs_kserve.json"))
    args = parser.parse_args(argv)
    if args.quick:
        args.rounds, args.requests, args.export_timeout = 3, 100, 10.0
    return args


def main(argv=None) -> int:
    args = parse_args(argv)
    started = time.time()
    versions = available_kserve_versions()
    kserve_version, note = choose_kserve_version(versions)
    print(note, flush=True)
    kserve_env = ensure_kserve_venv(kserve_version)
    import zoo  # after the venv check: its import is slow

    names = [MODEL] + [n for n in zoo.list_models() if n != MODEL]
    work = Path(tempfile.mkdtemp(prefix="zoo-vs-kserve-"))
    server_cores, client_cores = core_split()
    results = {"kserve": {"version": kserve_env.get("kserve"), "wanted": f"{KSERVE_WANTED}.*", "note": note,
                          "available_on_pypi": versions, "installs_on_python": platform.python_version(),
                          "venv": str(KSERVE_VENV)},
               "config": {"model": MODEL, "rounds": args.rounds, "requests": args.requests, "clients": args.clients,
                          "quick": args.quick, "warmup_requests": WARMUP_REQUESTS,
                          "export_timeout_s": args.export_timeout, "round_seconds": args.round_seconds,
                          "server_settings": SERVER_SETTINGS}}
    try:
        print(f"exporting {len(names)} presets to {work} ...", flush=True)
        exported, export_skipped = export_presets(names, work, args.export_timeout, required=MODEL)
        os.sched_setaffinity(0, client_cores)  # before TensorFlow starts its thread pools in this process
        results["machine"] = machine_info(server_cores, client_cores, kserve_env)
        results["exports"] = {"seconds": exported, "skipped": export_skipped}
        shutil.copytree(work / "models" / MODEL, work / "head_to_head" / MODEL)
        inputs = read_inputs(work, MODEL)
        body = request_body(inputs)
        with contextlib.ExitStack() as stack:
            zoo_server = start_zoo_server(work / "head_to_head", [MODEL], work / "zoo_head_to_head.log", server_cores)
            stack.callback(zoo_server.stop)
            kserve_server = start_kserve_server(work / "head_to_head" / MODEL / "1", work, server_cores)
            stack.callback(kserve_server.stop)
            servers = {"zoo": zoo_server, "kserve": kserve_server}
            results["server_commands"] = {k: s.command for k, s in servers.items()}
            results["same_answers"] = same_answers(servers, body, *load_bare(work / "models", MODEL, inputs))
            print("sequential (1 client):", flush=True)
            results["sequential"] = head_to_head(servers, body, args.rounds, args.requests, 1, args.round_seconds)
            print(f"concurrent ({args.clients} clients):", flush=True)
            results["concurrent"] = head_to_head(servers, body, args.rounds, args.requests, args.clients,
                                                 args.round_seconds)
        print(f"zoo server overhead over the bare signature, {len(exported)} presets:", flush=True)
        with contextlib.ExitStack() as stack:
            zoo_server = start_zoo_server(work / "models", list(exported), work / "zoo_all.log", server_cores)
            stack.callback(zoo_server.stop)
            measured = overhead(zoo_server, work, list(exported), min(3, args.rounds), args.requests,
                                args.round_seconds)
        measured["skipped"] = {**export_skipped, **measured["skipped"]}
        presets = measured["presets"]
        measured["worst"] = max(presets, key=lambda n: presets[n]["server_overhead_p50_ms"])
        measured["median_overhead_p50_ms"] = statistics.median(p["server_overhead_p50_ms"] for p in presets.values())
        results["overhead"] = measured
        results["machine"]["load_average_at_end"] = os.getloadavg()
        results["total_seconds"] = time.time() - started
    finally:
        shutil.rmtree(work, ignore_errors=True)
    write_results(args.out, results)
    print_table(results)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
