"""The physics model zoo: trained, documented, servable Keras models of physics-discovery networks.

    import zoo
    zoo.list_models()
    model = zoo.load("scinet-heliocentric")
"""
from __future__ import annotations

import inspect
import os
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # keep TensorFlow's start-up chatter out of user output

__version__ = "0.1.0"

PRETRAINED_DIR = Path(__file__).resolve().parent / "pretrained"


def list_models() -> list:
    """Names of every preset, sorted."""
    from zoo.registry import list_specs

    return [spec.name for spec in list_specs()]


def has_weights(name: str) -> bool:
    """Whether pretrained weights are shipped for preset ``name``."""
    from zoo import artifacts

    return (preset_folder(name) / artifacts.METADATA_FILE).exists()


def get_spec(name: str):
    """The frozen :class:`zoo.spec.PresetSpec` of preset ``name``."""
    from zoo.registry import get_spec as _get_spec

    return _get_spec(name)


def preset_folder(name: str) -> Path:
    """Where the shipped weights, config and metadata of preset ``name`` live."""
    return PRETRAINED_DIR / get_spec(name).name


def load(name: str, pretrained: bool = True, trainable: bool = True, **config_overrides):
    """Build preset ``name`` as a ``keras.Model``.

    Args:
        name: a name from :func:`list_models`, ``hf://ORG/NAME[@REVISION]`` for a
            preset published on the Hugging Face Hub (branch, tag or commit hash), or
            the path of a preset folder (e.g. one ``zoo finetune`` wrote).
        pretrained: load the shipped weights, after checking each file's sha256.
            ``False`` gives a freshly initialised model.
        trainable: ``False`` freezes every weight (feature extraction); freeze
            parts instead with ``layer.trainable = False`` (e.g. ``model.encoder_layers``).
        **config_overrides: constructor arguments to change (see ``get_spec(name).config``).

    Raises:
        KeyError: unknown preset name (the message lists close matches).
        TypeError: an override that the model's constructor does not take.
        zoo.artifacts.ArtifactError: missing, corrupt or altered weight files.
    """
    model = _build(name, pretrained, config_overrides)
    model.trainable = bool(trainable)
    return model


def _build(name, pretrained: bool, config_overrides: dict):
    from zoo import artifacts

    if isinstance(name, (str, Path)) and _is_preset_folder(name):
        return artifacts.build_from_folder(Path(name), config_overrides)
    if isinstance(name, str) and name.startswith("hf://"):
        from zoo import hub

        if not pretrained:
            raise ValueError(f"{name!r} names Hub weights; pretrained=False makes no sense for it.")
        return hub.load(name, **config_overrides)
    spec = get_spec(name)
    _check_overrides(spec, config_overrides)
    if not pretrained:
        model = spec.model_class(**dict(spec.config, **config_overrides))
        model(model.example_inputs())
        return model
    folder = preset_folder(name)
    if not has_weights(name):
        raise artifacts.ArtifactError(
            f"No pretrained weights are shipped for {name!r} (looked in {folder}). "
            f"Use zoo.load({name!r}, pretrained=False), or train them with `zoo train {name}`."
        )
    return artifacts.build_from_folder(folder, config_overrides)


def _is_preset_folder(name) -> bool:
    """A path (not a registered name) to a folder with metadata.json, e.g. a fine-tuned preset."""
    from zoo import artifacts

    path = Path(name)
    return (isinstance(name, Path) or "/" in str(name)) and (path / artifacts.METADATA_FILE).is_file()


def _check_overrides(spec, overrides: dict) -> None:
    params = inspect.signature(spec.model_class.__init__).parameters
    allowed = sorted(p for p in params if p not in ("self", "kwargs"))
    unknown = sorted(set(overrides) - set(allowed))
    if unknown:
        raise TypeError(
            f"{spec.name!r} ({spec.model_class.__name__}) has no configuration option(s) {unknown}; "
            f"expected some of {allowed}."
        )
