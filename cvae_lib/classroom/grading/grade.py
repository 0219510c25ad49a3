"""Grade a class: ``python -m cvae_lib grade FOLDER`` runs every exercise notebook in a folder.

For instructors, after 05-07 (the exercises). Each submission runs cell by cell in its own
kernel, in a fresh temporary folder, with a time and memory limit, in a bubblewrap sandbox with
a read-only system and no network; where bubblewrap cannot run it grades nothing unless the
instructor passes ``--no-sandbox``. Every cell that calls a check (``check_cvae_loss(...)``, or
an ``assert`` on the student's function) is one column; the solution notebooks in
``notebooks/solutions/`` define which checks each exercise has.
"""

from __future__ import annotations

import argparse
import math
import os
import sys
import time
from concurrent.futures import ThreadPoolExecutor, as_completed
from pathlib import Path

import nbformat

from cvae_lib.classroom.grading.report import GRADED, Row, html_report, text_report, write_csv
from cvae_lib.classroom.grading.notebooks import Exercise, identify, load_exercises
from cvae_lib.classroom.grading.sandbox import Limits, Sandbox, find_sandbox
from cvae_lib.infra.storage import check_writable
from cvae_lib.classroom.grading.run import LABEL_CHARS, run_submission

NOT_EXERCISE = "not an exercise notebook"
MIN_MEMORY_MB = 4096  # torch's libraries alone map about 4 GiB of address space
# Seconds the cells of each correct solution take up to its last check in fast mode, in the
# sandbox with one thread (worst of three runs, 2026-12-02, 2-core AMD EPYC shared with other
# jobs; the kernel's start, about 1 s, is not counted). The setup cell's torch import is
# 3.6-4.5 s of them; it took 9.8 s on the same machine under heavier load.
SOLUTION_SECONDS = {"05": 9.7, "06": 4.6, "07": 8.3}
TIMEOUT_FACTOR = 10  # a slow laptop, or two kernels sharing its cores
TIMEOUT_FLOOR = 60.0  # a cold torch import from a slow disk, whatever the exercise
UNMEASURED_TIMEOUT = 300.0  # an exercise added after the measurements above


def _read(path: Path) -> nbformat.NotebookNode | str:
    """The notebook at ``path``, or why it cannot be graded."""
    if path.suffix != ".ipynb":
        return "not a notebook"
    try:
        nb = nbformat.read(path, as_version=4)
    except Exception as err:  # nbformat raises many kinds for a broken file
        first = (str(err).strip().splitlines() or [""])[0][:LABEL_CHARS]
        return f"unreadable: {type(err).__name__} {first}".strip()
    if not isinstance(nb.get("cells"), list):
        return "unreadable: no cells"
    return nb


def submissions(folder: Path, skip: Path | None = None) -> list[Path]:
    """Every file under ``folder`` (hidden ones and the report folder left out), sorted."""
    files = []
    for path in sorted(folder.rglob("*")):
        parts = path.relative_to(folder).parts
        if path.is_file() and not any(p.startswith(".") for p in parts) and (
                skip is None or skip.resolve() not in path.resolve().parents):
            files.append(path)
    return files


def _default_timeout(number: str) -> float:
    """Seconds exercise ``number`` may run by default: a correct solution's, times the factor."""
    if number not in SOLUTION_SECONDS:
        return UNMEASURED_TIMEOUT
    return max(TIMEOUT_FLOOR, round(TIMEOUT_FACTOR * SOLUTION_SECONDS[number]))


def _default_timeouts() -> str:
    """'05: 97 s, 06: 60 s, ...' for the exercises measured."""
    return ", ".join(f"{number}: {_default_timeout(number):g} s" for number in SOLUTION_SECONDS)


