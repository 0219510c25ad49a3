"""Minutes of the core route for a new student: reading, running the cells, and the exercises.

The core of a notebook is every cell before its first "Going further" marker (a heading or the
bold line that opens the optional part). 07, the challenge extension, is not on the route: it
is counted whole, by the same rates, on a line of its own below the total. A
new student (Python and basic PyTorch, no ELBO yet) reads new technical prose at about
``PROSE_WPM`` words a minute and code at ``CODE_LINES_PER_MIN`` lines a minute; every solution
block of an exercise on the core route costs ``SOLUTION_MINUTES`` to
write (a block in a "Going further" part is off the route), and each such notebook ``SLIPS``
slips of ``SLIP_MINUTES`` (open a hint or read the check's message, fix, rerun), so folded hints
and solutions are not counted as reading; folded answers are. The rates were set so that 01-03
come out as the minutes a new student took on an earlier version (10, 9 and 7 minutes).
Execution time is what the cells took, read from notebooks executed in full mode::

    jupyter nbconvert --execute --to notebook --output-dir /tmp/route notebooks/0X_*.ipynb
    python benchmarks/bench_route.py /tmp/route

(05 and 06 are executed from ``notebooks/solutions/``: the student copies stop at their TODOs.)
A loaded class server is counted as ``LOADED_FACTOR`` times the measured execution time. With
``--loaded`` the notebooks were executed on a loaded machine: the measured time is the loaded
figure, and the quiet one is that time divided by ``LOADED_FACTOR``.
"""

from __future__ import annotations

import argparse
import datetime
import platform
import re
import sys
from pathlib import Path

import nbformat

ROOT = Path(__file__).resolve().parents[1]
ROUTE = ["01_vae_fundamentals", "02_label_conditioning", "03_training", "04_generation",
         "05_modify_parameters", "06_recode_from_scratch"]
EXTENSION = "07_challenge_thickness"  # off the route: all its cells, not in the total
PROSE_WPM = 110
CODE_LINES_PER_MIN = 20
SOLUTION_MINUTES = 1.0
SLIPS, SLIP_MINUTES = 2, 1.0
LOADED_FACTOR = 3
GOING_FURTHER = re.compile(r"^(#+ .*|\*\*)going further", re.IGNORECASE | re.MULTILINE)
SOLUTION = "### BEGIN SOLUTION"
# A folded hint or solution: read only after a slip, which the slips' minutes count.
FOLDED_HELP = re.compile(r"<details>\s*<summary>(Hint|Solution)[^<]*</summary>.*?</details>",
                         re.DOTALL)


def core_cells(notebook: nbformat.NotebookNode) -> list[tuple[int, str, str]]:
    """(index, cell type, source) of the core cells; a cell holding the marker is cut there."""
    core = []
    for i, cell in enumerate(notebook.cells):
        marker = GOING_FURTHER.search(cell.source)
        if marker:
            if cell.source[:marker.start()].strip():
                core.append((i, cell.cell_type, cell.source[:marker.start()]))
            break
        core.append((i, cell.cell_type, cell.source))
    return core


def prose_words(markdown: str) -> int:
    """Words a student reads in a markdown cell: tags and table rules are not words."""
    text = re.sub(r"<[^>]+>|^\|?[-| ]+\|?$", " ", FOLDED_HELP.sub(" ", markdown),
                  flags=re.MULTILINE)
    return len(re.findall(r"[\w$\\]+[\w'.\-]*", text))


def code_lines(code: str) -> int:
    """Non-blank lines of a code cell."""
    return sum(1 for line in code.splitlines() if line.strip())


def seconds_run(cell: nbformat.NotebookNode) -> float:
    """How long an executed cell ran, from the timestamps the executor recorded."""
    stamps = cell.get("metadata", {}).get("execution", {})
    start, end = stamps.get("iopub.execute_input"), stamps.get("shell.execute_reply")
    if not (start and end):
        return 0.0
    start, end = (datetime.datetime.fromisoformat(t.replace("Z", "+00:00")) for t in (start, end))
    return (end - start).total_seconds()


def counted_cells(notebook: nbformat.NotebookNode, whole: bool) -> list[tuple[int, str, str]]:
    """The cells counted: the core, or every cell of a notebook off the route (``whole``)."""
    if whole:
        return [(i, cell.cell_type, cell.source) for i, cell in enumerate(notebook.cells)]
    return core_cells(notebook)


