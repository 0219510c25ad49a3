"""Generate student copies of the exercise notebooks from their solution sources.

Introduced in 05_modify_parameters. A solution notebook in ``notebooks/solutions/`` marks each
answer with the two lines ``### BEGIN SOLUTION`` and ``### END SOLUTION`` (nbgrader's
convention). The student copy in ``notebooks/`` replaces each answer with
``raise NotImplementedError("TODO: ...")``, whose text comes from the ``# TODO:`` comment just
above the block; it has no outputs, and the cells that fail when run as given are tagged
``raises-exception``: those whose TODO runs at the top level of the cell, and those tagged
``student-fails`` in the solution (e.g. the check that calls a still-empty function).

A line that looks like a marker but is not exactly one (``### Begin Solution``,
``#### END SOLUTION``, ``# BEGIN SOLUTION here``) is an error, as are an END without a BEGIN,
a BEGIN without an END and a BEGIN inside a block: a typo must never leak an answer.

The copy's metadata stores a hash of its cells as generated. Regenerating refuses to
overwrite a copy whose cells no longer match that hash (a student has edited it), unless
``--force``; ``--reset 05`` puts one notebook back as generated and keeps the edited file as
``05_....ipynb.bak``.

    python -m cvae_lib exercises            # write the student copies
    python -m cvae_lib exercises --check    # fail if a copy is stale (used by the tests)
    python -m cvae_lib exercises --reset 05 # start notebook 05 again from scratch
    python -m cvae_lib exercises --graded --force  # copies without the folded solutions

By default a student copy keeps the folded "Solution" blocks of the markdown (self-study: a
student opens one after trying). ``--graded`` leaves them out, for a class whose exercises are
graded; the hints stay either way.
"""

from __future__ import annotations

import argparse
import ast
import hashlib
import json
import re
import shutil
import sys
from pathlib import Path

import nbformat

BEGIN, END = "### BEGIN SOLUTION", "### END SOLUTION"
SOLUTION_TAG, STUDENT_TAG = "student-fails", "raises-exception"
METADATA_KEY = "cvae_exercise"
NOTEBOOKS = Path(__file__).resolve().parents[2] / "notebooks"
# Anything a person may have meant as a marker: a comment naming BEGIN/END and SOLUTION.
LOOKS_LIKE_MARKER = re.compile(r"#.*\b(begin|end)[\s_-]*solution", re.IGNORECASE)
# A folded answer in a markdown cell: <details><summary>Solution...</summary> ... </details>.
SOLUTION_BLOCK = re.compile(r"\n*<details>\s*<summary>\s*Solution\b.*?</details>", re.S | re.I)


class MarkerError(ValueError):
    """A solution marker is malformed; the message names the notebook, the cell and the line."""


def _todo_line(indent: str, todo: str) -> str:
    """The line that stands in for an answer (two lines when one would pass 99 characters)."""
    line = f"{indent}raise NotImplementedError({json.dumps('TODO: ' + todo)})"
    if len(line) <= 99:
        return line
    return f"{indent}raise NotImplementedError(\n{indent}    {json.dumps('TODO: ' + todo)})"


def stub_source(source: str, where: str = "this cell") -> tuple[str, bool]:
    """Replace every solution block of a cell's source with a failing TODO line.

    Returns the new source and whether anything was replaced. ``where`` names the cell in
    error messages (e.g. ``"05_modify_parameters.ipynb, cell 12"``).
    """
    if not isinstance(source, str):
        raise TypeError(f"source must be a cell's source text (str), not {type(source).__name__}")
    out: list[str] = []
    todo, begin_line, changed = "complete this code", 0, False
    for number, line in enumerate(source.splitlines(), start=1):
        stripped = line.strip()
        here = f"{where}, line {number}"
        if stripped not in (BEGIN, END) and LOOKS_LIKE_MARKER.search(line):
            raise MarkerError(f"{here}: {stripped!r} looks like a solution marker but is not "
                              f"exactly {BEGIN!r} or {END!r} (alone on its line)")
        if stripped == BEGIN:
            if begin_line:
                raise MarkerError(f"{here}: {BEGIN} inside the block opened on line "
                                  f"{begin_line}; solution blocks cannot be nested")
            begin_line, changed = number, True
            out.append(_todo_line(line[:len(line) - len(line.lstrip())], todo))
        elif stripped == END:
            if not begin_line:
                raise MarkerError(f"{here}: {END} without a {BEGIN} before it")
            begin_line, todo = 0, "complete this code"
        elif not begin_line:
            if stripped.startswith("# TODO:"):
                todo = stripped[len("# TODO:"):].strip()
            out.append(line)
    if begin_line:
        raise MarkerError(f"{where}, line {begin_line}: {BEGIN} is never closed by {END}")
    return "\n".join(out), changed


