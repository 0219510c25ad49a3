"""A failed exercise check, run in a notebook kernel, shows a few lines naming the mistake and
its fix instead of a traceback (the check's own message, not PyTorch's)."""

from __future__ import annotations

import re
from pathlib import Path

import nbformat

from cvae_lib.checks import MISTAKES
from cvae_lib.classroom.exercises import NOTEBOOKS
from tests.test_exercise_roundtrip import errors, run

MAX_LINES = 8
ANSI = re.compile(r"\x1b\[[0-9;]*m")


def wrong_answer(name: str, edits: dict[str, str], last_call: str) -> nbformat.NotebookNode:
    """Solution notebook ``name`` with ``edits`` (old -> new) made, cut after ``last_call``."""
    nb = nbformat.read(NOTEBOOKS / "solutions" / name, as_version=4)
    for old, new in edits.items():
        cell = next(c for c in nb.cells if c.cell_type == "code" and old in c.source)
        cell.source = cell.source.replace(old, new)
    end = next(i for i, c in enumerate(nb.cells) if c.source.startswith(last_call))
    nb.cells = nb.cells[:end + 1]
    return nb


def reports(nb: nbformat.NotebookNode, tmp_path: Path, cache: Path, monkeypatch) -> list[str]:
    """The error output of every cell that failed, as the plain text a student sees."""
    path = tmp_path / "wrong.ipynb"
    nbformat.write(nb, path)
    ran = run(path, cache, monkeypatch, allow_errors=True)
    return [ANSI.sub("", "\n".join(error.traceback)) for cell in ran.cells
            if cell.cell_type == "code" for error in errors(cell)]


def test_a_wrong_06_answer_gets_a_short_report(tmp_path: Path, notebook_cache: Path,
                                               monkeypatch) -> None:
    """06: the encoder joins the label on dim=0; its check names that in at most 8 lines."""
    nb = wrong_answer("06_recode_from_scratch.ipynb",
                      {"torch.cat([x, labels_onehot], dim=1)": "torch.cat([x, labels_onehot], 0)"},
                      "check_simple_cvae(")
    [report] = reports(nb, tmp_path, notebook_cache, monkeypatch)
    assert len(report.splitlines()) <= MAX_LINES, report
    assert "check_simple_cvae failed" in report and MISTAKES["cat_dim0"] in report, report
    assert "Traceback" not in report and "File " not in report, report


def test_07_names_dim0_and_the_network_whose_input_size_is_wrong(
        tmp_path: Path, notebook_cache: Path, monkeypatch) -> None:
    """07: a dim=0 condition and an encoder built for the image and digit only (794, not 797)
    each get their own few lines, not PyTorch's shape error."""
    nb = wrong_answer("07_challenge_thickness.ipynb", {
        "torch.cat([digit_onehot, thickness_onehot], dim=1)":
            "torch.cat([digit_onehot, thickness_onehot], dim=0)",
        "encoder_in = 784 + NUM_DIGITS + NUM_THICKNESS": "encoder_in = 784 + NUM_DIGITS"},
        "check_two_label_model(")
    dim0, size = reports(nb, tmp_path, notebook_cache, monkeypatch)
    for report in (dim0, size):
        assert len(report.splitlines()) <= MAX_LINES and "Traceback" not in report, report
    assert "check_condition failed" in dim0 and "dim=0" in dim0 and "dim=1" in dim0, dim0
    assert "except in dimension" not in dim0, dim0
    assert "check_two_label_model failed" in size and "encoder input size" in size, size
    assert "794" in size and "797" in size and "mat1" not in size, size