def grade_file(path: Path, name: str, exercises: list[Exercise], only: Exercise | None,
               limits: dict[str, Limits], sandbox: Sandbox) -> Row:
    """Read, identify and run one submission."""
    start = time.monotonic()
    nb = _read(path)
    if isinstance(nb, str):
        return Row(name, status=nb)
    exercise = identify(nb, exercises)
    if exercise is None:
        return Row(name, status=NOT_EXERCISE)
    if only is not None and exercise != only:
        return Row(name, exercise.number,
                   f"wrong exercise: {exercise.number}, not {only.number}")
    cells = run_submission(path, nb, exercise, limits[exercise.number], sandbox)
    return Row(name, exercise.number, GRADED, cells, time.monotonic() - start)


def grade_folder(folder: Path, exercises: list[Exercise], only: Exercise | None,
                 limits: dict[str, Limits], sandbox: Sandbox, skip: Path | None = None,
                 jobs: int = 1) -> list[Row]:
    """One row per file of the folder, ``jobs`` graded at once (progress on stderr)."""
    files = submissions(folder, skip)
    with ThreadPoolExecutor(max_workers=jobs) as pool:
        futures = [pool.submit(grade_file, path, str(path.relative_to(folder)), exercises,
                               only, limits, sandbox) for path in files]
        for number, future in enumerate(as_completed(futures), 1):
            row = future.result()
            print(f"[{number}/{len(files)}] {row.name}: {row.status} ({row.seconds:.1f} s)",
                  file=sys.stderr, flush=True)
    return [future.result() for future in futures]


def default_jobs() -> int:
    """Submissions graded at once: one per core, at most four (each kernel holds torch)."""
    return max(1, min(4, os.cpu_count() or 1))


def pick_exercise(exercises: list[Exercise], wanted: str) -> Exercise:
    """The exercise named by its number ('6', '06') or solution file name ('06_recode...')."""
    number = wanted.split("_")[0].lstrip("0")
    for exercise in exercises:
        if exercise.number.lstrip("0") == number:
            return exercise
    raise ValueError(f"no exercise {wanted!r}; choose one of "
                     f"{', '.join(ex.number for ex in exercises)}")


def build_parser() -> argparse.ArgumentParser:
    """The options of ``python -m cvae_lib grade``."""
    parser = argparse.ArgumentParser(prog="python -m cvae_lib grade",
                                     description="Run every exercise notebook in FOLDER and "
                                     "print one row per submission, one column per check.")
    parser.add_argument("folder", type=Path, help="folder of collected notebooks")
    parser.add_argument("--exercise", help="grade only this exercise (e.g. 06); other "
                        "exercise notebooks are listed as the wrong exercise")
    parser.add_argument("--out", type=Path, default=Path("grades"),
                        help="folder for grades.csv and grades.html (default: ./grades)")
    parser.add_argument("--timeout", type=float,
                        help="seconds each notebook's cells may run, kernel start not counted "
                        f"(default: per exercise, {TIMEOUT_FACTOR}x a correct solution's time, "
                        f"at least {TIMEOUT_FLOOR:g} s: {_default_timeouts()})")
    parser.add_argument("--memory-mb", type=int, default=Limits.memory_mb,
                        help="address-space limit of each kernel in MiB (default: %(default)s)")
    parser.add_argument("--jobs", type=int, default=default_jobs(),
                        help="submissions graded at once, each kernel with its share of the "
                        "cores (default: one per core, at most 4: %(default)s)")
    parser.add_argument("--no-sandbox", action="store_true",
                        help="run student code without bubblewrap, with only the time and "
                        "memory limits (it can then reach the network and write where you can)")
    return parser


def option_problem(args: argparse.Namespace) -> str | None:
    """What is wrong with --timeout, --memory-mb, --jobs or --out, in one line; None if nothing.

    Checked before any notebook runs (as is writing to --out), so a mistyped option costs no
    grading time.
    """
    if args.timeout is not None and not (math.isfinite(args.timeout) and args.timeout > 0):
        return f"--timeout must be a positive number of seconds, not {args.timeout:g}"
    if args.memory_mb < MIN_MEMORY_MB:
        return (f"--memory-mb must be at least {MIN_MEMORY_MB}, not {args.memory_mb}: a kernel "
                f"that imports torch maps about 4 GiB of address space")
    if args.jobs < 1:
        return f"--jobs must be at least 1, not {args.jobs}"
    if args.out.resolve() == args.folder.resolve():
        return f"--out {args.out} is the folder being graded: choose another folder for the report"
    return None


