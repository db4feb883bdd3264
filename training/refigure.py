"""Redraw the evaluation figure of shipped presets with the current drawing code, on the card's own held-out data.

    python -m training.refigure NAME [NAME ...]

The recipe's ``simulate`` regenerates the evaluation sample from ``evaluation_seed``
and ``render_figure`` draws it; only evaluation.png (and its sha256 in metadata.json)
changes, every other file stays byte for byte (:func:`zoo.artifacts.replace_files`).
Re-render the cards afterwards (``zoo card``).
"""
from __future__ import annotations

import sys

import zoo
from training.recipes import recipe_for
from zoo import artifacts


def refigure(name: str) -> dict:
    recipe = recipe_for(name)
    folder = zoo.preset_folder(name)
    metadata = artifacts.verify_preset(folder)
    data = recipe.simulate(recipe.n_evaluation, recipe.evaluation_seed)
    scan = {int(k): v for k, v in metadata.get("latent_scan", {}).items()}
    figure = recipe.render_figure(zoo.load(name), data, scan)
    return artifacts.replace_files(folder, {"evaluation.png": figure})


def main(argv=None) -> int:
    names = sys.argv[1:] if argv is None else argv
    if not names:
        print("usage: python -m training.refigure NAME [NAME ...]", file=sys.stderr)
        return 2
    for name in names:
        refigure(name)
        print(f"{name}: evaluation.png redrawn", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
