"""Every shipped preset, every endpoint: JAX (and torch, where installed) against TensorFlow.

    python benchmarks/backend_parity.py [--backends jax torch] [--out benchmarks/results/backend_parity.json]

The registry-wide form of tests/zoo/test_backends.py (which checks one preset per family in CI): random valid
inputs of 5 rows (seeded samplers included, so equal per-row seeds must give equal draws), TensorFlow in this
process, each other backend in its own; the largest |difference| / scale of each endpoint against the bar,
1e-4 of the output's scale. A stochastic endpoint without seeds (the RBM's ``sample``) is listed, not compared.
"""
from __future__ import annotations

import argparse
import importlib.util
import os
import sys
import tempfile
from pathlib import Path

import numpy as np

sys.path.insert(0, os.path.dirname(__file__))
from backends import REPO, in_backend  # noqa: E402
from common import write_results  # noqa: E402

RESULTS = REPO / "benchmarks" / "results" / "backend_parity.json"
BAR = 1e-4


def endpoint_outputs(inputs_file: str, outputs_file: str) -> dict:
    """Every preset's deterministic endpoints on the inputs in ``inputs_file`` (keys 'preset|endpoint|input'),
    saved to ``outputs_file``; returns the endpoints that raised, with their error."""
    import zoo

    inputs = dict(np.load(inputs_file))
    outputs, errors = {}, {}
    for key in sorted({k.rsplit("|", 1)[0] for k in inputs}):
        name, endpoint = key.split("|")
        try:
            x = {k.rsplit("|", 1)[1]: v for k, v in inputs.items() if k.rsplit("|", 1)[0] == key}
            for output, value in zoo.load(name).run_endpoint(endpoint, x).items():
                outputs[f"{key}|{output}"] = np.asarray(value)
        except Exception as error:  # one failing endpoint is a result, not the end of the run
            errors[key] = f"{type(error).__name__}: {error}"[:300]
    np.savez(outputs_file, **outputs)
    return errors


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backends", nargs="*", default=["jax", "torch"])
    parser.add_argument("--out", default=str(RESULTS))
    args = parser.parse_args(argv)
    import zoo

    inputs, stochastic = {}, []
    for name in zoo.list_models():
        model = zoo.load(name)
        for endpoint in model.endpoints():
            if endpoint.stochastic:
                stochastic.append(f"{name}|{endpoint.name}")
                continue
            for k, v in model.random_inputs(5, seed=3, endpoint=endpoint.name).items():
                inputs[f"{name}|{endpoint.name}|{k}"] = v
    results = {"bar": BAR, "not_compared_stochastic": stochastic, "backends": {}}
    with tempfile.TemporaryDirectory() as folder:
        np.savez(Path(folder) / "inputs.npz", **inputs)
        endpoint_outputs(str(Path(folder) / "inputs.npz"), str(Path(folder) / "tensorflow.npz"))
        expected = dict(np.load(Path(folder) / "tensorflow.npz"))
        for backend in args.backends:
            if importlib.util.find_spec(backend) is None:
                results["backends"][backend] = {"skipped": f"{backend} is not installed"}
                continue
            out = Path(folder) / f"{backend}.npz"
            errors = in_backend(backend, "endpoint_outputs", str(Path(folder) / "inputs.npz"), str(out),
                                module="backend_parity")
            measured = dict(np.load(out)) if out.exists() else {}
            rows = {}
            for key, value in expected.items():
                if key not in measured:
                    continue
                scale = max(float(np.max(np.abs(value))), 1e-6)
                rows[key] = float(np.max(np.abs(measured[key] - value))) / scale
            failing = sorted([k for k, v in rows.items() if v > BAR] + [k for k in errors if k != "error"])
            results["backends"][backend] = {
                "outputs_compared": len(rows), "worst": max(rows.items(), key=lambda kv: kv[1]) if rows else None,
                "failing": failing, "errors": errors, "relative_differences": rows}
            print(backend, len(rows), "outputs compared; failing:", failing, flush=True)
    write_results(args.out, results)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