def _raises_at_top_level(source: str, where: str) -> bool:
    """True when running the cell itself reaches a TODO (one not inside a def or lambda)."""
    code = "\n".join("" if line.lstrip().startswith(("%", "!")) else line
                     for line in source.splitlines())
    try:
        tree = ast.parse(code)
    except SyntaxError as err:
        raise MarkerError(f"{where}: the student version is not valid Python ({err.msg}, "
                          f"line {err.lineno}); check where the solution block starts and "
                          f"ends") from None

    def visit(node: ast.AST, in_function: bool) -> bool:
        if isinstance(node, ast.Raise) and not in_function and "TODO: " in ast.unparse(node):
            return True
        inside = in_function or isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef,
                                                  ast.Lambda))
        return any(visit(child, inside) for child in ast.iter_child_nodes(node))

    return visit(tree, False)


def _check_notebook(solution: object) -> dict:
    """Return ``solution`` if it looks like a notebook (a dict with a list of cells)."""
    if not isinstance(solution, dict) or not isinstance(solution.get("cells"), list):
        raise TypeError("solution must be a notebook read with nbformat.read(path, 4), "
                        f"not {type(solution).__name__}")
    return solution


def cells_hash(notebook: dict) -> str:
    """SHA-256 of what a student edits: every cell's type and source, in order."""
    cells = [[cell["cell_type"], cell["source"] if isinstance(cell["source"], str)
              else "".join(cell["source"])] for cell in notebook["cells"]]
    return hashlib.sha256(json.dumps(cells).encode()).hexdigest()


def student_notebook(solution: nbformat.NotebookNode, name: str = "notebook",
                     graded: bool = False) -> nbformat.NotebookNode:
    """The student copy of a solution notebook (outputs stripped, failing cells tagged); a
    ``graded`` copy also leaves out the folded solutions of its markdown cells."""
    student = nbformat.from_dict(_check_notebook(solution))
    student.metadata.pop(METADATA_KEY, None)
    for index, cell in enumerate(student.cells):
        where = f"{name}, cell {index}" + (f" (id {cell.id})" if cell.get("id") else "")
        if cell.cell_type != "code":
            for number, line in enumerate(cell.source.splitlines(), start=1):
                if LOOKS_LIKE_MARKER.search(line):
                    raise MarkerError(f"{where}, line {number}: a solution marker in a "
                                      f"{cell.cell_type} cell; markers work in code cells only")
            continue
        cell.source, changed = stub_source(cell.source, where)
        cell.outputs, cell.execution_count = [], None
        old_tags = cell.metadata.get("tags", [])
        tags = [t for t in old_tags if t not in (SOLUTION_TAG, STUDENT_TAG)]
        if SOLUTION_TAG in old_tags or (changed and _raises_at_top_level(cell.source, where)):
            tags.append(STUDENT_TAG)
        if tags:
            cell.metadata["tags"] = tags
        else:
            cell.metadata.pop("tags", None)
    student.metadata[METADATA_KEY] = {
        "generated_from": f"solutions/{name}",
        "note": "Generated by python -m cvae_lib exercises; edit the solution, not this copy."}
    return without_folded_solutions(student) if graded else stamped(student)


def stamped(copy: nbformat.NotebookNode) -> nbformat.NotebookNode:
    """``copy`` with the hash of its cells as generated, if it is a generated copy."""
    if METADATA_KEY in copy.metadata:
        copy.metadata[METADATA_KEY]["cells_sha256"] = cells_hash(copy)
    return copy


def without_folded_solutions(notebook: nbformat.NotebookNode) -> nbformat.NotebookNode:
    """``notebook`` as a graded class gets it: no folded solutions in its text cells."""
    for cell in notebook.cells:
        if cell.cell_type != "code":
            cell.source = SOLUTION_BLOCK.sub("", cell.source)
    return stamped(notebook)


