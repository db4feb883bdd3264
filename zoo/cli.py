"""The ``zoo`` command: list, info, train, evaluate, demo, export, card."""
from __future__ import annotations

import argparse
import importlib
import json
import sys
from pathlib import Path


def _cmd_list(args) -> int:
    from zoo.registry import list_specs

    specs = list_specs()
    width, family_width = max(len(s.name) for s in specs), max(len(s.family) for s in specs)
    for spec in specs:
        print(f"{spec.name:<{width}}  {spec.family:<{family_width}}  {spec.summary}")
    return 0


def _cmd_info(args) -> int:
    import zoo
    from zoo import artifacts

    spec = zoo.get_spec(args.name)
    print(f"{spec.name} ({spec.family}, {spec.model_class.__name__})\n  {spec.summary}\n  paper: {spec.paper}")
    for kind, tensors in (("inputs", spec.inputs), ("outputs", spec.outputs)):
        print(f"  {kind}:")
        for t in tensors:
            print(f"    {t.name} {t.shape}: {t.description}")
    print(f"  config: {json.dumps(dict(spec.config))}\n  recipe: {spec.recipe}")
    if zoo.has_weights(spec.name):
        metadata = artifacts.read_json(zoo.preset_folder(spec.name) / artifacts.METADATA_FILE)
        print("  measured on held-out data:")
        for target in metadata.get("targets", []):
            print(f"    {target['metric']} = {target['measured']:.4g} (target {target['comparison']} {target['target']}: "
                  f"{'met' if target['met'] else 'MISSED'})")
    else:
        print("  no pretrained weights shipped")
    return 0


def recipe_of(name: str):
    import zoo

    module_name, function = zoo.get_spec(name).recipe.split(":")
    module = importlib.import_module(module_name)
    return module, getattr(module, function)()


def _cmd_train(args) -> int:
    import zoo
    from zoo import artifacts, cards

    module, recipe = recipe_of(args.name)
    workdir = Path(args.workdir or Path("runs") / args.name)
    print(f"Training {args.name} in {workdir} (Ctrl-C keeps the last epoch's checkpoint; run again to resume).")
    try:
        metadata = module.train_and_evaluate(recipe, workdir, epochs=args.epochs, strategy=args.strategy,
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


def _cmd_evaluate(args) -> int:
    module, recipe = recipe_of(args.name)
    import zoo

    model = zoo.load(args.name)
    data = module.simulate(recipe, args.samples, args.seed)
    metrics = module.task_metrics(recipe, model, data)
    print(json.dumps({"preset": args.name, "seed": args.seed, "samples": args.samples, "metrics": metrics}, indent=2))
    if args.plot:
        Path(args.plot).parent.mkdir(parents=True, exist_ok=True)
        Path(args.plot).write_bytes(module.render_figure(recipe, model, data, metrics_scan(args.name)))
        print(f"Figure written to {args.plot}")
    return 0


def metrics_scan(name):
    import zoo
    from zoo import artifacts

    metadata = artifacts.read_json(zoo.preset_folder(name) / artifacts.METADATA_FILE)
    return {int(k): v for k, v in metadata.get("latent_scan", {}).items()}


def _cmd_demo(args) -> int:
    """Predict a year of the Sun and Mars in the sky with scinet-heliocentric, against the simulator."""
    import numpy as np

    import zoo
    from training.evaluation.metrics import wrapped_rms
    from training.recipes.scinet import heliocentric_figure, render_to_png
    from training.simulators import copernicus

    model = zoo.load("scinet-heliocentric")
    sky = copernicus.simulate(args.samples, seed=args.seed)
    predicted = model.predict(sky.initial_angles, verbose=0)
    year = wrapped_rms(predicted[0], sky.angles[0])
    overall = wrapped_rms(predicted, sky.angles)
    per_body = [wrapped_rms(predicted[..., k], sky.angles[..., k]) for k in range(2)]
    print(f"scinet-heliocentric, {args.samples} fresh years from seed {args.seed} (50 weekly observations each):")
    print(f"  first year shown in the figure: RMS angle error {year:.4f} rad")
    print(f"  all years: RMS angle error {overall:.4f} rad = {overall / (2 * np.pi):.3%} of 2 pi "
          f"(Sun {per_body[0]:.4f} rad, Mars {per_body[1]:.4f} rad)")
    print(f"  latents of the first year: {np.round(model.encode(sky.initial_angles[:1])[0], 4).tolist()}")
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_bytes(render_to_png(heliocentric_figure, model, sky))
    print(f"Figure written to {args.out}")
    return 0


def _cmd_export(args) -> int:
    from serving.export import export

    for path in export(args.names, args.out, args.version, args.base_path, args.batching_parameters):
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
          grpc_port=args.grpc_port)
    return 0


