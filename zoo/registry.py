"""The preset registry: every family is declared once, in its module, as ``FAMILY``.

Families come from three places, all explicit:

- the zoo's own modules, the tuple ``FAMILY_MODULES`` below (adding a family to the
  zoo is one line here);
- installed packages, through the entry-point group ``physics_model_zoo.families``,
  each entry naming a :class:`zoo.spec.Family` (``mypkg.models:FAMILY``) or a module
  that defines ``FAMILY``;
- :func:`register_family` at run time (notebooks, tests).

The registry is built on first use, whichever zoo function comes first, so every
family's Keras classes are registered before any saved model is read. Two presets
with the same name fail when the registry is built.
"""
from __future__ import annotations

import difflib
import fnmatch
import importlib
import inspect
import json
import threading
from importlib import metadata as importlib_metadata
from pathlib import Path

from zoo.spec import Family, PresetSpec

FAMILY_MODULES = ("zoo.models.scinet", "zoo.models.classifiers", "zoo.models.rbm", "zoo.models.siamese",
                  "zoo.models.jets", "zoo.models.calogan", "zoo.models.flows", "zoo.models.translator")
DEMO_FAMILY = "scinet"  # whose demo `zoo demo` runs when no family is named (the README's quick start)
ENTRY_POINT_GROUP = "physics_model_zoo.families"


class UnknownPresetError(KeyError):
    """A preset name that the registry does not hold."""

    def __str__(self):
        return str(self.args[0])


class _Registry:
    def __init__(self):
        self.families: dict = {}  # family name -> Family
        self.presets: dict = {}  # preset name -> PresetSpec
        self.lock = threading.RLock()
        self.built = False

    def build(self) -> None:
        with self.lock:
            if self.built:
                return
            for family in _builtin_families() + _entry_point_families():
                self.add(family)
            self.built = True

    def add(self, family: Family) -> None:
        if not isinstance(family, Family):
            raise TypeError(f"A family is declared as zoo.spec.Family; received {type(family).__name__}: {family!r}.")
        with self.lock:
            previous = self.families.get(family.name)
            if previous is not None and previous.module != family.module:
                raise RuntimeError(
                    f"Family {family.name!r} is declared twice: in {previous.module!r} and in {family.module!r}."
                )
            for spec in family.presets:
                owner = self.presets.get(spec.name)
                if owner is not None and owner.family != family.name:
                    raise RuntimeError(
                        f"Preset {spec.name!r} is declared twice: in {owner.family!r} and in {family.name!r} "
                        f"({family.module}). Preset names must be unique."
                    )
            self.families[family.name] = family
            self.presets.update({spec.name: spec for spec in family.presets})


def _family_of(target) -> Family:
    """The Family an entry point or module name refers to (``module`` or ``module:attribute``)."""
    module_name, _, attribute = target.partition(":")
    found = getattr(importlib.import_module(module_name), attribute or "FAMILY")
    return found.FAMILY if inspect.ismodule(found) else found


def _builtin_families() -> list:
    return [_family_of(name) for name in FAMILY_MODULES]


def _entry_point_families() -> list:
    return [_family_of(entry.value) for entry in importlib_metadata.entry_points(group=ENTRY_POINT_GROUP)]


_REGISTRY = _Registry()


def ensure_built() -> None:
    """Import every family (registering its Keras classes); cheap after the first call."""
    _REGISTRY.build()


def register_family(family: Family) -> Family:
    """Add a family at run time; its presets become loadable by name. Returns ``family``."""
    ensure_built()
    _REGISTRY.add(family)
    return family


PACKAGE_DIR = Path(__file__).resolve().parent
PRETRAINED_DIR = PACKAGE_DIR / "pretrained"  # the zoo's own preset folders (a family may keep its elsewhere)
INDEX_FILE = PACKAGE_DIR / "presets_index.json"
INFO_FILE = PACKAGE_DIR / "presets_info.json"


def matches(pattern: str, name: str, family: str) -> bool:
    """Whether a preset is what ``pattern`` asks for: shell wildcards against its name or family
    (``"*kepler*"``), or, without wildcards, a prefix of either (``"jet"`` finds the family ``jets``)."""
    if any(c in pattern for c in "*?["):
        return fnmatch.fnmatch(name, pattern) or fnmatch.fnmatch(family, pattern)
    return name.startswith(pattern) or family.startswith(pattern)


def index_rows() -> list:
    """(name, family, summary) of every preset: what ``zoo list`` prints."""
    return [[spec.name, spec.family, spec.summary] for spec in list_specs()]


def _tensors(specs) -> list:
    return [{"name": t.name, "shape": list(t.shape), "dtype": t.dtype, "description": t.description} for t in specs]


def describe(model, spec: PresetSpec | None = None) -> dict:
    """What ``zoo info`` prints of a constructed model: its spec's fields (None without a registered preset)
    and every declared endpoint with its tensors, as plain JSON types."""
    return {
        "family": spec.family if spec else None, "model_class": type(model).__name__,
        "summary": spec.summary if spec else None, "paper": spec.paper if spec else None,
        "config": json.loads(json.dumps(dict(spec.config))) if spec else {},
        "descriptions": spec.descriptions() if spec else {},
        "endpoints": [{"name": e.name, "description": e.description, "inputs": _tensors(e.inputs),
                       "outputs": _tensors(e.outputs), "onnx_refusal": e.onnx_refusal} for e in model.endpoints()],
    }


