"""Running one submission: the runner in the sandbox, and each check's outcome named.

The grader sends the runner (``runner.py``) its job on stdin with a fresh nonce and reads one
JSON line per check from a pipe; it keeps only well-formed lines that carry the nonce and name
one of the exercise's checks, and names each outcome from a fixed set: OK, a check's own mistake
label, TODO left, crashed: <built-in exception>, timed out, or a change to the checks, for the
instructor to review. Nothing a submission prints or raises is copied into the report.
"""

from __future__ import annotations

import builtins
import hmac
import json
import os
import secrets
import select
import signal
import subprocess
import tempfile
import threading
import time
from contextlib import suppress
from pathlib import Path
from typing import IO

import nbformat

from cvae_lib.checks import MISTAKES
from cvae_lib.classroom.grading.notebooks import (Exercise, TrustedCode, called_names,
                                                  plain_python, trusted_code)
from cvae_lib.classroom.grading.sandbox import INSIDE_TMP, Limits, Sandbox, runner_argv, runner_env
from cvae_lib.classroom.grading.tripwire import suspicious

OK, TODO, TIMED_OUT = "OK", "TODO left", "timed out"
CHANGED = "changed the checks: review"  # student code rebound a check, cvae_lib or torch
ENDED = "crashed: process ended"  # the runner died (os._exit, a signal) before this check
OTHER = "crashed: other exception"  # an exception class that is not a built-in one
REVIEW = "passed, but review the code"  # an OK from code that reaches into Python (tripwire)
RESULT_BYTES = 2 ** 20  # more than any honest runner writes
BUILTIN_EXCEPTIONS = frozenset(name for name, value in vars(builtins).items()
                               if isinstance(value, type) and issubclass(value, BaseException))
SHAPES = {"ok": (), "todo": (), "changed": (), "mistake": (str,), "assert": (str, int),
          "error": (str, str)}  # an outcome's kind -> the types of the values after it


def _well_formed(outcome: object) -> bool:
    """True for an outcome of a known kind with values of the right types."""
    if not (isinstance(outcome, list) and outcome and outcome[0] in SHAPES):
        return False
    shape = SHAPES[outcome[0]]
    return len(outcome) == 1 + len(shape) and all(
        type(value) is kind for value, kind in zip(outcome[1:], shape))


def describe(outcome: list, earlier: list | None, labels: dict[tuple[str, int], str]) -> str:
    """The table cell for a check's outcome (``earlier``: the first error of a cell before it)."""
    kind = outcome[0]
    if kind in ("ok", "todo", "changed"):
        return {"ok": OK, "todo": TODO, "changed": CHANGED}[kind]
    if kind == "mistake":
        return MISTAKES.get(outcome[1], "crashed: CheckFailure")
    if kind == "assert":
        return labels.get((outcome[1], outcome[2]), "assertion failed")
    module, name = outcome[1:]
    if module != "builtins" or name not in BUILTIN_EXCEPTIONS:
        return OTHER
    if name == "NameError" and earlier is not None:
        return describe(earlier, None, labels)
    return f"crashed: {name}"


def _check_places(nb: nbformat.NotebookNode, exercise: Exercise) -> dict[str, int]:
    """Check -> index among the code cells of the first submission cell calling it."""
    cells = [cell for cell in nb.cells if cell.cell_type == "code"]
    places = {}
    for check in exercise.checks:
        index = next((i for i, c in enumerate(cells) if check in called_names(c.source)), None)
        if index is not None:
            places[check] = index
    return places


def _job_steps(nb: nbformat.NotebookNode, exercise: Exercise, code: TrustedCode) -> list[list]:
    """The submission's cells up to its last check cell, each check cell replaced by the
    exercise's own; a check whose cell was deleted runs after them."""
    cells = [cell for cell in nb.cells if cell.cell_type == "code"]
    places = _check_places(nb, exercise)
    stop = max(places.values(), default=code.last_check)
    steps: list[list] = []
    for index, cell in enumerate(cells[:stop + 1]):
        here = [check for check in exercise.checks if places.get(check) == index]
        steps += [["check", check, *code.checks[check]] for check in here] or [
            ["cell", f"<submission cell {index}>", plain_python(cell.source)]]
    return steps + [["check", check, *code.checks[check]]
                    for check in exercise.checks if check not in places]