def graded_text(path: Path) -> str:
    """The text of the notebook at ``path`` as a graded class gets it (the hub, its book)."""
    return nbformat.writes(without_folded_solutions(nbformat.read(path, as_version=4))) + "\n"


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


def render(path: Path, graded: bool = False) -> str:
    """The text the student copy of solution ``path`` should have."""
    path = Path(path)
    try:
        solution = nbformat.read(path, as_version=4)
    except Exception as err:  # nbformat raises several unrelated types for a broken file
        raise MarkerError(f"{path.name}: not a readable notebook ({err})") from err
    return nbformat.writes(student_notebook(solution, path.name, graded)) + "\n"


def edited_by_student(target: Path) -> bool:
    """True unless ``target``'s cells still match the hash stored when it was generated."""
    try:
        copy = json.loads(target.read_text())
        stored = copy["metadata"][METADATA_KEY]["cells_sha256"]
        return cells_hash(copy) != stored
    except (ValueError, KeyError, TypeError):
        return True


def _select(solutions: list[Path], wanted: list[str]) -> list[Path]:
    """The solutions named by ``wanted`` ("05", "05_modify_parameters" or the file name)."""
    chosen = []
    for name in wanted:
        hits = [p for p in solutions if p.name == name or p.stem == name
                or p.name.startswith(f"{name}_")]
        if len(hits) != 1:
            raise SystemExit(f"--reset {name}: no single exercise notebook matches; choose "
                             f"one of {', '.join(p.name for p in solutions)}")
        chosen += hits
    return chosen


def _free_backup_name(target: Path) -> Path:
    """``NN_name.ipynb.bak``, or ``.bak2``, ``.bak3``... if earlier backups exist: none is lost."""
    backup, number = target.with_name(target.name + ".bak"), 1
    while backup.exists():
        number += 1
        backup = target.with_name(f"{target.name}.bak{number}")
    return backup


def main(argv: list[str] | None = None, notebooks: Path = NOTEBOOKS) -> int:
    """Write (or with --check, verify) the student copies; return an exit code."""
    parser = argparse.ArgumentParser(prog="python -m cvae_lib exercises",
                                     description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="only verify copies are fresh")
    parser.add_argument("--force", action="store_true",
                        help="overwrite copies even where a student has edited them")
    parser.add_argument("--reset", action="append", default=[], metavar="NN",
                        help="put this notebook (e.g. 05) back as generated; the edited copy "
                             "is kept as NN_name.ipynb.bak (.bak2, .bak3... after that)")
    parser.add_argument("--graded", action="store_true",
                        help="leave the folded solutions out of the copies (a graded class); "
                             "by default they stay, folded, for self-study")
    args = parser.parse_args(argv)
    solutions = sorted((notebooks / "solutions").glob("*.ipynb"))
    if args.reset:
        solutions = _select(solutions, args.reset)
    texts, errors = {}, []
    for path in solutions:  # render everything first: one bad marker writes nothing at all
        try:
            texts[path] = render(path, args.graded)
        except MarkerError as err:
            errors.append(str(err))
    if errors:
        print("solution markers are malformed, no student copy was written:\n  "
              + "\n  ".join(errors), file=sys.stderr)
        return 1
    stale, refused = [], []
    for path, text in texts.items():
        target = notebooks / path.name
        shown = target.relative_to(notebooks.parent)
        if target.exists() and target.read_text() == text:
            continue
        if args.check:
            stale.append(target.name)
        elif args.reset:
            if target.exists() and edited_by_student(target):
                backup = _free_backup_name(target)
                shutil.copyfile(target, backup)
                print(f"kept your edited copy as {shown.with_name(backup.name)}")
            target.write_text(text)
            print(f"reset {shown}")
        elif target.exists() and edited_by_student(target) and not args.force:
            refused.append(target)
        else:
            target.write_text(text)
            print(f"wrote {shown}")
    if stale:
        print(f"stale student copies: {', '.join(stale)}; run python -m cvae_lib exercises",
              file=sys.stderr)
    for target in refused:
        number = target.name.split("_")[0]
        print(f"not overwritten: {target.relative_to(notebooks.parent)} has been edited since it "
              f"was generated. To start it again from scratch run `python -m cvae_lib exercises "
              f"--reset {number}` (your version is kept as {target.name}.bak); --force "
              f"overwrites every edited copy without a backup.", file=sys.stderr)
    return 1 if stale or refused else 0


if __name__ == "__main__":
    sys.exit(main())
