"""Grade a class: ``python -m cvae_lib grade FOLDER`` runs every exercise notebook in a folder.

For instructors, after 05-07 (the exercises). Each submission runs cell by cell in its own
kernel, in a fresh temporary folder, with a time and memory limit and, where bubblewrap
works, in a sandbox with a read-only system and no network. Every cell that calls a check
(``check_cvae_loss(...)``, or an ``assert`` on the student's function) is one column; the
solution notebooks in ``notebooks/solutions/`` define which checks each exercise has.
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

from cvae_lib.grade_report import GRADED, Row, html_report, text_report, write_csv
from cvae_lib.notebook_checks import Exercise, identify, load_exercises
from cvae_lib.sandbox import Limits, Sandbox, find_sandbox
from cvae_lib.storage import check_writable
from cvae_lib.submission_run import LABEL_CHARS, run_submission

NOT_EXERCISE = "not an exercise notebook"
MIN_MEMORY_MB = 4096  # torch's libraries alone map about 4 GiB of address space


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


def grade_file(path: Path, name: str, exercises: list[Exercise], only: Exercise | None,
               limits: Limits, sandbox: Sandbox) -> Row:
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
    cells = run_submission(path, nb, exercise, limits, sandbox)
    return Row(name, exercise.number, GRADED, cells, time.monotonic() - start)


def grade_folder(folder: Path, exercises: list[Exercise], only: Exercise | None,
                 limits: Limits, sandbox: Sandbox, skip: Path | None = None,
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
    parser.add_argument("--timeout", type=float, default=Limits.seconds,
                        help="seconds each notebook's cells may run, kernel start not "
                        "counted (default: %(default)s)")
    parser.add_argument("--memory-mb", type=int, default=Limits.memory_mb,
                        help="address-space limit of each kernel in MiB (default: %(default)s)")
    parser.add_argument("--jobs", type=int, default=default_jobs(),
                        help="submissions graded at once, each kernel with its share of the "
                        "cores (default: one per core, at most 4: %(default)s)")
    return parser


def option_problem(args: argparse.Namespace) -> str | None:
    """What is wrong with --timeout, --memory-mb, --jobs or --out, in one line; None if nothing.

    Checked before any notebook runs (as is writing to --out), so a mistyped option costs no
    grading time.
    """
    if not (math.isfinite(args.timeout) and args.timeout > 0):
        return f"--timeout must be a positive number of seconds, not {args.timeout:g}"
    if args.memory_mb < MIN_MEMORY_MB:
        return (f"--memory-mb must be at least {MIN_MEMORY_MB}, not {args.memory_mb}: a kernel "
                f"that imports torch maps about 4 GiB of address space")
    if args.jobs < 1:
        return f"--jobs must be at least 1, not {args.jobs}"
    if args.out.resolve() == args.folder.resolve():
        return f"--out {args.out} is the folder being graded: choose another folder for the report"
    return None


def _notes(folder: Path, sandbox: Sandbox, limits: Limits) -> list[str]:
    """The lines at the top of the report: what was graded, and how safely."""
    memory = (f"{limits.memory_mb} MiB of address space" if sys.platform.startswith("linux")
              else "no memory limit on this system")
    return [f"Graded {folder} with CVAE_FAST=1 CVAE_OFFLINE=1.", sandbox.note,
            f"Limits per notebook: {limits.seconds:g} s, {memory}, {limits.threads} "
            f"thread{'s' * (limits.threads > 1)}."]


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
    try:
        check_writable(args.out)
    except OSError as err:
        print(f"error: --out {args.out}: {err}", file=sys.stderr)
        return 2
    threads = max(1, (os.cpu_count() or 1) // args.jobs)
    limits, sandbox = Limits(args.timeout, args.memory_mb, threads), find_sandbox()
    notes = _notes(args.folder, sandbox, limits)
    print(notes[1], file=sys.stderr)
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
