"""Running one submission: its cells in a sandboxed kernel, each check cell named an outcome.

A check cell's outcome is OK, the TODO the student left, the label of the mistake a check
found, or what stopped the run (a crash, the time limit, a missing check cell).
"""

from __future__ import annotations

import copy
import json
import math
import os
import re
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import nbformat
from nbclient import NotebookClient
from nbclient.exceptions import CellTimeoutError, DeadKernelError

from cvae_lib.classroom.grading.notebooks import Exercise, check_cells
from cvae_lib.classroom.grading.sandbox import (Limits, Sandbox, kernel_env, make_workspace,
                                                sandboxed_client)

OK, TODO, TIMED_OUT, MISSING = "OK", "TODO left", "timed out", "check cell missing"
LABEL_CHARS = 60
# Run inside the kernel after a failed check: the label a CheckFailure carries, and whether
# the error is a check's verdict (an AssertionError) rather than a crash.
PROBE = ("print(__import__('json').dumps([str(getattr(getattr(__import__('sys'), 'last_value', "
         "None), 'label', '') or ''), isinstance(getattr(__import__('sys'), 'last_value', "
         "None), AssertionError)]))")


@dataclass(frozen=True)
class CellError:
    """The error a cell raised, as the kernel reported it."""

    kind: str
    message: str
    label: str = ""
    mistake: bool = False


def _error_of(cell: nbformat.NotebookNode) -> CellError | None:
    """The error output of an executed cell, if it raised."""
    for output in cell.get("outputs", []):
        if output.output_type == "error":
            return CellError(output.ename, output.evalue,
                             mistake=output.ename in ("AssertionError", "CheckFailure"))
    return None


def _probe(client: NotebookClient, error: CellError) -> CellError:
    """Ask the kernel for the failed check's label and whether it is an AssertionError."""
    cell = nbformat.v4.new_code_cell(PROBE)
    client.execute_cell(cell, 0, store_history=False)
    text = "".join(o.get("text", "") for o in cell.outputs if o.output_type == "stream")
    try:
        label, mistake = json.loads(text.strip().splitlines()[-1])
    except (ValueError, IndexError):
        return error
    return CellError(error.kind, error.message, str(label), bool(mistake))


def short_label(message: str) -> str:
    """The first clause of a check's message: its name for the mistake."""
    clause = re.split(r"[:;(\n]|\. ", message.strip(), maxsplit=1)[0].strip().rstrip(".")
    if not clause:
        return "assertion failed"
    return clause if len(clause) <= LABEL_CHARS else clause[:LABEL_CHARS - 1] + "…"


def describe(error: CellError | None, earlier: CellError | None) -> str:
    """The table cell for a check cell's outcome (``earlier``: first error before it)."""
    if error is None:
        return OK
    if error.kind == "NotImplementedError" and error.message.startswith("TODO"):
        return TODO
    if error.mistake:
        return error.label or short_label(error.message)
    if error.kind == "NameError" and earlier is not None:
        return describe(earlier, None)
    return f"crashed: {error.kind}"


class _OutOfTime(Exception):
    """The submission used up its time limit."""


def _seconds_left(deadline: float) -> int:
    """Whole seconds until ``deadline``; raise when none are left."""
    left = deadline - time.monotonic()
    if left <= 0:
        raise _OutOfTime
    return math.ceil(left)


def _execute(client: NotebookClient, nb: nbformat.NotebookNode, checks: dict[int, str],
             deadline: float, results: dict[str, str]) -> None:
    """Run the code cells up to the last check, filling ``results`` for each check cell."""
    earlier: CellError | None = None
    for index, cell in enumerate(nb.cells[: max(checks) + 1]):
        if cell.cell_type != "code":
            continue
        client.timeout = _seconds_left(deadline)
        client.execute_cell(cell, index)
        error = _error_of(cell)
        if index in checks:
            if error is not None:
                client.timeout = _seconds_left(deadline)
                error = _probe(client, error)
            results[checks[index]] = describe(error, earlier)
        earlier = earlier or error


def run_submission(path: Path, nb: nbformat.NotebookNode, exercise: Exercise, limits: Limits,
                   sandbox: Sandbox) -> dict[str, str]:
    """Check name -> outcome for one submission, run in a temporary folder of its own."""
    checks = check_cells(nb, exercise)
    results = {check: MISSING for check in exercise.checks if check not in checks.values()}
    if not checks:
        return results
    with tempfile.TemporaryDirectory(prefix="cvae-grade-") as tmp:
        root = Path(os.path.realpath(tmp))  # bound into the sandbox by the name it really has
        work = make_workspace(root, path)
        client = sandboxed_client(copy.deepcopy(nb), root, work, limits, sandbox)
        outcome = "crashed: kernel did not start"
        try:
            with client.setup_kernel(cwd=str(work), env=kernel_env(root, limits.threads),
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL):
                # The limit is the student's code's time: it starts once the kernel is up.
                outcome, deadline = "crashed: kernel died", time.monotonic() + limits.seconds
                _execute(client, client.nb, checks, deadline, results)
        except (CellTimeoutError, _OutOfTime):
            outcome = TIMED_OUT
        except DeadKernelError:
            pass
        except RuntimeError as err:
            if "kernel" not in str(err).lower():
                raise
    return {check: results.get(check, outcome) for check in exercise.checks}
