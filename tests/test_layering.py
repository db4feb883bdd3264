"""The layers of DESIGN.md: zoo imports neither training nor serving, and the generic code names no family.

Checked on the source, so that a new import or a new family-specific branch fails here before it spreads.
"""
import ast
import re
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
FAMILY_WORDS = re.compile(r"(?<![a-z])(scinet|siamese|rbm|classifiers?|ising|calogan|jets?|flows?|realnvp|translator)(?![a-z])")
GENERIC = sorted(
    [p for p in (REPO / "zoo").glob("*.py") if p.name not in ("registry.py", "__main__.py")]
    + list((REPO / "serving").glob("*.py"))
    + [REPO / "training" / name for name in ("loop.py", "distribute.py", "finetune.py")]
    + list((REPO / "zoo_cli").glob("*.py"))
)


def imported_modules(path):
    tree = ast.parse(path.read_text())
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            yield node.module


def code_strings_and_names(path):
    """Identifiers and string constants of the code, docstrings left out."""
    tree = ast.parse(path.read_text())
    docstrings = {id(node.body[0].value) for node in ast.walk(tree)
                  if isinstance(node, (ast.Module, ast.FunctionDef, ast.ClassDef, ast.AsyncFunctionDef))
                  and node.body and isinstance(node.body[0], ast.Expr) and isinstance(node.body[0].value, ast.Constant)}
    for node in ast.walk(tree):
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in docstrings:
            yield node.value
        elif isinstance(node, ast.Name):
            yield node.id
        elif isinstance(node, ast.Attribute):
            yield node.attr


@pytest.mark.parametrize("path", sorted((REPO / "zoo").rglob("*.py")), ids=lambda p: str(p.relative_to(REPO)))
def test_zoo_imports_neither_training_nor_serving(path):
    if path.name == "__main__.py":  # `python -m zoo` hands over to the command line, which sits above all three
        return
    bad = [m for m in imported_modules(path) if m.split(".")[0] in ("training", "serving", "zoo_cli")]
    assert not bad, f"{path.relative_to(REPO)} imports {bad}"


@pytest.mark.parametrize("path", GENERIC, ids=lambda p: str(p.relative_to(REPO)))
def test_generic_code_names_no_family_and_probes_no_model(path):
    words = [w for w in code_strings_and_names(path) if FAMILY_WORDS.search(w.lower())]
    assert not words, f"{path.relative_to(REPO)} names families: {sorted(set(words))}"
    tree = ast.parse(path.read_text())
    probes = [ast.unparse(node) for node in ast.walk(tree)
              if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in ("hasattr", "getattr")
              and node.args and "model" in ast.unparse(node.args[0]).lower()]
    assert not probes, f"{path.relative_to(REPO)} probes models: {probes}"
