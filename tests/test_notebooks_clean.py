"""Committed notebooks hold no outputs or execution counts (``# NBVAL_CHECK_OUTPUT`` aside).

A cell whose first line is ``# NBVAL_CHECK_OUTPUT`` may keep text output, and the execution
count nbval needs to compare it; nothing else may.
"""

from __future__ import annotations

from pathlib import Path

import nbformat
import pytest

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted(path for folder in ("notebooks", "presenter") if (ROOT / folder).is_dir()
                   for path in (ROOT / folder).rglob("*.ipynb")
                   if ".ipynb_checkpoints" not in path.parts)
CHECKED = "# NBVAL_CHECK_OUTPUT"
TEXT_OUTPUTS = {"stream", "execute_result"}


def dirt(cell: nbformat.NotebookNode) -> list[str]:
    """What a code cell holds that a committed notebook must not."""
    if cell.cell_type != "code":
        return ["outputs"] if cell.get("outputs") else []
    problems = []
    checked = cell.source.lstrip().startswith(CHECKED)
    if cell.get("execution_count") is not None and not checked:
        problems.append(f"execution_count {cell.execution_count}")
    for output in cell.get("outputs", []):
        text_only = output.output_type in TEXT_OUTPUTS and set(output.get("data", {})) <= {
            "text/plain"}
        if not (checked and text_only):
            problems.append(f"an output of type {output.output_type}")
    return problems


def test_there_are_notebooks_to_check():
    assert NOTEBOOKS, "no notebooks found under notebooks/"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: str(p.relative_to(ROOT)))
def test_notebook_is_committed_clean(path):
    notebook = nbformat.read(path, as_version=4)
    found = [f"cell {i}: {problem}" for i, cell in enumerate(notebook.cells)
             for problem in dirt(cell)]
    assert not found, (f"{path.relative_to(ROOT)} holds outputs; strip them with "
                       f"`jupyter nbconvert --clear-output --inplace {path.relative_to(ROOT)}` "
                       f"(only cells starting with {CHECKED} may keep text output): "
                       + "; ".join(found))


def test_dirt_is_detected():
    executed = nbformat.v4.new_code_cell("1 + 1", execution_count=3, outputs=[
        nbformat.v4.new_output("execute_result", {"text/plain": "2"}, execution_count=3)])
    image = nbformat.v4.new_code_cell(CHECKED + "\nplot()", outputs=[
        nbformat.v4.new_output("display_data", {"image/png": "iVBOR", "text/plain": "<Fig>"})])
    kept = nbformat.v4.new_code_cell(CHECKED + "\nprint(x.shape)", execution_count=4, outputs=[
        nbformat.v4.new_output("stream", name="stdout", text="torch.Size([2, 794])\n")])
    assert dirt(executed) == ["execution_count 3", "an output of type execute_result"]
    assert dirt(image) == ["an output of type display_data"]
    assert dirt(kept) == []
    assert dirt(nbformat.v4.new_code_cell("x = 1")) == []
