"""One submission run in the sandbox: its cells, then the exercise's own checks, in plain Python.

Started by ``run.py`` as ``python -I`` (no IPython, so no input transformers or hooks). It reads
its job from stdin and closes it before any student code runs: the exercise's trusted code (its
setup cell and the cells defining checks, from the solution notebook), the submission's cells,
each check's cell from the exercise source, the kernel limits and a per-run nonce. The check
functions are bound before any student code runs and are called by code the student never
wrote. Each check's outcome goes, with the nonce, to a pipe only the grader reads; the grader,
not this process, turns it into a label. A change to the checks, ``cvae_lib``, ``torch`` or the
builtins that student code made (a name rebound, added or removed, a table or tensor of theirs
changed in place) is reported instead of the outcome. What the loop uses is bound before the
first student cell and cannot be changed from a namespace (the steps, the fingerprint, the
checks, the functions it calls).
"""

from __future__ import annotations

import builtins
import json
import os
import resource
import signal
import sys
from builtins import (AssertionError, NotImplementedError, all, any, dict,  # noqa: UP029
                      frozenset, isinstance, len, list, object, set, str, tuple, type, zip)
from collections.abc import Mapping  # rebinding builtins won't reach those above
from types import CellType, FunctionType, MappingProxyType, ModuleType

WATCHED = ("builtins", "torch", "torch.nn", "torch.nn.functional", "torch.distributions")
# Keys a namespace gains without anyone changing it: a submodule imported, a warning's registry,
# copyreg's cache of a class's slots (copy.copy and pickle add it on first use).
ADDED_FREELY = ("__warningregistry__", "__slotnames__")
Print = tuple[tuple[Mapping, str | None, object, tuple], ...]


def _set_limits(limits: dict[str, int]) -> None:
    """Cap this process and its children (soft = hard, so student code cannot raise them)."""
    for name, value in limits.items():
        resource.setrlimit(getattr(resource, name), (value, value))
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a write past the cap fails, not the process


def _contents(cell: CellType) -> object:
    """What a closure cell holds (None while it is empty)."""
    try:
        return cell.cell_contents
    except ValueError:
        return None


def _code_of(value: object) -> tuple:
    """What a function runs (its code, defaults and closure contents), what a table holds, a
    tensor's values; empty for the rest."""
    torch = sys.modules["torch"]
    if isinstance(value, FunctionType):
        cells = tuple(_contents(cell) for cell in value.__closure__ or ())
        return (value.__code__, value.__defaults__, value.__kwdefaults__, *cells)
    if type(value) in (dict, list, set):
        return (type(value), *(value.items() if type(value) is dict else value))
    if type(value) is torch.Tensor and value.numel() <= 2 ** 16:
        return (value.detach().clone(),)
    return ()


def _same(a: object, b: object) -> bool:
    """True when two entries of ``_code_of`` are one object (a tensor: equal values)."""
    torch = sys.modules["torch"]
    if type(a) is tuple and type(b) is tuple:  # a table's (key, value) pair
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b))
    if type(a) is torch.Tensor and type(b) is torch.Tensor:
        return a.shape == b.shape and a.dtype == b.dtype and bool(torch.equal(a, b))
    return a is b


def _namespaces(*own: Mapping) -> list[Mapping]:
    """The namespaces the checks rely on: ``own`` (the exercise's), cvae_lib's modules and
    classes, torch's, builtins."""
    modules = [module for name, module in sorted(sys.modules.items())
               if name in WATCHED or name == "cvae_lib" or name.startswith("cvae_lib.")]
    spaces: list[Mapping] = [*own, vars(sys.modules["torch"].Tensor),
                             vars(sys.modules["torch"].nn.Module)]
    for module in modules:
        spaces.append(vars(module))
        spaces += [vars(value) for value in vars(module).values()
                   if isinstance(value, type) and value.__module__.startswith("cvae_lib")]
    return spaces


def _fingerprint(*own: Mapping) -> Print:
    """Every name of those namespaces with what it is bound to and, for functions, tables and
    tensors, what they hold; and each namespace's set of names."""
    spaces = _namespaces(*own)
    return tuple([(space, name, value, () if name in ADDED_FREELY else _code_of(value))
                  for space in spaces for name, value in list(space.items())]
                 + [(space, None, frozenset(space), ()) for space in spaces])


