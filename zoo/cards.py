"""Model cards rendered from metadata.json: every number in a card comes from evaluation code.

The card has Hugging Face metadata (library_name, tags, license, model-index
with the measured metrics) so that it can be published as the repo's README.
"""
from __future__ import annotations

import json
from pathlib import Path

import zoo
from zoo import artifacts

CARDS_DIR = Path(__file__).resolve().parents[1] / "model_cards"

INTENDED_USE = {
    "scinet": (
        "Reproducing and extending the SciNet experiments of Iten et al.: reading physical parameters "
        "off the latent neurons, predicting the system's behaviour, and fine-tuning on related systems. "
        "The models are trained on idealised, noise-free (or lightly noised) simulations in the parameter "
        "ranges below; outside those ranges predictions are extrapolations."
    ),
    "classifiers": (
        "Locating the ordered-disordered transition of 2D square-lattice Ising-type spin models from snapshots, "
        "as Carrasquilla & Melko did: run the classifier on configurations at several temperatures and lattice "
        "sizes, find where its mean output crosses 1/2 and extrapolate in 1/L. Also a pretrained starting point "
        "for fine-tuning on related models (other couplings, dilution, other lattices with a square embedding)."
    ),
    "rbm": (
        "A generative model of 8 x 8 Ising configurations at one temperature, as in Torlai & Melko: draw new "
        "configurations with `sample(n, gibbs_steps)`, score configurations with the free energy, compare "
        "thermodynamic observables with Monte Carlo, or start from these weights to study how RBMs represent "
        "critical fluctuations. The observables of all RBM presets against T, next to Monte Carlo, are drawn "
        "from their metadata by `make cards` into model_cards/rbm-ising-L8-observables.png."
    ),
    "siamese": (
        "Reproducing the siamese-network experiments of Wetzel et al.: deciding whether two points are related "
        "by a symmetry (Lorentz transformations) or lie on the same trajectory (Kepler orbits), and reading "
        "the invariant or conserved quantity off the embedding `model.embed(x)` with the polynomial read-out of "
        "`training.evaluation.readout`. Inputs should come from the parameter ranges below."
    ),
}

LIMITATIONS = {
    "scinet": (
        "Trained on simulations of idealised systems; no measurement noise beyond what the simulator documents. "
        "The latent interpretation (which latent carries which parameter) holds up to invertible smooth maps, "
        "as the fits above quantify."
    ),
    "classifiers": (
        "Trained on the ferromagnetic, zero-field, nearest-neighbour Ising model on L = 32 with J = 1; labels come "
        "from the exact T_c, so the network learns that model's transition and nothing else. Other lattice sizes "
        "work (global pooling) but shift the crossing, as finite-size scaling predicts. Configurations must be "
        "square and periodic; open boundaries are not what it was trained on. The finite-size extrapolation of "
        "T_c from this one network is biased: trained at L = 32, its crossing barely moves between L = 32 and 64, "
        "so the 1/L fit is driven by L = 16 and lands below the exact T_c by the distance the table shows; "
        "Carrasquilla & Melko trained one network per lattice size."
    ),
    "rbm": (
        "One machine per temperature and lattice size (L = 8, periodic, J = 1, zero field); it does not "
        "interpolate in temperature. Samples come from block Gibbs chains, which mix slowly between the two "
        "magnetised states at low temperature; fluctuation observables (specific heat, susceptibility) are "
        "harder to reproduce than means, especially near T_c, as the table above shows. AIS gives a stochastic "
        "lower bound on log Z, so the reported log-likelihood can be optimistic if the chains do not mix."
    ),
    "siamese": (
        "The embedding is a monotonic function of the invariant only on the training distribution: outside "
        "the parameter ranges below (larger boosts, unbound or other-energy orbits, fields with another "
        "E^2 - B^2) it is an extrapolation. Each preset learns the one invariant that decides in its data set "
        "(the Kepler presets fix E or L_z, the field preset fixes E^2 - B^2); pairs whose invariants differ by "
        "less than the network's resolution are misclassified, which bounds the pair accuracy."
    ),
}


