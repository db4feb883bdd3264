"""The wheel, installed as a user installs it (not editable, the checkout off the import path), ships every
preset folder with its card and the zoo's package data: load, card, `zoo info` and `zoo export` work from it."""
import json
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
PACKAGES = ("zoo", "zoo_cli", "training", "serving")
BUILD_FILES = ("setup.cfg", "pyproject.toml", "README.md")
PRESET = "ising-cnn"


def _copy_sources(destination: Path) -> Path:
    """What the build reads, copied, so that building writes no build/ or egg-info into the checkout."""
    for name in BUILD_FILES:
        shutil.copy2(REPO / name, destination / name)
    for package in PACKAGES:
        shutil.copytree(REPO / package, destination / package, ignore=shutil.ignore_patterns("__pycache__", ".*"))
    return destination


def _run(args, cwd, env=None, timeout=300) -> str:
    result = subprocess.run(args, check=False, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    assert result.returncode == 0, f"{' '.join(map(str, args))} failed:\n{result.stdout[-2000:]}\n{result.stderr[-3000:]}"
    return result.stdout


@pytest.fixture(scope="module")
def installed(tmp_path_factory):
    """(the wheel, the folder it is installed in, an environment whose imports find the installed copy)."""
    root = tmp_path_factory.mktemp("wheel")
    (root / "src").mkdir()
    source = _copy_sources(root / "src")
    _run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "--no-index", "-q",
          str(source), "-w", str(root / "dist")], cwd=root)
    wheel = next((root / "dist").glob("physics_model_zoo-*.whl"))
    site = root / "site"
    _run([sys.executable, "-m", "pip", "install", "--no-deps", "--no-index", "-q", "--target", str(site), str(wheel)],
         cwd=root)
    # the installed copy comes first on the import path; the project venv's editable finder comes after every
    # path entry, so it is never asked for zoo; the working folder is an empty one, not the checkout
    env = dict(os.environ, PYTHONPATH=str(site), HF_HUB_OFFLINE="1", TF_CPP_MIN_LOG_LEVEL="2")
    (root / "work").mkdir()
    return wheel, site, env, root / "work"


def test_the_wheel_holds_every_preset_folder_with_its_card_and_the_package_data(installed):
    wheel, *_ = installed
    names = set(zipfile.ZipFile(wheel).namelist())
    for json_file in ("presets_index.json", "presets_info.json", "presets_speed.json"):
        assert f"zoo/{json_file}" in names
    presets = [p.name for p in (REPO / "zoo" / "pretrained").iterdir() if (p / "metadata.json").is_file()]
    assert presets
    for preset in presets:
        shipped = {p.name for p in (REPO / "zoo" / "pretrained" / preset).iterdir() if p.is_file()}
        assert {"config.json", "model.weights.h5", "metadata.json", "README.md", "evaluation.png"} <= shipped
        missing = {f"zoo/pretrained/{preset}/{f}" for f in shipped} - names
        assert not missing, f"the wheel lacks {sorted(missing)}"


def test_the_installed_zoo_loads_a_preset_with_its_card(installed):
    _, site, env, work = installed
    script = f"""
import json, zoo
from zoo import cards
model = zoo.load({PRESET!r})
card = model.preset.card
print(json.dumps({{"zoo": zoo.__file__, "card": str(card) if card else None,
                  "title": card.read_text().split("\\n# ", 1)[1].split("\\n", 1)[0] if card else None,
                  "rendered": card is not None and card.read_text() == cards.render_card({PRESET!r}, figure_dir="")}}))
"""
    report = json.loads(_run([sys.executable, "-c", script], cwd=work, env=env).strip().splitlines()[-1])
    assert Path(report["zoo"]).is_relative_to(site), f"imported zoo from {report['zoo']}, not the installed wheel"
    assert report["card"] == str(site / "zoo" / "pretrained" / PRESET / "README.md") and report["title"] == PRESET
    assert report["rendered"], "the installed zoo renders a different card (package data missing?)"


def test_zoo_info_names_the_installed_folder_and_its_card(installed):
    _, site, env, work = installed
    info = _run([sys.executable, "-m", "zoo", "info", PRESET], cwd=work, env=env)
    folder = site / "zoo" / "pretrained" / PRESET
    assert f"folder: {folder}\n" in info, info
    assert f"card: {folder / 'README.md'}\n" in info, (
        f"`zoo info` does not name the folder's card; expected a line 'card: {folder / 'README.md'}' in:\n{info}")


def test_zoo_export_from_the_installed_wheel(installed):
    _, _, env, work = installed
    out = work / "export"
    _run([sys.executable, "-m", "zoo", "export", PRESET, "--out", str(out), "--quiet"], cwd=work, env=env)
    assert (out / PRESET / "1" / "saved_model.pb").is_file() and (out / "models.config").is_file()
