"""Which exercise a notebook is, and which checks it runs: read from its cells, not run.

The solution notebooks in ``notebooks/solutions/`` define the exercises: a cell calling a
``check_*`` function, or asserting on a function the solution defines, is one check.
"""

from __future__ import annotations

import ast
import re
from dataclasses import dataclass
from pathlib import Path

import nbformat

from cvae_lib.classroom.exercises import NOTEBOOKS

SOLUTIONS = NOTEBOOKS / "solutions"


@dataclass(frozen=True)
class Exercise:
    """An exercise notebook: its number, its title line and the checks it runs, in order."""

    number: str
    title: str
    checks: tuple[str, ...]


def title_of(nb: nbformat.NotebookNode) -> str:
    """The first H1 line of the notebook's markdown, without the '#'."""
    for cell in nb.cells:
        if cell.cell_type == "markdown":
            for line in cell.source.splitlines():
                if line.startswith("# "):
                    return line[2:].strip()
    return ""


def _normal(text: str) -> str:
    """Lower-case words only, so titles compare despite punctuation and spacing."""
    return " ".join(re.findall(r"\w+", text.lower()))


def _parse(source: str) -> ast.Module | None:
    """The syntax tree of a cell (IPython magics and shell lines dropped), or None."""
    lines = [line for line in source.splitlines() if not line.lstrip().startswith(("%", "!"))]
    try:
        return ast.parse("\n".join(lines))
    except SyntaxError:
        return None


def called_names(source: str) -> list[str]:
    """Names of the plain functions a cell calls, in source order."""
    tree = _parse(source)
    if tree is None:
        return re.findall(r"(?<![\w.])(?<!def )(?<!class )([A-Za-z_]\w*)\s*\(", source)
    calls = [node for node in ast.walk(tree)
             if isinstance(node, ast.Call) and isinstance(node.func, ast.Name)]
    return [call.func.id for call in sorted(calls, key=lambda c: (c.lineno, c.col_offset))]


def _defined_in_solutions(nb: nbformat.NotebookNode) -> set[str]:
    """Functions and classes defined by the cells that hold a solution block."""
    names: set[str] = set()
    for cell in nb.cells:
        tree = _parse(cell.source) if cell.cell_type == "code" else None
        if tree is not None and "### BEGIN SOLUTION" in cell.source:
            names |= {node.name for node in tree.body
                      if isinstance(node, (ast.FunctionDef, ast.ClassDef))}
    return names


def _has_assert(source: str) -> bool:
    """True when the cell contains an assert statement."""
    tree = _parse(source)
    return tree is not None and any(isinstance(node, ast.Assert) for node in ast.walk(tree))


def solution_checks(nb: nbformat.NotebookNode) -> list[str]:
    """The checks of a solution notebook: its check_* calls and asserts on solution code."""
    defined, checks = _defined_in_solutions(nb), []
    for cell in nb.cells:
        if cell.cell_type != "code":
            continue
        calls = called_names(cell.source)
        name = next((c for c in calls if c.startswith("check_")), None)
        if name is None and _has_assert(cell.source):
            name = next((c for c in calls if c in defined), None)
        if name and name not in checks:
            checks.append(name)
    return checks


def load_exercises(folder: Path = SOLUTIONS) -> list[Exercise]:
    """The exercises as their solution notebooks define them today."""
    exercises = []
    for path in sorted(folder.glob("*.ipynb")):
        nb = nbformat.read(path, as_version=4)
        exercises.append(Exercise(path.name.split("_")[0], title_of(nb),
                                  tuple(solution_checks(nb))))
    return exercises


def identify(nb: nbformat.NotebookNode, exercises: list[Exercise]) -> Exercise | None:
    """The exercise a notebook is: by its title, else by the checks it calls."""
    title = _normal(title_of(nb))
    for exercise in exercises:
        if title and title == _normal(exercise.title):
            return exercise
    calls = {name for cell in nb.cells if cell.cell_type == "code"
             for name in called_names(cell.source)}
    matches = [ex for ex in exercises if ex.checks and set(ex.checks) <= calls]
    return matches[0] if len(matches) == 1 else None


def check_cells(nb: nbformat.NotebookNode, exercise: Exercise) -> dict[int, str]:
    """Cell index -> check name: the first code cell of the submission calling each check."""
    found: dict[int, str] = {}
    for check in exercise.checks:
        for index, cell in enumerate(nb.cells):
            if cell.cell_type == "code" and check in called_names(cell.source):
                found.setdefault(index, check)
                break
    return found
