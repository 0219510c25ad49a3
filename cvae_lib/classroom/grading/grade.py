"""Grade a class: ``python -m cvae_lib grade FOLDER`` runs every exercise notebook in a folder.

For instructors, after 05-07 (the exercises). Each submission runs in a fresh plain-Python
runner in a bubblewrap sandbox that sees only Python, its packages and cvae_lib, with time,
memory, process and file-size caps; the exercise's own checks, taken from its solution notebook,
decide each column (``run.py``). Where bubblewrap cannot run it grades nothing unless the
instructor passes ``--no-sandbox``. Only regular notebook files are read, each opened without
following links; links, FIFOs, devices and oversized files are listed as not graded.
"""

from __future__ import annotations

import argparse
import math
import os
import stat
import sys
import time
from concurrent.futures import ThreadPoolExecutor, as_completed
from pathlib import Path

import nbformat

from cvae_lib.classroom.grading.notebooks import Exercise, identify, load_exercises
from cvae_lib.classroom.grading.report import (GRADED, Row, html_report, printable, text_report,
                                               write_csv)
from cvae_lib.classroom.grading.run import run_submission
from cvae_lib.classroom.grading.sandbox import (FILE_MB, PROCESSES, TMP_MB, Limits, Sandbox,
                                                find_sandbox)
from cvae_lib.infra.storage import check_writable

NOT_EXERCISE = "not an exercise notebook"
MAX_MB = 20  # a notebook larger than this is listed, not read
MAX_CELL_CHARS = 100_000  # a code cell longer than this is not parsed (a student's: a few 1,000)
KINDS = {stat.S_ISLNK: "a symbolic link", stat.S_ISFIFO: "a FIFO", stat.S_ISSOCK: "a socket",
         stat.S_ISCHR: "a device", stat.S_ISBLK: "a device", stat.S_ISDIR: "a folder"}
Submission = tuple[str, "nbformat.NotebookNode | str"]  # its name, its notebook or why not
MIN_MEMORY_MB = 4096  # torch's libraries alone map about 4 GiB of address space
# Seconds the cells of each correct solution take up to its last check in fast mode, in the
# sandbox with one thread (worst of three runs, 2-core AMD EPYC shared with other jobs, former
# Jupyter-kernel runner); the torch import is 3.6-4.5 s of them, 9.8 s under heavier load.
SOLUTION_SECONDS = {"05": 9.7, "06": 4.6, "07": 8.3}
TIMEOUT_FACTOR = 10  # a slow laptop, or two submissions sharing its cores
TIMEOUT_FLOOR = 60.0  # a cold torch import from a slow disk, whatever the exercise
UNMEASURED_TIMEOUT = 300.0  # an exercise added after the measurements above


def _kind(mode: int) -> str:
    """Why a file of this mode is not read: a link, a FIFO, a socket, a device, a folder."""
    return next((kind for test, kind in KINDS.items() if test(mode)), "not a regular file")


def _parse(data: bytes) -> nbformat.NotebookNode | str:
    """The notebook in ``data``, or why it cannot be graded (never the file's own text)."""
    try:
        nb = nbformat.reads(data.decode("utf-8"), as_version=4)
    except Exception as err:  # nbformat raises many kinds for a broken file
        return f"unreadable: {type(err).__name__}"
    if not isinstance(nb.get("cells"), list):
        return "unreadable: no cells"
    for cell in nb.cells:
        if not (isinstance(cell, dict) and isinstance(cell.get("cell_type"), str)
                and isinstance(cell.get("source"), str)):
            return "unreadable: a cell without a type or text"
        if cell.cell_type == "code" and len(cell.source) > MAX_CELL_CHARS:
            return f"not graded: a code cell of over {MAX_CELL_CHARS:,} characters"
    return nb


def _read_submission(name: str, dir_fd: int) -> nbformat.NotebookNode | str:
    """The notebook ``name`` in the folder ``dir_fd``, opened without following a link."""
    info = os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
    if not stat.S_ISREG(info.st_mode):
        return f"not graded: {_kind(info.st_mode)}"
    if not name.endswith(".ipynb"):
        return "not a notebook"
    try:
        fd = os.open(name, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC,
                     dir_fd=dir_fd)
    except OSError as err:
        return f"not graded: cannot open ({err.strerror})"
    with os.fdopen(fd, "rb") as f:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            return f"not graded: {_kind(info.st_mode)}"
        if info.st_size > MAX_MB * 2 ** 20:
            return f"not graded: larger than {MAX_MB} MiB"
        return _parse(f.read(MAX_MB * 2 ** 20 + 1))


