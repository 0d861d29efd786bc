"""harness/ is grouped by job, and imports flow one way:

    cli -> cluster -> run -> train / evaluate -> methods -> models -> core        report -> core

A module imports its own subpackage and those its subpackage's rule below allows (each `__init__.py` says the
same in words), never one above, and no import closes a cycle: not at import time, not inside a function, not
under `if TYPE_CHECKING:`. So any module imports on its own and reads without the modules above it.
"""

import ast
from pathlib import Path

HARNESS = Path(__file__).resolve().parents[2] / "harness"

# Subpackage -> the other subpackages it may import. A new subpackage (or a module left directly under
# harness/) fails test_every_module_has_a_layer until it is placed here.
MAY_IMPORT: dict[str, set[str]] = {
    "core": set(),
    "models": {"core"},
    "methods": {"models", "core"},
    "train": {"methods", "models", "core"},
    "evaluate": {"models", "core"},
    "report": {"core"},
    "run": {"train", "evaluate", "methods", "models", "core"},
    "cluster": {"run", "train", "evaluate", "methods", "models", "core"},
    "cli": {"cluster", "run", "train", "evaluate", "report", "methods", "models", "core"},
}


def _module_name(path: Path) -> str:
    name = ".".join(path.relative_to(HARNESS.parent).with_suffix("").parts)
    return name.removesuffix(".__init__")


def _imports(path: Path) -> set[str]:
    """Every harness name `path` imports, wherever the import sits (module body, function, TYPE_CHECKING)."""
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names |= {node.module} | {f"{node.module}.{alias.name}" for alias in node.names}
    return {n for n in names if n.startswith("harness.")}


def _graph() -> dict[str, set[str]]:
    modules = {_module_name(p): p for p in HARNESS.rglob("*.py") if p.name != "__main__.py"}
    return {name: (_imports(path) & set(modules)) - {name} for name, path in modules.items()}


def _package(module: str) -> str | None:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else None


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one node (Tarjan), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        for w in sorted(graph[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def test_cycle_finder_finds_a_planted_cycle():
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert _cycles(graph) == [["a", "b", "c"]]
    assert _cycles({"a": {"b"}, "b": set()}) == []


def test_the_layers_themselves_form_no_cycle():
    assert _cycles(MAY_IMPORT) == []


def test_every_module_has_a_layer():
    graph = _graph()
    assert "harness.report.records" in graph and "harness.run.experiment" in graph  # both kinds are seen
    unplaced = sorted(m for m in graph if m != "harness" and _package(m) not in MAY_IMPORT)
    assert unplaced == [], "place these in a subpackage (tools/relayout.py) and in MAY_IMPORT"
    assert {p.name for p in HARNESS.iterdir() if (p / "__init__.py").is_file()} == set(MAY_IMPORT)


def test_each_subpackage_says_what_it_owns_and_may_import():
    for package in MAY_IMPORT:
        doc = ast.get_docstring(ast.parse((HARNESS / package / "__init__.py").read_text())) or ""
        assert "may import" in doc.lower() or "imports nothing" in doc.lower(), package


def test_imports_flow_one_way():
    graph = _graph()
    assert graph["harness"] == set()  # the package itself (its import hook) imports nothing of harness/
    upward = [
        f"{module} imports {target}"
        for module, targets in sorted(graph.items())
        for target in sorted(targets)
        if _package(module) in MAY_IMPORT
        and _package(target) != _package(module)
        and _package(target) not in MAY_IMPORT[_package(module)]
    ]
    assert upward == []


def test_no_import_cycle_at_all():
    assert _cycles(_graph()) == []
