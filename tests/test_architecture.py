"""The layers on paper, checked against the code: the import graph read with ``ast`` (imports under
``if TYPE_CHECKING:`` are types only and do not count), with a failure naming each forbidden arrow.

    core        the rules: pure, the standard library only
    storage     -> core
    probes      -> core, config
    pipeline    -> core, storage, sinks, config
    ops         -> core, storage, probes, pipeline, config (the use-cases web, commands and jobs share)
    jobs        -> ops and below
    web         -> ops and below, never jobs
    commands    -> ops and below, never jobs or web
    simulator   nothing of the monitor
"""

from __future__ import annotations

import ast
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent / "umig_monitor"
STDLIB = frozenset(sys.stdlib_module_names) | {"__future__"}


def _module(path: Path) -> str:
    parts = list(path.relative_to(ROOT.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {_module(p): p for p in ROOT.rglob("*.py")}


def _imports(module: str, path: Path) -> Iterator[str]:
    """Every module ``module`` imports at run time (absolute names, third-party included)."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    types_only = {
        id(node)
        for branch in ast.walk(tree)
        if isinstance(branch, ast.If) and "TYPE_CHECKING" in ast.unparse(branch.test)
        for node in ast.walk(branch)
    }
    for node in ast.walk(tree):
        if id(node) in types_only:
            continue
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                package = module.split(".") if path.name == "__init__.py" else module.split(".")[:-1]
                package = package[: len(package) - (node.level - 1)]
                base = ".".join([*package, *([node.module] if node.module else [])])
            else:
                base = node.module or ""
            for alias in node.names:
                full = f"{base}.{alias.name}"
                yield full if full in MODULES else base


GRAPH = {m: sorted(set(_imports(m, p))) for m, p in MODULES.items()}


def _room(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "umig_monitor"


def _arrows(room: str) -> Iterator[tuple[str, str]]:
    for module, imported in GRAPH.items():
        if _room(module) == room:
            yield from ((module, target) for target in imported)


# room -> the rooms of the monitor it must never import
FORBIDDEN = {
    "storage": {"config", "probes", "pipeline", "sinks", "ops", "jobs", "web", "commands", "app", "cli"},
    "ops": {"jobs", "web", "commands", "app", "cli"},
    "web": {"jobs", "commands", "cli"},
    "commands": {"jobs", "web", "app"},
    "probes": {"storage", "pipeline", "ops", "jobs", "web", "commands"},
}


def test_core_is_pure() -> None:
    wrong = [
        f"{m} -> {t}"
        for m, t in _arrows("core")
        if not (t.split(".")[0] in STDLIB or t.startswith("umig_monitor.core"))
    ]
    assert wrong == [], "core imports only core and the standard library"


@pytest.mark.parametrize("room", sorted(FORBIDDEN))
def test_no_forbidden_arrow(room: str) -> None:
    wrong = [
        f"{m} -> {t}"
        for m, t in _arrows(room)
        if t.startswith("umig_monitor.") and _room(t) in FORBIDDEN[room]
    ]
    assert wrong == [], f"{room} must not import {sorted(FORBIDDEN[room])}"


def test_the_simulator_knows_nothing_of_the_monitor() -> None:
    wrong = [
        f"{m} -> {t}"
        for m, t in _arrows("simulator")
        if t.startswith("umig_monitor") and not t.startswith("umig_monitor.simulator")
    ]
    assert wrong == []


def test_no_import_cycles() -> None:
    """Tarjan's strongly connected components over the monitor's modules: none larger than one."""
    graph = {m: [t for t in ts if t in MODULES and t != m] for m, ts in GRAPH.items()}
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    cycles: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in graph[v]:
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
            if len(component) > 1:
                cycles.append(sorted(component))

    for v in graph:
        if v not in index:
            visit(v)
    assert cycles == []


def test_the_check_sees_imports() -> None:
    """The graph is not empty by accident: known arrows are in it."""
    assert "umig_monitor.core.deployments" in GRAPH["umig_monitor.ops.deployments"]
    assert "umig_monitor.storage" in GRAPH["umig_monitor.ops.views"]


def test_every_module_says_what_it_holds() -> None:
    missing = [
        m for m, p in MODULES.items() if ast.get_docstring(ast.parse(p.read_text(encoding="utf-8"))) is None
    ]
    assert missing == []
