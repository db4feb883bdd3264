"""The ``zoo`` command: list, info, train, evaluate, demo, export, serve, publish, finetune, card.

It sits above the three layers it drives (zoo, training, serving) and holds no
family code: what a preset can do comes from its family's declarations.
"""
from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import re
import shutil
import sys
import tempfile
import time
from pathlib import Path


def _cmd_list(args) -> int:
    from zoo import registry

    rows = registry.cached_index() or registry.index_rows()  # the index needs no TensorFlow
    if args.pattern:
        rows = [r for r in rows if registry.matches(args.pattern, r[0], r[1])]
    if not rows:
        raise ValueError(f"No preset matches {args.pattern!r} (by name or family); `zoo list` shows them all.")
    width, family_width = max(len(r[0]) for r in rows), max(len(r[1]) for r in rows)
    for name, family, summary in rows:
        print(f"{name:<{width}}  {family:<{family_width}}  {summary}")
    return 0


def positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, received {text}")
    return value


# What TensorFlow's C++ side writes to stderr before its logging is set up (absl's pre-init notice and glog
# lines such as "I0000 00:00:1796316954.678 3372 cudart_stub.cc:31] Could not find cuda drivers"): noise.
FRAMEWORK_NOISE = re.compile(r"^(WARNING: All log messages before absl::InitializeLog\(\)|"
                             r"[IWEF]\d{4} [\d:.]+\s+\d+ [\w.\-]+:\d+\])")
QUIET_COMMANDS = ("list", "info", "cite")  # answered from cached declarations, without a framework


def verbose_requested(argv: list) -> bool:
    return "--verbose" in argv or os.environ.get("ZOO_VERBOSE", "") not in ("", "0")


def silence_frameworks() -> None:
    """Keep TensorFlow's and JAX's logs off the terminal (``--verbose`` or ``ZOO_VERBOSE=1`` keeps them): C++
    logging below FATAL is off, and what the first import writes before that setting takes effect is held
    back; any other line it writes (a real import error) is passed on."""
    os.environ["TF_CPP_MIN_LOG_LEVEL"] = "3"
    import logging
    import warnings

    for name in ("tensorflow", "absl", "jax", "jax._src.xla_bridge"):
        logging.getLogger(name).setLevel(logging.ERROR)
    warnings.filterwarnings("ignore", module=r"(keras|tensorflow|tf_keras|jax|absl)(\.|$)")
    with _stderr_filtered(FRAMEWORK_NOISE):
        import keras  # noqa: F401  (imports the backend)

        if keras.backend.backend() == "tensorflow":
            import tensorflow  # noqa: F401


@contextlib.contextmanager
def _stderr_filtered(noise: re.Pattern):
    """Route file descriptor 2 (where C++ writes) through a temporary file and pass on every line that is not
    ``noise`` once the block ends."""
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile(mode="w+b") as held:
        os.dup2(held.fileno(), 2)
        try:
            yield
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
            held.seek(0)
            kept = [line for line in held.read().decode(errors="replace").splitlines(keepends=True)
                    if not noise.match(line)]
            sys.stderr.write("".join(kept))


def _unbuilt_model(source, metadata: dict | None):
    """The model of a located preset, constructed from its config (no weights read). A folder's ``metadata``
    must come from :func:`zoo.artifacts.verify_preset`, so that no model is built from an unchecked config.json."""
    from zoo import artifacts

    if source.folder is not None:
        return artifacts.construct_model(source.folder, metadata=metadata)
    return source.spec.model_class(**source.spec.config)


def _info_record(name: str, verbose: bool = True) -> tuple:
    """(what :func:`zoo.registry.describe` says of ``name``, its preset folder or None, the folder's verified
    metadata or None). Every recorded sha256 is checked before any model is constructed. The cached
    declarations answer for registered presets and folders of their architecture; anything else builds the
    model (frameworks silenced unless ``verbose``)."""
    from zoo import artifacts, registry, sources

    cached = registry.cached_info() or {}
    if name in cached:
        folder = registry.shipped_folder(name, cached[name])
        return cached[name], folder, artifacts.verify_preset(folder) if folder is not None else None
    if isinstance(name, str) and not name.startswith(sources.HUB_PREFIX) and sources.looks_like_path(name):
        if not (Path(name) / artifacts.METADATA_FILE).is_file():
            sources.locate(name)  # says why it is not a preset folder, before any framework loads
        record = _cached_folder_record(Path(name))
        if record is not None:
            return record, Path(name), artifacts.verify_preset(Path(name))
    else:
        registry.check_known(name)
    if not verbose:
        silence_frameworks()
    import zoo

    source = zoo.locate(name)
    metadata = artifacts.verify_preset(source.folder) if source.folder is not None else None
    return registry.describe(_unbuilt_model(source, metadata), source.spec), source.folder, metadata


