"""Model cards rendered from metadata.json: every number in a card comes from evaluation code.

A preset folder carries its card as README.md, so that the folder is a Hugging Face repository as it is:
the card has Hub metadata (library_name, tags, license, model-index with the measured metrics) and shows
the folder's figures by their file names. :func:`zoo.artifacts.write_preset` writes it with the folder
(:func:`folder_card`); :func:`write_card` renders it again (``zoo card``) and, in a checkout, also writes
model_cards/NAME.md: the same card with its links rebased onto the preset folder (:func:`docs_copy`), which
the project's README and docs site link to. Speed numbers come from zoo/presets_speed.json, which the
benchmarks write; the package ships it, so an installed zoo renders the same cards.
"""
from __future__ import annotations

import json
import os
import re
from pathlib import Path

from zoo import folders, registry, sources
from zoo.version import __version__

CARDS_DIR = Path(__file__).resolve().parents[1] / "model_cards"  # a checkout's docs copies (not installed)
SPEED_FILE = Path(__file__).resolve().parent / "presets_speed.json"
FIGURE = "evaluation.png"
TRAINED_RECORDS = ("recipe", "training", "data", "versions")  # what a recipe's metadata.json holds besides metrics
ZOO_BIBTEX = """@software{physics_model_zoo,
  title = {The physics model zoo: trained, documented, servable Keras models of physics-discovery networks},
  author = {{The physics model zoo developers}},
  version = {%s},
  license = {Apache-2.0}
}"""


def derived_front_matter(metadata: dict, family_tag: bool = True) -> str:
    """Hub metadata of a folder derived from a preset (fine-tuned or saved): its base model and tags."""
    parent = (metadata.get("parent") or {}).get("preset")
    tags = ["physics", "physics-model-zoo"] + ([metadata["family"]] if family_tag and metadata.get("family") else [])
    return ("---\nlibrary_name: keras\nlicense: apache-2.0\n" + (f"base_model: {parent}\n" if parent else "")
            + "tags:\n" + "".join(f"  - {t}\n" for t in tags) + "---\n\n")


def derived_card(metadata: dict, model) -> str:
    """The README of a folder :func:`zoo.artifacts.save_to_preset` writes: what it derives from and its
    endpoints."""
    parent = (metadata.get("parent") or {}).get("preset")
    rows = "\n".join(f"| `{e.name}` | {', '.join(t.name for t in e.inputs)} | {', '.join(t.name for t in e.outputs)} |"
                     for e in model.endpoints())
    return (derived_front_matter(metadata, family_tag=False) + f"# {metadata['name']}\n\n"
            + (f"Derived from `{parent}`.\n\n" if parent else "")
            + f"| endpoint | inputs | outputs |\n|---|---|---|\n{rows}\n\nLoad with `zoo.load(\"path/to/this/folder\")`.\n")


def citation(name) -> str:
    """BibTeX of the preset's paper (from its family) and of the zoo itself: what ``zoo cite NAME`` prints.
    ``name`` is a preset name, a preset folder or an ``hf://`` name of a registered preset or a descendant."""
    fast = cached_citation(name)
    if fast is not None:
        return fast
    spec = sources.locate(name).spec
    if spec is None:
        raise ValueError(f"{name!r} is a folder of an unregistered preset; its family, and so its paper, is unknown. "
                         "Expected a registered preset, or a folder fine-tuned from one.")
    return _bibtex(registry.get_family(spec.family))


def _bibtex(family) -> str:
    return _with_zoo(family.bibtex)


def _with_zoo(bibtex: str) -> str:
    return "\n\n".join(filter(None, [bibtex, ZOO_BIBTEX % __version__]))


def cached_citation(name) -> str | None:
    """The citation from zoo/presets_info.json (no family imported, so no TensorFlow), or None when the cache
    cannot answer: a Hub name, a folder of an unregistered preset, or no usable cache."""
    if not isinstance(name, (str, Path)) or str(name).startswith(sources.HUB_PREFIX):
        return None
    if sources.looks_like_path(name):
        record = registry.cached_lineage_record(Path(name))[1]
    else:
        registry.check_known(name)
        record = (registry.cached_info() or {}).get(name)
    return _with_zoo(record["bibtex"]) if record and "bibtex" in record else None


