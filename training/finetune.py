"""Fine-tuning a pretrained preset on the user's own data, written out as a new preset folder.

    zoo finetune scinet-pendulum --data my_pendulums.npz --epochs 20 --out runs/my-pendulum [--freeze encoder]

The data file (.npz or .h5) holds one array per model input, named as the
preset's inputs (``zoo info NAME``), and ``target`` with the expected output
(a family that fine-tunes with its own ``train_step`` takes the inputs alone).
What can be frozen or re-initialised, the loss and the error reported come from
the family's declaration (``model.fine_tuning``, ``model.layer_groups()``). The
last ``validation_fraction`` of the samples is held out; the error on it is
measured before and after and recorded in the new folder's metadata.json and
README.md, which name the parent preset and the sha256 of the parent weights.
"""
from __future__ import annotations

from pathlib import Path

import keras
import numpy as np

import zoo
from zoo import artifacts, cards
from zoo.validation import check_array


def read_data(path, model) -> tuple:
    """(inputs, target or None) from ``path``, checked against the model's inputs and output."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"--data {path} does not exist; give a .npz or .h5 file of arrays named as the inputs.")
    if path.suffix == ".npz":
        with np.load(path) as f:
            arrays = {k: f[k] for k in f.files}
    elif path.suffix in (".h5", ".hdf5"):
        import h5py

        with h5py.File(path, "r") as f:
            arrays = {k: f[k][()] for k in f.keys()}
    else:
        raise ValueError(f"Fine-tuning data must be a .npz or .h5 file; received {path.name!r}.")
    needs_target = model.fine_tuning.needs_target
    raw = model.fine_tuning.preprocessing
    accepted = list(model.input_specs) + [f"or {name!r}" for name in raw]
    if needs_target and "target" not in arrays:
        raise ValueError(f"{path.name} has arrays {sorted(arrays)}; expected 'target' and {accepted}.")
    target = arrays.pop("target", None) if needs_target else None
    inputs = model.checked_inputs(_preprocessed(model, arrays))
    n = next(iter(inputs.values())).shape[0]
    if target is None:
        return inputs, None
    output = model.endpoint().outputs[0]
    if np.ndim(target) == 1 and tuple(output.feature_shape) == (1,):
        target = np.reshape(target, (-1, 1))  # labels as a flat vector, as physicists keep them
    target = check_array(target, "target", output.feature_shape)
    if target.shape[0] != n:
        raise ValueError(f"'target' has {target.shape[0]} samples but the inputs have {n}.")
    _check_target_rows(model, inputs, target, output.name)
    return inputs, target


def _preprocessed(model, arrays: dict) -> dict:
    """Raw arrays the family declares (``FineTuning.preprocessing``) turned into the model's inputs by their
    endpoint, e.g. a jet tagger's constituents into its images; other arrays as they are."""
    for name, endpoint in model.fine_tuning.preprocessing.items():
        if name in arrays and not set(model.input_specs) & set(arrays):
            arrays = {k: v for k, v in arrays.items() if k != name} | model.run_endpoint(endpoint, {name: arrays[name]})
    return arrays


def _check_target_rows(model, inputs: dict, target, output_name: str) -> None:
    """A target row must have the shape of the model's output row for the same inputs: axes that the
    declaration leaves open (a translator's grid) follow the inputs, so the first row is run to see them."""
    first = {k: v[:1] for k, v in inputs.items()}
    expected = tuple(np.shape(model.run_endpoint(model.endpoint().name, first)[output_name])[1:])
    if tuple(target.shape[1:]) != expected:
        raise ValueError(f"'target' rows have shape {tuple(target.shape[1:])}; expected {expected}, the shape of "
                         f"the model's {output_name!r} for these inputs ({', '.join(f'{k} {v.shape[1:]}' for k, v in first.items())}).")


def _split(inputs, target, validation_fraction):
    n = next(iter(inputs.values())).shape[0]
    cut = n - max(1, int(round(n * validation_fraction)))
    if cut < 1:
        raise ValueError(f"{n} samples are too few to hold out a validation set.")
    rows = (slice(None, cut), slice(cut, None))
    return [({k: v[r] for k, v in inputs.items()}, None if target is None else target[r]) for r in rows]


def feed(inputs: dict):
    """Keras' form of named inputs: the array itself for a one-input model."""
    return next(iter(inputs.values())) if len(inputs) == 1 else inputs


def check_groups(model, names, what: str) -> list:
    groups = model.layer_groups()
    unknown = sorted(set(names) - set(groups))
    if unknown:
        raise ValueError(f"--{what} names unknown layer group(s) {unknown}; {type(model).__name__} has "
                         f"{sorted(groups) or 'none'}.")
    return [layer for name in names for layer in groups[name]]


def freeze_groups(model, names) -> None:
    """Keep the weights of the named layer groups fixed."""
    for layer in check_groups(model, names, "freeze"):
        layer.trainable = False


