"""No notebook cell shows the same picture twice.

The classic cause: a cell whose last line returns a matplotlib Figure without a closing ``;``.
The inline backend draws the open figure, and Jupyter also displays the returned value: the
student sees every plot twice. The check itself (``tests/notebook_images.py``) runs on every
cell nbval executes, through the root conftest, so every notebook is checked without being run
a second time. The tests here prove the check finds a repeat, and the real mistake in a live
kernel, and that the conftest hook fails such a cell in a real nbval run.
"""

from __future__ import annotations

import base64
import os
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

from tests.notebook_images import repeated_images

ROOT = Path(__file__).resolve().parents[1]
CELL_TIMEOUT = 900  # seconds; fast mode trains its tiny models well within this


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


def test_nbval_fails_a_cell_that_shows_a_figure_twice(fast_kernel_env):
    source = "import matplotlib.pyplot as plt\n%matplotlib inline\nfig = plt.figure()\n"
    notebook = nbformat.v4.new_notebook(cells=[
        nbformat.v4.new_code_cell(source + "plt.plot([0, 1]);"),
        nbformat.v4.new_code_cell(source + "plt.plot([0, 1])\nfig")])
    path = ROOT / "tests" / f".figure-twice-{os.getpid()}.ipynb"  # under the root conftest
    nbformat.write(notebook, path)
    try:
        run = subprocess.run([sys.executable, "-m", "pytest", str(path), "-q", "-p",
                              "no:cacheprovider", "--durations=0", "-n", "0"], cwd=ROOT,
                             capture_output=True, text=True, timeout=300)
    finally:
        path.unlink()
    assert "1 failed, 1 passed" in run.stdout, run.stdout[-2000:]
    assert "shows the same image 2 times" in run.stdout