def _cached_folder_record(folder: Path) -> dict | None:
    """A folder's info from the cached declarations of the preset it descends from, when its config is that
    preset's (a fine-tuned folder keeps its parent's architecture, and so its endpoints); else None."""
    from zoo import artifacts, registry

    name, record = registry.cached_lineage_record(folder)
    shipped = registry.shipped_folder(name, record) if record is not None else None
    if shipped is None or not (folder / artifacts.CONFIG_FILE).is_file():
        return None
    same = artifacts.read_config(folder).get("config") == artifacts.read_config(shipped).get("config")
    return record if same else None


def _cmd_info(args) -> int:
    """From the cached declarations (no TensorFlow) for a registered preset; otherwise from the built model."""
    from zoo import artifacts

    record, folder, metadata = _info_record(args.name, args.verbose)
    _print_info(args.name, record)
    if folder is None:
        print(f"  config: {json.dumps(record['config'])}\n  no pretrained weights shipped")
        return 0
    print(f"  folder: {folder}\n  config: {json.dumps(artifacts.read_config(folder)['config'])}")
    if (folder / artifacts.README_FILE).is_file():
        print(f"  card: {folder / artifacts.README_FILE}")
    if metadata.get("parent"):
        print(f"  fine-tuned from {metadata['parent']['preset']}: " + ", ".join(
            f"{k} = {v:.4g}" for k, v in metadata.get("metrics", {}).items()))
    if metadata.get("targets"):
        print("  measured on held-out data:")
    for target in metadata.get("targets", []):
        print(f"    {target['metric']} = {target['measured']:.4g} (target {target['comparison']} {target['target']}: "
              f"{'met' if target['met'] else 'MISSED'})")
    return 0


def _print_info(name: str, record: dict) -> None:
    if record.get("family"):
        print(f"{name} ({record['family']}, {record['model_class']})\n  {record['summary']}\n  paper: {record['paper']}")
    else:
        print(f"{name} ({record['model_class']})")
    described = record.get("descriptions") or {}
    for endpoint in record["endpoints"]:
        print(f"  endpoint {endpoint['name']}: {endpoint['description']}")
        if endpoint.get("onnx_refusal"):
            print(f"    (no ONNX export: {endpoint['onnx_refusal']})")
        for kind in ("inputs", "outputs"):
            for t in endpoint[kind]:
                text = described.get(t["name"]) if endpoint["name"] == "serving_default" and described.get(
                    t["name"]) else t["description"]
                print(f"    {kind[:-1]} {t['name']} {tuple(t['shape'])} {t['dtype']}: {text}")


def _cmd_train(args) -> int:
    import zoo
    from training.recipes import recipe_for
    from zoo import artifacts, cards

    recipe = recipe_for(args.name)
    workdir = Path(args.workdir or Path("runs") / args.name)
    print(f"Training {args.name} in {workdir} (Ctrl-C keeps the last epoch's checkpoint; run again to resume).")
    try:
        metadata = recipe.train_and_evaluate(workdir, epochs=args.epochs, strategy=args.strategy,
                                             precision=args.precision)
    except KeyboardInterrupt:
        print(f"\nInterrupted. The last checkpoint in {workdir} is intact; run the same command to resume.", file=sys.stderr)
        return 130
    for target in metadata["targets"]:
        print(f"{target['metric']}: {target['measured']} (target {target['comparison']} {target['target']}, "
              f"{'met' if target['met'] else 'MISSED'})")
    print(f"Artifact written to {workdir / 'artifact'}.")
    if args.install:
        destination = artifacts.install_preset(workdir / "artifact", zoo.preset_folder(args.name))
        print(f"Installed into {destination}; card: {cards.write_card(args.name)}")
    return 0


