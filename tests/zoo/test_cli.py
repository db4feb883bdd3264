"""The zoo command as a user runs it."""
import subprocess
import sys

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
