"""Notebooks 01-04 carry RISE slide metadata from one rule; it survives the student copies."""

from __future__ import annotations

from pathlib import Path

import nbformat
import pytest

from cvae_lib.classroom.exercises import student_notebook
from cvae_lib.classroom.slides import (NOTEBOOKS, SLIDE_TYPES, _heading_level, apply_slides, decks,
                             is_current, main, slide_types)

md, code = nbformat.v4.new_markdown_cell, nbformat.v4.new_code_cell


def stored(notebook: nbformat.NotebookNode) -> list[dict | None]:
    """The ``metadata.slideshow`` of every cell (None where there is none)."""
    return [cell.metadata.get("slideshow") for cell in notebook.cells]


def deck(*cells: nbformat.NotebookNode) -> nbformat.NotebookNode:
    """A notebook of ``cells``."""
    return nbformat.v4.new_notebook(cells=list(cells))


def test_heading_level_ignores_fenced_code():
    assert _heading_level("# Title\n## Part") == 1
    assert _heading_level("text\n### Detail") == 3
    assert _heading_level("```python\n# a comment\n```\nno heading") is None
    assert _heading_level("#hashtag is not a heading") is None


def test_rule_on_a_small_lesson():
    cells = [md("# 04 · Title\nobjectives"), code("device = setup_notebook(seed=0)"),
             md("## 1 · Section"), code("plot(model)"), md("Now change one thing."),
             code("plot(model, seed=1)"), md("### A detail"), code("x"),
             md("**1. Why?**\n<details><summary>Answer</summary>\nBecause.\n</details>"),
             md("## 2 · Steer it"), code("generation_widget(model, seed=0)"),
             md("The same as a strip:"), code("same_z_widget(model)"),
             code("interpolation_widget(model)"), md("Text after text.")]
    assert slide_types(cells) == ["slide", "subslide", "slide", "-", "subslide", "-",
                                  "subslide", "-", "fragment", "slide", "slide", "slide", "-",
                                  "slide", "subslide"]


def test_a_paragraph_between_two_paragraphs_stays_on_the_slide():
    assert slide_types([md("## A"), md("more text"), code("x")]) == ["slide", "-", "-"]


def test_apply_is_idempotent_ignores_old_metadata_and_writes_no_dash():
    notebook = deck(md("## A"), code("f_widget(1)"), md("b"), code("x"))
    notebook.cells[2].metadata["slideshow"] = {"slide_type": "notes"}
    notebook.cells[3].metadata["slideshow"] = {"slide_type": "-"}
    assert not is_current(notebook)
    once = nbformat.writes(apply_slides(notebook))
    assert nbformat.writes(apply_slides(nbformat.reads(once, as_version=4))) == once
    assert is_current(notebook)
    assert stored(notebook) == [{"slide_type": "slide"}, {"slide_type": "slide"},
                                {"slide_type": "subslide"}, None]


@pytest.mark.parametrize("path", decks(), ids=lambda p: p.name)
def test_deck_metadata_is_current(path: Path):
    notebook = nbformat.read(path, as_version=4)
    assert is_current(notebook), (
        f"{path.name}: slide metadata is missing or stale; run python -m cvae_lib slides")
    assert {meta["slide_type"] for meta in stored(notebook) if meta} <= set(SLIDE_TYPES) - {"-"}


@pytest.mark.parametrize("path", decks(), ids=lambda p: p.name)
def test_deck_opens_on_the_title_and_shows_widgets_on_their_own_slide(path: Path):
    notebook = nbformat.read(path, as_version=4)
    types = slide_types(notebook.cells)
    assert types[0] == "slide"
    for i, cell in enumerate(notebook.cells):
        if "_widget(" in cell.source and cell.cell_type == "code":
            assert "slide" in (types[i], types[i - 1]), f"{path.name} cell {i}"


def test_bad_input_is_named():
    with pytest.raises(TypeError, match="notebook's cells"):
        slide_types(3)
    with pytest.raises(TypeError, match="notebook's cells"):
        apply_slides({"cells": [{"source": "# no cell_type"}]})
    with pytest.raises(FileNotFoundError, match="no/such"):
        decks(Path("/no/such"))


def test_decks_are_notebooks_01_to_04():
    assert [path.name[:2] for path in decks()] == ["01", "02", "03", "04"]


def test_check_mode_passes_on_committed_notebooks():
    assert main(["--check"]) == 0


def test_slide_metadata_reaches_the_student_copy():
    solution = apply_slides(nbformat.read(NOTEBOOKS / "solutions" / "06_recode_from_scratch.ipynb",
                                          as_version=4))
    assert any(stored(solution))
    assert stored(student_notebook(solution)) == stored(solution)
