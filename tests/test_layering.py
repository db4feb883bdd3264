"""The layers of DESIGN.md: zoo imports neither training nor serving, and the generic code names no family.

Checked on the source, so that a new import or a new family-specific branch fails here before it spreads.
"""
import ast
import itertools
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


TRAINING_NAMES = re.compile(r"training[./](recipes|simulators)")


@pytest.mark.parametrize("path", sorted([*(REPO / "zoo").rglob("*.py"), *(REPO / "serving").rglob("*.py")]),
                         ids=lambda p: str(p.relative_to(REPO)))
def test_the_zoo_and_serving_never_name_a_training_module(path):
    """The zoo does not know its trainers, not even by a string that is imported at run time:
    ``zoo train NAME`` finds the recipe on the training side."""
    named = [line for line in path.read_text().splitlines() if TRAINING_NAMES.search(line)]
    assert not named, f"{path.relative_to(REPO)} names training modules: {named}"


@pytest.mark.parametrize("path", GENERIC, ids=lambda p: str(p.relative_to(REPO)))
def test_generic_code_names_no_family_and_probes_no_model(path):
    words = [w for w in code_strings_and_names(path) if FAMILY_WORDS.search(w.lower())]
    assert not words, f"{path.relative_to(REPO)} names families: {sorted(set(words))}"
    tree = ast.parse(path.read_text())
    probes = [ast.unparse(node) for node in ast.walk(tree)
              if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in ("hasattr", "getattr")
              and node.args and "model" in ast.unparse(node.args[0]).lower()]
    assert not probes, f"{path.relative_to(REPO)} probes models: {probes}"


# ----------------------------------------------------------------------------- no import cycle

PACKAGES = ("zoo", "serving", "training", "zoo_cli")


def module_name(path: Path, root: Path) -> str:
    """``zoo/models/base.py`` -> ``zoo.models.base``; a package's ``__init__.py`` is the package."""
    parts = path.relative_to(root).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def project_modules(root: Path, packages=PACKAGES) -> dict:
    """Module name -> source path of every .py file under the given top-level packages of ``root``."""
    return {module_name(p, root): p for package in packages for p in sorted((root / package).rglob("*.py"))}


def _innermost(dotted: str, modules) -> str | None:
    """The longest prefix of ``dotted`` that is a project module (``zoo.spec.Family`` -> ``zoo.spec``)."""
    parts = dotted.split(".")
    for end in range(len(parts), 0, -1):
        if ".".join(parts[:end]) in modules:
            return ".".join(parts[:end])
    return None


def _from_base(node: ast.ImportFrom, name: str, is_package: bool) -> str:
    """The absolute module a ``from X import ...`` reads from, relative imports resolved against ``name``."""
    if not node.level:
        return node.module
    package = name.split(".") if is_package else name.split(".")[:-1]
    package = package[: len(package) - (node.level - 1)]
    return ".".join(package + ([node.module] if node.module else []))


def module_imports(path: Path, name: str, modules) -> list:
    """(imported project module, line) of every import statement in ``path``: module level, inside functions
    and classes, under ``if TYPE_CHECKING`` alike. ``import a.b`` imports ``a.b``; ``from a import b`` imports
    the submodule ``a.b`` when there is one, else ``a``."""
    edges = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            targets = [_innermost(alias.name, modules) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = _from_base(node, name, path.name == "__init__.py")
            targets = [f"{base}.{a.name}" if f"{base}.{a.name}" in modules else _innermost(base, modules)
                       for a in node.names]
        else:
            continue
        edges += [(target, node.lineno) for target in targets if target is not None and target != name]
    return edges


def import_graph(root: Path, packages=PACKAGES) -> dict:
    """Module -> {imported module: first line that imports it} over the project's modules."""
    modules = project_modules(root, packages)
    graph = {}
    for name, path in modules.items():
        graph[name] = {}
        for target, line in module_imports(path, name, modules):
            graph[name].setdefault(target, line)
    return graph


def strongly_connected(graph: dict) -> list:
    """The strongly connected components of ``graph`` (Tarjan), each a sorted list of modules."""
    index, low, stack, on_stack, components = {}, {}, [], set(), []

    def visit(v):
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in graph.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            components.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return components


def import_cycles(graph: dict) -> list:
    """The components of more than one module: each holds at least one import cycle."""
    return [c for c in strongly_connected(graph) if len(c) > 1]


def shortest_cycle(graph: dict, component: list) -> list:
    """A shortest cycle through the first module of ``component``, as [m0, m1, ..., m0]."""
    start, inside = component[0], set(component)
    paths, seen = [[start]], {start}
    while paths:
        grown = []
        for path in paths:
            for target in sorted(graph[path[-1]]):
                if target == start:
                    return path + [start]
                if target in inside and target not in seen:
                    seen.add(target)
                    grown.append(path + [target])
        paths = grown
    raise AssertionError(f"{component} is not strongly connected")


def describe_cycle(graph: dict, component: list) -> str:
    cycle = shortest_cycle(graph, component)
    steps = " -> ".join(f"{a} (line {graph[a][b]})" for a, b in itertools.pairwise(cycle))
    return f"{len(component)} modules {component}; e.g. {steps} -> {cycle[0]}"


def test_no_import_cycle_among_the_projects_modules():
    """DESIGN.md: no import cycle, function-level imports included."""
    graph = import_graph(REPO)
    cycles = import_cycles(graph)
    assert not cycles, "import cycles:\n" + "\n".join(describe_cycle(graph, c) for c in cycles)


def test_the_import_graph_sees_every_kind_of_import(tmp_path):
    files = {
        "pkg/__init__.py": "def f():\n    from pkg import low\n",  # function level, a submodule via from-import
        "pkg/low.py": "from . import mid\n",  # relative, a submodule
        "pkg/mid.py": "import pkg.sub.leaf\n",  # dotted: the submodule, not the package
        "pkg/sub/__init__.py": "",
        "pkg/sub/leaf.py": "from ..mid import thing\nfrom pkg import name_in_init\n",  # relative parent; package
        "pkg/alone.py": "import pkg.sub\nimport os\n",
    }
    for relative, text in files.items():
        (tmp_path / relative).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / relative).write_text(text)
    graph = import_graph(tmp_path, ("pkg",))
    assert {k: set(v) for k, v in graph.items()} == {
        "pkg": {"pkg.low"}, "pkg.low": {"pkg.mid"}, "pkg.mid": {"pkg.sub.leaf"}, "pkg.sub": set(),
        "pkg.sub.leaf": {"pkg.mid", "pkg"}, "pkg.alone": {"pkg.sub"}}
    cycles = import_cycles(graph)
    assert cycles == [["pkg", "pkg.low", "pkg.mid", "pkg.sub.leaf"]]
    assert describe_cycle(graph, cycles[0]).endswith(
        "pkg (line 2) -> pkg.low (line 1) -> pkg.mid (line 1) -> pkg.sub.leaf (line 2) -> pkg")
