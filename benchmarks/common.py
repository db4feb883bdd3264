"""Helpers shared by the benchmark scripts (run as scripts, so this folder is on sys.path)."""
from __future__ import annotations

import json
import socket
import statistics
import subprocess
import time
from pathlib import Path


def free_port() -> int:
    """A free TCP port on 127.0.0.1: benchmarks never send traffic anywhere else."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def stop_process(process, timeout: float = 60) -> None:
    """Ask a server subprocess to stop (SIGTERM: in-flight requests finish), and kill it if it does not."""
    if process.poll() is not None:
        return
    process.terminate()
    try:
        process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def write_results(path, results: dict, quiet: bool = False) -> None:
    """Write the results as JSON (and print them unless ``quiet``)."""
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    Path(path).write_text(json.dumps(results, indent=2) + "\n")
    if not quiet:
        print(json.dumps(results, indent=2))


def median_seconds(fn, repeats: int) -> float:
    """Median wall time of ``repeats`` calls of ``fn``."""
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def record_preset_results(name: str, results: dict, script: str) -> None:
    """Store one preset's speed numbers in zoo/presets_speed.json (the card reads them there; the package ships
    it) and re-render its card. The hashed files of a shipped preset folder are never written: only its card."""
    import zoo
    from zoo import artifacts, cards

    path = cards.SPEED_FILE
    table = json.loads(path.read_text()) if path.exists() else {}
    previous = table.get(name, {})
    others = [s for s in previous.get("script", "").split(", ") if s and s != script]
    kept = {k: v for k, v in previous.items() if k != "script"} if others else {}  # other scripts' numbers stay
    table[name] = {**kept, **results, "script": ", ".join([*others, script])}
    artifacts.write_json(path, table)
    if zoo.has_weights(name):
        cards.write_card(name)
