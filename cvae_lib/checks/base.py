"""What every check shares: the failure that names a mistake (one row of ``mistakes.TABLE``)
and the frame a check runs in (see 06_recode_from_scratch)."""

from __future__ import annotations

import contextlib
from typing import Iterator

import torch
from torch import nn

from cvae_lib.checks.mistakes import FIXES, TABLE

NUM_PIXELS, NUM_CLASSES = 784, 10
SEED = 0  # of every check; a right answer passes under any seed (tests/test_checks.py)
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


def describe(obj: object) -> str:
    """A short description of what the student's code returned."""
    if isinstance(obj, torch.Tensor):
        return f"a tensor of shape {tuple(obj.shape)}"
    if isinstance(obj, tuple):
        return f"a tuple of {len(obj)} ({', '.join(describe(item) for item in obj)})"
    return f"a {type(obj).__name__}"


@contextlib.contextmanager
def checking(obj: object, what: str, call: str) -> Iterator[None]:
    """Refuse an ``obj`` that is not a function (or a class); then run the check under ``SEED``
    in one thread, leaving the caller's random state and threads as they were."""
    if not callable(obj) or (what == "class" and isinstance(obj, nn.Module)):
        raise TypeError(f"pass your {what} itself, e.g. {call}, not a {type(obj).__name__}")
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # many small tensors: a second thread only waits for a core
    try:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(SEED)
            yield
    finally:
        torch.set_num_threads(threads)