def _flatten(mapping: dict, prefix: str = "") -> list:
    """(dotted key, value) rows of a nested mapping, in key order."""
    rows = []
    for key in sorted(mapping):
        value = mapping[key]
        if isinstance(value, dict) and value:
            rows += _flatten(value, f"{prefix}{key}.")
        else:
            rows.append((f"{prefix}{key}", value))
    return rows


def _cell(value) -> str:
    text = _fmt(value) if isinstance(value, (int, float, bool)) or value is None else (
        value if isinstance(value, str) else json.dumps(value))
    return text.replace("|", "\\|")


def _ranges_table(family, metadata) -> str:
    """The simulator options and the parameter ranges that apply to this preset (``family.card_ranges``), as a table."""
    data = metadata["data"]
    ranges = family.card_ranges(metadata) if family.card_ranges else data.get("parameter_ranges")
    rows = [(f"option: {k}", v) for k, v in _flatten(data.get("options") or {})]
    rows += _flatten(ranges) if isinstance(ranges, dict) else [("parameters", ranges or "see the simulator module")]
    return "\n".join(["| simulator setting | value |", "|---|---|"] + [f"| {k} | {_cell(v)} |" for k, v in rows])


def _fmt(value) -> str:
    if isinstance(value, bool) or value is None:
        return str(value)
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return f"{value:.4g}"
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_fmt(v) for v in value) + "]"
    return str(value)


def _front_matter(spec, metadata, task: str) -> str:
    metrics = metadata.get("metrics", {})
    results = "\n".join(  # the Hub's model-index takes one number per metric; lists stay in the card's table
        f"      - type: {key}\n        name: {key}\n        value: {float(value):.6g}"
        for key, value in sorted(metrics.items()) if isinstance(value, (int, float)) and not isinstance(value, bool)
    )
    return (
        "---\n"
        "library_name: keras\n"
        "license: apache-2.0\n"
        f"tags:\n  - physics\n  - physics-model-zoo\n  - {spec.family}\n"
        "model-index:\n"
        f"  - name: {spec.name}\n"
        "    results:\n"
        f"      - task:\n          type: {task}\n          name: {spec.summary.split(':')[0]}\n"
        f"        dataset:\n          type: simulated\n          name: {metadata['data']['simulator']} (seed {metadata['data']['evaluation_seed']})\n"
        f"        metrics:\n{_indent(results, 4)}\n"
        "---\n"
    )


def _indent(text, spaces):
    return "\n".join(" " * spaces + line for line in text.splitlines())


def _targets_table(metadata) -> str:
    reference = metadata.get("reference_metrics", {})
    head = "| metric | measured | target | met |" + (" authors' weights, same data |" if reference else "")
    rows = [head, "|---" * head.count(" |") + "|"]
    for t in metadata.get("targets", []):
        rows.append(
            f"| {t['metric']} | {_fmt(t['measured'])} | {t['comparison']} {_fmt(t['target'])} | "
            f"{'yes' if t['met'] else '**no, missed**'} |" + (f" {_fmt(reference.get(t['metric'], '-'))} |" if reference else "")
        )
    return "\n".join(rows)


def _metrics_table(metadata) -> str:
    reference = metadata.get("reference_metrics", {})
    rows = ["| metric | this preset | authors' weights |", "|---|---|---|"] if reference else ["| metric | value |", "|---|---|"]
    for key, value in sorted(metadata.get("metrics", {}).items()):
        rows.append(f"| {key} | {_fmt(value)} |" + (f" {_fmt(reference.get(key, '-'))} |" if reference else ""))
    return "\n".join(rows)


def _extra_sections(metadata) -> str:
    """Family-specific sections that the evaluation code wrote into metadata["card_sections"]."""
    return "".join(f"\n### {s['title']}\n\n{s['markdown']}\n" for s in metadata.get("card_sections", []))


