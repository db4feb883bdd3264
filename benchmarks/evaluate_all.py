"""``zoo evaluate NAME`` at its default size for every preset: each card target measured again on a fresh
seed, with its statistical error, and how long it took on this machine.

    python benchmarks/evaluate_all.py [NAME ...] [--seed 2027]

Each preset runs in a fresh process, as a user would run it; stdout must parse as JSON (nothing but the
report), every target gets a verdict from a measurement (not "not measured" nor "not measurable"), and every
measured target carries a statistical error unless it is a count (a knee) or a yes/no. Results:
benchmarks/results/evaluate_all.json (one record per preset, kept across runs of a subset).
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results" / "evaluate_all.json"
REPO = Path(__file__).resolve().parents[1]
WITHOUT_ERROR = ("knee", "dominant_terms_match")  # a count and a yes/no have no statistical error
UNMEASURED = ("not measured", "not measurable", "not defined")


def evaluate(name: str, seed: int) -> dict:
    started = time.perf_counter()
    run = subprocess.run([sys.executable, "-m", "zoo", "evaluate", name, "--seed", str(seed), "--quiet"],
                         capture_output=True, text=True, cwd=REPO)
    record = {"seconds": round(time.perf_counter() - started, 1), "exit_code": run.returncode}
    try:
        report = json.loads(run.stdout)
    except json.JSONDecodeError as error:
        return {**record, "stdout_is_json": False, "problem": f"{error}: {run.stdout[:200]!r} {run.stderr[-400:]!r}"}
    targets = report.get("targets", [])
    record.update(stdout_is_json=True, samples=report["samples"], targets=targets,
                  unmeasured=[t["metric"] for t in targets if t["verdict"].startswith(UNMEASURED)],
                  without_error=[t["metric"] for t in targets if t["error"] is None
                                 and not any(word in t["metric"] for word in WITHOUT_ERROR)])
    return record


def save(results: dict, seed: int) -> None:
    """Write the results file whole or not at all (each preset's record lands as soon as it is measured)."""
    staging = RESULTS.with_suffix(".tmp")
    staging.write_text(json.dumps({"seed": seed, "presets": dict(sorted(results.items()))}, indent=2) + "\n")
    staging.replace(RESULTS)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("names", nargs="*", help="presets (default: every registered preset)")
    parser.add_argument("--seed", type=int, default=2027, help="a seed that training and the cards never used")
    args = parser.parse_args(argv)
    import zoo

    names = args.names or zoo.list_models()
    results = json.loads(RESULTS.read_text()).get("presets", {}) if RESULTS.exists() else {}
    for name in names:
        results[name] = evaluate(name, args.seed)
        r = results[name]
        verdicts = ", ".join(f"{t['metric']}: {t['verdict']}" for t in r.get("targets", []))
        print(f"{name}: {r['seconds']} s, exit {r['exit_code']}, {verdicts or r.get('problem')}", flush=True)
        save(results, args.seed)
    bad = {n: r for n, r in results.items() if r["exit_code"] or not r.get("stdout_is_json") or r.get("unmeasured")
           or r.get("without_error")}
    print(f"{len(results) - len(bad)} of {len(results)} presets: every target measured, with its error"
          + (f"; not: {sorted(bad)}" if bad else ""))
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
