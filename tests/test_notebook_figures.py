"""No notebook cell shows the same picture twice.

The classic cause: a cell whose last line returns a matplotlib Figure without a closing ``;``.
The inline backend draws the open figure, and Jupyter also displays the returned value: the
student sees every plot twice. This test runs every notebook under ``notebooks/`` (lessons,
exercises and solutions, whatever exists) once, in fast mode, with nbclient and the
``python3`` kernel from the notebooks' folder, and compares the PNG data of each cell's
outputs. Whether the cells run correctly is nbval's job; this test lets errors pass (student
copies of the exercises fail on purpose) and checks the images of every cell that ran.

The models the notebooks train are cached in one temporary folder for the whole run, so a
model trained by 01 is loaded by 03; nothing outlives the run.
"""

from __future__ import annotations

import base64
import hashlib
from collections import Counter
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted(path for path in (ROOT / "notebooks").rglob("*.ipynb")
                   if ".ipynb_checkpoints" not in path.parts)
CELL_TIMEOUT = 900  # seconds; fast mode trains its tiny models well within this


def image_fingerprints(output: nbformat.NotebookNode) -> list[str]:
    """SHA-256 of every PNG an output carries (the base64 text, whitespace removed)."""
    png = output.get("data", {}).get("image/png")
    if png is None:
        return []
    text = "".join(png) if isinstance(png, list) else png
    data = base64.b64decode("".join(text.split()))
    return [hashlib.sha256(data).hexdigest()]


def repeated_images(notebook: nbformat.NotebookNode) -> list[str]:
    """One line per code cell that shows an identical image more than once."""
    problems = []
    for index, cell in enumerate(notebook.cells):
        if cell.cell_type != "code":
            continue
        counts = Counter(fingerprint for output in cell.get("outputs", [])
                         for fingerprint in image_fingerprints(output))
        repeats = {fingerprint: n for fingerprint, n in counts.items() if n > 1}
        if repeats:
            last_line = cell.source.strip().splitlines()[-1] if cell.source.strip() else ""
            problems.append(f"cell {index} (id {cell.get('id')}) shows the same image "
                            f"{max(repeats.values())} times; its last line is {last_line!r} "
                            f"(end a line that returns a Figure with ';')")
    return problems


def execute(notebook: nbformat.NotebookNode, folder: Path) -> nbformat.NotebookNode:
    """Run ``notebook`` in place with the python3 kernel, working directory ``folder``."""
    client = NotebookClient(notebook, kernel_name="python3", timeout=CELL_TIMEOUT,
                            allow_errors=True, resources={"metadata": {"path": str(folder)}})
    client.execute()
    return notebook


@pytest.fixture(scope="module")
def shared_cache(tmp_path_factory) -> Path:
    """One checkpoint folder for every notebook of this run."""
    return tmp_path_factory.mktemp("notebook-checkpoints")


@pytest.fixture
def fast_kernel_env(monkeypatch, shared_cache) -> None:
    """The environment the kernels inherit: fast mode, offline, the run's own cache."""
    monkeypatch.setenv("CVAE_FAST", "1")
    monkeypatch.setenv("CVAE_OFFLINE", "1")
    monkeypatch.setenv("CVAE_CACHE_DIR", str(shared_cache))


def test_there_are_notebooks():
    assert NOTEBOOKS, "no notebooks under notebooks/"


def test_a_repeated_image_is_found():
    one = base64.b64encode(b"\x89PNG one").decode()
    two = base64.b64encode(b"\x89PNG two").decode()
    cell = nbformat.v4.new_code_cell("show_images(x)", outputs=[
        nbformat.v4.new_output("display_data", {"image/png": one}),
        nbformat.v4.new_output("execute_result", {"image/png": one + "\n"}, execution_count=1)])
    fine = nbformat.v4.new_code_cell("two figures", outputs=[
        nbformat.v4.new_output("display_data", {"image/png": one}),
        nbformat.v4.new_output("display_data", {"image/png": two})])
    problems = repeated_images(nbformat.v4.new_notebook(cells=[fine, cell]))
    assert len(problems) == 1, problems
    assert problems[0].startswith("cell 1 ") and "2 times" in problems[0]
    assert "'show_images(x)'" in problems[0]


def test_a_figure_returned_without_semicolon_is_caught(fast_kernel_env, tmp_path):
    source = ("import matplotlib.pyplot as plt\n%matplotlib inline\n"
              "fig, ax = plt.subplots()\nax.plot([0, 1])\nfig")
    notebook = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(source),
                                               nbformat.v4.new_code_cell(source + ";")])
    executed = execute(notebook, tmp_path)
    problems = repeated_images(executed)
    assert len(problems) == 1 and problems[0].startswith("cell 0 "), problems


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: str(p.relative_to(ROOT)))
def test_no_cell_shows_an_image_twice(path, fast_kernel_env):
    notebook = execute(nbformat.read(path, as_version=4), path.parent)
    problems = repeated_images(notebook)
    assert not problems, f"{path.relative_to(ROOT)}:\n" + "\n".join(problems)
