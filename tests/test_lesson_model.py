"""The CVAE a student writes in 02_label_conditioning is the class the package ships.

02 builds the model piece by piece and then defines ``class CVAE`` in one cell; notebooks
03-07 import ``cvae_lib.models.CVAE``. This test reads the class out of the notebook (no
kernel) and compares it with the package's source, method by method. Formatting, comments
and docstrings may differ; the code may not. To change the model, change both.
"""

from __future__ import annotations

import ast
import inspect
import textwrap
from pathlib import Path

import nbformat
import pytest

import cvae_lib.models

ROOT = Path(__file__).resolve().parents[1]
LESSON = ROOT / "notebooks" / "02_label_conditioning.ipynb"
METHODS = ["__init__", "one_hot", "encode", "reparameterize", "decode_logits", "decode",
           "forward", "generate"]


def _without_docstrings(node: ast.AST) -> ast.AST:
    """``node`` with the docstring of every class and function in it removed."""
    for child in ast.walk(node):
        if isinstance(child, (ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
            body = child.body
            if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant) \
                    and isinstance(body[0].value.value, str):
                child.body = body[1:] or [ast.Pass()]
    return node


def normalised(source: str) -> str:
    """The code of ``source``: no comments, docstrings or formatting choices."""
    tree = ast.parse(textwrap.dedent(source))
    return ast.unparse(_without_docstrings(tree))


def class_in_cells(cells: list[str], name: str = "CVAE") -> ast.ClassDef:
    """The last top-level ``class <name>`` defined in the given code cells."""
    found = None
    for source in cells:
        try:
            tree = ast.parse(source)
        except SyntaxError:
            continue  # a cell of IPython magics is not the class
        for node in tree.body:
            if isinstance(node, ast.ClassDef) and node.name == name:
                found = node
    if found is None:
        raise AssertionError(f"no cell defines class {name}")
    return found


def methods_of(class_node: ast.ClassDef) -> dict[str, str]:
    """Method name -> normalised code (decorators included) of a class definition."""
    return {node.name: normalised(ast.unparse(node)) for node in class_node.body
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef))}


def drift(lesson_cells: list[str]) -> list[str]:
    """How the class in ``lesson_cells`` differs from ``cvae_lib.models.CVAE`` ([] if equal)."""
    lesson_class = class_in_cells(lesson_cells)
    package_class = ast.parse(inspect.getsource(cvae_lib.models.CVAE)).body[0]
    lesson, package = methods_of(lesson_class), methods_of(package_class)
    problems = [f"method {name} is in only one of them"
                for name in sorted(set(lesson) ^ set(package))]
    problems += [f"method {name} differs:\n  lesson : {lesson[name]}\n  package: {package[name]}"
                 for name in sorted(set(lesson) & set(package)) if lesson[name] != package[name]]
    if [ast.unparse(b) for b in lesson_class.bases] != \
            [ast.unparse(b) for b in package_class.bases]:
        problems.append("the base classes differ")
    return problems


@pytest.fixture(scope="module")
def lesson_cells() -> list[str]:
    """Source of every code cell of notebook 02."""
    notebook = nbformat.read(LESSON, as_version=4)
    return [cell.source for cell in notebook.cells if cell.cell_type == "code"]


def test_the_lesson_shows_every_method_of_the_model(lesson_cells):
    shown = methods_of(class_in_cells(lesson_cells))
    assert set(METHODS) <= set(shown), f"02 does not show {sorted(set(METHODS) - set(shown))}"


def test_the_lesson_class_is_the_package_class(lesson_cells):
    problems = drift(lesson_cells)
    assert not problems, ("the CVAE in notebooks/02_label_conditioning.ipynb and "
                          "cvae_lib/models.py have drifted apart; make them equal again:\n"
                          + "\n".join(problems))


def test_the_lesson_imports_the_package_class_afterwards(lesson_cells):
    class_cell = next(i for i, source in enumerate(lesson_cells) if "class CVAE" in source)
    later = "\n".join(lesson_cells[class_cell + 1:])
    assert "cvae_lib.models" in later, "02 must show that cvae_lib.models.CVAE is this class"


def test_formatting_comments_and_docstrings_do_not_count(lesson_cells):
    reformatted = [source.replace('"""Pixel intensities in [0, 1]."""', '"""Other words."""')
                   .replace("# logits:", "# the logits:")
                   .replace(", dim=1)", ",  dim = 1 )") for source in lesson_cells]
    assert reformatted != lesson_cells
    assert drift(reformatted) == []


@pytest.mark.parametrize("old, new", [
    ("torch.exp(0.5 * logvar)", "torch.exp(logvar)"),              # reparameterize
    ("torch.cat([z, y_onehot], dim=1)", "torch.cat([z, y_onehot], dim=0)"),  # decode_logits
    ("torch.sigmoid(self.decode_logits(z, y_onehot))", "self.decode_logits(z, y_onehot)"),
    ("nn.Linear(256, 256), nn.ReLU(),\n        )", "nn.Linear(256, 128), nn.ReLU(),\n        )"),
    ("    @torch.no_grad()\n", ""),                                  # generate's decorator
    ("class CVAE(nn.Module):", "class CVAE(object):"),
])
def test_a_drifted_copy_fails(lesson_cells, old, new):
    assert any(old in source for source in lesson_cells), f"{old!r} is not in notebook 02"
    drifted = [source.replace(old, new) for source in lesson_cells]
    assert drift(drifted), f"replacing {old!r} by {new!r} went unnoticed"


def test_a_missing_method_fails(lesson_cells):
    cell = next(source for source in lesson_cells if "class CVAE" in source)
    tree = ast.parse(cell)
    class_node = next(node for node in tree.body if isinstance(node, ast.ClassDef))
    class_node.body = [node for node in class_node.body
                       if not (isinstance(node, ast.FunctionDef) and node.name == "generate")]
    assert drift([ast.unparse(tree)]) == ["method generate is in only one of them"]