def strict_json(value):
    """``value`` with NaN and infinities replaced by None, so that it prints as strict JSON."""
    if isinstance(value, dict):
        return {k: strict_json(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [strict_json(v) for v in value]
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def _cmd_evaluate(args) -> int:
    import zoo
    from training.recipes import recipe_for
    from zoo import artifacts

    source = zoo.locate(args.name)
    if source.spec is None:
        raise ValueError(f"{args.name} descends from no registered preset, so no recipe can simulate its data.")
    recipe = recipe_for(source.spec.name)
    card = artifacts.read_metadata(source.folder) if source.folder else {}
    card_samples = card.get("data", {}).get("n_evaluation") or recipe.n_evaluation or None
    args.samples = args.samples or card_samples or DEFAULT_SAMPLES
    if args.samples < recipe.minimum_samples:
        raise ValueError(f"{args.name} is measured on at least {recipe.minimum_samples} samples; received --samples "
                         f"{args.samples} (its card used {card_samples}).")
    say = (lambda text: None) if args.quiet else (lambda text: print(text, file=sys.stderr, flush=True))
    with _stdout_to_stderr():  # stdout is the JSON report alone: a simulator's banner (FastJet's) goes to stderr
        say(f"loading {args.name}")
        model = zoo.load(args.name)
        started = time.perf_counter()
        say(f"simulating {args.samples} samples from seed {args.seed} ({type(recipe).__name__}.simulate)")
        data = recipe.simulate(args.samples, args.seed)
        say(f"measuring ({time.perf_counter() - started:.1f} s so far)")
        metrics = recipe.task_metrics(model, data)
        if source.folder:
            metrics.update(recipe.scan_metrics(source.folder, model, data))
        metrics = {k: float(v) for k, v in metrics.items()}
        say(f"done in {time.perf_counter() - started:.1f} s")
        if args.plot:
            Path(args.plot).parent.mkdir(parents=True, exist_ok=True)
            say(f"drawing {args.plot} (the figure may simulate curves of its own)")
            scan = {int(k): v for k, v in card.get("latent_scan", {}).items()}
            Path(args.plot).write_bytes(recipe.render_figure(model, data, scan))
            say(f"Figure written to {args.plot}")
    undefined = sorted(k for k, v in metrics.items() if not math.isfinite(v))
    report = {"preset": args.name, "seed": args.seed, "samples": args.samples, "metrics": strict_json(metrics)}
    if undefined:
        report["undefined"] = {k: "not defined on this sample (NaN); e.g. the curve does not cross on its grid" for k in undefined}
    if source.folder:
        report["targets"] = compare_with_card(card.get("targets", []), metrics, args.samples, card_samples,
                                              recipe.not_measured_by_evaluate)
        for row in report["targets"]:
            error = "" if row["error"] is None else f" +- {row['error']:.3g}"
            say(f"{row['metric']}: {row['measured']}{error} against the card's target "
                f"{row['comparison']} {row['target']}: {row['verdict']}")
    print(json.dumps(report, indent=2, allow_nan=False))
    return 0


@contextlib.contextmanager
def _stdout_to_stderr():
    """Within the block, whatever is written to stdout (by Python, or by C++ into file descriptor 1, as
    simulators' banners are) goes to stderr; worker processes started inside inherit that."""
    sys.stdout.flush()
    saved = os.dup(1)
    os.dup2(2, 1)
    python_stdout, sys.stdout = sys.stdout, sys.stderr
    try:
        yield
    finally:
        sys.stdout.flush()
        sys.stdout = python_stdout
        os.dup2(saved, 1)
        os.close(saved)


DEFAULT_SAMPLES = 5000  # for a recipe that records no evaluation size


def compare_with_card(targets: list, metrics: dict, samples: int | None = None, card_samples: int | None = None,
                      not_measured: dict | None = None) -> list:
    """Each of the card's targets measured again: value, its statistical error (the recipe's ``METRIC_error``
    when it reports one), and a verdict. A miss within two errors is told from a clear miss; a sample smaller
    than the card's gives no verdict where its size decides (a metric it cannot define, a miss with no error to
    judge it by) but says the size the card used; ``not_measured`` gives why a target is beyond zoo evaluate."""
    from training.recipes.common import COMPARISONS

    smaller = samples is not None and card_samples is not None and samples < card_samples
    rerun = f"the card measured it on {card_samples} samples (--samples {card_samples})"
    rows = []
    for target in targets:
        name, measured = target["metric"], metrics.get(target["metric"])
        error = metrics.get(f"{name}_error")
        if name in (not_measured or {}):
            verdict = f"not measured by zoo evaluate: {not_measured[name]}"
        elif measured is None or not math.isfinite(measured):
            verdict = (f"not measurable on {samples} samples: {rerun}" if smaller
                       else "not defined on this sample (NaN)")
        elif COMPARISONS[target["comparison"]](measured, target["target"]):
            verdict = "met"
        elif error is not None and any(COMPARISONS[target["comparison"]](measured + shift, target["target"])
                                       for shift in (2 * error, -2 * error)):
            verdict = "missed, but within 2 statistical errors: a larger --samples tells"
        elif smaller:  # a small sample's own error estimate (an MCMC chain's above all) may be off too
            reason = "with no statistical error to judge it by" if error is None else "by more than 2 statistical errors"
            verdict = f"missed on {samples} samples, {reason}: {rerun}"
        else:
            verdict = "MISSED"
        rows.append({"metric": name, "comparison": target["comparison"], "target": target["target"],
                     "measured": strict_json(measured), "error": strict_json(error), "card_measured":
                     strict_json(target.get("measured")), "card_met": target.get("met"), "verdict": verdict})
    return rows


def _cmd_demo(args, rest) -> int:
    from training.recipes import demo_for

    return demo_for(args.family)(rest)


def _cmd_export(args) -> int:
    from serving.export import export

    started = time.perf_counter()

    def progress(done, total, name):
        if not args.quiet:
            print(f"[{done}/{total}] " + (f"exporting {name}" if name else "done"), file=sys.stderr, flush=True)

    def say(text):
        if not args.quiet:
            print(f"  {time.perf_counter() - started:4.0f} s  {text}", file=sys.stderr, flush=True)

    if args.format == "onnx":
        from serving.onnx_export import METADATA_FILE, export_onnx

        if args.version is not None or args.base_path or args.batching_parameters:
            raise ValueError("--version, --base-path and --batching-parameters belong to TF Serving's layout; "
                             "--format onnx writes NAME/ENDPOINT.onnx and NAME/zoo_onnx.json")
        for path in export_onnx(args.names, args.out, say, progress):
            print(f"exported {path} ({', '.join(sorted(p.name for p in path.glob('*.onnx')))}; {METADATA_FILE})")
        return 0
    for path in export(args.names, args.out, args.version, args.base_path, args.batching_parameters, progress,
                       say):
        print(f"exported {path}")
    print(f"wrote {Path(args.out) / 'models.config'}")
    return 0


def _cmd_serve(args) -> int:
    from serving.server import BatchingParameters, read_batching_parameters, serve

    batching = None
    if args.batching_parameters_file:
        batching = read_batching_parameters(args.batching_parameters_file)
    elif args.batching:
        batching = BatchingParameters(args.max_batch_size, args.batch_timeout_micros)
    serve(args.dir, host=args.host, port=args.port, batching=batching, poll_seconds=args.poll_seconds,
          grpc_port=args.grpc_port, max_rows=args.max_rows_per_request, max_request_bytes=args.max_request_bytes,
          max_output_elements=args.max_output_elements, grpc_max_send_bytes=args.grpc_max_send_bytes,
          access_log=args.access_log)
    return 0


def _cmd_publish(args) -> int:
    import zoo
    from zoo import hub

    export_dir = None
    if args.with_export:
        from serving.export import export_model

        export_dir = Path(tempfile.mkdtemp(prefix="zoo-export-"))
        export_model(zoo.load(args.name), export_dir / "1")
    try:
        commit = hub.publish(args.name, args.repo_id, revision=args.revision, private=args.private,
                             export_dir=export_dir / "1" if export_dir else None)
    finally:
        if export_dir is not None:
            shutil.rmtree(export_dir, ignore_errors=True)
    print(f"published {args.name} to {args.repo_id} at commit {commit}")
    return 0


def _cmd_finetune(args) -> int:
    from training.finetune import finetune

    metadata = finetune(args.name, args.data, args.out, epochs=args.epochs, batch_size=args.batch_size,
                        learning_rate=args.learning_rate, freeze=args.freeze, reinitialize=args.reinitialize,
                        force=args.force)
    m, name = metadata["metrics"], metadata["finetuning"]["error_name"]
    print(f"{name} {m['validation_error_before']:.4g} -> {m['validation_error_after']:.4g}; "
          f"preset folder written to {args.out}")
    if m["validation_error_after"] > m["validation_error_before"]:
        print(f"warning: the {name} got worse than the parent's ({m['validation_error_before']:.4g} -> "
              f"{m['validation_error_after']:.4g}); try fewer epochs, a smaller learning rate or --freeze.",
              file=sys.stderr)
    return 0


def _cmd_cite(args) -> int:
    from zoo import cards

    if not args.verbose and cards.cached_citation(args.name) is None:
        silence_frameworks()
    print(cards.citation(args.name))
    return 0


def _cmd_card(args) -> int:
    import zoo
    from zoo import cards

    from zoo import registry

    shipped = [n for n in zoo.list_models() if zoo.has_weights(n)]
    for name in args.names or shipped:
        print(cards.write_card(name))
    print(registry.write_index())
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="zoo", description="The physics model zoo: pretrained physics-discovery networks.")
    sub = parser.add_subparsers(dest="command", required=True)
    parser.add_argument("--version", action="version", version=f"physics-model-zoo {_version()}")
    parser.add_argument("--debug", action="store_true", help="show the traceback of an error")
    parser.add_argument("--verbose", action="store_true",
                        help="let TensorFlow and JAX log to stderr (as does ZOO_VERBOSE=1); they are silenced otherwise")
    p = sub.add_parser("list", help="list the presets (all, or those whose name or family matches PATTERN)")
    p.add_argument("pattern", nargs="?", default=None, help="the start of a preset's or family's name, or shell wildcards ('*-L16')")
    p.set_defaults(func=_cmd_list)
    p = sub.add_parser("info", help="describe one preset (name, folder or hf://): endpoints, config, measured quality")
    p.add_argument("name")
    p.set_defaults(func=_cmd_info)
    p = sub.add_parser("train", help="train a preset with its recipe (resumes from the last checkpoint)")
    p.add_argument("name")
    p.add_argument("--epochs", type=int, default=None, help="override the recipe's number of epochs")
    p.add_argument("--workdir", default=None, help="checkpoints and artifact (default runs/NAME)")
    p.add_argument("--install", action="store_true", help="copy the artifact into zoo/pretrained and render the card")
    p.add_argument("--strategy", default="cpu", choices=("auto", "cpu", "mirrored", "multiworker", "tpu"),
                   help="tf.distribute strategy (auto: TPU, else GPUs, else TF_CONFIG workers, else CPU)")
    p.add_argument("--precision", default="float32", choices=("float32", "mixed_bfloat16", "mixed_float16"),
                   help="Keras dtype policy while training; a recipe refuses those it was not checked in")
    p.add_argument("--backend", default=None, choices=BACKENDS,
                   help="Keras backend to train on (default: KERAS_BACKEND, else the faster one for the family on "
                        "CPU, measured by benchmarks/backends.py); the preset is a .weights.h5 either way and exports "
                        "under TensorFlow")
    p.set_defaults(func=_cmd_train)
    p = sub.add_parser("evaluate", help="measure a preset (name, folder or hf://) on fresh simulated data")
    p.add_argument("name")
    p.add_argument("--seed", type=int, default=424242, help="simulator seed (training used 1 and 2)")
    p.add_argument("--samples", type=positive_int, default=None,
                   help="held-out sample size (default: the size the card was measured on, so every target is "
                        "measured as the card measured it)")
    p.add_argument("--plot", default=None, help="write the evaluation figure to this PNG file")
    p.add_argument("--quiet", action="store_true", help="print the JSON report only (no progress lines on stderr)")
    p.set_defaults(func=_cmd_evaluate)
    p = sub.add_parser("demo", help="a family's demo (zoo demo [FAMILY] [--help]; the default is the quick start's: "
                                     "a year of the Sun and Mars in the sky)", add_help=False)
    p.add_argument("family", nargs="?")
    p.set_defaults(func=_cmd_demo)
    p = sub.add_parser("export", help="export presets as SavedModels in TF Serving's NAME/VERSION layout, or as ONNX")
    p.add_argument("names", nargs="+", help="preset names, preset folders or hf:// names")
    p.add_argument("--out", required=True, help="the model base folder (gets NAME/VERSION/ and models.config)")
    p.add_argument("--format", choices=("savedmodel", "onnx"), default="savedmodel",
                   help="onnx: NAME/ENDPOINT.onnx per endpoint ONNX can express, and NAME/zoo_onnx.json "
                        "(needs the onnx extra)")
    p.add_argument("--version", type=int, default=None, help="version number (default: one above the newest)")
    p.add_argument("--base-path", default=None, help="folder path to write in models.config (e.g. /models in a container)")
    p.add_argument("--batching-parameters", action="store_true", help="also write batching_parameters.txt")
    p.add_argument("--quiet", action="store_true", help="no progress lines on stderr")
    p.set_defaults(func=_cmd_export)
    p = sub.add_parser("serve", help="serve exported models with TF Serving's REST API")
    p.add_argument("dir", help="the folder `zoo export --out` wrote")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8501)
    p.add_argument("--batching", action="store_true", help="batch concurrent requests on the server")
    p.add_argument("--max-batch-size", type=int, default=64)
    p.add_argument("--batch-timeout-micros", type=int, default=2000)
    p.add_argument("--batching-parameters-file", default=None, help="TF Serving batching parameters (turns batching on)")
    p.add_argument("--poll-seconds", type=float, default=1.0, help="how often to look for new version folders")
    p.add_argument("--grpc-port", type=int, default=None, help="also serve TF Serving's gRPC API on this port (e.g. 8500)")
    p.add_argument("--max-rows-per-request", type=int, default=65536,
                   help="larger batches get a 400 naming this limit (bounds one request's memory)")
    p.add_argument("--max-request-bytes", type=int, default=16 << 20, help="larger request bodies get a 400")
    p.add_argument("--max-output-elements", type=int, default=8 << 20,
                   help="a request whose outputs would hold more elements gets a 400 before the model runs "
                        "(default 8388608: 32 MiB of float32)")
    p.add_argument("--access-log", action="store_true", help="log one line per request (off, as in TF Serving)")
    p.add_argument("--grpc-max-send-bytes", type=int, default=4 << 20,
                   help="the largest gRPC reply; a request whose reply would be larger is refused before it runs "
                        "(default 4 MiB, what a gRPC client receives unless it raises its limit)")
    p.set_defaults(func=_cmd_serve)
    p = sub.add_parser("publish", help="upload a preset folder and its card to the Hugging Face Hub")
    p.add_argument("name")
    p.add_argument("--repo-id", required=True, help="ORG/NAME on the Hub")
    p.add_argument("--revision", default=None, help="branch to commit to (created if needed)")
    p.add_argument("--private", action="store_true")
    p.add_argument("--with-export", action="store_true", help="also upload the SavedModel export")
    p.set_defaults(func=_cmd_publish)
    p = sub.add_parser("finetune", help="fine-tune a pretrained preset on your data (.npz/.h5) into a new preset folder")
    p.add_argument("name", help="a preset name, a preset folder or an hf:// name")
    p.add_argument("--data", required=True, help="arrays named as the preset's inputs, plus 'target' (zoo info NAME)")
    p.add_argument("--out", required=True, help="the new preset folder")
    p.add_argument("--epochs", type=int, default=10)
    p.add_argument("--batch-size", type=int, default=256)
    p.add_argument("--learning-rate", type=float, default=3e-4)
    p.add_argument("--freeze", action="append", default=[], metavar="GROUP",
                   help="keep this layer group fixed (repeatable; zoo info lists none, the family's groups are e.g. "
                        "encoder/decoder, features/head, embedding/head)")
    p.add_argument("--reinitialize", action="append", default=[], metavar="GROUP",
                   help="start this layer group from fresh weights (repeatable), e.g. a new head")
    p.add_argument("--force", action="store_true", help="replace --out if it already holds a preset folder")
    p.add_argument("--backend", default=None, choices=BACKENDS, help="Keras backend to fine-tune on (default: "
                   "KERAS_BACKEND, else tensorflow)")
    p.set_defaults(func=_cmd_finetune)
    p = sub.add_parser("cite", help="BibTeX of a preset's paper and of the zoo")
    p.add_argument("name")
    p.set_defaults(func=_cmd_cite)
    p = sub.add_parser("card", help="render model cards from metadata.json")
    p.add_argument("names", nargs="*")
    p.set_defaults(func=_cmd_card)
    return parser


