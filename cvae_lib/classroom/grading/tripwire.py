"""What in a submission's code reaches into Python itself, so an OK is not to be trusted.

Introduced in the book's grading guide. The checks run in the student's process, so code that
patches what they use while they run (and restores it), replaces a module torch calls, pushes
a torch function mode, or finds the run's secret through the garbage collector or the stack
can forge a pass that no fingerprint sees. No answer to an exercise needs any of that, so the
grader also reads each code cell's syntax tree for the means to do it: the interpreter's
modules and hooks, dunder attributes, assignments into an imported module or class, and the
built-ins that reach names by string. A check that a flagged submission passes reads
``REVIEW``, never OK. Python folds look-alike Unicode letters into these names before the tree
is built; code that reaches the means without naming any is not seen (the guide says so).
"""

from __future__ import annotations

import ast
from functools import cache
from pathlib import Path

import nbformat

from cvae_lib.classroom.grading.notebooks import parse_cell

MODULES = {"gc", "ctypes", "inspect", "signal", "sys", "builtins", "importlib", "marshal",
           "types", "threading", "_thread", "os", "subprocess", "copyreg", "weakref", "atexit",
           "faulthandler", "operator"}
NAMES = {"__builtins__", "__import__", "eval", "exec", "compile", "globals", "locals", "vars",
         "getattr", "setattr", "delattr", "breakpoint", "TorchFunctionMode", "TorchDispatchMode"}
ATTRIBUTES = {"_C", "overrides", "modules", "_getframe", "settrace", "setprofile", "f_back",
              "f_locals", "f_globals", "tb_frame", "gi_frame", "cr_frame"}
DUNDERS_ALLOWED = {"__init__", "__name__", "__main__"}  # super().__init__(), the main guard


def _root(node: ast.expr) -> ast.expr:
    """The name an attribute or subscript chain starts from (``a`` of ``a.b[0].c``)."""
    while isinstance(node, (ast.Attribute, ast.Subscript)):
        node = node.value
    return node


def _targets(node: ast.AST) -> list[ast.expr]:
    """What a statement assigns to or deletes."""
    if isinstance(node, ast.Assign):
        return node.targets
    if isinstance(node, (ast.AugAssign, ast.AnnAssign)):
        return [node.target]
    if isinstance(node, ast.Delete):
        return node.targets
    return []


def _imported(trees: list[ast.Module]) -> set[str]:
    """The names that the import statements of the cells bind."""
    return {(alias.asname or alias.name).split(".")[0] for tree in trees
            for node in ast.walk(tree) if isinstance(node, (ast.Import, ast.ImportFrom))
            for alias in node.names}


def cell_findings(tree: ast.Module, imported: set[str]) -> list[str]:
    """What one cell does that reaches into Python (``imported``: the notebook's imports)."""
    found = []
    for node in ast.walk(tree):
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            modules = [getattr(node, "module", None) or "", *(a.name for a in node.names)]
            found += [f"import {m}" for m in modules if m.split(".")[0] in MODULES
                      or ATTRIBUTES & set(m.split("."))]
        elif isinstance(node, ast.Name) and node.id in NAMES | MODULES:
            found.append(node.id)
        elif isinstance(node, ast.Attribute) and (node.attr in ATTRIBUTES or (
                node.attr.startswith("__") and node.attr not in DUNDERS_ALLOWED)):
            found.append(f".{node.attr}")
        for target in _targets(node):
            root = _root(target)
            if target is not root and isinstance(root, ast.Name) and root.id in imported:
                found.append(f"assigns into {root.id}")
    return found


def findings(nb: nbformat.NotebookNode) -> list[str]:
    """Everything in the notebook's code cells that reaches into Python, each named once (a
    cell that does not parse cannot run either)."""
    trees = [tree for cell in nb.cells if cell.cell_type == "code"
             if (tree := parse_cell(cell.source)) is not None]
    imported = _imported(trees)
    return list(dict.fromkeys(f for tree in trees for f in cell_findings(tree, imported)))


@cache
def _solution_findings(solution: Path) -> tuple[str, ...]:
    """What an exercise's own solution notebook does that would be flagged (read once)."""
    return tuple(findings(nbformat.read(solution, as_version=4)))


def suspicious(nb: nbformat.NotebookNode, solution: Path | None) -> list[str]:
    """What the submission does that reaches into Python and its exercise's own solution does
    not (05's table of changes reads fields with ``getattr``)."""
    ours = _solution_findings(solution) if solution is not None else ()
    return [found for found in findings(nb) if found not in ours]
