"""The physics model zoo: trained, documented, servable Keras models of physics-discovery networks.

    import zoo
    zoo.list_models()
    model = zoo.load("scinet-heliocentric")
"""
from __future__ import annotations

import dataclasses
import inspect
import os
from pathlib import Path

# none of these modules imports TensorFlow: `import zoo` stays fast, models import it when built
from zoo import (
    artifacts,
    folders,
    hub,
    registry,
    sources,
)
from zoo.registry import PRETRAINED_DIR, get_family, get_spec, register_family
from zoo.sources import (
    HUB_PREFIX,
    Source,
    has_weights,
    locate,
    looks_like_path,
    preset_folder,
)
from zoo.version import __version__

__all__ = [
    "HUB_PREFIX", "PRETRAINED_DIR", "PresetInfo", "Source", "__version__", "artifacts", "get_family", "get_spec",
    "has_weights", "hub", "list_models", "load", "locate", "looks_like_path", "preset_folder", "register_family",
    "row_seeds", "set_trainable", "sources",
]

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # keep TensorFlow's start-up chatter out of user output


def list_models(pattern: str | None = None) -> list:
    """Names of every preset, sorted; ``pattern`` keeps those whose name or family matches it (shell
    wildcards: ``"*kepler*"``; without wildcards a prefix of the name or family: ``"jet"``, ``"rbm"``)."""
    return [spec.name for spec in registry.list_specs()
            if pattern is None or registry.matches(pattern, spec.name, spec.family)]


def row_seeds(n: int, seed=None):
    """The per-row int64 seeds that seeded endpoints take: ``row_seeds(n, s)`` sent as a served request's
    ``seed`` gives the draws of ``generate(energies, seed=s)`` or ``sample(n, seed=s)``. See
    :func:`zoo.models.base.row_seeds` for None, integer and array seeds and the errors."""
    from zoo.models.base import row_seeds as _row_seeds

    return _row_seeds(n, seed)


def load(name, pretrained: bool = True, trainable=True, **config_overrides):
    """Build preset ``name`` as a ``keras.Model``.

    Args:
        name: a name from :func:`list_models`, ``hf://ORG/NAME[@REVISION]`` for a
            preset published on the Hugging Face Hub (branch, tag or commit hash), or
            the path of a preset folder (e.g. one ``zoo finetune`` wrote).
        pretrained: load the shipped weights, after checking each file's sha256.
            ``False`` gives a freshly initialised model.
        trainable: ``True`` trains everything, ``False`` freezes every weight (feature
            extraction); a group name or a list of them (``model.fine_tuning.groups``,
            e.g. ``"decoder"``) trains those groups only.
        **config_overrides: constructor arguments to change (see ``get_spec(name).config``).

    Raises:
        KeyError: unknown preset name (the message lists close matches).
        TypeError: an override that the model's constructor does not take.
        ValueError: an unknown layer group in ``trainable``.
        zoo.artifacts.ArtifactError: missing, corrupt or altered weight files.
    """
    model, source, metadata = _build(name, pretrained, config_overrides)
    set_trainable(model, trainable)
    object.__setattr__(model, "preset", _preset_info(source, model, metadata))  # outside Keras' tracking
    return model


@dataclasses.dataclass(frozen=True)
class PresetInfo:
    """What a loaded model is: ``model.preset``.

    Attributes:
        name: the preset's name (a folder's or Hub repo's own name for those).
        family: its family's name.
        source: what ``zoo.load`` was given.
        folder: the verified folder its weights came from (None for ``pretrained=False``).
        zoo_version: the zoo version that wrote the folder.
        weights_sha256: sha256 of model.weights.h5 (None for ``pretrained=False``).
        card: the model card, the folder's README.md (None without a folder, or a folder without one).
        base: the registered preset it is or descends from (a fine-tuned folder's parent), if any.
    """

    name: str
    family: str | None
    source: str
    folder: Path | None
    zoo_version: str | None
    weights_sha256: str | None
    card: Path | None
    base: str | None = None


def _preset_info(source: Source, model, metadata: dict | None) -> PresetInfo:
    """``model.preset`` from the source ``_build`` resolved and the metadata it verified (both folder and
    metadata are None for fresh weights)."""
    family = registry.family_of_class(type(model))
    if source.folder is None:
        return PresetInfo(source.spec.name, source.spec.family, source.name, None, __version__, None, None,
                          source.spec.name)
    card = source.folder / folders.README_FILE
    return PresetInfo(metadata.get("name", source.folder.name), family.name if family else metadata.get("family"),
                      source.name, source.folder, metadata.get("zoo_version"),
                      metadata["files"].get(folders.WEIGHTS_FILE), card if card.is_file() else None,
                      source.spec.name if source.spec else None)


def set_trainable(model, trainable) -> None:
    """``True``/``False`` for the whole model, or the names of the layer groups that train (the rest is frozen)."""
    if isinstance(trainable, bool):
        model.trainable = trainable
        return
    wanted = [trainable] if isinstance(trainable, str) else list(trainable)
    groups = model.layer_groups()
    unknown = sorted(set(wanted) - set(groups))
    if unknown:
        raise ValueError(f"trainable names unknown layer group(s) {unknown}; {type(model).__name__} has {sorted(groups)}.")
    model.trainable = True
    for group, layers in groups.items():
        for layer in layers:
            layer.trainable = group in wanted


def _build(name, pretrained: bool, config_overrides: dict) -> tuple:
    """(model, the Source it was built from, the metadata verified); folder and metadata are None when no
    weights were read. Each step runs once: the name is resolved to one folder, whose metadata.json is read
    once, while its files are verified."""
    is_hub = isinstance(name, str) and name.startswith(HUB_PREFIX)
    if is_hub and not pretrained:
        raise ValueError(f"{name!r} names Hub weights; pretrained=False makes no sense for it.")
    source = locate(name)
    if source.spec is not None and source.folder is None and pretrained:
        raise folders.ArtifactError(
            f"No pretrained weights are shipped for {source.name!r} (looked in {preset_folder(source.spec.name)}). "
            f"Use zoo.load({source.name!r}, pretrained=False), or train them with `zoo train {source.name}`."
        )
    if not pretrained:
        if source.spec is None:
            raise ValueError(f"{name!r} is a folder of an unregistered preset; pretrained=False needs a preset name.")
        spec = source.spec
        _check_overrides(spec, config_overrides)
        model = spec.model_class(**dict(spec.config, **config_overrides))
        model.build_with_examples()
        return model, dataclasses.replace(source, folder=None), None
    if source.shipped:
        _check_overrides(source.spec, config_overrides)
    if is_hub:
        model, metadata = hub.load_snapshot(hub.parse(name)[0], source.folder, config_overrides)
    else:
        model, metadata = folders.load_folder(source.folder, config_overrides)
    return model, source, metadata


def _check_overrides(spec, overrides: dict) -> None:
    params = inspect.signature(spec.model_class.__init__).parameters
    allowed = sorted(p for p in params if p not in ("self", "kwargs"))
    unknown = sorted(set(overrides) - set(allowed))
    if unknown:
        raise TypeError(
            f"{spec.name!r} ({spec.model_class.__name__}) has no configuration option(s) {unknown}; "
            f"expected some of {allowed}."
        )
