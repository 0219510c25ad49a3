"""Grade a class: ``python -m cvae_lib grade FOLDER`` runs every exercise notebook in a folder.

For instructors, after 05-07 (the exercises). Each submission runs cell by cell in its own
kernel, in a fresh temporary folder, with a time and memory limit and, where bubblewrap
works, in a sandbox with a read-only system and no network. Every cell that calls a check
(``check_cvae_loss(...)``, or an ``assert`` on the student's function) is one column; the
solution notebooks in ``notebooks/solutions/`` define which checks each exercise has.
"""

from __future__ import annotations

import argparse
import ast
import copy
import csv
import html
import json
import math
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import nbformat
from jupyter_client.kernelspec import KernelSpec
from jupyter_client.manager import AsyncKernelManager
from nbclient import NotebookClient
from nbclient.exceptions import CellTimeoutError, DeadKernelError
from traitlets import List, Unicode
from traitlets.config import Config

REPO = Path(__file__).resolve().parents[1]
SOLUTIONS = REPO / "notebooks" / "solutions"
OK, TODO, TIMED_OUT, MISSING = "OK", "TODO left", "timed out", "check cell missing"
NOT_EXERCISE = "not an exercise notebook"
GRADED = "graded"
LABEL_CHARS = 60
# Run inside the kernel after a failed check: the label a CheckFailure carries, and whether
# the error is a check's verdict (an AssertionError) rather than a crash.
PROBE = ("print(__import__('json').dumps([str(getattr(getattr(__import__('sys'), 'last_value', "
         "None), 'label', '') or ''), isinstance(getattr(__import__('sys'), 'last_value', "
         "None), AssertionError)]))")
# Starts ipykernel after capping the address space (argv: limit in bytes, then -f FILE).
LAUNCH = ("import resource, sys\n"
          "limit = int(sys.argv.pop(1))\n"
          "resource.setrlimit(resource.RLIMIT_AS, (limit, limit))\n"
          "sys.path = [p for p in sys.path if p]\n"
          "from ipykernel.kernelapp import launch_new_instance\n"
          "launch_new_instance()\n")


@dataclass(frozen=True)
class Exercise:
    """An exercise notebook: its number, its title line and the checks it runs, in order."""

    number: str
    title: str
    checks: tuple[str, ...]


@dataclass(frozen=True)
class Limits:
    """What one submission may use: seconds of running cells and address space in MiB."""

    seconds: float = 300.0
    memory_mb: int = 8192


@dataclass
class Row:
    """One submission's line of the report."""

    name: str
    exercise: str = ""
    status: str = GRADED
    cells: dict[str, str] = field(default_factory=dict)
    seconds: float = 0.0


@dataclass(frozen=True)
class CellError:
    """The error a cell raised, as the kernel reported it."""

    kind: str
    message: str
    label: str = ""
    mistake: bool = False


class SandboxedKernelManager(AsyncKernelManager):
    """A kernel started by a fixed command line (the sandbox wrapped around ipykernel)."""

    launch_argv = List(Unicode()).tag(config=True)

    @property
    def kernel_spec(self) -> KernelSpec:
        """The spec of the sandboxed kernel, whatever kernel the notebook names."""
        return KernelSpec(argv=list(self.launch_argv), display_name="grading sandbox",
                          language="python")


# ----------------------------------------------------------------------------------------
# Reading notebooks: titles, calls, checks


def title_of(nb: nbformat.NotebookNode) -> str:
    """The first H1 line of the notebook's markdown, without the '#'."""
    for cell in nb.cells:
        if cell.cell_type == "markdown":
            for line in cell.source.splitlines():
                if line.startswith("# "):
                    return line[2:].strip()
    return ""


def _normal(text: str) -> str:
    """Lower-case words only, so titles compare despite punctuation and spacing."""
    return " ".join(re.findall(r"\w+", text.lower()))


def _parse(source: str) -> ast.Module | None:
    """The syntax tree of a cell (IPython magics and shell lines dropped), or None."""
    lines = [line for line in source.splitlines() if not line.lstrip().startswith(("%", "!"))]
    try:
        return ast.parse("\n".join(lines))
    except SyntaxError:
        return None