def info_records() -> dict:
    """Name -> :func:`describe` of every registered preset, with where its weights folder lives."""
    records = {}
    for spec in list_specs():
        model = spec.model_class(**spec.config)  # constructed, never built: no weights are read
        base = Path(get_family(spec.family).pretrained_dir or PRETRAINED_DIR).resolve()
        records[spec.name] = {
            "pretrained_dir": str(base.relative_to(PACKAGE_DIR)) if base.is_relative_to(PACKAGE_DIR) else str(base),
            "bibtex": get_family(spec.family).bibtex, **describe(model, spec)}
    return records


def cached_lineage_record(folder: Path) -> tuple:
    """(registered name, cached :func:`info_records` entry) of the preset a folder is or descends from, read
    from its metadata.json without importing any family; (None, None) when the cache cannot tell."""
    cached = cached_info()
    metadata_file = Path(folder) / "metadata.json"
    if cached is None or not metadata_file.is_file():
        return None, None
    name = registered_ancestor(json.loads(metadata_file.read_text()), cached)
    return name, cached.get(name)


def registered_ancestor(metadata: dict, registered) -> str | None:
    """The name in ``registered`` that a preset folder's metadata says it is, or else descends from (a
    fine-tuned folder's parent); None for a folder of an unregistered preset."""
    lineage = [metadata.get("name"), (metadata.get("parent") or {}).get("preset")]
    return next((n for n in lineage if isinstance(n, str) and n in registered), None)


def write_index() -> Path:
    """Write zoo/presets_index.json (``zoo list``) and zoo/presets_info.json (``zoo info``), which let those
    commands answer without importing TensorFlow."""
    INDEX_FILE.write_text(json.dumps(index_rows(), indent=1) + "\n")
    INFO_FILE.write_text(json.dumps(info_records(), indent=1, sort_keys=True) + "\n")
    return INDEX_FILE


def shipped_folder(name: str, record: dict) -> Path | None:
    """The preset folder of a cached :func:`info_records` entry, or None when no weights are shipped."""
    base = Path(record["pretrained_dir"])
    folder = (base if base.is_absolute() else PACKAGE_DIR / base) / name
    return folder if (folder / "metadata.json").exists() else None


def _cache_usable(path: Path) -> bool:
    """Whether a cache file can stand for the registry: it exists and no third-party family is installed."""
    return path.exists() and not importlib_metadata.entry_points(group=ENTRY_POINT_GROUP)


def cached_index() -> list | None:
    """The preset index without importing any family, or None when it cannot stand for the registry:
    a third-party family is installed (entry points) or the file is missing."""
    return json.loads(INDEX_FILE.read_text()) if _cache_usable(INDEX_FILE) else None


def cached_info() -> dict | None:
    """:func:`info_records` as written by ``zoo card``, or None when it cannot stand for the registry."""
    return json.loads(INFO_FILE.read_text()) if _cache_usable(INFO_FILE) else None


def unregister_family(name: str) -> None:
    """Remove a family registered with :func:`register_family` (and its presets)."""
    ensure_built()
    with _REGISTRY.lock:
        family = _REGISTRY.families.pop(name, None)
        for spec in family.presets if family else ():
            _REGISTRY.presets.pop(spec.name, None)


def list_families() -> list:
    ensure_built()
    return [_REGISTRY.families[name] for name in sorted(_REGISTRY.families)]


def get_family(name: str) -> Family:
    ensure_built()
    if name not in _REGISTRY.families:
        raise UnknownPresetError(f"Unknown family {name!r}; installed families: {sorted(_REGISTRY.families)}.")
    return _REGISTRY.families[name]


def family_of_class(cls) -> Family | None:
    """The family whose presets use model class ``cls`` (None if no preset does)."""
    ensure_built()
    for family in _REGISTRY.families.values():
        if any(spec.model_class is cls for spec in family.presets):
            return family
    return None


def list_specs() -> list:
    ensure_built()
    return [_REGISTRY.presets[name] for name in sorted(_REGISTRY.presets)]


def get_spec(name: str) -> PresetSpec:
    """Return the spec of preset ``name``; unknown names fail with close matches."""
    if not isinstance(name, str):
        raise TypeError(f"A preset name must be a string, received {type(name).__name__}: {name!r}.")
    check_known(name)
    ensure_built()
    try:
        return _REGISTRY.presets[name]
    except KeyError:
        raise _unknown(name, list(_REGISTRY.presets)) from None


def check_known(name: str) -> None:
    """Refuse an unknown preset name from the cached index, before any family (and so TensorFlow) is imported:
    a typo is answered at once. Until the registry is built nothing can have been registered at run time, so
    the cache, when usable, holds every name."""
    if _REGISTRY.built:
        return
    rows = cached_index()
    if rows is not None and name not in {row[0] for row in rows}:
        raise _unknown(name, [row[0] for row in rows])


def _unknown(name: str, known: list) -> UnknownPresetError:
    close = difflib.get_close_matches(name, known, n=3, cutoff=0.5)
    hint = f" Did you mean {', '.join(repr(c) for c in close)}?" if close else ""
    return UnknownPresetError(f"Unknown preset {name!r}.{hint} Known presets: {', '.join(sorted(known))}.")
