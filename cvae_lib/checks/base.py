"""What every check shares: its failure, shown in a few lines, and its fixed seed (see
06_recode_from_scratch)."""

from __future__ import annotations

import functools
import textwrap
import traceback
from types import TracebackType
from typing import Callable

import torch
from torch import nn

from cvae_lib.checks.mistakes import FIXES, TABLE

NUM_PIXELS, NUM_CLASSES = 784, 10
SEED = 0  # of every check; a right answer passes under any seed (tests/test_checks.py)
REPORT_WIDTH, REPORT_LINES = 92, 8  # a failed check is shown in at most 8 lines this wide
MISTAKES = {key: label for key, (label, _) in TABLE.items()}  # the grader's columns


class CheckFailure(AssertionError):
    """A failed check: ``str()`` is advice for the student, ``label`` names the mistake."""

    def __init__(self, key: str, message: str) -> None:
        if key not in MISTAKES:
            raise KeyError(f"no mistake named {key!r}: the keys are listed in MISTAKES")
        super().__init__(message)
        self.key, self.label = key, MISTAKES[key]


def require(condition: object, key: str, **facts: object) -> None:
    """Unless ``condition``, raise mistake ``key`` with its fix filled in from ``facts``."""
    if not condition:
        raise CheckFailure(key, TABLE[key][1].format(**FIXES, **facts))


def require_callable(obj: object, what: str, example: str) -> None:
    """Raise a TypeError unless ``obj`` is a function or (for ``what="class"``) a class."""
    if not callable(obj) or (what == "class" and isinstance(obj, nn.Module)):
        raise TypeError(f"pass your {what} itself, e.g. {example}, not a {type(obj).__name__}")


def describe(obj: object) -> str:
    """A short description of what the student's code returned."""
    if isinstance(obj, torch.Tensor):
        return f"a tensor of shape {tuple(obj.shape)}"
    if isinstance(obj, tuple):
        return f"a tuple of {len(obj)} ({', '.join(describe(item) for item in obj)})"
    return f"a {type(obj).__name__}"


def seeded(check: Callable[..., None]) -> Callable[..., None]:
    """Run ``check`` under ``SEED`` in one thread; the caller's random state is kept."""
    @functools.wraps(check)
    def wrapper(*args: object) -> None:
        threads = torch.get_num_threads()
        torch.set_num_threads(1)  # many small tensors: a second thread only waits for a core
        try:
            with torch.random.fork_rng(devices=[]):
                torch.manual_seed(SEED)
                check(*args)
        finally:
            torch.set_num_threads(threads)
    return wrapper


def short_report(err: BaseException) -> list[str] | None:
    """A failed check in a few lines (which check, the mistake's label, the advice), or None
    if no ``check_*`` function raised ``err``."""
    names = [frame.f_code.co_name for frame, _ in traceback.walk_tb(err.__traceback__)]
    check = next((name for name in names if name.startswith("check_")), None)
    if check is None:
        return None
    label = f" \x1b[1m({err.label})\x1b[0m" if isinstance(err, CheckFailure) else ""
    advice = textwrap.wrap(str(err) or type(err).__name__, REPORT_WIDTH,
                           max_lines=REPORT_LINES - 1, placeholder=" …")
    return [f"\x1b[1;31m✗ {check} failed\x1b[0m{label}", *advice]


def _show(shell: object, etype: type, value: BaseException, tb: TracebackType | None,
          tb_offset: int | None = None) -> list[str]:
    """IPython's handler of an AssertionError: a short report if a check raised it."""
    report = short_report(value)
    if report is None:
        shell.showtraceback((etype, value, tb), tb_offset=tb_offset)
        return []
    shell._showtraceback(etype, value, report)
    return report


def show_checks_briefly() -> None:
    """In IPython, show a failed ``check_*`` as a few lines naming the mistake, not a stack."""
    try:
        from IPython import get_ipython
    except ImportError:
        return
    shell = get_ipython()
    if shell is not None:
        shell.set_custom_exc((AssertionError,), _show)