def called_names(source: str) -> list[str]:
    """Names of the plain functions a cell calls, in source order."""
    tree = _parse(source)
    if tree is None:
        return re.findall(r"(?<![\w.])(?<!def )(?<!class )([A-Za-z_]\w*)\s*\(", source)
    calls = [node for node in ast.walk(tree)
             if isinstance(node, ast.Call) and isinstance(node.func, ast.Name)]
    return [call.func.id for call in sorted(calls, key=lambda c: (c.lineno, c.col_offset))]


def _defined_in_solutions(nb: nbformat.NotebookNode) -> set[str]:
    """Functions and classes defined by the cells that hold a solution block."""
    names: set[str] = set()
    for cell in nb.cells:
        tree = _parse(cell.source) if cell.cell_type == "code" else None
        if tree is not None and "### BEGIN SOLUTION" in cell.source:
            names |= {node.name for node in tree.body
                      if isinstance(node, (ast.FunctionDef, ast.ClassDef))}
    return names


def _has_assert(source: str) -> bool:
    """True when the cell contains an assert statement."""
    tree = _parse(source)
    return tree is not None and any(isinstance(node, ast.Assert) for node in ast.walk(tree))


def solution_checks(nb: nbformat.NotebookNode) -> list[str]:
    """The checks of a solution notebook: its check_* calls and asserts on solution code."""
    defined, checks = _defined_in_solutions(nb), []
    for cell in nb.cells:
        if cell.cell_type != "code":
            continue
        calls = called_names(cell.source)
        name = next((c for c in calls if c.startswith("check_")), None)
        if name is None and _has_assert(cell.source):
            name = next((c for c in calls if c in defined), None)
        if name and name not in checks:
            checks.append(name)
    return checks


def load_exercises(folder: Path = SOLUTIONS) -> list[Exercise]:
    """The exercises as their solution notebooks define them today."""
    exercises = []
    for path in sorted(folder.glob("*.ipynb")):
        nb = nbformat.read(path, as_version=4)
        exercises.append(Exercise(path.name.split("_")[0], title_of(nb),
                                  tuple(solution_checks(nb))))
    return exercises


def identify(nb: nbformat.NotebookNode, exercises: list[Exercise]) -> Exercise | None:
    """The exercise a notebook is: by its title, else by the checks it calls."""
    title = _normal(title_of(nb))
    for exercise in exercises:
        if title and title == _normal(exercise.title):
            return exercise
    calls = {name for cell in nb.cells if cell.cell_type == "code"
             for name in called_names(cell.source)}
    matches = [ex for ex in exercises if ex.checks and set(ex.checks) <= calls]
    return matches[0] if len(matches) == 1 else None


def check_cells(nb: nbformat.NotebookNode, exercise: Exercise) -> dict[int, str]:
    """Cell index -> check name: the first code cell of the submission calling each check."""
    found: dict[int, str] = {}
    for check in exercise.checks:
        for index, cell in enumerate(nb.cells):
            if cell.cell_type == "code" and check in called_names(cell.source):
                found.setdefault(index, check)
                break
    return found


# ----------------------------------------------------------------------------------------
# The sandbox


@dataclass(frozen=True)
class Sandbox:
    """How kernels are isolated: bubblewrap where it works, else only the limits."""

    bwrap: str | None
    note: str

    def wrap(self, root: Path, work: Path, argv: list[str]) -> list[str]:
        """``argv`` run inside the sandbox, seeing ``root`` as its only writable folder."""
        if self.bwrap is None:
            return argv
        return [self.bwrap, *_bwrap_options(root, work), *argv]


def _kept_paths() -> list[str]:
    """Folders the kernel needs even where home folders are hidden: repo and Python."""
    paths = {str(REPO), sys.prefix, sys.base_prefix,
             str(Path(sys.executable).resolve().parent.parent)}
    return sorted(p for p in paths if p.startswith(("/home", "/root")))


