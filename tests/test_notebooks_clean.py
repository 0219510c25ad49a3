"""Committed notebooks hold no outputs or execution counts, checked cells have references, and
a student sees no test-tool marker and no word about where the lessons come from.

A cell tagged ``nbval-check-output`` is compared by nbval with the printout stored in
``tests/expected_outputs/`` (see ``tests/notebook_outputs.py``), not in the notebook.
"""

from __future__ import annotations

import re
from pathlib import Path

import nbformat
import pytest

from notebook_outputs import CHECKED, expected_outputs, expected_path, is_checked

# Test-tool markers (nbval's comments and the like) and the words for the course's source
# material: they belong in cell tags and in the README, not in what a student reads.
HIDDEN = re.compile(r"NBVAL_|PYTEST_VALIDATE|\bspecs?\b|\bspec's\b|curricul", re.IGNORECASE)

# The machinery behind the lesson: notebooks import the lesson's modules alone, and the tests'
# fast mode lives in the loaders, so no cell a student reads mentions or branches on it.
MACHINERY = re.compile(r"cvae_lib\.(classroom|infra)\b|\bfast_mode\b|CVAE_FAST|\bFAST\b")

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted(path for folder in ("notebooks", "presenter") if (ROOT / folder).is_dir()
                   for path in (ROOT / folder).rglob("*.ipynb")
                   if ".ipynb_checkpoints" not in path.parts)


def dirt(cell: nbformat.NotebookNode) -> list[str]:
    """What a cell holds that a committed notebook must not."""
    problems = []
    if cell.get("execution_count") is not None:
        problems.append(f"execution_count {cell.execution_count}")
    problems += [f"an output of type {output.output_type}" for output in cell.get("outputs", [])]
    return problems


def test_there_are_notebooks_to_check():
    assert NOTEBOOKS, "no notebooks found under notebooks/"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: str(p.relative_to(ROOT)))
def test_notebook_is_committed_clean(path):
    notebook = nbformat.read(path, as_version=4)
    found = [f"cell {i}: {problem}" for i, cell in enumerate(notebook.cells)
             for problem in dirt(cell)]
    assert not found, (f"{path.relative_to(ROOT)} holds outputs; strip them with "
                       f"`jupyter nbconvert --clear-output --inplace {path.relative_to(ROOT)}`: "
                       + "; ".join(found))


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: str(p.relative_to(ROOT)))
def test_checked_cells_and_references_match(path):
    checked = {cell.id for cell in nbformat.read(path, as_version=4).cells if is_checked(cell)}
    stored = set(expected_outputs(path))
    assert checked == stored, (
        f"{path.name}: cells marked {CHECKED} {sorted(checked)} but "
        f"{expected_path(path).name} holds {sorted(stored)}; record them with "
        f"`.venv/bin/python tests/notebook_outputs.py {path.relative_to(ROOT)}`")


def visible_words(notebook: nbformat.NotebookNode, words: re.Pattern = HIDDEN
                  ) -> list[tuple[int, str]]:
    """(cell index, line) of every source line a student sees that holds one of ``words``."""
    return [(i, line.strip()) for i, cell in enumerate(notebook.cells)
            for line in cell.source.splitlines() if words.search(line)]


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: str(p.relative_to(ROOT)))
def test_students_see_no_test_marker_or_source_word(path):
    found = visible_words(nbformat.read(path, as_version=4))
    assert not found, (f"{path.relative_to(ROOT)} shows a student a test marker or the word "
                       "'spec'/'curriculum' (use a cell tag such as nbval-check-output): "
                       + "; ".join(f"cell {i}: {line}" for i, line in found))


LESSONS = [path for path in NOTEBOOKS if "notebooks" in path.relative_to(ROOT).parts[:1]]


@pytest.mark.parametrize("path", LESSONS, ids=lambda p: str(p.relative_to(ROOT)))
def test_lessons_import_only_the_lesson_and_never_mention_fast_mode(path):
    found = visible_words(nbformat.read(path, as_version=4), MACHINERY)
    assert not found, (f"{path.relative_to(ROOT)} shows the machinery (cvae_lib.classroom, "
                       "cvae_lib.infra or fast mode): " + "; ".join(f"cell {i}: {line}"
                                                                    for i, line in found))


def test_machinery_is_found():
    cells = [nbformat.v4.new_code_cell("from cvae_lib.infra.runtime import fast_mode"),
             nbformat.v4.new_code_cell("limit = 2048 if FAST else None"),
             nbformat.v4.new_markdown_cell("Under `CVAE_FAST=1` the model is tiny"),
             nbformat.v4.new_code_cell("from cvae_lib.course import course_model  # fast")]
    found = visible_words(nbformat.v4.new_notebook(cells=cells), MACHINERY)
    assert [i for i, _ in found] == [0, 1, 2]


def test_hidden_words_are_found():
    cells = [nbformat.v4.new_code_cell("# NBVAL_CHECK_OUTPUT\nx = 1"),
             nbformat.v4.new_markdown_cell("The spec's loop; the Curriculum asks"),
             nbformat.v4.new_markdown_cell("A specific spectrum, inspected")]
    found = visible_words(nbformat.v4.new_notebook(cells=cells))
    assert [i for i, _ in found] == [0, 1]


def test_dirt_is_detected():
    executed = nbformat.v4.new_code_cell("1 + 1", execution_count=3, outputs=[
        nbformat.v4.new_output("execute_result", {"text/plain": "2"}, execution_count=3)])
    checked = nbformat.v4.new_code_cell("print(x.shape)", execution_count=4, outputs=[
        nbformat.v4.new_output("stream", name="stdout", text="torch.Size([2, 794])\n")])
    assert dirt(executed) == ["execution_count 3", "an output of type execute_result"]
    assert dirt(checked) == ["execution_count 4", "an output of type stream"]
    assert dirt(nbformat.v4.new_code_cell("x = 1")) == []
