"""Both directions of every exercise, by running the notebooks (nbgrader's validate --invert).

Each solution notebook runs to its end without an error: nbval runs every one of them (it
collects ``notebooks/solutions/`` with the lessons). Each student copy, run top to bottom,
fails only where a TODO is left: every cell tagged ``raises-exception`` raises
``NotImplementedError("TODO: ...")``, every cell holding TODOs has one of them raised, and no
other cell fails (nbclient stops at an error in an untagged cell). Runs in fast mode.
"""

from __future__ import annotations

import ast
import sys
from pathlib import Path

import nbformat
import pytest
from jupyter_client.kernelspec import KernelSpec, KernelSpecManager
from jupyter_client.manager import KernelManager
from nbclient import NotebookClient

from cvae_lib.classroom.exercises import NOTEBOOKS, STUDENT_TAG

SOLUTIONS = sorted((NOTEBOOKS / "solutions").glob("*.ipynb"))


class _ThisPython(KernelSpecManager):
    """Kernels run the interpreter running the tests (as nbval's --nbval-current-env)."""

    def get_kernel_spec(self, kernel_name: str) -> KernelSpec:
        return KernelSpec(argv=[sys.executable, "-m", "ipykernel_launcher", "-f",
                                "{connection_file}"], display_name="tests", language="python")


def run(path: Path, cache: Path, monkeypatch, allow_errors: bool = False,
        ) -> nbformat.NotebookNode:
    """Execute a notebook in fast mode in the notebooks' folder; return it with its outputs."""
    monkeypatch.setenv("CVAE_FAST", "1")
    monkeypatch.setenv("CVAE_OFFLINE", "1")
    monkeypatch.setenv("CVAE_CACHE_DIR", str(cache))
    monkeypatch.setenv("MPLBACKEND", "agg")
    notebook = nbformat.read(path, as_version=4)
    client = NotebookClient(notebook, timeout=900, allow_errors=allow_errors,
                            km=KernelManager(kernel_spec_manager=_ThisPython()),
                            resources={"metadata": {"path": str(NOTEBOOKS)}})
    client.execute()
    return notebook


def todo_messages(source: str) -> list[str]:
    """The message of each ``raise NotImplementedError("TODO: ...")`` in a cell's source."""
    code = "\n".join("" if line.lstrip().startswith(("%", "!")) else line
                     for line in source.splitlines())
    return [node.exc.args[0].value for node in ast.walk(ast.parse(code))
            if isinstance(node, ast.Raise) and isinstance(node.exc, ast.Call)
            and getattr(node.exc.func, "id", None) == "NotImplementedError"
            and node.exc.args and isinstance(node.exc.args[0], ast.Constant)
            and str(node.exc.args[0].value).startswith("TODO")]


def errors(cell: nbformat.NotebookNode) -> list[nbformat.NotebookNode]:
    """The error outputs of an executed cell."""
    return [out for out in cell.get("outputs", []) if out.output_type == "error"]


@pytest.mark.parametrize("path", SOLUTIONS, ids=lambda p: p.name)
def test_student_copy_fails_exactly_at_its_todos(path: Path, notebook_cache: Path, monkeypatch):
    notebook = run(NOTEBOOKS / path.name, notebook_cache, monkeypatch)
    todo_cells = {index: todo_messages(cell.source) for index, cell in enumerate(notebook.cells)
                  if cell.cell_type == "code" and todo_messages(cell.source)}
    assert todo_cells, f"{path.name} has no TODO: an exercise needs at least one"
    raised = set()
    for index, cell in enumerate(notebook.cells):
        if cell.cell_type != "code":
            continue
        found = errors(cell)
        tagged = STUDENT_TAG in cell.metadata.get("tags", [])
        assert bool(found) == tagged, (
            f"{path.name}, cell {index}: tagged {STUDENT_TAG} but ran without error" if tagged
            else f"{path.name}, cell {index} failed without the tag")
        for error in found:
            assert error.ename == "NotImplementedError" and error.evalue.startswith("TODO"), (
                f"{path.name}, cell {index} raised {error.ename}: {error.evalue}; "
                f"a student copy may fail only at a TODO")
            raised.add(error.evalue)
    # A cell's code can stop at its first TODO (a class whose __init__ is one), so each cell
    # that holds TODOs must have at least one of them raised when the notebook runs.
    silent = {index: todos for index, todos in todo_cells.items() if not raised & set(todos)}
    assert not silent, f"{path.name}: no TODO of these cells is ever reached when run: {silent}"
