"""Fine-tuning from pretrained weights versus training from scratch: optimizer steps to a target error.

    python benchmarks/finetune_steps.py [--max-steps 3000]

The task moves scinet-pendulum to stiffer pendulums (kappa in [12, 16], its
training range was [4, 12]); both runs see the same data in the same order
with the same optimizer. Results go to benchmarks/results/finetune.json.
"""
from __future__ import annotations

import argparse
from pathlib import Path

import zoo
from common import write_results
from training.evaluation.scinet import question_inputs
from training.finetune import freeze_groups, steps_to_target, validation_error
from training.simulators import pendulum


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--max-steps", type=int, default=3000)
    parser.add_argument("--out", default="benchmarks/results/finetune.json")
    args = parser.parse_args(argv)
    train_data = pendulum.simulate(20000, 41, kappa_range=(12.0, 16.0))
    held_out = pendulum.simulate(2000, 42, kappa_range=(12.0, 16.0))
    train = (question_inputs(train_data), train_data.answer)
    validation = (question_inputs(held_out), held_out.answer)
    results = {"task": "scinet-pendulum moved to kappa in [12, 16]", "max_steps": args.max_steps, "runs": {}}
    for target in (0.05, 0.04, 0.035):
        for label in ("pretrained", "pretrained_frozen_encoder", "scratch"):
            model = zoo.load("scinet-pendulum", pretrained=label != "scratch")
            if label == "pretrained_frozen_encoder":
                freeze_groups(model, ["encoder"])
            before = validation_error(model, validation)
            steps = steps_to_target(model, train, validation, target, args.max_steps, learning_rate=1e-3)
            results["runs"][f"{label}@{target}"] = {"rms_before": before, "steps_to_target": steps,
                                                   "rms_at_end": validation_error(model, validation)}
            print(label, target, results["runs"][f"{label}@{target}"], flush=True)
    write_results(args.out, results)
    Path(args.out).with_suffix(".md").write_text(markdown_table(results))
    return 0


def markdown_table(results) -> str:
    """The results as the table the README links to."""
    rows = [f"Fine-tuning {results['task']}: optimizer steps (batch 256, Adam 1e-3) until the held-out RMS error "
            f"reaches the target; '>{results['max_steps']}' = not within {results['max_steps']} steps.\n",
            "| start | target RMS | steps | RMS before | RMS after the run |", "|---|---|---|---|---|"]
    for key, run in results["runs"].items():
        label, target = key.split("@")
        steps = run["steps_to_target"] if run["steps_to_target"] is not None else f">{results['max_steps']}"
        rows.append(f"| {label} | {target} | {steps} | {run['rms_before']:.4f} | {run['rms_at_end']:.4f} |")
    return "\n".join(rows) + "\n"


if __name__ == "__main__":
    raise SystemExit(main())