def _send(stream: IO[bytes], job: dict) -> None:
    """Write the job to the runner's stdin (in a thread: a runner that never reads it hangs)."""
    with suppress(OSError):
        stream.write(json.dumps(job).encode())
        stream.close()


def _accept(line: bytes, nonce: str, found: dict[str, tuple], checks: tuple[str, ...]) -> None:
    """Record a result line if it carries the nonce and is about a check not yet reported."""
    try:
        message = json.loads(line)
    except ValueError:
        return
    if not (isinstance(message, dict) and isinstance(message.get("nonce"), str)
            and hmac.compare_digest(message["nonce"], nonce)):
        return
    check, outcome, earlier = message.get("check"), message.get("outcome"), message.get("earlier")
    if (check in checks and check not in found and _well_formed(outcome)
            and (earlier is None or _well_formed(earlier))):
        found[check] = (outcome, earlier)


def _collect(read_fd: int, proc: subprocess.Popen, deadline: float, nonce: str,
             checks: tuple[str, ...]) -> tuple[dict[str, tuple], bool]:
    """The results read before the runner ends or the deadline; and whether time ran out."""
    found: dict[str, tuple] = {}
    buffer, size = b"", 0
    while len(found) < len(checks) and size <= RESULT_BYTES:
        left = deadline - time.monotonic()
        if left <= 0:
            return found, True
        if not select.select([read_fd], [], [], min(left, 0.5))[0]:
            if proc.poll() is None:
                continue
            if not select.select([read_fd], [], [], 0)[0]:  # ended, and nothing left to read
                break
        chunk = os.read(read_fd, 65536)
        if not chunk:
            break
        size += len(chunk)
        *lines, buffer = (buffer + chunk).split(b"\n")
        for line in lines:
            _accept(line, nonce, found, checks)
    return found, False


def _stop(proc: subprocess.Popen) -> None:
    """End the runner and everything it started (its sandbox, or its process group)."""
    with suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()


def _start(sandbox: Sandbox, limits: Limits, uid: int, root: Path,
           write_fd: int) -> subprocess.Popen:
    """The runner, started in the sandbox (or, without one, in the folder ``root``)."""
    return subprocess.Popen(sandbox.command(runner_argv(), uid), stdin=subprocess.PIPE,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            pass_fds=(write_fd,), env=runner_env(root, limits.threads),
                            cwd=None if sandbox.bwrap else root, start_new_session=True)


def run_submission(nb: nbformat.NotebookNode, exercise: Exercise, limits: Limits,
                   sandbox: Sandbox) -> dict[str, str]:
    """Check name -> outcome for one submission, run by the runner in the sandbox."""
    code = trusted_code(exercise)
    nonce = secrets.token_hex(32)
    read_fd, write_fd = os.pipe()
    with sandbox.lease(limits) as uid, tempfile.TemporaryDirectory(prefix="cvae-grade-") as tmp:
        root = INSIDE_TMP if sandbox.bwrap else Path(os.path.realpath(tmp))
        job = {"nonce": nonce, "result_fd": write_fd, "trusted": code.setup,
               "limits": limits.rlimits(sandbox.bwrap is not None),
               "steps": _job_steps(nb, exercise, code)}
        try:
            proc = _start(sandbox, limits, uid, root, write_fd)
        finally:
            os.close(write_fd)
        threading.Thread(target=_send, args=(proc.stdin, job), daemon=True).start()
        try:
            found, timed_out = _collect(read_fd, proc, time.monotonic() + limits.seconds,
                                        nonce, exercise.checks)
        finally:
            _stop(proc)
            os.close(read_fd)
    outcomes = {check: describe(*found[check], code.labels) if check in found
                else TIMED_OUT if timed_out else ENDED for check in exercise.checks}
    if suspicious(nb, exercise.source):
        outcomes = {check: REVIEW if said == OK else said for check, said in outcomes.items()}
    return outcomes
