"""Settings for every test run, notebooks included (their kernels inherit the environment)."""

import json
import os
from pathlib import Path

# Tests never touch the network and run the notebooks' fast mode.
os.environ.setdefault("CVAE_OFFLINE", "1")
os.environ.setdefault("CVAE_FAST", "1")

# pytest-xdist runs the suite in one worker per core: each worker, and every kernel and process
# it starts, gets its share of the cores. Two processes each spinning two OpenMP threads on two
# cores run several times slower than one thread each (benchmarks/bench_contention.py).
_WORKERS = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))
if _WORKERS > 1:
    os.environ.setdefault("OMP_NUM_THREADS", str(max(1, (os.cpu_count() or 1) // _WORKERS)))

import nbformat  # noqa: E402 (after the settings above, which torch reads at import)
import pytest  # noqa: E402

from tests.notebook_images import repeated_images  # noqa: E402
from tests.notebook_outputs import expected_outputs, expected_path, is_checked  # noqa: E402

# Files whose tests take longest start first, so no worker is left with a long one at the end.
SLOW_FIRST = ["tests/test_grading.py", "tests/test_browser.py", "tests/test_main_job_safety.py",
              "tests/test_exercise_roundtrip.py"]


def pytest_ignore_collect(collection_path: Path) -> bool | None:
    """Leave student copies to tests/test_exercise_roundtrip.py, which runs them stricter."""
    if collection_path.suffix != ".ipynb":
        return None
    # Imported here, in the workers that collect: the xdist controller never loads torch.
    from cvae_lib.classroom.exercises import METADATA_KEY
    metadata = json.loads(collection_path.read_text(encoding="utf-8")).get("metadata", {})
    return True if METADATA_KEY in metadata else None


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Put the slow files first; give nbval the stored printout of each checked cell."""
    order = {str(config.rootpath / name): rank for rank, name in enumerate(SLOW_FIRST)}
    items.sort(key=lambda item: order.get(str(item.path), len(order)))
    for item in items:
        cell = getattr(item, "cell", None)
        if cell is None or not is_checked(cell):
            continue
        expected = expected_outputs(item.path)
        if cell.id not in expected:
            raise pytest.UsageError(
                f"{item.path.name}: cell {cell.id} is tagged nbval-check-output but "
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