def _changed(prints: Print) -> bool:
    """True when a name of the fingerprint is rebound, added or removed, or what its function,
    table or tensor holds has changed."""
    missing = object()
    for space, name, value, code in prints:
        if name is None:
            if any(key not in value and key not in ADDED_FREELY
                   and not isinstance(space[key], ModuleType) for key in list(space)):
                return True
            continue
        now = space.get(name, missing)
        held = () if name in ADDED_FREELY else _code_of(now)
        if now is not value or len(held) != len(code) or not all(
                _same(a, b) for a, b in zip(held, code)):
            return True
    return False


def _classify(err: BaseException, trusted_files: frozenset[str], check_failure: type,
              ) -> list:
    """What an exception says, as plain values: todo, a check's mistake key or assert, an error."""
    kind = type(err)
    if kind is NotImplementedError and err.args and type(err.args[0]) is str and (
            err.args[0].startswith("TODO")):
        return ["todo"]
    if kind is check_failure and type(err.key) is str:
        return ["mistake", err.key]
    if kind is AssertionError:
        tb = err.__traceback__
        while tb is not None and tb.tb_next is not None:
            tb = tb.tb_next
        if tb is not None and tb.tb_frame.f_code.co_filename in trusted_files:
            return ["assert", tb.tb_frame.f_code.co_filename, tb.tb_lineno]
    module, name = kind.__module__, kind.__qualname__
    module, name = module if type(module) is str else "", name if type(name) is str else ""
    if module == "builtins" and vars(builtins).get(name) is not kind:
        module = "__main__"  # a class of the student's that only calls itself a built-in one
    return ["error", module, name]


def _read_job() -> dict:
    """The job from stdin; stdin is then /dev/null, so student code cannot read it again."""
    job = json.loads(sys.stdin.buffer.read())
    devnull = os.open(os.devnull, os.O_RDONLY)
    os.dup2(devnull, 0)
    os.close(devnull)
    return job


def _trusted_namespace(job: dict) -> dict:
    """The exercise's setup cell and check definitions, run before any student code."""
    import torch._dynamo  # noqa: F401 - on import it rebinds torch.manual_seed: not a change
    trusted: dict = {"__name__": "__exercise__", "__builtins__": builtins}
    for filename, source in job["trusted"]:
        exec(compile(source, filename, "exec"), trusted)  # noqa: S102 - the exercise's code
    return trusted


def _run(step: tuple, student: dict, checks: Mapping) -> None:
    """Run a submission cell, or a check cell with the check names bound to the trusted ones."""
    code = compile(step[-1], step[-2], "exec")
    if step[0] == "cell":
        exec(code, student)  # noqa: S102 - student code, in the sandbox
    else:
        exec(code, student, dict(checks))  # noqa: S102 - the exercise's own check cell


def main() -> None:
    """Run the job: trusted code, then the submission's cells with the checks in their places."""
    job = _read_job()
    _set_limits(job["limits"])
    from cvae_lib.checks import CheckFailure  # bound before any student code runs
    trusted = _trusted_namespace(job)
    checks = MappingProxyType({name: value for name, value in trusted.items()
                               if name.startswith("check_") and callable(value)})
    # Tuples and frozensets: code that reads this frame finds nothing here it can change.
    steps = tuple(tuple(step) for step in job["steps"])
    trusted_files = frozenset({filename for filename, _ in job["trusted"]} | {
        step[2] for step in steps if step[0] == "check"})
    nonce, result_fd = job["nonce"], job["result_fd"]
    # Bound here, not looked up later in this module, which student code can reach and rebind.
    run, classify, changed, dumps, write = _run, _classify, _changed, json.dumps, os.write
    prints, student = _fingerprint(trusted, checks), {"__name__": "__main__",
                                                      "__builtins__": builtins}
    earlier, tampered = None, False
    for step in steps:
        outcome = ["changed"]
        if not tampered:
            try:
                run(step, student, checks)
                outcome = ["ok"]
            except BaseException as err:  # noqa: BLE001 - every way a cell can fail is reported
                outcome = classify(err, trusted_files, CheckFailure)
                earlier = earlier or (outcome if step[0] == "cell" else None)
            tampered = changed(prints)
        if step[0] == "check":
            line = {"nonce": nonce, "check": step[1], "earlier": earlier,
                    "outcome": ["changed"] if tampered else outcome}
            write(result_fd, (dumps(line) + "\n").encode())


if __name__ == "__main__":
    main()
