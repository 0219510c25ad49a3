"""Settings for every test run, notebooks included (their kernels inherit the environment)."""

import os

import nbformat
import pytest

from tests.notebook_images import repeated_images
from tests.notebook_outputs import expected_outputs, expected_path, is_checked

# Tests never touch the network and run the notebooks' fast mode.
os.environ.setdefault("CVAE_OFFLINE", "1")
os.environ.setdefault("CVAE_FAST", "1")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Give nbval the stored printout of each ``# NBVAL_CHECK_OUTPUT`` cell to compare with."""
    for item in items:
        cell = getattr(item, "cell", None)
        if cell is None or not is_checked(cell):
            continue
        expected = expected_outputs(item.path)
        if cell.id not in expected:
            raise pytest.UsageError(
                f"{item.path.name}: cell {cell.id} is marked # NBVAL_CHECK_OUTPUT but "
                f"{expected_path(item.path)} holds no output for it; record it with "
                f"`.venv/bin/python tests/notebook_outputs.py {item.path}`")
        cell.outputs = [nbformat.v4.new_output("stream", name="stdout", text=expected[cell.id])]
        cell.execution_count = 1  # nbval compares only cells it sees as run


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo):  # noqa: ANN201
    """Fail a notebook cell nbval ran if it shows the same picture twice (a missing ';')."""
    outcome = yield
    report = outcome.get_result()
    outputs = getattr(item, "test_outputs", None)
    if call.when != "call" or not report.passed or not outputs:
        return
    if item.cell.source.rstrip().endswith(";"):
        # IPython drops the result of a cell ending in ';', but only where it keeps input
        # history, which nbval's kernel does not: drop it here as JupyterLab would.
        outputs = [out for out in outputs if out.get("output_type") != "execute_result"]
    cell = nbformat.v4.new_code_cell(item.cell.source, outputs=outputs)
    problems = repeated_images(nbformat.v4.new_notebook(cells=[cell]))
    if problems:
        report.outcome = "failed"
        report.longrepr = f"{item.name}: " + problems[0].replace("cell 0 ", "this cell ", 1)