def _version() -> str:
    import zoo

    return zoo.__version__


BACKENDS = ("tensorflow", "jax")


def choose_backend(name: str) -> None:
    """Keras reads KERAS_BACKEND once, when it is first imported: set it before anything imports Keras."""
    loaded = sys.modules.get("keras")
    if loaded is not None and loaded.backend.backend() != name:
        raise ValueError(f"--backend {name} must be chosen before Keras is imported; this process already runs "
                         f"Keras on {loaded.backend.backend()!r} (run the command in a fresh process).")
    if name == "jax":
        try:
            import jax  # noqa: F401
        except ImportError:
            raise ValueError("--backend jax needs JAX: pip install 'physics-model-zoo[jax]'.") from None
    os.environ["KERAS_BACKEND"] = name


def keep_jax_compilations(backend: str | None) -> None:
    """Under JAX, keep what a command compiles for the next one: JAX's persistent compilation cache, in the
    user's cache folder, for every program however small. Building a model compiles each initializer and the
    first eager call per weight shape (CaloGAN's ~250 programs take ~20 s on 2 cores) and JAX does not keep
    programs that compile in under a second unless told to; the second ``zoo`` command then starts in seconds.
    Settings the user made (the JAX_* variables) win; nothing changes once JAX is imported."""
    if backend != "jax" or "jax" in sys.modules:
        return
    cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "physics-model-zoo" / "jax"
    os.environ.setdefault("JAX_COMPILATION_CACHE_DIR", str(cache))
    os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS", "0")
    os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES", "0")


