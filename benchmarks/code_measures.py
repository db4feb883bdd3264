"""Measures of the code itself, comparable between any two revisions of the repository.

    python benchmarks/code_measures.py [DIR] [--out PATH]

DIR is a checkout of any revision (default: this repository's root), e.g. a ``git worktree`` of an
old commit, so that "before" and "after" are measured by the same script:

- lines of training/recipes/*.py, per file and in total (as ``wc -l`` counts them);
- duplicated runs: maximal runs of at least ``MIN_RUN`` identical consecutive lines that two
  different files of training/recipes/*.py share. Lines are compared with their indentation
  stripped; blank lines, comment lines, lines of brackets only and the lines of import statements
  are skipped (a run goes on across them);
- import cycles among the project's modules (zoo/, serving/, training/, zoo_cli/): the strongly
  connected components of more than one module in the graph of every import statement, those
  inside functions included. ``import zoo.spec`` is an edge to zoo.spec, ``import zoo`` and
  ``from zoo import load`` an edge to the package (zoo/__init__.py), ``from zoo import spec`` an
  edge to zoo.spec. Dynamic imports (importlib) are not seen;
- string literals (docstrings included) in zoo/ and serving/ that name training.recipes or
  training.simulators (dotted or as a path): the serving side naming the training side;
- mentions of tracker issues by number (``ISSUE``) in the .py files of the code, tests and benchmarks.

The table is printed; the numbers, with DIR's commit (and whether its tree had uncommitted changes)
and the date, go to PATH (default: benchmarks/results/code_measures.json of this repository; give
another PATH when measuring an old revision, so that the current numbers stay).
"""
from __future__ import annotations

import argparse
import ast
import datetime
import json
import re
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from tests.test_layering import import_cycles as cycles_of
from tests.test_layering import import_graph

REPO = Path(__file__).resolve().parent.parent
RESULTS = REPO / "benchmarks" / "results" / "code_measures.json"
MIN_RUN = 6
PACKAGES = ("zoo", "serving", "training", "zoo_cli")
SERVING_SIDE = ("zoo", "serving")
TRAINING_NAME = re.compile(r"training[./](recipes|simulators)")
ISSUE = re.compile(r"issue[ _-]?\d+", re.IGNORECASE)
ISSUE_FOLDERS = ("zoo", "serving", "training", "zoo_cli", "tests", "benchmarks")
BRACKETS_ONLY = re.compile(r"[()\[\]{},]+")


def python_files(root: Path, folders) -> list:
    """The .py files under ``folders`` of ``root``, sorted, caches left out."""
    files = [p for folder in folders for p in (root / folder).rglob("*.py") if "__pycache__" not in p.parts]
    return sorted(files)


def relative(path: Path, root: Path) -> str:
    return path.relative_to(root).as_posix()


# ---------------------------------------------------------------------------- lines of the recipes

def recipe_files(root: Path) -> list:
    return sorted((root / "training" / "recipes").glob("*.py"))


def recipe_lines(root: Path) -> dict:
    """{"total": n, "files": {path: n}}, n counted as ``wc -l`` does (newline characters)."""
    files = {relative(p, root): p.read_bytes().count(b"\n") for p in recipe_files(root)}
    return {"total": sum(files.values()), "files": files}


# ---------------------------------------------------------------------------- duplicated runs

def import_lines(tree: ast.AST) -> set:
    """Line numbers covered by import statements (a parenthesised import spans several)."""
    return {line for node in ast.walk(tree) if isinstance(node, (ast.Import, ast.ImportFrom))
            for line in range(node.lineno, node.end_lineno + 1)}


def significant_lines(path: Path) -> list:
    """[(line number, stripped text)] of the lines that count for duplication."""
    text = path.read_text()
    skipped = import_lines(ast.parse(text))
    lines = []
    for number, line in enumerate(text.splitlines(), start=1):
        stripped = line.strip()
        if (not stripped or stripped.startswith("#") or BRACKETS_ONLY.fullmatch(stripped)
                or number in skipped):
            continue
        lines.append((number, stripped))
    return lines


def shared_runs(a: list, b: list, min_run: int = MIN_RUN) -> list:
    """Maximal runs of at least ``min_run`` equal consecutive entries of two significant-line lists,
    as (start in a, start in b, length) in list positions."""
    positions = {}
    for j, (_, text) in enumerate(b):
        positions.setdefault(text, []).append(j)
    runs = []
    for i, (_, text) in enumerate(a):
        for j in positions.get(text, ()):
            if i and j and a[i - 1][1] == b[j - 1][1]:
                continue  # not the start of a maximal run
            length = 1
            while i + length < len(a) and j + length < len(b) and a[i + length][1] == b[j + length][1]:
                length += 1
            if length >= min_run:
                runs.append((i, j, length))
    return runs