def _fmt(value) -> str:
    if isinstance(value, bool) or value is None:
        return str(value)
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def _front_matter(spec, metadata) -> str:
    metrics = metadata.get("metrics", {})
    results = "\n".join(
        f"      - type: {key}\n        name: {key}\n        value: {float(value):.6g}"
        for key, value in sorted(metrics.items())
    )
    return (
        "---\n"
        "library_name: keras\n"
        "license: apache-2.0\n"
        f"tags:\n  - physics\n  - physics-model-zoo\n  - {spec.family}\n"
        "model-index:\n"
        f"  - name: {spec.name}\n"
        "    results:\n"
        f"      - task:\n          type: {spec.family}\n          name: {spec.summary.split(':')[0]}\n"
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


def _scan_table(metadata) -> str:
    scan = metadata.get("latent_scan") or {}
    if not scan:
        return ""
    epochs = metadata["recipe"]["hyperparameters"].get("scan_epochs")
    n = metadata["recipe"]["hyperparameters"].get("scan_n_train")
    rows = [
        f"\n### Latent-size scan\n\nEach scan point is a fresh model trained for {epochs} epochs on {n} samples "
        f"(shorter than the shipped preset); error on the held-out set. The knee is the size k whose latent gives the "
        f"largest relative improvement, err(k-1)/err(k); at the knee the error is "
        f"{metadata['metrics'].get('latent_scan_knee_error_over_floor', float('nan')):.3g} times the smallest error of the scan. Knee: **{metadata['metrics'].get('latent_scan_knee')}**.\n",
        "| latents | held-out RMS error |",
        "|---|---|",
    ]
    rows += [f"| {k} | {_fmt(v)} |" for k, v in sorted(scan.items(), key=lambda kv: int(kv[0]))]
    return "\n".join(rows) + "\n"


def _benchmarks_section(metadata) -> str:
    bench = metadata.get("benchmarks")
    if not bench:
        return "Not measured yet: run `python benchmarks/scinet_speed.py`."
    bench = dict(bench)
    script = bench.pop("script", "benchmarks/scinet_speed.py")
    rows = ["| measurement | value |", "|---|---|"] + [f"| {key} | {_fmt(value)} |" for key, value in sorted(bench.items())]
    return f"Measured by `{script}` (side by side in one run).\n\n" + "\n".join(rows)


def _training_time(training) -> str:
    text = f"Training the shipped model took {training['train_seconds_final_model'] / 60:.1f} min"
    if training.get("train_seconds_latent_scan"):
        text += f" and the latent-size scan {training['train_seconds_latent_scan'] / 60:.1f} min"
    return text + (f" (epoch wall times, summed across resumes) on {training['machine']}, "
                   "sharing the machine with other training runs.")


def render_card(name: str, figure_dir: str | None = None) -> str:
    """The markdown card of preset ``name`` from its shipped metadata.json.

    ``figure_dir`` is where the card finds the preset's figures: by default
    the preset folder seen from model_cards/; ``""`` beside the card (Hub repo).
    """
    spec = zoo.get_spec(name)
    metadata = artifacts.read_json(zoo.preset_folder(name) / artifacts.METADATA_FILE)
    shipped_config = artifacts.read_json(zoo.preset_folder(name) / artifacts.CONFIG_FILE)
    recipe = metadata["recipe"]
    training = metadata["training"]
    data = metadata["data"]
    missed = [t["metric"] for t in metadata.get("targets", []) if not t["met"]]
    status = (
        "All quality targets are met on held-out data."
        if not missed
        else f"**Quality targets missed:** {', '.join(missed)} (measured values below)."
    )
    io_rows = "\n".join(f"- input `{t.name}` {t.shape}: {t.description}" for t in spec.inputs)
    io_rows += "\n" + "\n".join(f"- output `{t.name}` {t.shape}: {t.description}" for t in spec.outputs)
    figure_dir = f"../zoo/pretrained/{spec.name}/" if figure_dir is None else figure_dir
    figure = f"{figure_dir}evaluation.png"
    return f"""{_front_matter(spec, metadata)}
# {spec.name}

{spec.summary}

{status}

```python
import zoo
model = zoo.load("{spec.name}")
```

## Intended use

{INTENDED_USE.get(spec.family, '')}

## Architecture

`{spec.model_class.__name__}` (`zoo.models.{spec.family}`), configuration of the shipped weights:

```json
{json.dumps(shipped_config["config"], indent=2, sort_keys=True)}
```

{io_rows}

## Training data

Simulator `{data['simulator']}`, options `{json.dumps(data['options'])}`, {data['n_train']} training samples
(seed {data['train_seed']}), validation seed {data['validation_seed']}. Evaluation: {data['n_evaluation']} samples
from seed {data['evaluation_seed']}, which training never used. Parameter ranges:
`{json.dumps(data.get('parameter_ranges', 'see the simulator module'))}`.

## Training procedure

Recipe `{recipe['function']}`; hyperparameters:

```json
{json.dumps(recipe['hyperparameters'], indent=2, sort_keys=True)}
```

{training['epochs']} epochs, final training loss {_fmt(training['final_loss'])}, validation loss {_fmt(training.get('final_val_loss', '-'))}.
{_training_time(training)}

## Evaluation (held-out data)

{_targets_table(metadata)}

All metrics:

{_metrics_table(metadata)}
{_scan_table(metadata)}{_extra_sections(metadata)}
![evaluation]({figure})

## Speed

{_benchmarks_section(metadata)}

## Limitations

{LIMITATIONS.get(spec.family, "")} {"Targets missed above are open work." if missed else ""}

## Versions

{", ".join(f"{k} {v}" for k, v in metadata['versions'].items())}; zoo {metadata['zoo_version']}.

## Citation

{spec.paper}
"""


def card_path(name: str) -> Path:
    return CARDS_DIR / f"{zoo.get_spec(name).name}.md"


def write_card(name: str) -> Path:
    path = card_path(name)
    artifacts.atomic_write_text(path, render_card(name))
    return path