def _exercise_limits(exercises: list[Exercise], timeout: float | None, memory_mb: int,
                     jobs: int) -> dict[str, Limits]:
    """Each exercise's limits: ``timeout`` or its default, and its share of the cores."""
    threads = max(1, (os.cpu_count() or 1) // jobs)
    seconds = {ex.number: _default_timeout(ex.number) if timeout is None else timeout
               for ex in exercises}
    return {number: Limits(each, memory_mb, threads) for number, each in seconds.items()}


def _choose_sandbox(no_sandbox: bool) -> Sandbox | str:
    """Bubblewrap; none if the instructor asked for none; else the line refusing to go on."""
    if no_sandbox:
        return Sandbox(None)
    sandbox = find_sandbox()
    if sandbox.bwrap is None:
        return (f"no submission was run: {sandbox.problem}, or pass --no-sandbox to run the "
                "students' code unsandboxed")
    return sandbox


def _notes(folder: Path, sandbox: Sandbox, limits: dict[str, Limits], given: bool) -> list[str]:
    """The lines at the top of the report: what was graded, and how safely."""
    some = next(iter(limits.values()))  # memory and threads are the same for every exercise
    memory = (f"{some.memory_mb} MiB of address space" if sys.platform.startswith("linux")
              else "no memory limit on this system")
    seconds = ", ".join(f"{number}: {each.seconds:g} s" for number, each in limits.items())
    origin = "--timeout" if given else (f"default: {TIMEOUT_FACTOR}x a correct solution's time "
                                        f"in fast mode, at least {TIMEOUT_FLOOR:g} s")
    return [f"Graded {folder} with CVAE_FAST=1 CVAE_OFFLINE=1.", sandbox.note,
            f"Limits per notebook: {seconds} ({origin}); {memory}, {some.threads} "
            f"thread{'s' * (some.threads > 1)}."]


def main(argv: list[str]) -> int:
    """Entry point of ``python -m cvae_lib grade``; returns the exit code."""
    args = build_parser().parse_args(argv)
    exercises = load_exercises()
    try:
        only = pick_exercise(exercises, args.exercise) if args.exercise else None
    except ValueError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    if not args.folder.is_dir():
        print(f"error: {args.folder} is not a folder", file=sys.stderr)
        return 2
    problem = option_problem(args)
    if problem:
        print(f"error: {problem}", file=sys.stderr)
        return 2
    if not submissions(args.folder, args.out):
        print(f"error: {args.folder} holds no files to grade", file=sys.stderr)
        return 2
    sandbox = _choose_sandbox(args.no_sandbox)
    if isinstance(sandbox, str):
        print(f"error: {sandbox}", file=sys.stderr)
        return 2
    try:
        check_writable(args.out)
    except OSError as err:
        print(f"error: --out {args.out}: {err}", file=sys.stderr)
        return 2
    graded = [only] if only else exercises
    limits = _exercise_limits(graded, args.timeout, args.memory_mb, args.jobs)
    notes = _notes(args.folder, sandbox, limits, args.timeout is not None)
    print("\n".join(notes[1:]), file=sys.stderr)
    start = time.monotonic()
    rows = grade_folder(args.folder, exercises, only, limits, sandbox, args.out,
                        args.jobs)
    print(text_report(rows, exercises, notes), end="")
    print(f"Wall clock: {time.monotonic() - start:.1f} s, {args.jobs} submission(s) at once.")
    write_csv(args.out / "grades.csv", rows, exercises)
    (args.out / "grades.html").write_text(html_report(rows, exercises, notes), encoding="utf-8")
    print(f"Wrote {args.out / 'grades.csv'} and {args.out / 'grades.html'}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
