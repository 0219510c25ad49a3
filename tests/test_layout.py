"""The package's layout shows its design: the lesson at the top, the machinery in named rooms.

``cvae_lib/*.py`` is what the notebooks teach; ``checks/`` holds the exercise checks,
``classroom/`` the instructor's tools, ``infra/`` what both stand on. Lesson modules never
import the classroom, nothing imports in a cycle, and every room says what it holds.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import cvae_lib

PACKAGE = Path(cvae_lib.__file__).parent
MAX_LINES = 300
ROOMS = ("checks", "classroom", "classroom.grading", "infra")


def module_name(path: Path) -> str:
    """``checks.base`` for cvae_lib/checks/base.py, ``checks`` for its ``__init__.py``."""
    parts = path.relative_to(PACKAGE).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts) or "__init__"


MODULES = {module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def imports_in(source: str) -> set[str]:
    """The cvae_lib modules that ``source`` imports, anywhere in it."""
    targets: set[str] = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.ImportFrom) and node.module and (
                node.module == "cvae_lib" or node.module.startswith("cvae_lib.")):
            base = node.module.removeprefix("cvae_lib").removeprefix(".")
            names = {f"{base}.{a.name}".lstrip(".") for a in node.names}
            targets |= (names & set(MODULES)) or {base}
        elif isinstance(node, ast.Import):
            targets |= {a.name.removeprefix("cvae_lib.") for a in node.names
                        if a.name.startswith("cvae_lib.")}
    return targets - {""}


def import_graph() -> dict[str, set[str]]:
    """Module name -> the cvae_lib modules it imports."""
    return {name: imports_in(path.read_text()) - {name} for name, path in MODULES.items()}


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


def lesson_modules() -> list[str]:
    """The modules at the top of the package: what the notebooks teach."""
    return [name for name, path in MODULES.items()
            if path.parent == PACKAGE and name not in ("__init__", "__main__")]


def test_no_import_cycles() -> None:
    graph = import_graph()
    graph.pop("__init__")  # the package's front door imports its modules, none imports it back
    assert find_cycle(graph) is None, f"import cycle: {' -> '.join(find_cycle(graph))}"


def test_the_cycle_finder_finds_a_cycle() -> None:
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]


def test_lesson_modules_never_import_the_classroom_or_the_checks() -> None:
    graph = import_graph()
    leaks = {name: sorted(t for t in graph[name] if t.split(".")[0] in ("classroom", "checks"))
             for name in lesson_modules()}
    assert not any(leaks.values()), f"lesson modules importing machinery: {leaks}"


@pytest.mark.parametrize("room, allowed", [("infra", {"infra"}), ("checks", {"checks"})])
def test_the_lower_rooms_stand_on_nothing_above_them(room: str, allowed: set[str]) -> None:
    graph = import_graph()
    above = {name: sorted(t for t in targets if t.split(".")[0] not in allowed)
             for name, targets in graph.items() if name.split(".")[0] == room}
    assert not any(above.values()), f"{room} imports from above it: {above}"


@pytest.mark.parametrize("source, modules", [
    ("from cvae_lib.classroom.prepare import prepare", {"classroom.prepare"}),
    ("from cvae_lib.classroom import prepare", {"classroom.prepare"}),
    ("from cvae_lib import CVAE, validate", {"validate"}),
    ("def f():\n    import cvae_lib.infra.storage", {"infra.storage"}),
])
def test_the_import_reader_sees_every_form(source: str, modules: set[str]) -> None:
    assert imports_in(source) == modules


@pytest.mark.parametrize("room", ROOMS)
def test_every_room_says_what_it_holds_and_who_calls_it(room: str) -> None:
    doc = ast.get_docstring(ast.parse(MODULES[room].read_text())) or ""
    lines = [line for line in doc.splitlines() if line.strip()]
    assert 2 <= len(lines) <= 3, f"cvae_lib/{room.replace('.', '/')}/__init__.py: {doc!r}"


def test_a_students_listing_shows_the_lesson_first() -> None:
    top = {p.name for p in PACKAGE.iterdir() if not p.name.startswith((".", "__pycache__"))}
    rooms = {name for name in top if (PACKAGE / name).is_dir()}
    assert rooms == {"checks", "classroom", "infra"}, rooms
    assert {"data.py", "models.py", "losses.py", "training.py", "generation.py", "evaluate.py",
            "plots.py", "widgets.py"} <= top


def test_no_module_reads_as_packaging_or_hides_a_function() -> None:
    assert "setup" not in {p.stem for p in PACKAGE.rglob("*.py")}
    for name in lesson_modules():
        assert not callable(getattr(cvae_lib, name, None)), f"cvae_lib.{name} hides a module"


def test_every_module_can_be_read_in_one_sitting() -> None:
    long = {name: n for name, p in MODULES.items()
            if (n := len(p.read_text().splitlines())) > MAX_LINES}
    assert not long, f"modules over {MAX_LINES} lines: {long}"