def _endpoint_rows(model, spec) -> str:
    """The input/output table, generated from the model's declared endpoints.

    An input's description is the preset's own where the preset describes a tensor of
    that name; outputs take the preset's descriptions on ``serving_default`` only.
    """
    described = spec.descriptions() if spec is not None else {}

    def cell(tensors, use_preset):
        text = "<br>".join(f"`{t.name}` {tuple(t.shape)}: {(use_preset and described.get(t.name)) or t.description}"
                           for t in tensors)
        return text.replace("|", "\\|")

    rows = ["| endpoint | inputs | outputs |", "|---|---|---|"]
    for endpoint in model.endpoints():
        main = endpoint.name == "serving_default"
        rows.append(f"| `{endpoint.name}` | {cell(endpoint.inputs, True)} | {cell(endpoint.outputs, main)} |")
    return "\n".join(rows) + "\n\n" + onnx_line(model.endpoints())


def onnx_line(endpoints) -> str:
    """Which endpoints ``zoo export --format onnx`` writes, and why the others have no ONNX file."""
    exported = [f"`{e.name}`" for e in endpoints if not e.onnx_refusal]
    by_reason = {}
    for e in endpoints:
        if e.onnx_refusal:
            by_reason.setdefault(e.onnx_refusal, []).append(f"`{e.name}`")
    refused = [f"{', '.join(names)} ({reason})" for reason, names in by_reason.items()]
    text = "ONNX (`zoo export NAME --format onnx`, for ONNX Runtime): " + (
        ", ".join(exported) if exported else "no endpoint")
    return text + (f"; not exported: {'; '.join(refused)}." if refused else ".")


def benchmark_results(name: str) -> dict | None:
    """The speed measurements of preset ``name`` that the benchmarks wrote to :data:`SPEED_FILE`."""
    if not SPEED_FILE.exists():
        return None
    return json.loads(SPEED_FILE.read_text()).get(name)


def _benchmarks_section(name) -> str:
    bench = benchmark_results(name)
    if not bench:
        return "Not measured yet: run the family's speed benchmark in benchmarks/."
    bench = dict(bench)
    scripts = ", ".join(f"`{script}`" for script in bench.pop("script").split(", "))
    rows = ["| measurement | value |", "|---|---|"] + [f"| {key} | {_fmt(value)} |" for key, value in sorted(bench.items())]
    return f"Measured by {scripts} (each side by side in one run).\n\n" + "\n".join(rows)


def _training_time(training) -> str:
    text = f"Training the shipped model took {training['train_seconds_final_model'] / 60:.1f} min"
    if training.get("train_seconds_latent_scan"):
        text += f" and the latent-size scan {training['train_seconds_latent_scan'] / 60:.1f} min"
    return text + (f" (epoch wall times, summed across resumes) on {training['machine']}, "
                   "sharing the machine with other training runs.")


def _recipe_name(recipe: dict) -> str:
    """The recipe as metadata.json names it: its Recipe class, or the function that trained the preset."""
    return recipe.get("class") or recipe.get("function") or "unknown"


def trained_card(metadata: dict, model, config: dict, figure_dir: str = "") -> str:
    """The markdown card of a registered preset trained by its recipe, from the folder's metadata.json.

    Args:
        metadata: the folder's metadata.json (``files`` included), with the records a recipe writes.
        model: the preset's model, constructed (its class and endpoints fill the card's tables).
        config: the constructor arguments config.json records.
        figure_dir: prefix of the figures' file names: ``""`` for the folder's README.md.
    """
    spec = registry.get_spec(metadata["name"])
    family = registry.get_family(spec.family)
    extra = family.card_sections(metadata) if family.card_sections else ""
    recipe = metadata["recipe"]
    training = metadata["training"]
    data = metadata["data"]
    missed = [t["metric"] for t in metadata.get("targets", []) if not t["met"]]
    status = (
        "All quality targets are met on held-out data."
        if not missed
        else f"**Quality targets missed:** {', '.join(missed)} (measured values below)."
    )
    io_rows = _endpoint_rows(model, spec)
    figure = f"{figure_dir}{FIGURE}"
    return f"""{_front_matter(spec, metadata, family.task or family.name)}
# {spec.name}

{spec.summary}

{status}

```python
import zoo
model = zoo.load("{spec.name}")
```

## Intended use

{family.intended_use}

## Architecture

`{type(model).__name__}` (`{family.module}`, family `{family.name}`), configuration of the shipped weights:

```json
{json.dumps(config, indent=2, sort_keys=True)}
```

{io_rows}

## Training data

Simulator `{data['simulator']}`, {data['n_train']} training samples (seed {data['train_seed']}), validation seed
{data['validation_seed']}. Evaluation: {data['n_evaluation']} samples from seed {data['evaluation_seed']}, which
training never used.

{_ranges_table(family, metadata)}

## Training procedure

Recipe `{_recipe_name(recipe)}`; hyperparameters:

```json
{json.dumps(recipe['hyperparameters'], indent=2, sort_keys=True)}
```

{training['epochs']} epochs, final training loss {_fmt(training['final_loss'])}, validation loss {_fmt(training.get('final_val_loss', '-'))}.
{_training_time(training)}

## Evaluation (held-out data)

{_targets_table(metadata)}

All metrics:

{_metrics_table(metadata)}
{extra}{_extra_sections(metadata)}
![evaluation]({figure})

## Speed

{_benchmarks_section(spec.name)}

## Limitations

{family.limitations} {"Targets missed above are open work." if missed else ""}

## Integrity

metadata.json records the sha256 of {", ".join(f"`{f}`" for f in sorted(metadata["files"]))}; `zoo.load` checks
every one before it builds the model and refuses a file that differs. metadata.json itself and this card are
not hashed: they are rendered from those files and the evaluation's outputs.

## Versions

{", ".join(f"{k} {v}" for k, v in metadata['versions'].items())}; zoo {metadata['zoo_version']}.

## Citation

{spec.paper}

```bibtex
{_bibtex(family)}
```
"""