def _bwrap_options(root: Path, work: Path) -> list[str]:
    """Read-only system, home folders hidden, private /tmp, no network, no capabilities."""
    options = ["--ro-bind", "/", "/", "--dev", "/dev", "--proc", "/proc", "--tmpfs", "/tmp"]
    for hidden in ("/home", "/root"):
        if Path(hidden).is_dir():
            options += ["--tmpfs", hidden]
    for kept in _kept_paths():
        options += ["--ro-bind", kept, kept]
    # In its own PID namespace the kernel's parent is PID 1, which ipykernel would take for
    # an orphaned kernel: --die-with-parent ends it with the grader instead.
    return [*options, "--bind", str(root), str(root), "--chdir", str(work), "--unshare-all",
            "--die-with-parent", "--new-session", "--cap-drop", "ALL",
            "--unsetenv", "JPY_PARENT_PID"]


def find_sandbox() -> Sandbox:
    """Bubblewrap if it is installed and can start Python here; otherwise say why not."""
    bwrap = shutil.which("bwrap")
    if bwrap is None:
        return Sandbox(None, "NO SANDBOX: bubblewrap (bwrap) is not installed; student code "
                             "runs with the time and memory limits only, and can reach the "
                             "network and write where you can.")
    with tempfile.TemporaryDirectory(prefix="cvae-grade-probe-") as tmp:
        root = Path(tmp)
        argv = [bwrap, *_bwrap_options(root, root), sys.executable, "-c", "import ipykernel"]
        try:
            result = subprocess.run(argv, capture_output=True, text=True, timeout=60)
        except (OSError, subprocess.TimeoutExpired) as err:
            return Sandbox(None, f"NO SANDBOX: bubblewrap did not start ({err}).")
    if result.returncode != 0:
        reason = (result.stderr.strip().splitlines() or ["no message"])[-1]
        return Sandbox(None, f"NO SANDBOX: bubblewrap failed here ({reason}); student code "
                             "runs with the time and memory limits only.")
    return Sandbox(bwrap, "Sandbox: bubblewrap (read-only system, home folders hidden, no "
                          "network, writable temporary folder only).")


# ----------------------------------------------------------------------------------------
# Running one submission


def _data_folder(root: Path) -> Path:
    """The instructor's MNIST folder when it is prepared, else a scratch one per submission."""
    prepared = Path(os.environ.get("CVAE_DATA_DIR", REPO / "data"))
    return prepared if (prepared / "MNIST" / "raw").is_dir() else root / "data"


def _copy_font_cache(target: Path) -> None:
    """Give the kernel matplotlib's font list, which it would otherwise rebuild (seconds)."""
    cache = Path(os.environ.get("MPLCONFIGDIR") or Path(os.environ.get(
        "XDG_CACHE_HOME") or Path.home() / ".cache") / "matplotlib")
    target.mkdir(parents=True, exist_ok=True)
    for fontlist in cache.glob("fontlist-*.json"):
        shutil.copyfile(fontlist, target / fontlist.name)


def kernel_env(root: Path) -> dict[str, str]:
    """A minimal environment (none of the instructor's variables): fast, offline, local."""
    home = root / "home"
    return {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "LANG": "C.UTF-8",
            "HOME": str(home), "TMPDIR": str(root / "tmp"), "PYTHONPATH": str(REPO),
            "CVAE_FAST": "1", "CVAE_OFFLINE": "1", "MPLBACKEND": "Agg",
            "CVAE_CACHE_DIR": str(root / "checkpoints"), "CVAE_DATA_DIR": str(_data_folder(root)),
            "MPLCONFIGDIR": str(home / ".matplotlib"), "IPYTHONDIR": str(home / ".ipython")}


