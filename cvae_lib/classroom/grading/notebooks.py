"""Which exercise a notebook is, which checks it runs, and the exercise's own check code.

The solution notebooks in ``notebooks/solutions/`` define the exercises: a cell calling a
``check_*`` function, or asserting on a function the solution defines, is one check. The code
the grader trusts (the setup cell, the cells defining checks, each check's cell) and the label
of each failing assert in it come from there, never from a submission.
"""

from __future__ import annotations

import ast
import functools
import re
from dataclasses import dataclass, field
from pathlib import Path

import nbformat

from cvae_lib.classroom.exercises import NOTEBOOKS

SOLUTIONS = NOTEBOOKS / "solutions"
LABEL_CHARS = 60


@dataclass(frozen=True)
class Exercise:
    """An exercise notebook: its number, its title line, the checks it runs, its source."""

    number: str
    title: str
    checks: tuple[str, ...]
    source: Path | None = field(default=None, compare=False)  # the solution notebook


@dataclass(frozen=True)
class TrustedCode:
    """What the grader runs of an exercise: (file name, code) pairs, and its asserts' labels."""

    setup: list[tuple[str, str]]  # the setup cell and the cells defining checks
    checks: dict[str, tuple[str, str]]  # check -> its cell, up to the statement calling it
    labels: dict[tuple[str, int], str]  # (file name, line) of an assert -> its label
    last_check: int  # index among the code cells of the last check cell


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


def plain_python(source: str) -> str:
    """A cell's code with its IPython magic and shell lines blanked (line numbers kept)."""
    return "\n".join("" if line.lstrip().startswith(("%", "!")) else line
                     for line in source.splitlines())


def parse_cell(source: str) -> ast.Module | None:
    """The syntax tree of a cell (IPython magics and shell lines blanked), or None."""
    try:
        return ast.parse(plain_python(source))
    except (SyntaxError, RecursionError, MemoryError, ValueError):  # deep nesting, NUL bytes
        return None


def called_names(source: str) -> list[str]:
    """Names of the plain functions a cell calls, in source order."""
    tree = parse_cell(source)
    if tree is None:
        return re.findall(r"(?<![\w.])(?<!def )(?<!class )([A-Za-z_]\w*)\s*\(", source)
    calls = [node for node in ast.walk(tree)
             if isinstance(node, ast.Call) and isinstance(node.func, ast.Name)]
    return [call.func.id for call in sorted(calls, key=lambda c: (c.lineno, c.col_offset))]


def _defined_in_solutions(nb: nbformat.NotebookNode) -> set[str]:
    """Functions and classes defined by the cells that hold a solution block."""
    names: set[str] = set()
    for cell in nb.cells:
        tree = parse_cell(cell.source) if cell.cell_type == "code" else None
        if tree is not None and "### BEGIN SOLUTION" in cell.source:
            names |= {node.name for node in tree.body
                      if isinstance(node, (ast.FunctionDef, ast.ClassDef))}
    return names


def _defines_check(tree: ast.Module | None) -> bool:
    """True when the cell defines a ``check_*`` function: it is a check's code, not a check."""
    return tree is not None and any(isinstance(node, ast.FunctionDef)
                                    and node.name.startswith("check_") for node in tree.body)


def _has_assert(source: str) -> bool:
    """True when the cell contains an assert statement."""
    tree = parse_cell(source)
    return tree is not None and any(isinstance(node, ast.Assert) for node in ast.walk(tree))


def solution_checks(nb: nbformat.NotebookNode) -> list[str]:
    """The checks of a solution notebook: its check_* calls and asserts on solution code."""
    defined, checks = _defined_in_solutions(nb), []
    for cell in nb.cells:
        if cell.cell_type != "code" or _defines_check(parse_cell(cell.source)):
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
                                  tuple(solution_checks(nb)), path))
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


def short_label(message: str) -> str:
    """The first clause of a check's message: its name for the mistake."""
    clause = re.split(r"[:;(\n]|\. ", message.strip(), maxsplit=1)[0].strip().rstrip(".")
    if not clause:
        return "assertion failed"
    return clause if len(clause) <= LABEL_CHARS else clause[:LABEL_CHARS - 1] + "…"


def _text(node: ast.expr | None) -> str:
    """The fixed text of an assert's message: its string parts, without the values put in."""
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return node.value
    if isinstance(node, ast.JoinedStr):
        return "".join(_text(part) for part in node.values)
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Add):
        return _text(node.left) + _text(node.right)
    return ""


def _assert_message(node: ast.AST) -> ast.expr | None | bool:
    """The message of an assert or ``raise AssertionError(...)``; False for other nodes."""
    if isinstance(node, ast.Assert):
        return node.msg
    if (isinstance(node, ast.Raise) and isinstance(node.exc, ast.Call)
            and isinstance(node.exc.func, ast.Name) and node.exc.func.id == "AssertionError"):
        return node.exc.args[0] if node.exc.args else None
    return False


def _assert_labels(filename: str, source: str) -> dict[tuple[str, int], str]:
    """(file name, line) -> label, for every line of every assert in ``source``."""
    labels = {}
    for node in ast.walk(parse_cell(source) or ast.Module(body=[], type_ignores=[])):
        message = _assert_message(node)
        if message is not False:
            label = short_label(_text(message))
            labels |= {(filename, line): label
                       for line in range(node.lineno, node.end_lineno + 1)}
    return labels


def _through_call(source: str, check: str) -> str:
    """The cell's code up to the last top-level statement calling ``check`` (or all of it)."""
    tree, lines = parse_cell(source), plain_python(source).splitlines()
    ends = [stmt.end_lineno for stmt in (tree.body if tree else [])
            if check in called_names(ast.unparse(stmt))]
    return "\n".join(lines[:max(ends, default=len(lines))])


@functools.cache
def trusted_code(exercise: Exercise) -> TrustedCode:
    """The exercise's setup and check code, from its solution notebook."""
    if exercise.source is None:
        raise ValueError(f"exercise {exercise.number} has no solution notebook to take its "
                         "checks from")
    cells = [c for c in nbformat.read(exercise.source, as_version=4).cells
             if c.cell_type == "code"]
    setup = [(f"<exercise cell {i}>", plain_python(c.source)) for i, c in enumerate(cells)
             if i == 0 or ("### BEGIN SOLUTION" not in c.source
                           and _defines_check(parse_cell(c.source)))]
    checks, places = {}, []
    for check in exercise.checks:
        places.append(next(i for i, c in enumerate(cells) if check in called_names(c.source)
                           and not _defines_check(parse_cell(c.source))))
        checks[check] = (f"<check {check}>", _through_call(cells[places[-1]].source, check))
    labels: dict[tuple[str, int], str] = {}
    for filename, source in [*setup, *checks.values()]:
        labels |= _assert_labels(filename, source)
    return TrustedCode(setup, checks, labels, max(places, default=0))