def _registered(name) -> bool:
    return isinstance(name, str) and name in {spec.name for spec in registry.list_specs()}


def folder_card(metadata: dict, model, config: dict) -> str:
    """The README.md of a folder holding ``model``: the full card (:func:`trained_card`) when metadata.json
    holds the records a recipe writes for a registered preset, else the short card of a derived folder."""
    if _registered(metadata.get("name")) and all(key in metadata for key in TRAINED_RECORDS):
        return trained_card(metadata, model, config)
    return derived_card(metadata, model)


_LINK = re.compile(r"(\]\()([^)\s#]+)(\))")


def docs_copy(readme: str, folder) -> str:
    """The README.md of preset folder ``folder`` as model_cards/ holds it: every relative link to a file of the
    folder rebased onto model_cards/, the rest unchanged."""
    folder = Path(folder)

    def rebase(match):
        target = match.group(2)
        if "://" in target or target.startswith("/") or not (folder / target).is_file():
            return match.group(0)
        return match.group(1) + Path(os.path.relpath(folder / target, CARDS_DIR)).as_posix() + match.group(3)

    return _LINK.sub(rebase, readme)


def render_card(name: str, figure_dir: str | None = None) -> str:
    """The card of registered preset ``name``, rendered from its shipped folder's metadata.json.

    ``figure_dir=""`` gives the folder's README.md, whose figures are beside it; the default (None) gives
    the docs copy in model_cards/ (:func:`docs_copy`).
    """
    source = sources.locate(name)
    if source.folder is None or source.spec is None:
        raise folders.ArtifactError(f"{name!r} has no preset folder with metrics to render a card from.")
    metadata = folders.read_metadata(source.folder)
    config = folders.read_config(source.folder)["config"]
    model = folders.construct_model(source.folder, metadata=metadata)
    if figure_dir is not None:
        return trained_card(metadata, model, config, figure_dir)
    return docs_copy(trained_card(metadata, model, config), source.folder)


def card_path(name: str) -> Path:
    """The docs copy of preset ``name``'s card: model_cards/NAME.md in a checkout."""
    return CARDS_DIR / f"{registry.get_spec(name).name}.md"


def readme_path(name: str) -> Path:
    """The card of registered preset ``name`` as its shipped folder carries it: README.md."""
    return sources.preset_folder(name) / folders.README_FILE


def write_card(name: str) -> Path:
    """Render preset ``name``'s card into its folder's README.md and, in a checkout, into model_cards/ (for
    the zoo's own presets); return the README's path. Only the card changes: the files metadata.json hashes
    stay as they are."""
    folder = sources.preset_folder(name)
    readme = render_card(name, figure_dir="")
    folders.atomic_write_text(folder / folders.README_FILE, readme)
    if CARDS_DIR.is_dir() and folder.resolve().is_relative_to(registry.PRETRAINED_DIR):
        folders.atomic_write_text(card_path(name), docs_copy(readme, folder))
    return folder / folders.README_FILE
