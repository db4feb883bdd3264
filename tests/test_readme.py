"""The README's Python blocks are executable documentation: each runs as written in a fresh process.

A block preceded by ``<!-- readme-test: skip (reason) -->`` needs something these machines cannot give
(the Hub, a running server); every other block must run without error, in a fresh folder (what it
writes, such as runs/, stays out of the repository) with the repository on the import path.
"""
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
BLOCK = re.compile(r"(<!-- readme-test: skip \(([^)]*)\) -->\n)?```python\n(.*?)```", re.S)


def python_blocks():
    text = (REPO / "README.md").read_text()
    for match in BLOCK.finditer(text):
        line = text[: match.start()].count("\n") + 1
        yield pytest.param(match.group(3), match.group(2), id=f"README.md:{line}")


@pytest.mark.parametrize("code, skip_reason", python_blocks())
def test_readme_python_block_runs(code, skip_reason, tmp_path):
    if skip_reason:
        pytest.skip(skip_reason)
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")])))
    result = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env=env, capture_output=True, text=True,
                            timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]


def test_the_preset_table_has_no_blank_line_inside():
    text = (REPO / "README.md").read_text()
    table = text[text.index("| preset | what it learns | card |"):]
    table = table[: table.index("\n\n")]
    assert all(zoo_name in table for zoo_name in ("scinet-pendulum", "ising-cnn", "rbm-ising-L8", "siamese-em-field"))


# ----------------------------------------------------------------------------- shell commands

SHELL_BLOCK = re.compile(r"```bash\n(.*?)```", re.S)


def shell_commands(containing: str) -> list:
    """The commands (continuation lines joined, comments and [--optional] arguments dropped) of the README's
    bash block that contains ``containing``, with .venv/bin/ pointing at this interpreter's folder."""
    text = (REPO / "README.md").read_text()
    block = next(b for b in SHELL_BLOCK.findall(text) if containing in b)
    commands = []
    for line in block.replace("\\\n", " ").splitlines():
        line = re.sub(r"\s+#.*$", "", re.sub(r"\[--[^\]]*\]", "", line)).strip()
        if line:
            commands.append(line.replace(".venv/bin/", str(Path(sys.executable).parent) + "/"))
    return commands


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_readme_serving_commands_run_as_written(tmp_path):
    """Export, inspect, serve, then every curl of the serving section against the served model (no network:
    the server listens on a free port of 127.0.0.1)."""
    import shutil
    import time

    if shutil.which("curl") is None:
        pytest.skip("curl is not installed")
    export, inspect, serve = shell_commands("zoo serve models")
    port = str(free_port())
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")])))
    for command in (export, inspect):
        result = subprocess.run(command, shell=True, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)
        assert result.returncode == 0, f"{command}\n{result.stderr[-2000:]}"
    server = subprocess.Popen(serve.replace("8501", port), shell=True, cwd=tmp_path, env=env,
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True)
    try:
        deadline = time.monotonic() + 120
        while subprocess.run(["curl", "-sf", f"http://127.0.0.1:{port}/v1/models/scinet-heliocentric"],
                             capture_output=True).returncode != 0:
            assert server.poll() is None, server.stderr.read().decode()[-2000:]
            assert time.monotonic() < deadline, "the server did not answer within 120 s"
            time.sleep(0.5)
        for command in shell_commands("curl http://127.0.0.1:8501"):
            result = subprocess.run(command.replace("8501", port).replace("curl ", "curl -sf ", 1), shell=True,
                                    capture_output=True, text=True, timeout=60)
            assert result.returncode == 0 and result.stdout.strip().startswith("{"), f"{command}\n{result.stdout}"
    finally:
        import signal

        os.killpg(server.pid, signal.SIGTERM)
        server.wait(timeout=30)


def test_the_distillers_residuals_in_the_readme_are_its_cards():
    """The README quotes the distiller's basis-change residuals in prose; they are the shipped card's numbers."""
    metrics = json.loads((REPO / "zoo" / "pretrained" / "distiller-schrodinger-k2" / "metadata.json").read_text())["metrics"]
    exact, euler = metrics["basis_change_residual/density_exact"], metrics["basis_change_residual/euler"]
    assert f"{exact:.1%} against its exact rule, {euler:.0%} against the Euler rule" in (REPO / "README.md").read_text()
