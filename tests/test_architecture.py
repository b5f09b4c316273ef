"""The import graph of bench/ and apps/, read from the source: the exhibit (apps/) never imports the harness
(bench/) that measures it, and no import circle appears beyond the ones already known (issue "Architecture by
stage" removes those; this list then shrinks to nothing)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PROJECT_ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("apps", "bench")
# The circles there are today, each as the set of its modules: plan/points.py and plan/target.py import each
# other's types. A change that breaks one up removes it here.
KNOWN_CIRCLES: set[frozenset[str]] = {
    frozenset({"bench.plan.points", "bench.plan.target"}),
}


def module_name(path: Path) -> str:
    parts = path.relative_to(PROJECT_ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imported_modules(path: Path, modules: set[str]) -> set[str]:
    """The project modules `path` imports at module level or in a function (lazy imports count: they still tie
    the two modules together), resolved to the longest known module name."""
    found: set[str] = set()
    package = module_name(path) if path.name == "__init__.py" else module_name(path).rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        names: list[str] = []
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            names = [f"{base}.{alias.name}" for alias in node.names] + [base]
        for name in names:
            known = name
            while known and known not in modules:
                known = known.rpartition(".")[0]
            if known:
                found.add(known)
    return found


Graph = dict[str, set[str]]  # module -> the project modules it imports


def import_graph() -> Graph:
    paths = [path for package in PACKAGES for path in (PROJECT_ROOT / package).rglob("*.py")]
    modules = {module_name(path) for path in paths}
    return {module_name(path): imported_modules(path, modules) - {module_name(path)} for path in paths}


def reachable(graph: Graph, start: str) -> set[str]:
    seen: set[str] = set()
    todo = [start]
    while todo:
        for target in graph.get(todo.pop(), set()) - seen:
            seen.add(target)
            todo.append(target)
    return seen


def circles(graph: Graph) -> set[frozenset[str]]:
    """The strongly connected groups of two or more modules: each module reaches every other of its group."""
    reach = {module: reachable(graph, module) for module in graph}
    return {
        frozenset({module} | {other for other in reach[module] if module in reach[other]})
        for module in graph
        if module in reach[module]
    }


def test_the_graph_sees_the_imports_it_must_judge() -> None:
    graph = import_graph()
    # `from x import y` at the top, and lazily inside a function (the CLI's commands import what they run).
    assert "bench.records.stats" in graph["bench.measure.overhead"]
    assert "bench.measure.overhead" in graph["bench.cli.app"]
    assert "apps.sql_common" in graph["apps.pg_asyncpg"]


def test_a_circle_is_found_where_there_is_one() -> None:
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}, "e": {"e"}}
    assert circles(graph) == {frozenset({"a", "b", "c"}), frozenset({"e"})}


def test_apps_never_import_bench() -> None:
    graph = import_graph()
    offending = sorted(
        f"{a} -> {b}"
        for a, targets in graph.items()
        for b in targets
        if a.startswith("apps.") and b.startswith("bench")
    )
    assert offending == []


@pytest.mark.parametrize("package", PACKAGES)
def test_no_import_circle_but_the_known_ones(package: str) -> None:
    def in_package(circle: frozenset[str]) -> bool:
        return any(module.split(".")[0] == package for module in circle)

    found = {circle for circle in circles(import_graph()) if in_package(circle)}
    # Equal both ways: a new circle fails, and so does a known one that is gone or changed (update the list).
    assert found == {circle for circle in KNOWN_CIRCLES if in_package(circle)}
