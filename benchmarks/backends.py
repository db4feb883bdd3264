"""TensorFlow against JAX on the same cores: a training step per family, and predict at batch 1 under JAX.

    python benchmarks/backends.py [--steps 20] [--rounds 3] [--presets NAME ...] [--skip-training]
                                  [--predict-backends tensorflow jax torch] [--out benchmarks/results/backends.json]

Training: for one preset per family, the recipe's model (untrained) and batch size, compiled with Adam,
``fit`` on synthetic batches of the right shapes (what is timed is the step, not the data); each backend runs
in its own process (Keras picks its backend once per process), alternating TensorFlow and JAX for
``--rounds`` rounds; the median seconds per step of each, and their ratio. The faster backend of each family
is what ``zoo train`` picks when no backend is asked for: written to training/faster_backends.json, per preset
and per family where the family's measured presets agree (tests/zoo/test_backends.py checks that one step
agrees between the backends).

Predict: under JAX, ``model.predict`` on one row against a bare ``jax.jit`` of the endpoint with the weights
bound, interleaved in one process (the aim: within 2x), twice: with JAX's default asynchronous dispatch on
the CPU, and with it off (``jax_cpu_enable_async_dispatch``, set before JAX's first computation). With
asynchronous dispatch on 2 cores, Python run between two calls (``predict``'s checks, or any program's own
work) costs about 1.8 times its own duration more per call (measured with a busy-wait between bare calls: 10
us cost 18 us more, 20 us 37 us), which the bare call in a tight loop does not pay.
``step_seconds`` below is also what benchmarks/accelerator.py runs on an accelerator.

With ``--predict-backends tensorflow jax torch``, ``predict`` at batch 1 on each backend too (torch serves
inference only), one process each in alternating rounds.

Results are written after each preset (``"complete": false`` until the last), so a run cut short keeps what
it measured; training/faster_backends.json is written at the end.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, os.path.dirname(__file__))
from common import write_results  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "benchmarks" / "results" / "backends.json"
FASTER = REPO / "training" / "faster_backends.json"
ONE_PER_FAMILY = ["scinet-heliocentric", "ising-cnn", "rbm-ising-L8-T2.27", "siamese-minkowski", "jet-cnn-w-vs-qcd",
                  "calogan-eplus", "realnvp-phi4-L8", "neuralrg-ising-L16", "translator-schrodinger",
                  "distiller-schrodinger-k2"]


def training_batch(model, n: int):
    """Synthetic (x, y) of the shapes the family's ``fit`` takes (y None for a model with its own loss)."""
    import numpy as np

    family = type(model).__module__.rsplit(".", 1)[-1]
    if family == "flows":
        return np.zeros((n, 1), "float32"), None
    if family == "rbm":
        return model.random_inputs(n, seed=0)["spins"], None
    if type(model).__name__ == "SchrodingerDistiller":  # windows of potentials and the translator's states on them
        potentials = model.random_inputs(n, seed=0)["potentials"][:, :model.rollout]
        return potentials, np.zeros((n, model.rollout, model.translator.hidden_size), "float32")
    if family == "calogan":
        energies = np.linspace(*model.energy_range, n).astype("float32")
        showers = model.generate(energies, seed=0)
        return {**showers, "energy": energies}, None
    inputs = model.random_inputs(n, seed=0)
    outputs = model.run_endpoint("serving_default", inputs)
    x = inputs if len(inputs) > 1 else next(iter(inputs.values()))
    y = next(iter(outputs.values()))
    if getattr(model.training_spec, "loss", None) in ("binary_crossentropy",):
        y = (np.arange(n) % 2).astype("float32").reshape(y.shape)
    return x, y


def step_seconds(name: str, steps: int, batch_size: int | None = None, budget_seconds: float = 10.0) -> dict:
    """Seconds per training step of ``name``'s recipe model on the current backend: the faster of two timed
    epochs after one that compiles. An epoch has ``steps`` steps, or fewer where a step is slow (CaloGAN's
    takes seconds on 2 cores): as many as fit in ``budget_seconds``, at least 2."""
    import keras

    import zoo
    from training.recipes import recipe_for

    recipe = recipe_for(name)
    batch = int(batch_size or recipe.batch_size)
    model = zoo.load(name, pretrained=False)
    x, y = training_batch(model, batch * steps)
    model.compile(optimizer=keras.optimizers.Adam(1e-4), **({"loss": model.training_spec.loss}
                                                           if y is not None and model.training_spec.loss else {}))

    def epoch_seconds(rows: int) -> float:
        start = time.perf_counter()
        model.fit(_rows(x, rows), _rows(y, rows), batch_size=batch, epochs=1, verbose=0, shuffle=False)
        return time.perf_counter() - start

    epoch_seconds(2 * batch)  # compiles
    estimate = epoch_seconds(2 * batch) / 2
    timed = max(2, min(steps, int(budget_seconds / estimate)))
    seconds = min(epoch_seconds(timed * batch) for _ in range(2)) / timed
    return {"backend": keras.backend.backend(), "batch_size": batch, "steps_timed": timed,
            "seconds_per_step": seconds}