def solution_blocks(name: str, whole: bool = False) -> int:
    """How many solution blocks the student writes on the core route of a notebook."""
    source = ROOT / "notebooks" / "solutions" / f"{name}.ipynb"
    if not source.is_file():
        return 0
    solution = nbformat.read(source, as_version=4)
    return sum(src.count(SOLUTION) for _, _, src in counted_cells(solution, whole))


def route_minutes(name: str, executed: Path | None, whole: bool = False) -> dict[str, float]:
    """Reading, running and exercise minutes of one notebook's core (or all of it: ``whole``)."""
    student = nbformat.read(ROOT / "notebooks" / f"{name}.ipynb", as_version=4)
    cells = counted_cells(student, whole)
    words = sum(prose_words(src) for _, kind, src in cells if kind == "markdown")
    lines = sum(code_lines(src) for _, kind, src in cells if kind == "code")
    run = 0.0
    if executed is not None and (executed / f"{name}.ipynb").is_file():
        ran = nbformat.read(executed / f"{name}.ipynb", as_version=4)
        run = sum(seconds_run(ran.cells[i]) for i, _, _ in counted_cells(ran, whole)) / 60
    blocks = solution_blocks(name, whole)
    exercise = blocks * SOLUTION_MINUTES + (SLIPS * SLIP_MINUTES if blocks else 0)
    return {"words": words, "code lines": lines, "read": words / PROSE_WPM,
            "code": lines / CODE_LINES_PER_MIN, "run": run, "exercise": exercise}


def cpu_name() -> str:
    """The CPU's model name, to print beside every figure."""
    info = Path("/proc/cpuinfo")
    if info.is_file():
        for line in info.read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or "unknown CPU"


def main(executed: Path | None, loaded_run: bool = False) -> None:
    """Print the route table: minutes per notebook, total, and total on a loaded server."""
    print(f"CPU: {cpu_name()}; executed notebooks: {executed or 'none (run time 0)'}"
          + ("; executed under load (run = measured / LOADED_FACTOR)" if loaded_run else ""))
    print(f"rates: prose {PROSE_WPM} words/min, code {CODE_LINES_PER_MIN} lines/min, "
          f"{SOLUTION_MINUTES} min per solution block + {SLIPS} slips of {SLIP_MINUTES} min")
    print(f"{'notebook':24} {'words':>6} {'lines':>6} {'read':>5} {'code':>5} {'run':>5} "
          f"{'exer':>5} {'total':>6} {'loaded':>7}")
    total = loaded = 0.0
    for name in ROUTE:
        quiet, busy = print_row(name, route_minutes(name, executed), loaded_run)
        total, loaded = total + quiet, loaded + busy
    print(f"{'total':24} {'':6} {'':6} {'':5} {'':5} {'':5} {'':5} {total:6.1f} {loaded:7.1f}")
    print_row(f"{EXTENSION[:2]} (off the route)", route_minutes(EXTENSION, executed, whole=True),
              loaded_run)


def print_row(label: str, m: dict[str, float], loaded_run: bool) -> tuple[float, float]:
    """Print one notebook's row of the table; return its quiet and loaded minutes."""
    if loaded_run:
        m["run"] /= LOADED_FACTOR
    quiet = m["read"] + m["code"] + m["run"] + m["exercise"]
    busy = quiet + (LOADED_FACTOR - 1) * m["run"]
    print(f"{label:24} {m['words']:6.0f} {m['code lines']:6.0f} {m['read']:5.1f} "
          f"{m['code']:5.1f} {m['run']:5.1f} {m['exercise']:5.1f} {quiet:6.1f} {busy:7.1f}")
    return quiet, busy


def parse(argv: list[str]) -> argparse.Namespace:
    """The folder of executed notebooks (optional) and --loaded, checked before any work."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("executed", nargs="?", type=Path,
                        help="folder of notebooks executed in full mode (none: run time 0)")
    parser.add_argument("--loaded", action="store_true",
                        help="the notebooks were executed on a loaded machine")
    args = parser.parse_args(argv)
    if args.executed is not None and not args.executed.is_dir():
        parser.error(f"{args.executed} is not a folder: pass the --output-dir given to "
                     f"jupyter nbconvert --execute (see this script's docstring)")
    return args


if __name__ == "__main__":
    options = parse(sys.argv[1:])
    main(options.executed, loaded_run=options.loaded)
