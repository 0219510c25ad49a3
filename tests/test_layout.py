"""The package's layout shows its design: no import cycles, plain names, modules one can read."""

from __future__ import annotations

import ast
from pathlib import Path

import cvae_lib

PACKAGE = Path(cvae_lib.__file__).parent
MAX_LINES = 300


def import_graph() -> dict[str, set[str]]:
    """Module name -> the cvae_lib modules it imports, anywhere in its source."""
    modules = {p.stem: p for p in PACKAGE.glob("*.py")}
    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        targets: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith(
                    "cvae_lib"):
                parts = node.module.split(".")
                if len(parts) > 1:
                    targets.add(parts[1])
                else:
                    targets |= {alias.name for alias in node.names if alias.name in modules}
            elif isinstance(node, ast.Import):
                targets |= {a.name.split(".")[1] for a in node.names
                            if a.name.startswith("cvae_lib.")}
        graph[name] = targets - {name}
    return graph


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import cycle of ``graph`` as a list of modules, or None."""
    state: dict[str, int] = {}

    def visit(node: str, path: list[str]) -> list[str] | None:
        state[node] = 1
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                return path[path.index(nxt):] + [nxt] if nxt in path else [node, nxt]
            if nxt not in state and (cycle := visit(nxt, path + [nxt])):
                return cycle
        state[node] = 2
        return None

    for start in sorted(graph):
        if start not in state and (cycle := visit(start, [start])):
            return cycle
    return None


def test_no_import_cycles() -> None:
    graph = import_graph()
    graph.pop("__init__")  # the package's front door imports its modules, none imports it back
    assert find_cycle(graph) is None, f"import cycle: {' -> '.join(find_cycle(graph))}"


def test_the_cycle_finder_finds_a_cycle() -> None:
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]


def test_no_module_reads_as_packaging_or_hides_a_function() -> None:
    names = {p.stem for p in PACKAGE.glob("*.py")}
    assert "setup" not in names
    for name in names - {"__init__", "__main__"}:
        assert not callable(getattr(cvae_lib, name, None)), f"cvae_lib.{name} hides a module"


def test_every_module_can_be_read_in_one_sitting() -> None:
    long = {p.name: n for p in PACKAGE.glob("*.py")
            if (n := len(p.read_text().splitlines())) > MAX_LINES}
    assert not long, f"modules over {MAX_LINES} lines: {long}"
