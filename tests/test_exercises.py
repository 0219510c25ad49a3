"""Student copies are generated, fresh, free of solution code, and fail only at TODOs."""

from __future__ import annotations

from pathlib import Path

import nbformat
import pytest

from cvae_lib.exercises import (BEGIN, NOTEBOOKS, STUDENT_TAG, main, render, solution_lines,
                                stub_source, student_notebook)

SOLUTIONS = sorted((NOTEBOOKS / "solutions").glob("*.ipynb"))


def test_stub_replaces_block_with_todo_and_keeps_indent():
    src = ("def f():\n    # TODO: add one\n    ### BEGIN SOLUTION\n    return 1\n"
           "    ### END SOLUTION")
    out, changed = stub_source(src)
    assert changed and "return 1" not in out
    assert '    raise NotImplementedError("TODO: add one")' in out
    compile(out, "<stub>", "exec")


def test_unbalanced_markers_are_reported():
    with pytest.raises(ValueError, match="without"):
        stub_source(f"{BEGIN}\nx = 1")


@pytest.mark.parametrize("path", SOLUTIONS, ids=lambda p: p.name)
def test_student_copy_is_fresh(path: Path):
    target = NOTEBOOKS / path.name
    assert target.read_text() == render(path), (
        f"{target.name} is stale: run python -m cvae_lib.exercises")


@pytest.mark.parametrize("path", SOLUTIONS, ids=lambda p: p.name)
def test_student_copy_has_no_solution_and_tags_failing_cells(path: Path):
    solution = nbformat.read(path, as_version=4)
    student = student_notebook(solution)
    code = "\n".join(c.source for c in student.cells if c.cell_type == "code")
    assert BEGIN not in code
    student_lines = {line.strip() for line in code.splitlines()}
    for line in solution_lines(solution):
        assert line not in student_lines, f"solution line leaked into {path.name}: {line}"
    for cell in student.cells:
        if "NotImplementedError" in cell.source and cell.cell_type == "code":
            assert STUDENT_TAG in cell.metadata.get("tags", [])
        assert not cell.get("outputs")
    for cell in solution.cells:
        assert STUDENT_TAG not in cell.metadata.get("tags", [])


def test_check_mode_passes_on_committed_copies():
    assert main(["--check"]) == 0


def test_every_stub_fails_and_solution_passes():
    """Run 06's code cells: with solutions each check passes, with stubs each one fails."""
    path = NOTEBOOKS / "solutions" / "06_recode_from_scratch.ipynb"
    solution = nbformat.read(path, as_version=4)
    for notebook, should_pass in ((solution, True), (student_notebook(solution), False)):
        scope: dict = {}
        for cell in notebook.cells:
            if cell.cell_type != "code" or "load_mnist(" in cell.source \
                    or "model.decode" in cell.source:
                continue
            if cell.source.startswith("check_"):
                if should_pass:
                    exec(cell.source, scope)
                else:
                    with pytest.raises(NotImplementedError, match="TODO"):
                        exec(cell.source, scope)
            else:
                exec(cell.source.replace("device = setup_notebook(seed=0)", ""), scope)