def _cmd_publish(args) -> int:
    from zoo import hub

    commit = hub.publish(args.name, args.repo_id, revision=args.revision, private=args.private, with_export=args.with_export)
    print(f"published {args.name} to {args.repo_id} at commit {commit}")
    return 0


def _cmd_finetune(args) -> int:
    from training.finetune import finetune

    metadata = finetune(args.name, args.data, args.out, epochs=args.epochs, batch_size=args.batch_size,
                        learning_rate=args.learning_rate, freeze=args.freeze_encoder, replace_head=args.new_decoder)
    m = metadata["metrics"]
    print(f"held-out RMS error {m['validation_rms_before']:.4g} -> {m['validation_rms_after']:.4g}; "
          f"preset folder written to {args.out}")
    return 0


def _cmd_card(args) -> int:
    import zoo
    from zoo import cards

    shipped = [n for n in zoo.list_models() if zoo.has_weights(n)]
    for name in args.names or shipped:
        print(cards.write_card(name))
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="zoo", description="The physics model zoo: pretrained physics-discovery networks.")
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("list", help="list every preset").set_defaults(func=_cmd_list)
    p = sub.add_parser("info", help="describe one preset and its measured quality")
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
                   help="Keras dtype policy while training (see benchmarks/mixed_precision.py)")
    p.set_defaults(func=_cmd_train)
    p = sub.add_parser("evaluate", help="measure a pretrained preset on fresh simulated data")
    p.add_argument("name")
    p.add_argument("--seed", type=int, default=424242, help="simulator seed (training used 1 and 2)")
    p.add_argument("--samples", type=int, default=5000)
    p.add_argument("--plot", default=None, help="write the evaluation figure to this PNG file")
    p.set_defaults(func=_cmd_evaluate)
    p = sub.add_parser("demo", help="predict a year of the Sun and Mars in the sky with scinet-heliocentric")
    p.add_argument("--seed", type=int, default=2026, help="simulator seed of the fresh years")
    p.add_argument("--samples", type=int, default=1000)
    p.add_argument("--out", default="outputs/heliocentric-year.png")
    p.set_defaults(func=_cmd_demo)
    p = sub.add_parser("export", help="export presets as SavedModels in TF Serving's NAME/VERSION layout")
    p.add_argument("names", nargs="+")
    p.add_argument("--out", required=True, help="the model base folder (gets NAME/VERSION/ and models.config)")
    p.add_argument("--version", type=int, default=None, help="version number (default: one above the newest)")
    p.add_argument("--base-path", default=None, help="folder path to write in models.config (e.g. /models in a container)")
    p.add_argument("--batching-parameters", action="store_true", help="also write batching_parameters.txt")
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
    p.set_defaults(func=_cmd_serve)
    p = sub.add_parser("publish", help="upload a preset folder and its card to the Hugging Face Hub")
    p.add_argument("name")
    p.add_argument("--repo-id", required=True, help="ORG/NAME on the Hub")
    p.add_argument("--revision", default=None, help="branch to commit to (created if needed)")
    p.add_argument("--private", action="store_true")
    p.add_argument("--with-export", action="store_true", help="also upload the SavedModel export")
    p.set_defaults(func=_cmd_publish)
    p = sub.add_parser("finetune", help="fine-tune a pretrained preset on your data (.npz/.h5) into a new preset folder")
    p.add_argument("name")
    p.add_argument("--data", required=True, help="arrays named as the preset's inputs, plus 'target'")
    p.add_argument("--out", required=True, help="the new preset folder")
    p.add_argument("--epochs", type=int, default=10)
    p.add_argument("--batch-size", type=int, default=256)
    p.add_argument("--learning-rate", type=float, default=3e-4)
    p.add_argument("--freeze-encoder", action="store_true", help="train the decoder only")
    p.add_argument("--new-decoder", action="store_true", help="replace the head: start from a fresh decoder")
    p.set_defaults(func=_cmd_finetune)
    p = sub.add_parser("card", help="render model cards from metadata.json")
    p.add_argument("names", nargs="*")
    p.set_defaults(func=_cmd_card)
    return parser


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except (KeyError, ValueError, TypeError, FileExistsError, NotImplementedError) as e:
        print(f"zoo {args.command}: error: {e}", file=sys.stderr)
        return 2