def _client(nb: nbformat.NotebookNode, root: Path, work: Path, limits: Limits,
            sandbox: Sandbox) -> NotebookClient:
    """A notebook client whose kernel runs sandboxed and talks over IPC sockets in ``root``."""
    launch = [sys.executable, "-c", LAUNCH, str(limits.memory_mb * 2 ** 20),
              "-f", "{connection_file}"]
    config = Config({"SandboxedKernelManager": {
        "launch_argv": sandbox.wrap(root, work, launch), "transport": "ipc",
        "connection_file": str(root / "run" / "kernel.json")}})
    return NotebookClient(nb, config=config, kernel_manager_class=SandboxedKernelManager,
                          allow_errors=True, shutdown_kernel="immediate",
                          startup_timeout=max(1, min(60, math.ceil(limits.seconds))))


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
        root = Path(tmp)
        work = root / "work"
        for folder in (work, root / "run", root / "home", root / "tmp"):
            folder.mkdir()
        _copy_font_cache(root / "home" / ".matplotlib")
        shutil.copyfile(path, work / path.name)
        client = _client(copy.deepcopy(nb), root, work, limits, sandbox)
        outcome = "crashed: kernel did not start"
        try:
            with client.setup_kernel(cwd=str(work), env=kernel_env(root),
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


# ----------------------------------------------------------------------------------------
# The class


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
                 limits: Limits, sandbox: Sandbox, skip: Path | None = None) -> list[Row]:
    """One row per file of the folder, graded one after the other (progress on stderr)."""
    files = submissions(folder, skip)
    rows = []
    for number, path in enumerate(files, 1):
        row = grade_file(path, str(path.relative_to(folder)), exercises, only, limits, sandbox)
        print(f"[{number}/{len(files)}] {row.name}: {row.status} ({row.seconds:.1f} s)",
              file=sys.stderr, flush=True)
        rows.append(row)
    return rows


# ----------------------------------------------------------------------------------------
# The report


def totals(rows: list[Row], exercise: Exercise) -> dict[str, Counter]:
    """For each check, how many graded submissions got each outcome."""
    graded = [r for r in rows if r.status == GRADED and r.exercise == exercise.number]
    return {check: Counter(r.cells[check] for r in graded) for check in exercise.checks}


def totals_lines(rows: list[Row], exercise: Exercise) -> list[str]:
    """'check: outcome n of N, ...' for each check, OK first, then the most frequent."""
    lines = []
    for check, counts in totals(rows, exercise).items():
        size = sum(counts.values())
        order = sorted(counts, key=lambda v: (v != OK, -counts[v], v))
        lines.append(f"{check}: " + ", ".join(f"{v}: {counts[v]} of {size}" for v in order))
    return lines


def _timing(rows: list[Row]) -> str:
    """Seconds per graded submission: mean, max and total."""
    seconds = [r.seconds for r in rows if r.status == GRADED]
    if not seconds:
        return "No submission was run."
    return (f"Seconds per submission: mean {sum(seconds) / len(seconds):.1f}, max "
            f"{max(seconds):.1f}, total {sum(seconds):.1f} ({len(seconds)} run).")


def _text_table(header: list[str], body: list[list[str]]) -> list[str]:
    """Columns padded to their widest cell."""
    widths = [max(len(row[i]) for row in [header, *body]) for i in range(len(header))]
    return ["  ".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip()
            for row in [header, *body]]


def _exercise_table(rows: list[Row], exercise: Exercise) -> tuple[list[str], list[list[str]]]:
    """Header and body of one exercise's table."""
    header = ["submission", "seconds", *exercise.checks]
    body = [[r.name, f"{r.seconds:.1f}", *(r.cells[c] for c in exercise.checks)]
            for r in rows if r.status == GRADED and r.exercise == exercise.number]
    return header, body


def _graded_exercises(rows: list[Row], exercises: list[Exercise]) -> list[Exercise]:
    """The exercises that have at least one graded submission."""
    return [ex for ex in exercises
            if any(r.status == GRADED and r.exercise == ex.number for r in rows)]


def text_report(rows: list[Row], exercises: list[Exercise], notes: list[str]) -> str:
    """The report as printed: notes, one table and its totals per exercise, the rest."""
    lines = [*notes, ""]
    for exercise in _graded_exercises(rows, exercises):
        lines += [f"Exercise {exercise.title}", *_text_table(*_exercise_table(rows, exercise)),
                  "", "Class totals:", *(f"  {t}" for t in totals_lines(rows, exercise)), ""]
    others = [r for r in rows if r.status != GRADED]
    if others:
        lines += ["Not graded:", *_text_table(["file", "why"],
                                              [[r.name, r.status] for r in others]), ""]
    lines.append(_timing(rows))
    return "\n".join(lines) + "\n"


