"""Fine-tuning a pretrained preset on the user's own data, written out as a new preset folder.

    zoo finetune scinet-pendulum --data my_pendulums.npz --epochs 20 --out runs/my-pendulum [--freeze-encoder]

The data file (.npz or .h5) holds one array per model input, named as the
preset's inputs (``zoo info NAME``), and ``target`` with the expected output.
The last ``validation_fraction`` of the samples is held out; the error on it
is measured before and after fine-tuning and recorded in the new folder's
metadata.json and README.md, which name the parent preset and the sha256 of
the parent weights.
"""
from __future__ import annotations

from pathlib import Path

import keras
import numpy as np

import zoo
from zoo import artifacts
from zoo.validation import check_array, check_inputs


def read_data(path, model) -> tuple:
    """(inputs, target) from ``path``, checked against the model's input and output shapes."""
    path = Path(path)
    if path.suffix == ".npz":
        with np.load(path) as f:
            arrays = {k: f[k] for k in f.files}
    elif path.suffix in (".h5", ".hdf5"):
        import h5py

        with h5py.File(path, "r") as f:
            arrays = {k: f[k][()] for k in f.keys()}
    else:
        raise ValueError(f"Fine-tuning data must be a .npz or .h5 file; received {path.name!r}.")
    if "target" not in arrays:
        raise ValueError(f"{path.name} has arrays {sorted(arrays)}; expected 'target' and {list(model.input_specs)}.")
    target = arrays.pop("target")
    inputs = check_inputs(arrays, model.input_specs)
    n = next(iter(inputs.values())).shape[0]
    output_shape = tuple(np.shape(model(model.example_inputs(1)))[1:])
    target = check_array(target, "target", output_shape)
    if target.shape[0] != n:
        raise ValueError(f"'target' has {target.shape[0]} samples but the inputs have {n}.")
    return inputs, target


def _split(inputs, target, validation_fraction):
    n = target.shape[0]
    cut = n - max(1, int(round(n * validation_fraction)))
    if cut < 1:
        raise ValueError(f"{n} samples are too few to hold out a validation set.")
    train = ({k: v[:cut] for k, v in inputs.items()}, target[:cut])
    validation = ({k: v[cut:] for k, v in inputs.items()}, target[cut:])
    return train, validation


def _feed(model, inputs):
    return next(iter(inputs.values())) if len(inputs) == 1 else inputs


def loss_for(model):
    """The recipes' loss: the model's own ``training_loss``, wrapped angle error for angles, else MSE."""
    if getattr(model, "training_loss", None):
        return model.training_loss
    if getattr(model, "wrap_angles", False):
        from training.recipes.scinet import wrapped_angle_mse

        return wrapped_angle_mse
    return "mse"


def validation_rms(model, validation) -> float:
    predicted = model.predict(_feed(model, validation[0]), verbose=0, batch_size=4096)
    diff = predicted - validation[1]
    if getattr(model, "wrap_angles", False):
        diff = np.angle(np.exp(1j * diff))
    return float(np.sqrt(np.mean(diff**2)))


def freeze_encoder(model) -> None:
    """Keep the encoder's weights: only the decoder (and the latent step, if any) adapt."""
    for layer in model.encoder_layers:
        layer.trainable = False


def new_decoder(model) -> None:
    """Replace the head: re-initialise the decoder, keep the pretrained encoder (a new question to answer)."""
    for layer in model.decoder_layers:
        layer.kernel.assign(layer.kernel_initializer(layer.kernel.shape))
        layer.bias.assign(layer.bias_initializer(layer.bias.shape))