def duplicated_runs(root: Path) -> dict:
    """{"count": n, "runs": [...]}: every maximal run shared by a pair of different recipe files, with
    the first and last line of the run in each file."""
    files = [(relative(p, root), significant_lines(p)) for p in recipe_files(root)]
    runs = []
    for k, (name_a, a) in enumerate(files):
        for name_b, b in files[k + 1:]:
            for i, j, length in shared_runs(a, b):
                runs.append({"lines": length,
                             "a": f"{name_a}:{a[i][0]}-{a[i + length - 1][0]}",
                             "b": f"{name_b}:{b[j][0]}-{b[j + length - 1][0]}",
                             "first_line": a[i][1]})
    return {"min_run": MIN_RUN, "count": len(runs), "runs": runs}


# ---------------------------------------------------------------------------- import cycles

def import_cycles(root: Path) -> dict:
    """{"count": n, "components": [[modules]]}: the strongly connected components of more than one module."""
    graph = import_graph(root)
    cycles = sorted(cycles_of(graph), key=lambda c: (-len(c), c))
    return {"modules": len(graph), "edges": sum(len(e) for e in graph.values()), "count": len(cycles),
            "components": cycles}


# ---------------------------------------------------------------------------- strings and issue numbers

def strings_naming_training(root: Path) -> dict:
    """String literals of zoo/ and serving/ (docstrings and f-string parts included) that name a
    training.recipes or training.simulators module: one entry per literal."""
    found = []
    for path in python_files(root, SERVING_SIDE):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Constant) and isinstance(node.value, str):
                names = sorted({m.group(0) for m in TRAINING_NAME.finditer(node.value)})
                if names:
                    found.append({"at": f"{relative(path, root)}:{node.lineno}", "names": names})
    return {"count": len(found), "strings": found}


def issue_mentions(root: Path) -> dict:
    """Every match of ``ISSUE`` in the .py files of ``ISSUE_FOLDERS``."""
    found = []
    for path in python_files(root, ISSUE_FOLDERS):
        for number, line in enumerate(path.read_text().splitlines(), start=1):
            found += [{"at": f"{relative(path, root)}:{number}", "text": m.group(0)} for m in ISSUE.finditer(line)]
    return {"count": len(found), "mentions": found}


# ---------------------------------------------------------------------------- the report

def git(root: Path, *args) -> str:
    done = subprocess.run(["git", "-C", str(root), *args], capture_output=True, text=True, check=False)
    return done.stdout.strip() if done.returncode == 0 else ""


def measure(root: Path) -> dict:
    return {
        "directory": str(root),
        "commit": git(root, "rev-parse", "HEAD") or None,
        "uncommitted_changes": bool(git(root, "status", "--porcelain", "--untracked-files=no")),
        "date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "recipe_lines": recipe_lines(root),
        "duplicated_runs": duplicated_runs(root),
        "import_cycles": import_cycles(root),
        "strings_naming_training": strings_naming_training(root),
        "issue_mentions": issue_mentions(root),
    }


def table(results: dict) -> str:
    """The measures as text: one headline per measure, then its details."""
    lines = [f"{results['directory']} at {results['commit']}"
             + (" (with uncommitted changes)" if results["uncommitted_changes"] else "") + f", {results['date']}"]
    recipes, runs = results["recipe_lines"], results["duplicated_runs"]
    lines.append(f"\nlines of training/recipes/*.py: {recipes['total']}")
    lines += [f"  {n:6d}  {name}" for name, n in recipes["files"].items()]
    lines.append(f"\nruns of >= {runs['min_run']} identical lines shared by two recipe files: {runs['count']}")
    lines += [f"  {r['lines']:3d} lines  {r['a']}  =  {r['b']}" for r in runs["runs"]]
    cycles = results["import_cycles"]
    lines.append(f"\nimport cycles (components of > 1 module; {cycles['modules']} modules, "
                 f"{cycles['edges']} edges): {cycles['count']}")
    lines += [f"  {len(c)} modules: {', '.join(c)}" for c in cycles["components"]]
    strings = results["strings_naming_training"]
    lines.append(f"\nstrings in zoo/ and serving/ naming training.recipes or training.simulators: {strings['count']}")
    lines += [f"  {s['at']}  {', '.join(s['names'])}" for s in strings["strings"]]
    issues = results["issue_mentions"]
    lines.append(f"\nissue numbers in .py files: {issues['count']}")
    lines += [f"  {m['at']}  {m['text']}" for m in issues["mentions"]]
    return "\n".join(lines)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("directory", nargs="?", default=str(REPO), help="checkout to measure (default: this one)")
    parser.add_argument("--out", default=str(RESULTS), help=f"JSON to write (default: {RESULTS})")
    args = parser.parse_args(argv)
    root = Path(args.directory).resolve()
    if not (root / "training" / "recipes").is_dir():
        parser.error(f"{root} has no training/recipes: give the root of a checkout of this repository")
    results = measure(root)
    print(table(results))
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(results, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
