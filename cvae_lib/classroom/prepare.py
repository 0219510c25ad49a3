"""Get a classroom ready: build every cache the course needs, so it runs offline afterwards.

Introduced in the book's instructor page "Before class: prepare once": ``python -m cvae_lib
prepare``. It builds the MNIST data cache, every course model of
``cvae_lib.course.COURSE_CONFIGS`` and the evaluation classifier of ``cvae_lib.classifier``.
Whatever is already cached is only found, so a second run does nothing. It prepares what the
current mode needs: the full course, or tiny models when ``CVAE_FAST=1``.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from tqdm.auto import tqdm

from cvae_lib import course
from cvae_lib.checkpoints import cache_path
from cvae_lib.classifier import load_or_train_classifier
from cvae_lib.data import (CorruptDataError, DataUnavailableError, data_dir, ensure_dataset,
                           load_dataset)
from cvae_lib.infra.runtime import fast_mode
from cvae_lib.infra.storage import cache_dir, check_writable, find_cached

FASHION_HELP = ("Fashion-MNIST has no offline copy: put its four IDX files in "
                "data/FashionMNIST/raw/, or run `python -m cvae_lib prepare` once online "
                "without CVAE_OFFLINE=1 so torchvision downloads them")


DEFAULT_STEP = "model cvae"


@dataclass(frozen=True)
class PrepareResult:
    """What one preparation step did: ``status`` is 'built', 'cached', 'skipped' or 'failed'."""

    name: str
    status: str
    seconds: float
    note: str = ""


def _snapshot(folders: list[Path]) -> dict[Path, float]:
    """Every file under ``folders`` with its modification time, lock files aside."""
    return {path: path.stat().st_mtime for folder in folders if folder.is_dir()
            for path in folder.rglob("*") if path.is_file() and path.suffix != ".lock"}


def _one_line(err: Exception) -> str:
    """The error's message on one line."""
    return " ".join(str(err).split())


def _run_step(name: str, work: Callable[[], str]) -> PrepareResult:
    """Run one step; 'built' when it wrote files into the caches, else 'cached'."""
    folders = [data_dir(), cache_dir()]
    before = _snapshot(folders)
    start = time.perf_counter()
    try:
        note = work()
    except DataUnavailableError as err:
        return PrepareResult(name, "skipped", time.perf_counter() - start, _one_line(err))
    except (CorruptDataError, ValueError, OSError) as err:  # a damaged file or a full disk
        return PrepareResult(name, "failed", time.perf_counter() - start, _one_line(err))
    seconds = time.perf_counter() - start
    status = "built" if _snapshot(folders) != before else "cached"
    return PrepareResult(name, status, seconds, note)


def _model_step(name: str) -> Callable[[], str]:
    """A step that loads or trains the named course model."""
    def work() -> str:
        config = course.course_config(name)
        try:
            ensure_dataset(config.dataset)
        except DataUnavailableError as err:
            if config.dataset == "fashion-mnist":
                raise DataUnavailableError(FASHION_HELP) from err
            raise
        path = cache_path(config)
        # Show the epochs of a model being trained; stay quiet about cached ones.
        course.course_model(name, progress=not find_cached(path).is_file())
        return path.name
    return work


def _data_step() -> str:
    """Find or build the MNIST files, check both splits, write the images every kernel maps."""
    root = ensure_dataset("mnist")
    for train in (True, False):
        load_dataset("mnist", train, root)
    return str(root)


def _classifier_step() -> str:
    """Load or train the evaluation classifier of ``cvae_lib.classifier``."""
    load_or_train_classifier(progress=False)
    return "evaluation classifier"


def preparation_steps(models: list[str] | None = None) -> list[tuple[str, Callable[[], str]]]:
    """The named steps of ``prepare``: data, then the course models, then the classifier."""
    names = list(course.COURSE_CONFIGS) if models is None else list(models)
    unknown = [name for name in names if name not in course.COURSE_CONFIGS]
    if unknown:
        raise ValueError(f"unknown course model(s) {unknown}; choose from "
                         f"{sorted(course.COURSE_CONFIGS)}")
    steps: list[tuple[str, Callable[[], str]]] = [
        ("MNIST data", _data_step)]
    steps += [(f"model {name}", _model_step(name)) for name in names]
    steps.append(("classifier", _classifier_step))
    return steps


def prepare(models: list[str] | None = None, progress: bool = True) -> list[PrepareResult]:
    """Build or find every cache the course needs; ``models`` limits the course models."""
    steps = preparation_steps(models)
    results = []
    bar = tqdm(steps, desc="preparing", unit="step", disable=not progress)
    for name, work in bar:
        bar.set_postfix_str(name)
        results.append(_run_step(name, work))
    bar.close()
    return results


def summary_table(results: list[PrepareResult]) -> str:
    """The results as an aligned text table with a total line."""
    if not all(isinstance(r, PrepareResult) for r in results):
        raise TypeError("results must be the PrepareResult list that prepare() returns")
    width = max([len("total"), *(len(r.name) for r in results)])
    lines = [f"{'step':<{width}}  {'status':<7}  {'seconds':>8}  note"]
    lines += [f"{r.name:<{width}}  {r.status:<7}  {r.seconds:8.1f}  {r.note}" for r in results]
    counts = {s: sum(r.status == s for r in results)
              for s in ("built", "cached", "skipped", "failed")}
    total = sum(r.seconds for r in results)
    lines.append(f"{'total':<{width}}  {'':<7}  {total:8.1f}  " +
                 ", ".join(f"{n} {s}" for s, n in counts.items()))
    default = next((r.seconds for r in results if r.name == DEFAULT_STEP and r.status == "built"),
                   None)
    if default:
        lines.append(f"total / {DEFAULT_STEP}: {total:.1f} s / {default:.1f} s = "
                     f"{total / default:.2f}x (the classroom against the default model alone)")
    return "\n".join(lines)


def main(models: list[str] | None = None) -> int:
    """Prepare, print the summary; exit code 0 when nothing needed was skipped or failed."""
    mode = "FAST mode (CVAE_FAST=1): tiny models" if fast_mode() else "full course"
    try:
        preparation_steps(models)
        check_writable(cache_dir())  # a model that cannot be cached is trained for nothing
    except (ValueError, OSError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    print(f"Preparing the {mode}; caches in {data_dir()} and {cache_dir()}")
    results = prepare(models)
    print(summary_table(results))
    needed = [r for r in results if r.status == "failed"
              or (r.status == "skipped" and r.name != "model fashion")]
    return 1 if needed else 0