def write_csv(path: Path, rows: list[Row], exercises: list[Exercise]) -> None:
    """One row per file; a column per check of each graded exercise (blank if not its own)."""
    checks = list(dict.fromkeys(c for ex in _graded_exercises(rows, exercises)
                                for c in ex.checks))
    with open(path, "w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(["submission", "exercise", "status", "seconds", *checks])
        for r in rows:
            writer.writerow([r.name, r.exercise, r.status, f"{r.seconds:.1f}",
                             *(r.cells.get(c, "") for c in checks)])


CSS = """body{font-family:system-ui,sans-serif;margin:2em;color:#222}
table{border-collapse:collapse;margin:1em 0}th,td{border:1px solid #ccc;padding:.3em .6em;
text-align:left}th{background:#f2f2f2}.ok{background:#dff5df}.todo{background:#eee}
.mistake{background:#fde9c8}.crash{background:#f8d0d0}.note{font-weight:bold}"""


def _css_class(value: str) -> str:
    """Colour of a table cell by the kind of outcome."""
    if value == OK:
        return "ok"
    if value == TODO:
        return "todo"
    if value.startswith("crashed") or value in (TIMED_OUT, MISSING):
        return "crash"
    return "mistake"


def _td(value: str, coloured: bool) -> str:
    """One escaped table cell, coloured by outcome when asked."""
    css = f' class="{_css_class(value)}"' if coloured else ""
    return f"<td{css}>{html.escape(value)}</td>"


def _html_table(header: list[str], body: list[list[str]], colour_from: int) -> str:
    """An HTML table; cells from column ``colour_from`` on are coloured by outcome."""
    head = "".join(f"<th>{html.escape(h)}</th>" for h in header)
    rows = "".join("<tr>" + "".join(_td(v, i >= colour_from) for i, v in enumerate(row))
                   + "</tr>" for row in body)
    return f"<table><tr>{head}</tr>{rows}</table>"


def html_report(rows: list[Row], exercises: list[Exercise], notes: list[str]) -> str:
    """A self-contained page: the same tables and totals as the printed report."""
    parts = [f'<p class="note">{html.escape(n)}</p>' for n in notes]
    for exercise in _graded_exercises(rows, exercises):
        header, body = _exercise_table(rows, exercise)
        parts += [f"<h2>Exercise {html.escape(exercise.title)}</h2>",
                  _html_table(header, body, 2), "<h3>Class totals</h3><ul>",
                  *(f"<li>{html.escape(t)}</li>" for t in totals_lines(rows, exercise)),
                  "</ul>"]
    others = [[r.name, r.status] for r in rows if r.status != GRADED]
    if others:
        parts += ["<h2>Not graded</h2>", _html_table(["file", "why"], others, 2)]
    parts.append(f"<p>{html.escape(_timing(rows))}</p>")
    return ('<!DOCTYPE html><html><head><meta charset="utf-8"><title>Class grades</title>'
            f"<style>{CSS}</style></head><body><h1>Class grades</h1>{''.join(parts)}"
            "</body></html>\n")


# ----------------------------------------------------------------------------------------
# Command line


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
    return parser


def _notes(folder: Path, sandbox: Sandbox, limits: Limits) -> list[str]:
    """The lines at the top of the report: what was graded, and how safely."""
    memory = (f"{limits.memory_mb} MiB of address space" if sys.platform.startswith("linux")
              else "no memory limit on this system")
    return [f"Graded {folder} with CVAE_FAST=1 CVAE_OFFLINE=1.", sandbox.note,
            f"Limits per notebook: {limits.seconds:g} s, {memory}."]


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
    if not submissions(args.folder, args.out):
        print(f"error: {args.folder} holds no files to grade", file=sys.stderr)
        return 2
    limits, sandbox = Limits(args.timeout, args.memory_mb), find_sandbox()
    notes = _notes(args.folder, sandbox, limits)
    print(notes[1], file=sys.stderr)
    rows = grade_folder(args.folder, exercises, only, limits, sandbox, args.out)
    print(text_report(rows, exercises, notes), end="")
    args.out.mkdir(parents=True, exist_ok=True)
    write_csv(args.out / "grades.csv", rows, exercises)
    (args.out / "grades.html").write_text(html_report(rows, exercises, notes), encoding="utf-8")
    print(f"Wrote {args.out / 'grades.csv'} and {args.out / 'grades.html'}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