def _rows(data, n: int):
    """The first ``n`` rows of an array, a dict of arrays, or None."""
    if data is None:
        return None
    return {k: v[:n] for k, v in data.items()} if isinstance(data, dict) else data[:n]


def predict_overhead(name: str, repeats: int = 200) -> dict:
    """Under JAX: predict on one row against a bare jitted endpoint call, interleaved."""
    import jax
    import keras
    import numpy as np

    import zoo

    model = zoo.load(name)
    inputs = model.random_inputs(1, seed=0)
    feed = inputs if len(inputs) > 1 else next(iter(inputs.values()))
    endpoint = model.endpoint("serving_default")
    values = [v.value for v in model.variables]

    def bare(values, *arrays):
        with keras.StatelessScope(state_mapping=list(zip(model.variables, values))):
            return endpoint.function(**dict(zip(endpoint.input_names, arrays)))

    jitted = jax.jit(bare)
    arrays = [inputs[k] for k in endpoint.input_names]
    calls = {"predict": lambda: model.predict(feed),
             "bare_jit": lambda: jax.block_until_ready(jitted(values, *arrays))}
    for call in calls.values():
        call(), call()
    rounds = {k: [] for k in calls}
    for _ in range(5):
        for key, call in calls.items():
            start = time.perf_counter()
            for _ in range(repeats):
                call()
            rounds[key].append((time.perf_counter() - start) / repeats)
    medians = {k: statistics.median(v) for k, v in rounds.items()}
    return {**{f"{k}_seconds": v for k, v in medians.items()}, "ratio": medians["predict"] / medians["bare_jit"],
            "rows": int(np.shape(arrays[0])[0])}


def predict_seconds(name: str, repeats: int = 200, rounds: int = 5) -> dict:
    """Median seconds of ``model.predict`` on one row on the current backend (the median of ``rounds`` medians of
    ``repeats`` calls, after two that compile)."""
    import keras

    import zoo

    model = zoo.load(name)
    inputs = model.random_inputs(1, seed=0)
    feed = inputs if len(inputs) > 1 else next(iter(inputs.values()))
    model.predict(feed), model.predict(feed)
    medians = []
    for _ in range(rounds):
        times = []
        for _ in range(repeats):
            start = time.perf_counter()
            model.predict(feed)
            times.append(time.perf_counter() - start)
        medians.append(statistics.median(times))
    return {"backend": keras.backend.backend(), "seconds": statistics.median(medians)}


def predict_by_backend(name: str, backends: list, rounds: int) -> dict:
    """``predict`` at batch 1 on each backend, one process each, in alternating rounds; medians and the ratio of
    each to TensorFlow's."""
    medians, errors, _ = alternating_medians(backends, rounds, "predict_seconds", "seconds", name)
    row = {f"{b}_seconds": v for b, v in medians.items()}
    base = row.get("tensorflow_seconds")
    row.update({f"{b}_over_tensorflow": row[f"{b}_seconds"] / base for b in backends
                if base and b != "tensorflow" and f"{b}_seconds" in row})
    return {**row, **({"errors": errors} if errors else {})}


def alternating_medians(backends: list, rounds: int, function: str, key: str, *args) -> tuple:
    """(backend -> median of ``function(*args)[key]``, backend -> its last error, the last result of any backend)
    over ``rounds`` rounds, each running every backend once in its own process: alternating, so that a drift of
    the machine hits every backend alike."""
    runs = {b: [] for b in backends}
    errors, last = {}, {}
    for _ in range(rounds):
        for backend in backends:
            out = in_backend(backend, function, *args)
            if "error" in out:
                errors[backend] = out["error"]
            else:
                runs[backend].append(out[key])
                last = out
    return {b: statistics.median(v) for b, v in runs.items() if v}, errors, last