FASTER_BACKENDS = Path(__file__).resolve().parents[1] / "training" / "faster_backends.json"


def faster_backend(name: str) -> str:
    """The backend that trains ``name`` faster on the CPU (benchmarks/backends.py measures one preset per family
    and writes training/faster_backends.json): the preset's own measurement, else its family's where the
    family's measured presets agree; tensorflow where JAX is not installed or nothing was measured."""
    import importlib.util

    from zoo import registry

    family = next((row[1] for row in registry.cached_index() or [] if row[0] == name), None)
    measured = json.loads(FASTER_BACKENDS.read_text()) if FASTER_BACKENDS.is_file() else {}
    choice = measured.get("presets", {}).get(name) or measured.get("families", {}).get(family, "tensorflow")
    return choice if choice != "jax" or importlib.util.find_spec("jax") else "tensorflow"


def main(argv=None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    debug, verbose = "--debug" in argv, verbose_requested(argv)
    argv = [a for a in argv if a not in ("--debug", "--verbose")]
    rest = None
    if argv[:1] == ["demo"]:
        from zoo.registry import DEMO_FAMILY

        family_given = len(argv) > 1 and not argv[1].startswith("-")
        args = argparse.Namespace(command="demo", family=argv[1] if family_given else DEMO_FAMILY, func=_cmd_demo)
        rest = argv[2:] if family_given else argv[1:]
    else:
        args = build_parser().parse_args(argv)
    args.verbose = verbose
    try:
        if args.command == "train" and not args.backend and not os.environ.get("KERAS_BACKEND"):
            args.backend = faster_backend(args.name)
        keep_jax_compilations(getattr(args, "backend", None) or os.environ.get("KERAS_BACKEND"))
        if getattr(args, "backend", None):
            choose_backend(args.backend)
        if not verbose and args.command not in QUIET_COMMANDS:
            silence_frameworks()
        return args.func(args, rest) if rest is not None else args.func(args)
    except KeyboardInterrupt:
        raise
    except BrokenPipeError:  # `zoo list | head`: the reader has what it wanted
        sys.stdout = open(os.devnull, "w")
        return 0
    except Exception as e:  # an ordinary mistake gets one line; --debug shows where it came from
        if debug:
            raise
        known = isinstance(e, (KeyError, ValueError, TypeError, OSError, NotImplementedError, ImportError))
        kind = "" if known else f"{type(e).__name__}: "
        print(f"zoo {args.command}: error: {kind}{e}" + ("" if known else " (--debug shows the traceback)"),
              file=sys.stderr)
        return 2
