"""The zoo command as a user runs it."""
import subprocess
import sys

import numpy as np
import pytest

import zoo
from zoo_cli import main


def test_list_shows_every_preset(capsys):
    assert main(["list"]) == 0
    out = capsys.readouterr().out
    assert all(name in out for name in zoo.list_models())


def test_info_shows_contract_and_measured_quality(capsys):
    assert main(["info", "scinet-heliocentric"]) == 0
    out = capsys.readouterr().out
    assert "initial_angles (None, 2)" in out and "angles (None, 50, 2)" in out


def test_unknown_name_is_a_clear_error_not_a_traceback(capsys):
    assert main(["info", "scinet-helio"]) == 2
    err = capsys.readouterr().err
    assert "Unknown preset 'scinet-helio'" in err and "scinet-heliocentric" in err


def test_python_dash_m_zoo_help():
    result = subprocess.run([sys.executable, "-m", "zoo", "--help"], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0
    for command in ("list", "info", "train", "evaluate", "demo"):
        assert command in result.stdout


def test_demo_prints_error_and_writes_figure(tmp_path, capsys):
    if not zoo.has_weights("scinet-heliocentric"):
        pytest.skip("scinet-heliocentric is not shipped yet")
    out_file = tmp_path / "year.png"
    assert main(["demo", "--samples", "200", "--out", str(out_file)]) == 0
    out = capsys.readouterr().out
    assert "RMS angle error" in out and out_file.read_bytes()[:4] == b"\x89PNG"


def test_evaluate_measures_a_shipped_preset(capsys, tmp_path):
    if not zoo.has_weights("scinet-pendulum"):
        pytest.skip("scinet-pendulum is not shipped yet")
    plot = tmp_path / "p.png"
    assert main(["evaluate", "scinet-pendulum", "--samples", "300", "--plot", str(plot)]) == 0
    assert '"rms_error"' in capsys.readouterr().out and plot.exists()


def test_info_lists_every_declared_endpoint(capsys):
    assert main(["info", "rbm-ising-L8-T2.27"]) == 0
    out = capsys.readouterr().out
    assert "endpoint serving_default" in out and "endpoint sample" in out and "output samples (None, 8, 8)" in out


def test_commands_take_preset_folders(capsys, tmp_path):
    """A fine-tuned folder is first-class: info, evaluate and export take its path."""
    folder = str(zoo.preset_folder("scinet-pendulum"))
    assert main(["info", folder]) == 0
    assert "endpoint encode" in capsys.readouterr().out
    assert main(["evaluate", folder, "--samples", "200"]) == 0
    assert '"rms_error"' in capsys.readouterr().out
    assert main(["export", folder, "--out", str(tmp_path / "models")]) == 0
    assert (tmp_path / "models" / "scinet-pendulum" / "1" / "saved_model.pb").exists()


def test_a_missing_folder_is_not_called_an_unknown_preset(capsys, tmp_path):
    assert main(["info", str(tmp_path / "nowhere")]) == 2
    err = capsys.readouterr().err
    assert "is not a preset folder: it does not exist" in err and "Unknown preset" not in err


def test_evaluate_prints_strict_json(capsys):
    import json

    assert main(["evaluate", "ising-cnn", "--samples", "40"]) == 0
    out = capsys.readouterr().out
    report = json.loads(out[: out.rindex("}") + 1], parse_constant=lambda c: pytest.fail(f"{c} is not JSON"))
    assert report["preset"] == "ising-cnn" and "accuracy_far_from_tc" in report["metrics"]


def test_a_family_without_a_demo_says_which_have_one(capsys):
    assert main(["demo", "rbm"]) == 2
    assert "The 'rbm' family has no demo; families with one: ['scinet']" in capsys.readouterr().err


@pytest.mark.parametrize("argv, message", [
    (["evaluate", "scinet-pendulum", "--samples", "0"], None),                 # argparse: expected a positive integer
    (["finetune", "scinet-pendulum", "--data", "missing.npz", "--out", "r"], "--data missing.npz does not exist"),
    (["serve", "/nonexistent"], "/nonexistent is not a folder"),
])
def test_ordinary_mistakes_get_one_line_and_a_nonzero_exit(argv, message, capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    try:
        code = main(argv)
    except SystemExit as e:  # argparse's own usage error
        code = e.code
    err = capsys.readouterr().err
    assert code == 2 and "Traceback" not in err
    if message:
        assert message in err and len(err.strip().splitlines()) == 1, err


def test_export_to_a_file_says_so(capsys, tmp_path):
    (tmp_path / "some-file").write_text("x")
    assert main(["export", "scinet-pendulum", "--out", str(tmp_path / "some-file")]) == 2
    assert "is a file; give a folder" in capsys.readouterr().err


def test_debug_shows_the_traceback(tmp_path):
    with pytest.raises(FileNotFoundError):
        main(["--debug", "finetune", "scinet-pendulum", "--data", str(tmp_path / "missing.npz"), "--out", str(tmp_path / "r")])


def test_list_filters_by_name_or_family(capsys):
    assert main(["list", "rbm"]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) == 5 and all(line.startswith("rbm-ising-L8-T") for line in lines)
    assert zoo.list_models("*kepler*") == ["siamese-kepler", "siamese-kepler-energy"]
    assert main(["list", "nothing-like-this"]) == 2


def test_version(capsys):
    with pytest.raises(SystemExit) as e:
        main(["--version"])
    assert e.value.code == 0 and zoo.__version__ in capsys.readouterr().out


def test_channel_axes_on_lattices_are_named():
    model = zoo.load("ising-cnn")
    with pytest.raises(ValueError, match="Drop the channel axis"):
        model.predict(np.ones((2, 16, 16, 1)))


def test_the_list_index_matches_the_registry():
    """zoo/presets_index.json lets `zoo list` skip TensorFlow; `zoo card` rewrites it."""
    import json

    from zoo import registry

    assert json.loads(registry.INDEX_FILE.read_text()) == registry.index_rows(), "run `zoo card` to rewrite the index"
    assert json.loads(registry.INFO_FILE.read_text()) == json.loads(json.dumps(registry.info_records())), (
        "run `zoo card` to rewrite zoo/presets_info.json")


def test_zoo_info_of_a_registered_preset_does_not_import_tensorflow():
    script = ("import sys; from zoo_cli import main; main(['info', 'jet-cnn-w-vs-qcd']); "
              "print('tensorflow' in sys.modules)")
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0 and result.stdout.strip().endswith("False"), result.stderr[-1000:]
    assert "endpoint constituents:" in result.stdout and "rejection_ratio_vs_mass_tau21" in result.stdout


def test_zoo_list_does_not_import_tensorflow():
    script = "import sys; from zoo_cli import main; main(['list']); print('tensorflow' in sys.modules)"
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0 and result.stdout.strip().endswith("False"), result.stderr[-1000:]


def test_cite_prints_the_paper_and_the_zoo(capsys):
    assert main(["cite", "rbm-ising-L8-T2.27"]) == 0
    out = capsys.readouterr().out
    assert "@article{torlai2016learning" in out and "doi = {10.1103/PhysRevB.94.165134}" in out
    assert "@software{physics_model_zoo" in out and zoo.__version__ in out


def test_evaluate_says_what_it_is_doing_unless_quiet(capsys):
    assert main(["evaluate", "scinet-pendulum", "--samples", "100"]) == 0
    err = capsys.readouterr().err
    assert "simulating 100 samples from seed" in err and "done in" in err
    assert main(["evaluate", "scinet-pendulum", "--samples", "100", "--quiet"]) == 0
    assert capsys.readouterr().err == ""


def test_evaluate_compares_each_metric_with_the_card_target_and_its_error():
    from zoo_cli import compare_with_card

    targets = [{"metric": "a", "comparison": ">=", "target": 1.2, "measured": 1.4, "met": True},
               {"metric": "b", "comparison": ">=", "target": 1.2, "measured": 1.3, "met": True},
               {"metric": "c", "comparison": "<=", "target": 0.01, "measured": 0.005, "met": True},
               {"metric": "d", "comparison": ">=", "target": 0.5, "measured": 0.6, "met": True}]
    metrics = {"a": 1.3, "a_error": 0.1, "b": 1.0, "b_error": 0.05, "c": 0.02, "d": float("nan")}
    verdicts = {row["metric"]: row["verdict"] for row in compare_with_card(targets, metrics)}
    assert verdicts["a"] == "met"
    assert verdicts["b"] == "MISSED", "1.0 + 2 x 0.05 < 1.2: a clear miss"
    assert verdicts["c"] == "MISSED", "no error estimate: a miss is a miss"
    assert verdicts["d"] == "not measured on this sample"
    near = compare_with_card(targets[:1], {"a": 1.1, "a_error": 0.1})[0]
    assert near["verdict"].startswith("missed, but within 2 statistical errors") and near["error"] == 0.1
