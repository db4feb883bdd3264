"""The README's Python blocks are executable documentation: each runs as written in a fresh process.

A block preceded by ``<!-- readme-test: skip (reason) -->`` needs something these machines cannot give
(the Hub, a running server); every other block must run without error, in a fresh folder (what it
writes, such as runs/, stays out of the repository) with the repository on the import path.
"""
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