def submissions(folder: Path, skip: Path | None = None) -> list[Submission]:
    """Every file under ``folder``, read safely (hidden ones and the report folder left out).

    The folders are walked by file descriptor without following links, so a link planted in a
    home (or a folder swapped for one) cannot make the grader read elsewhere.
    """
    skipped = os.path.realpath(skip) if skip is not None else None
    folder = Path(os.path.realpath(folder))  # the instructor's folder may itself be a link
    found: list[Submission] = []
    for top, dirs, files, dir_fd in os.fwalk(folder, follow_symlinks=False):
        if os.path.realpath(top) == skipped:
            dirs[:] = []
            continue
        relative = os.path.relpath(top, folder)
        links = [d for d in dirs
                 if stat.S_ISLNK(os.stat(d, dir_fd=dir_fd, follow_symlinks=False).st_mode)]
        dirs[:] = sorted(d for d in dirs if not d.startswith(".") and d not in links)
        for name in sorted(n for n in [*files, *links] if not n.startswith(".")):
            found.append((os.path.normpath(os.path.join(relative, name)),
                          _read_submission(name, dir_fd)))
    return sorted(found, key=lambda item: item[0])


def _default_timeout(number: str) -> float:
    """Seconds exercise ``number`` may run by default: a correct solution's, times the factor."""
    if number not in SOLUTION_SECONDS:
        return UNMEASURED_TIMEOUT
    return max(TIMEOUT_FLOOR, round(TIMEOUT_FACTOR * SOLUTION_SECONDS[number]))


def _default_timeouts() -> str:
    """'05: 97 s, 06: 60 s, ...' for the exercises measured."""
    return ", ".join(f"{number}: {_default_timeout(number):g} s" for number in SOLUTION_SECONDS)


def grade_file(submission: Submission, exercises: list[Exercise], only: Exercise | None,
               limits: dict[str, Limits], sandbox: Sandbox) -> Row:
    """Identify and run one submission."""
    start = time.monotonic()
    name, nb = printable(submission[0]), submission[1]
    if isinstance(nb, str):
        return Row(name, status=nb)
    try:
        exercise = identify(nb, exercises)
        if exercise is None:
            return Row(name, status=NOT_EXERCISE)
        if only is not None and exercise != only:
            return Row(name, exercise.number,
                       f"wrong exercise: {exercise.number}, not {only.number}")
        cells = run_submission(nb, exercise, limits[exercise.number], sandbox)
    except Exception as err:  # noqa: BLE001 - one odd notebook must not stop the class's grading
        return Row(name, status=f"not graded: the grader failed on it ({type(err).__name__})")
    return Row(name, exercise.number, GRADED, cells, time.monotonic() - start)


def grade_folder(files: list[Submission], exercises: list[Exercise], only: Exercise | None,
                 limits: dict[str, Limits], sandbox: Sandbox, jobs: int = 1) -> list[Row]:
    """One row per file (from ``submissions``), ``jobs`` graded at once (progress on stderr)."""
    with ThreadPoolExecutor(max_workers=jobs) as pool:
        futures = [pool.submit(grade_file, submission, exercises, only, limits, sandbox)
                   for submission in files]
        for number, future in enumerate(as_completed(futures), 1):
            row = future.result()
            print(f"[{number}/{len(files)}] {row.name}: {row.status} ({row.seconds:.1f} s)",
                  file=sys.stderr, flush=True)
    return [future.result() for future in futures]


def default_jobs() -> int:
    """Submissions graded at once: one per core, at most four (each imports torch)."""
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
                        help="seconds each notebook may run, Python's start and imports included "
                        f"(default: per exercise, {TIMEOUT_FACTOR}x a correct solution's time, "
                        f"at least {TIMEOUT_FLOOR:g} s: {_default_timeouts()})")
    parser.add_argument("--memory-mb", type=int, default=Limits.memory_mb,
                        help="address-space limit of each submission in MiB "
                        "(default: %(default)s)")
    parser.add_argument("--jobs", type=int, default=default_jobs(),
                        help="submissions graded at once, each with its share of the "
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
        return (f"--memory-mb must be at least {MIN_MEMORY_MB}, not {args.memory_mb}: a Python "
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
    in_all = " and of memory in all" if sandbox.grouped else ""
    memory = (f"{some.memory_mb} MiB of address space per process{in_all}, files up to "
              f"{FILE_MB} MiB" if sys.platform.startswith("linux") else "no memory limit here")
    if sandbox.bwrap and os.geteuid() == 0:
        memory += f", {PROCESSES} processes and threads, {TMP_MB} MiB written in all"
    elif sandbox.bwrap:
        memory += f", {TMP_MB} MiB written in all"
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
    files = submissions(args.folder, args.out)
    if not files:
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
    rows = grade_folder(files, exercises, only, limits, sandbox, args.jobs)
    print(text_report(rows, exercises, notes), end="")
    print(f"Wall clock: {time.monotonic() - start:.1f} s, {args.jobs} submission(s) at once.")
    write_csv(args.out / "grades.csv", rows, exercises)
    (args.out / "grades.html").write_text(html_report(rows, exercises, notes), encoding="utf-8")
    print(f"Wrote {args.out / 'grades.csv'} and {args.out / 'grades.html'}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