def finetune(name: str, data, out, epochs: int = 10, batch_size: int = 256, learning_rate: float = 3e-4,
             freeze: bool = False, replace_head: bool = False, validation_fraction: float = 0.1, seed: int = 0,
             verbose: int = 2) -> dict:
    """Fine-tune preset ``name`` on ``data`` and write the new preset folder ``out``; return its metadata.

    ``freeze`` keeps the encoder fixed; ``replace_head`` starts from a fresh decoder.
    """
    keras.utils.set_random_seed(seed)
    model = zoo.load(name)
    if getattr(model, "unsupervised", False):
        raise ValueError(
            f"{name} is trained without targets (contrastive divergence), so `zoo finetune` does not apply. "
            f"Continue its training in Python: model = zoo.load({name!r}); model.compile(optimizer=keras.optimizers."
            "Adam(1e-4)); model.fit(spins, epochs=..., batch_size=100)."
        )
    inputs, target = read_data(data, model)
    train, validation = _split(inputs, target, validation_fraction)
    if freeze:
        freeze_encoder(model)
    if replace_head:
        new_decoder(model)
    before = validation_rms(model, validation)
    model.compile(optimizer=keras.optimizers.Adam(learning_rate, clipnorm=1.0), loss=loss_for(model))
    history = model.fit(_feed(model, train[0]), train[1], validation_data=(_feed(model, validation[0]), validation[1]),
                        epochs=epochs, batch_size=batch_size, verbose=verbose)
    after = validation_rms(model, validation)
    parent = artifacts.read_json(zoo.preset_folder(name) / artifacts.METADATA_FILE)
    metadata = {
        "name": Path(out).name,
        "family": parent["family"],
        "zoo_version": zoo.__version__,
        "parent": {"preset": name, "zoo_version": parent["zoo_version"],
                   "weights_sha256": parent["files"][artifacts.WEIGHTS_FILE]},
        "metrics": {"validation_rms_before": before, "validation_rms_after": after},
        "targets": [],
        "finetuning": {"data": Path(data).name, "n_train": int(train[1].shape[0]), "n_validation": int(validation[1].shape[0]),
                       "epochs": epochs, "batch_size": batch_size, "learning_rate": learning_rate,
                       "frozen_encoder": freeze, "replaced_head": replace_head, "final_loss": float(history.history["loss"][-1])},
    }
    card = finetune_card(metadata)
    artifacts.write_preset(out, model, metadata, {"README.md": card.encode()})
    return artifacts.verify_preset(out)


def finetune_card(metadata: dict) -> str:
    parent, tune, m = metadata["parent"], metadata["finetuning"], metadata["metrics"]
    return (
        "---\nlibrary_name: keras\nlicense: apache-2.0\n"
        f"base_model: {parent['preset']}\ntags:\n  - physics\n  - physics-model-zoo\n  - {metadata['family']}\n---\n\n"
        f"# {metadata['name']}\n\nFine-tuned from `{parent['preset']}` (zoo {parent['zoo_version']}, weights sha256 "
        f"`{parent['weights_sha256'][:16]}...`) on `{tune['data']}`: {tune['n_train']} samples, {tune['epochs']} epochs, "
        f"learning rate {tune['learning_rate']}, encoder {'frozen' if tune['frozen_encoder'] else 'trained'}.\n\n"
        f"| held-out samples | RMS error before | RMS error after |\n|---|---|---|\n"
        f"| {tune['n_validation']} | {m['validation_rms_before']:.4g} | {m['validation_rms_after']:.4g} |\n\n"
        "Load with `zoo.load(\"path/to/this/folder\")`.\n"
    )


def steps_to_target(model, train, validation, target_rms: float, max_steps: int, batch_size: int = 256,
                    learning_rate: float = 3e-4, eval_every: int = 25, seed: int = 0) -> int | None:
    """Optimizer steps until the held-out RMS error first drops to ``target_rms`` (None if it never does).

    The same data order and optimizer for any model, so a pretrained and a
    fresh model can be compared step for step.
    """
    model.compile(optimizer=keras.optimizers.Adam(learning_rate, clipnorm=1.0), loss=loss_for(model))
    x, y = train
    rng = np.random.default_rng(seed)
    steps = 0
    while steps < max_steps:
        if validation_rms(model, validation) <= target_rms:
            return steps
        index = rng.integers(0, y.shape[0], size=(eval_every, batch_size))
        for batch in index:
            model.train_on_batch(_feed(model, {k: v[batch] for k, v in x.items()}), y[batch])
        steps += eval_every
    return steps if validation_rms(model, validation) <= target_rms else None
