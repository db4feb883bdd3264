"""The zoo command as a user runs it."""
import os
import subprocess
import sys
from pathlib import Path

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


def test_every_family_has_a_demo_and_an_unknown_one_says_which_exist(capsys):
    from training.recipes import DEMOS
    from zoo import registry

    assert sorted(DEMOS) == sorted(family.name for family in registry.list_families())
    assert main(["demo", "jet"]) == 2
    assert "The 'jet' family has no demo; families with one: ['calogan', 'classifiers'," in capsys.readouterr().err


def test_a_family_demo_measures_a_fresh_sample_and_draws_the_cards_figure(capsys, tmp_path):
    """One family's demo (each runs in under a minute on 2 cores: the others are timed by hand, not here)."""
    out = tmp_path / "siamese.png"
    assert main(["demo", "siamese", "--samples", "400", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "siamese-kepler: 400 fresh samples from seed 2026" in printed and "pair_accuracy = " in printed
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    with pytest.raises(ValueError, match=r"--preset ising-cnn is of the 'classifiers' family; expected one of"):
        main(["--debug", "demo", "siamese", "--preset", "ising-cnn"])


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
    assert zoo.list_models("jet") == ["jet-cnn-w-vs-qcd", "jet-maxout-w-vs-qcd"]  # a prefix of the family "jets"
    assert zoo.list_models("scinet-q") == ["scinet-qubit-1", "scinet-qubit-2"]
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


QUICK_COMMANDS = {  # answered from cached declarations and metadata: no framework is imported
    "info NAME": (["info", "jet-cnn-w-vs-qcd"], 0, "endpoint constituents:"),
    "info FOLDER": (["info", "zoo/pretrained/calogan-eplus"], 0, "endpoint generate:"),
    "cite NAME": (["cite", "realnvp-phi4-L8"], 0, "@software{physics_model_zoo"),
    "cite FOLDER": (["cite", "zoo/pretrained/ising-cnn"], 0, "Carrasquilla"),
    "list PREFIX": (["list", "jet"], 0, "jet-maxout-w-vs-qcd"),
    "typo": (["info", "scinet-pendulm"], 2, "Did you mean 'scinet-pendulum'"),
    "missing folder": (["info", "./no/such/folder"], 2, "is not a preset folder"),
}


@pytest.mark.parametrize("case", sorted(QUICK_COMMANDS))
def test_quick_commands_import_no_framework(case):
    """What a preset is, its citation, the list and a typo are answered without TensorFlow or Keras (under
    0.5 s on 2 cores: benchmarks/quick_commands.py measures it)."""
    argv, code, expected = QUICK_COMMANDS[case]
    script = (f"import sys; from zoo_cli import main; code = main({argv!r}); "
              "print('imported:', sorted(m for m in ('tensorflow', 'keras', 'jax') if m in sys.modules), code)")
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120,
                            cwd=Path(zoo.__file__).parents[1])
    assert result.stdout.strip().splitlines()[-1] == f"imported: [] {code}", result.stderr[-1000:]
    assert expected in result.stdout + result.stderr


def test_a_command_that_runs_a_model_prints_no_framework_logs_and_pure_json(tmp_path):
    """stderr holds the command's own lines, none of TensorFlow's start-up logging; stdout is the JSON alone."""
    import json

    from zoo_cli import FRAMEWORK_NOISE

    result = subprocess.run([sys.executable, "-m", "zoo", "evaluate", "scinet-pendulum", "--samples", "200"],
                            capture_output=True, text=True, timeout=600, cwd=tmp_path,
                            env={k: v for k, v in os.environ.items() if k not in ("TF_CPP_MIN_LOG_LEVEL", "ZOO_VERBOSE")})
    assert result.returncode == 0, result.stderr[-2000:]
    assert json.loads(result.stdout)["preset"] == "scinet-pendulum"
    noise = [line for line in result.stderr.splitlines()
             if FRAMEWORK_NOISE.match(line) or any(word in line for word in ("cuda", "CUDA", "oneDNN", "absl"))]
    assert noise == [] and "loading scinet-pendulum" in result.stderr


def test_what_a_library_writes_to_stdout_during_evaluate_goes_to_stderr():
    """FastJet prints its banner from C++ into file descriptor 1; zoo evaluate keeps stdout for the JSON."""
    script = ("import os, sys; from zoo_cli import _stdout_to_stderr\n"
              "with _stdout_to_stderr():\n    os.write(1, b'banner from C\\n'); print('from Python')\n"
              "print('{}')")
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
    assert result.stdout == "{}\n" and "banner from C" in result.stderr and "from Python" in result.stderr


def test_serve_says_what_folder_it_expected(tmp_path):
    from serving.server import check_export_folder

    preset = zoo.preset_folder("ising-cnn")
    with pytest.raises(ValueError, match="is a preset folder .* not an export; run `zoo export"):
        check_export_folder(preset)
    version = tmp_path / "m" / "3"
    version.mkdir(parents=True)
    (version / "saved_model.pb").write_bytes(b"")
    with pytest.raises(ValueError, match=f"one version of one model; .* here {tmp_path}"):
        check_export_folder(version)
    with pytest.raises(FileNotFoundError, match="is not a folder"):
        check_export_folder(tmp_path / "nothing")
    assert check_export_folder(tmp_path) is False
    assert check_export_folder(tmp_path / "m" / "3" / "..") is True  # holds no NAME/VERSION/saved_model.pb


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
    assert verdicts["d"] == "not defined on this sample (NaN)"
    near = compare_with_card(targets[:1], {"a": 1.1, "a_error": 0.1})[0]
    assert near["verdict"].startswith("missed, but within 2 statistical errors") and near["error"] == 0.1
    small = {row["metric"]: row["verdict"] for row in compare_with_card(targets, metrics, 500, 10000, {"a": "why"})}
    assert small["a"] == "not measured by zoo evaluate: why"
    assert small["b"] == ("missed on 500 samples, by more than 2 statistical errors: the card measured it on 10000 "
                          "samples (--samples 10000)"), "a small sample's own error estimate may be off"
    assert small["c"] == ("missed on 500 samples, with no statistical error to judge it by: the card measured it on "
                          "10000 samples (--samples 10000)")
    assert small["d"] == "not measurable on 500 samples: the card measured it on 10000 samples (--samples 10000)"


def test_a_missing_extra_is_one_line_naming_its_install(monkeypatch, capsys):
    """Without the jets extra, generating jets says which pip install brings Pythia 8 and FastJet."""
    from training.simulators import jets
    from zoo.extras import MissingExtraError

    monkeypatch.setitem(sys.modules, "fastjet", None)  # as if not installed
    with pytest.raises(MissingExtraError, match=r"needs the Python package 'fastjet', which is not installed; "
                                                r"install it with: pip install 'physics-model-zoo\[jets\]'"):
        jets.JetMaker("w", 1, jets.JetSelection())
    monkeypatch.setattr("zoo_cli._cmd_cite", lambda args: jets.JetMaker("w", 1, jets.JetSelection()))
    assert main(["cite", "ising-cnn"]) == 2  # the CLI's one line for it, with no traceback
    assert capsys.readouterr().err.strip() == ("zoo cite: error: Generating jets (Pythia 8 events clustered with "
                                               "FastJet) needs the Python package 'fastjet', which is not installed; "
                                               "install it with: pip install 'physics-model-zoo[jets]'")
