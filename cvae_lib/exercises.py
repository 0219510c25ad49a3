"""Generate student copies of the exercise notebooks from their solution sources.

Introduced in 06_recode_from_scratch. A solution notebook in ``notebooks/solutions/`` marks
each answer with ``### BEGIN SOLUTION`` / ``### END SOLUTION``; the student copy in
``notebooks/`` replaces the answer with ``raise NotImplementedError("TODO: ...")`` (the text
comes from the ``# TODO:`` comment just above the block), strips outputs, and tags with
``raises-exception`` the TODO cells and the cells tagged ``student-fails`` in the solution.

Run ``python -m cvae_lib.exercises`` to regenerate, ``--check`` to verify copies are fresh.
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

import nbformat

BEGIN, END = "### BEGIN SOLUTION", "### END SOLUTION"
SOLUTION_TAG, STUDENT_TAG = "student-fails", "raises-exception"
NOTEBOOKS = Path(__file__).resolve().parent.parent / "notebooks"


def stub_source(source: str) -> tuple[str, bool]:
    """Replace every solution block in a cell's source with a failing TODO line."""
    if not isinstance(source, str):
        raise TypeError(f"source must be a cell's source text (str), not {type(source).__name__}")
    out: list[str] = []
    todo, inside, changed = "complete this code", False, False
    for line in source.splitlines():
        stripped = line.strip()
        if stripped.startswith("# TODO:") and not inside:
            todo = stripped[len("# TODO:"):].strip()
        if stripped == BEGIN:
            inside, changed = True, True
            indent = line[: len(line) - len(line.lstrip())]
            out.append(f'{indent}raise NotImplementedError("TODO: {todo}")')
            continue
        if stripped == END:
            if not inside:
                raise ValueError(f"{END} without {BEGIN} in cell:\n{source}")
            inside = False
            continue
        if not inside:
            out.append(line)
    if inside:
        raise ValueError(f"{BEGIN} without {END} in cell:\n{source}")
    return "\n".join(out), changed


def _check_notebook(solution: object) -> dict:
    """Return ``solution`` if it looks like a notebook (a dict with a list of cells)."""
    if not isinstance(solution, dict) or not isinstance(solution.get("cells"), list):
        raise TypeError("solution must be a notebook read with nbformat.read(path, 4), "
                        f"not {type(solution).__name__}")
    return solution


def student_notebook(solution: nbformat.NotebookNode) -> nbformat.NotebookNode:
    """The student copy of a solution notebook (outputs stripped, failing cells tagged)."""
    student = nbformat.from_dict(_check_notebook(solution))
    for cell in student.cells:
        if cell.cell_type != "code":
            continue
        cell.source, changed = stub_source(cell.source)
        cell.outputs, cell.execution_count = [], None
        tags = [t for t in cell.metadata.get("tags", []) if t != SOLUTION_TAG]
        if changed or SOLUTION_TAG in cell.metadata.get("tags", []):
            tags.append(STUDENT_TAG)
        if tags:
            cell.metadata["tags"] = tags
        else:
            cell.metadata.pop("tags", None)
    return student


def solution_lines(solution: nbformat.NotebookNode) -> list[str]:
    """Code lines found only inside solution blocks (they must not reach the student)."""
    inside, outside = [], set()
    for cell in nbformat.from_dict(_check_notebook(solution)).cells:
        if cell.cell_type == "code":
            blocks = re.findall(f"{BEGIN}(.*?){END}", cell.source, flags=re.S)
            inside += [ln.strip() for block in blocks for ln in block.splitlines()]
            rest = re.sub(f"{BEGIN}.*?{END}", "", cell.source, flags=re.S)
            outside |= {ln.strip() for ln in rest.splitlines()}
    return [ln for ln in inside if len(ln) > 12 and ln not in outside]


def render(path: Path) -> str:
    """The text the student copy of solution ``path`` should have."""
    return nbformat.writes(student_notebook(nbformat.read(path, as_version=4))) + "\n"


def main(argv: list[str] | None = None) -> int:
    """Write (or with --check, verify) every student copy; return an exit code."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="only verify copies are fresh")
    args = parser.parse_args(argv)
    stale = []
    for path in sorted((NOTEBOOKS / "solutions").glob("*.ipynb")):
        target, text = NOTEBOOKS / path.name, render(path)
        if args.check:
            if not target.exists() or target.read_text() != text:
                stale.append(target.name)
        else:
            target.write_text(text)
            print(f"wrote {target.relative_to(NOTEBOOKS.parent)}")
    if stale:
        print(f"stale student copies: {', '.join(stale)}; run python -m cvae_lib.exercises")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