def in_backend(backend: str, function: str, *args, env: dict | None = None, preamble: str = "",
               module: str = "backends", timeout: float = 1200) -> dict:
    """Run ``function(*args)`` of ``module`` (a script in benchmarks/) in a fresh process on ``backend``
    (``env`` added to its environment, ``preamble`` run first); its JSON result, or {"error": its last line of
    stderr, or that it ran past ``timeout`` seconds}."""
    env = dict(os.environ, KERAS_BACKEND=backend, TF_CPP_MIN_LOG_LEVEL="3", **(env or {}),
               PYTHONPATH=os.pathsep.join([str(REPO), os.path.dirname(__file__), os.environ.get("PYTHONPATH", "")]))
    if backend == "jax" and "JAX_PLATFORMS" not in env:
        env["JAX_PLATFORMS"] = "cpu"
    code = f"{preamble}\nimport json, {module}\nprint('RESULT ' + json.dumps({module}.{function}(*{list(args)!r})))"
    try:
        result = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, cwd=REPO,
                                timeout=timeout)
    except subprocess.TimeoutExpired:
        return {"error": f"{function}{tuple(args)!r} on {backend} ran past {timeout:g} s"}
    lines = [line for line in result.stdout.splitlines() if line.startswith("RESULT ")]
    if result.returncode or not lines:
        return {"error": (result.stderr.strip().splitlines() or ["no output"])[-1][:300]}
    return json.loads(lines[-1][len("RESULT "):])


SYNCHRONOUS_DISPATCH = "import jax; jax.config.update('jax_cpu_enable_async_dispatch', False)"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--presets", nargs="*", default=ONE_PER_FAMILY)
    parser.add_argument("--skip-training", action="store_true", help="measure predict only")
    parser.add_argument("--predict-backends", nargs="*", default=[],
                        help="also time predict at batch 1 on these backends (tensorflow jax torch)")
    parser.add_argument("--out", default=str(RESULTS))
    args = parser.parse_args(argv)
    results = {"cores": os.cpu_count(), "steps": args.steps, "rounds": args.rounds, "training": {}, "predict": {},
               "complete": False}
    for name in args.presets:
        if not args.skip_training:
            results["training"][name] = training_row(name, args.steps, args.rounds)
        results["predict"][name] = {"default_dispatch": in_backend("jax", "predict_overhead", name),
                                    "synchronous_dispatch": in_backend("jax", "predict_overhead", name,
                                                                       preamble=SYNCHRONOUS_DISPATCH)}
        if args.predict_backends:
            results.setdefault("predict_batch_1", {})[name] = predict_by_backend(name, args.predict_backends,
                                                                                 args.rounds)
        print(name, results["training"].get(name), results["predict"][name], flush=True)
        write_results(args.out, results, quiet=True)  # a run cut short keeps the presets it finished
    results["complete"] = True
    write_results(args.out, results)
    write_faster_backends(results["training"])
    return 0


def training_row(name: str, steps: int, rounds: int) -> dict:
    """Median seconds per step on each backend over ``rounds`` alternating rounds, and which is faster."""
    medians, errors, last = alternating_medians(["tensorflow", "jax"], rounds, "step_seconds", "seconds_per_step",
                                                name, steps)
    row = {f"{b}_seconds_per_step": v for b, v in medians.items()}
    if len(row) == 2:
        row["jax_speedup"] = row["tensorflow_seconds_per_step"] / row["jax_seconds_per_step"]
        row["faster"] = "jax" if row["jax_speedup"] > 1 else "tensorflow"
        row["batch_size"] = last["batch_size"]
    return {**row, **({"errors": errors} if errors else {})}


def write_faster_backends(training: dict) -> None:
    """training/faster_backends.json, what ``zoo train`` defaults to: each measured preset's faster backend,
    and a family's where its measured presets agree (the translator's GRU and its distiller need not). Rows of
    presets measured again are replaced; the others stay."""
    from zoo import registry

    family_of = {row[0]: row[1] for row in registry.cached_index() or []}
    faster = json.loads(FASTER.read_text()) if FASTER.is_file() else {}
    presets = {**faster.get("presets", {}), **{n: row["faster"] for n, row in training.items() if "faster" in row}}
    by_family = {}
    for name, choice in presets.items():
        by_family.setdefault(family_of[name], set()).add(choice)
    families = {family: choices.pop() for family, choices in by_family.items() if len(choices) == 1}
    FASTER.write_text(json.dumps({"families": dict(sorted(families.items())), "presets": dict(sorted(presets.items()))},
                                 indent=2) + "\n")


if __name__ == "__main__":
    raise SystemExit(main())