def reinitialize_groups(model, names, seed: int = 0) -> None:
    """Replace the named layer groups' weights by a fresh initialisation (e.g. a new head for a new question)."""
    check_groups(model, names, "reinitialize")
    keras.utils.set_random_seed(seed)
    fresh = type(model).from_config(model.get_config())
    fresh.build_with_examples()
    fresh_groups = fresh.layer_groups()
    for name in names:
        for layer, new in zip(model.layer_groups()[name], fresh_groups[name]):
            layer.set_weights(new.get_weights())


def validation_error(model, validation) -> float:
    return model.fine_tuning_error(validation[0], validation[1])


def compile_for_finetuning(model, learning_rate: float) -> None:
    model.compile(optimizer=keras.optimizers.Adam(learning_rate, clipnorm=1.0), loss=model.fine_tuning.loss)


def finetune(name, data, out, epochs: int = 10, batch_size: int = 256, learning_rate: float = 3e-4,
             freeze: list = (), reinitialize: list = (), validation_fraction: float = 0.1, seed: int = 0,
             verbose: int = 2, force: bool = False) -> dict:
    """Fine-tune preset ``name`` (a name, a preset folder or ``hf://``) on ``data``; write the preset folder ``out``.

    ``freeze`` and ``reinitialize`` name layer groups of the family (``model.fine_tuning.groups``).
    Returns the new folder's metadata.
    """
    keras.utils.set_random_seed(seed)
    artifacts.check_destination(out, force)
    model = zoo.load(name)
    if model.fine_tuning.refusal:
        raise ValueError(model.fine_tuning.refusal.replace("NAME", repr(str(name))))
    inputs, target = read_data(data, model)
    train, validation = _split(inputs, target, validation_fraction)
    freeze_groups(model, freeze)
    reinitialize_groups(model, reinitialize, seed)
    before = validation_error(model, validation)
    compile_for_finetuning(model, learning_rate)
    held_out = feed(validation[0]) if validation[1] is None else (feed(validation[0]), validation[1])
    history = model.fit(feed(train[0]), train[1], validation_data=held_out, epochs=epochs, batch_size=batch_size,
                        verbose=verbose)
    after = validation_error(model, validation)
    metadata = {
        "metrics": {"validation_error_before": before, "validation_error_after": after},
        "finetuning": {"data": Path(data).name, "n_train": len(next(iter(train[0].values()))),
                       "n_validation": len(next(iter(validation[0].values()))), "epochs": epochs,
                       "batch_size": batch_size, "learning_rate": learning_rate, "frozen": list(freeze),
                       "reinitialized": list(reinitialize), "error_name": model.fine_tuning.error_name,
                       "final_loss": float(history.history["loss"][-1])},
    }
    return artifacts.save_to_preset(model, out, metadata, force=force, card=finetune_card)


def finetune_card(metadata: dict) -> str:
    parent, tune, m = metadata["parent"], metadata["finetuning"], metadata["metrics"]
    worse = m["validation_error_after"] > m["validation_error_before"]
    return (
        cards.derived_front_matter(metadata)
        + f"# {metadata['name']}\n\nFine-tuned from `{parent['preset']}` (zoo {parent['zoo_version']}, weights sha256 "
        f"`{parent['weights_sha256'][:16]}...`) on `{tune['data']}`: {tune['n_train']} samples, {tune['epochs']} epochs, "
        f"learning rate {tune['learning_rate']}, frozen groups {tune['frozen'] or 'none'}, re-initialised groups "
        f"{tune['reinitialized'] or 'none'}.\n\n"
        f"| held-out samples | {tune['error_name']} before | after |\n|---|---|---|\n"
        f"| {tune['n_validation']} | {m['validation_error_before']:.4g} | {m['validation_error_after']:.4g} |\n\n"
        + ("**The held-out error got worse than the parent's.**\n\n" if worse else "")
        + "Load with `zoo.load(\"path/to/this/folder\")`.\n"
    )


def steps_to_target(model, train, validation, target_error: float, max_steps: int, batch_size: int = 256,
                    learning_rate: float = 3e-4, eval_every: int = 25, seed: int = 0) -> int | None:
    """Optimizer steps until the held-out error first drops to ``target_error`` (None if it never does).

    The same data order and optimizer for any model, so a pretrained and a
    fresh model can be compared step for step.
    """
    compile_for_finetuning(model, learning_rate)
    x, y = train
    rng = np.random.default_rng(seed)
    steps = 0
    while steps < max_steps:
        if validation_error(model, validation) <= target_error:
            return steps
        index = rng.integers(0, y.shape[0], size=(eval_every, batch_size))
        for batch in index:
            model.train_on_batch(feed({k: v[batch] for k, v in x.items()}), y[batch])
        steps += eval_every
    return steps if validation_error(model, validation) <= target_error else None
