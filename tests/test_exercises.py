"""Student copies are generated, fresh, free of solution code, and fail only at TODOs.

The generator must treat every doubtful marker as an error (never as a leaked answer) and
must never overwrite a copy a student has edited unless told to.
"""

from __future__ import annotations

import json
from pathlib import Path

import nbformat
import pytest
import torch

from cvae_lib.classroom.exercises import (BEGIN, END, METADATA_KEY, NOTEBOOKS, STUDENT_TAG,
                                          MarkerError, edited_by_student, main, render,
                                          solution_lines, stub_source, student_notebook)

SOLUTIONS = sorted((NOTEBOOKS / "solutions").glob("*.ipynb"))
GOOD_CELL = f"def f():\n    # TODO: return one\n    {BEGIN}\n    return 1\n    {END}"


def test_stub_replaces_block_with_todo_and_keeps_indent():
    out, changed = stub_source(GOOD_CELL)
    assert changed and "return 1" not in out
    assert '    raise NotImplementedError("TODO: return one")' in out
    compile(out, "<stub>", "exec")


def test_todo_text_does_not_carry_over_to_the_next_block():
    out, _ = stub_source(f"# TODO: first\n{BEGIN}\na = 1\n{END}\n{BEGIN}\nb = 2\n{END}")
    assert out.splitlines()[-1] == 'raise NotImplementedError("TODO: complete this code")'


def test_cell_without_markers_is_unchanged():
    source = "x = 1\n# TODO: nothing hidden here\nprint(x)"
    assert stub_source(source) == (source, False)


MALFORMED = {
    "wrong case": f"# TODO: a\n### Begin Solution\nx = 1\n{END}",
    "wrong case END": f"{BEGIN}\nx = 1\n### end solution",
    "four hashes": f"#### BEGIN SOLUTION\nx = 1\n{END}",
    "two hashes": f"{BEGIN}\nx = 1\n## END SOLUTION",
    "no space": f"###BEGIN SOLUTION\nx = 1\n{END}",
    "underscore": f"### BEGIN_SOLUTION\nx = 1\n{END}",
    "trailing text": f"{BEGIN}  # the answer\nx = 1\n{END}",
    "marker after code": f"x = 1  {BEGIN}\ny = 2\n{END}",
    "missing END": f"{BEGIN}\nx = 1",
    "END without BEGIN": f"x = 1\n{END}",
    "nested BEGIN": f"{BEGIN}\nx = 1\n{BEGIN}\ny = 2\n{END}\n{END}",
}


@pytest.mark.parametrize("source", MALFORMED.values(), ids=MALFORMED.keys())
def test_malformed_marker_is_an_error_naming_the_place(source: str):
    with pytest.raises(MarkerError, match=r"nb\.ipynb, cell 3, line \d"):
        stub_source(source, where="nb.ipynb, cell 3")


def _notebook(path: Path, *sources: str, markdown: str = "# Title") -> Path:
    """Write a small solution notebook: one markdown cell, then one code cell per source."""
    notebook = nbformat.v4.new_notebook()
    notebook.cells = [nbformat.v4.new_markdown_cell(markdown)]
    notebook.cells += [nbformat.v4.new_code_cell(source) for source in sources]
    path.parent.mkdir(parents=True, exist_ok=True)
    nbformat.write(notebook, path)
    return path


@pytest.fixture
def course(tmp_path: Path) -> Path:
    """A notebooks/ folder with two well-formed exercise solutions."""
    notebooks = tmp_path / "notebooks"
    _notebook(notebooks / "solutions" / "05_first.ipynb", "import math", GOOD_CELL, "f()")
    _notebook(notebooks / "solutions" / "07_second.ipynb", f"# TODO: set x\n{BEGIN}\nx = 2\n{END}")
    return notebooks


@pytest.mark.parametrize("source", MALFORMED.values(), ids=MALFORMED.keys())
def test_generator_fails_and_writes_nothing_on_a_malformed_marker(course: Path, source: str,
                                                                   capsys):
    _notebook(course / "solutions" / "06_broken.ipynb", "import math", source)
    assert main([], notebooks=course) == 1
    err = capsys.readouterr().err
    assert "06_broken.ipynb, cell 2" in err and "no student copy was written" in err
    assert not list(course.glob("*.ipynb")), "a copy was written despite a malformed marker"


def test_marker_in_a_markdown_cell_is_an_error(course: Path, capsys):
    _notebook(course / "solutions" / "06_md.ipynb", "x = 1", markdown=f"{BEGIN}\nanswer\n{END}")
    assert main([], notebooks=course) == 1
    err = capsys.readouterr().err
    assert "06_md.ipynb, cell 0" in err and "line 1: a solution marker in a markdown cell" in err


def test_stub_that_breaks_the_syntax_is_an_error():
    solution = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(
        f"total = (1 +\n{BEGIN}\n 2)\n{END}")])
    with pytest.raises(MarkerError, match="nb.ipynb, cell 0.*not valid Python"):
        student_notebook(solution, "nb.ipynb")


def test_only_cells_that_fail_when_run_are_tagged():
    solution = nbformat.v4.new_notebook(cells=[
        nbformat.v4.new_code_cell(GOOD_CELL),  # defines f: running the cell does not fail
        nbformat.v4.new_code_cell(f"{BEGIN}\nx = 1\n{END}"),  # fails at once
        nbformat.v4.new_code_cell(f"for i in range(2):\n    {BEGIN}\n    pass\n    {END}"),
        nbformat.v4.new_code_cell("f()", metadata={"tags": ["student-fails"]}),
        nbformat.v4.new_code_cell("print('fine')")])
    tags = [cell.metadata.get("tags", []) for cell in student_notebook(solution).cells]
    assert tags == [[], [STUDENT_TAG], [STUDENT_TAG], [STUDENT_TAG], []]


def test_generated_copy_records_the_hash_of_its_cells(course: Path):
    assert main([], notebooks=course) == 0
    target = course / "05_first.ipynb"
    metadata = json.loads(target.read_text())["metadata"][METADATA_KEY]
    assert metadata["generated_from"] == "solutions/05_first.ipynb"
    assert not edited_by_student(target)
    assert main(["--check"], notebooks=course) == 0


def _edit(target: Path) -> None:
    """What a student does: write code into the TODO cell and save."""
    notebook = nbformat.read(target, as_version=4)
    notebook.cells[2].source = "def f():\n    return 42  # my answer"
    nbformat.write(notebook, target)


def test_regenerating_refuses_to_overwrite_an_edited_copy(course: Path, capsys):
    assert main([], notebooks=course) == 0
    target = course / "05_first.ipynb"
    _edit(target)
    edited = target.read_text()
    solution = course / "solutions" / "05_first.ipynb"
    solution.write_text(solution.read_text().replace("import math", "import cmath"))
    assert main([], notebooks=course) == 1
    err = capsys.readouterr().err
    assert "notebooks/05_first.ipynb has been edited" in err
    assert "python -m cvae_lib exercises --reset 05" in err and "--force" in err
    assert target.read_text() == edited, "the student's work was overwritten"
    assert main(["--check"], notebooks=course) == 1


def test_unedited_copy_is_regenerated_silently(course: Path):
    assert main([], notebooks=course) == 0
    solution = course / "solutions" / "05_first.ipynb"
    solution.write_text(solution.read_text().replace("import math", "import cmath"))
    assert main([], notebooks=course) == 0
    assert "import cmath" in (course / "05_first.ipynb").read_text()


def test_copy_without_a_stored_hash_counts_as_edited(course: Path):
    target = course / "05_first.ipynb"
    target.write_text(nbformat.writes(nbformat.v4.new_notebook()))
    assert edited_by_student(target)
    assert main([], notebooks=course) == 1
    target.write_text("{ not json")
    assert edited_by_student(target)


def test_reset_restores_one_notebook_and_keeps_a_backup(course: Path):
    assert main([], notebooks=course) == 0
    first, second = course / "05_first.ipynb", course / "07_second.ipynb"
    _edit(first)
    edited = first.read_text()
    second.write_text(second.read_text().replace("set x", "my own note"))
    assert main(["--reset", "05"], notebooks=course) == 0
    assert first.read_text() == render(course / "solutions" / first.name)
    assert (course / "05_first.ipynb.bak").read_text() == edited
    assert "my own note" in second.read_text(), "--reset 05 touched another notebook"
    _edit(first)
    first.write_text(first.read_text().replace("42", "43"))
    edited_again = first.read_text()
    assert main(["--reset", "05"], notebooks=course) == 0
    assert (course / "05_first.ipynb.bak").read_text() == edited  # the first backup stays
    assert (course / "05_first.ipynb.bak2").read_text() == edited_again


def test_reset_of_an_unknown_notebook_names_the_choices(course: Path):
    with pytest.raises(SystemExit, match="05_first.ipynb, 07_second.ipynb"):
        main(["--reset", "99"], notebooks=course)


def test_force_overwrites_edited_copies(course: Path):
    assert main([], notebooks=course) == 0
    _edit(course / "05_first.ipynb")
    assert main(["--force"], notebooks=course) == 0
    assert main(["--check"], notebooks=course) == 0


FOLDED = ("Try first.\n\n<details><summary>Hint</summary>\n\nUse a loop.\n</details>\n\n"
          "<details><summary>Solution</summary>\n\n```python\nx = 2\n```\n</details>")


def test_graded_copies_leave_out_the_folded_solutions_and_keep_the_hints(course: Path):
    """Self-study copies (the default) keep the folded solution; --graded drops it only."""
    _notebook(course / "solutions" / "06_folded.ipynb", "x = 1", markdown=FOLDED)
    assert main([], notebooks=course) == 0
    assert "<summary>Solution" in (course / "06_folded.ipynb").read_text()
    assert main(["--graded", "--force"], notebooks=course) == 0
    graded = nbformat.read(course / "06_folded.ipynb", as_version=4).cells[0].source
    assert graded == FOLDED.split("\n\n<details><summary>Solution")[0]
    assert main(["--check"], notebooks=course) == 1  # no longer the default copies
    assert main(["--check", "--graded"], notebooks=course) == 0


@pytest.mark.parametrize("path", [p for p in SOLUTIONS if "<summary>Solution" in p.read_text()],
                         ids=lambda p: p.name)
def test_graded_copy_of_a_lesson_holds_no_folded_solution(path: Path):
    assert "<summary>Solution" not in render(path, graded=True)  # folds name their question
    assert "<summary>Hint" in render(path, graded=True)


def test_a_class_book_shows_the_graded_copies(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """A book built for a class hub (``HUB_URL``) stages the exercises as the hub hands them
    out, without folded solutions; the self-study book keeps them."""
    from cvae_lib.classroom import book

    staged = []
    monkeypatch.setattr(book, "stage_lessons", lambda *a, **k: staged.append(k["graded"]))
    monkeypatch.setattr(book.subprocess, "run", lambda *a, **k: None)
    book.build(hub_url="https://hub.example.edu")
    book.build()
    assert staged == [True, False]
    monkeypatch.undo()
    for graded, expected in ((True, []), (False, ["05_modify_parameters.ipynb",
                                                  "07_challenge_thickness.ipynb"])):
        folder = tmp_path / ("class" if graded else "self-study")
        book.stage_lessons(graded=graded, folder=folder)
        assert len(list(folder.iterdir())) == 7
        assert sorted(path.name for path in folder.iterdir()
                      if "<summary>Solution" in path.read_text()) == expected


@pytest.mark.parametrize("path", SOLUTIONS, ids=lambda p: p.name)
def test_student_copy_is_fresh(path: Path):
    target = NOTEBOOKS / path.name
    assert target.read_text() == render(path), (
        f"{target.name} is stale: run python -m cvae_lib exercises")


@pytest.mark.parametrize("path", SOLUTIONS, ids=lambda p: p.name)
def test_student_copy_has_no_solution_and_tags_failing_cells(path: Path):
    solution = nbformat.read(path, as_version=4)
    student = student_notebook(solution, path.name)
    code = "\n".join(c.source for c in student.cells if c.cell_type == "code")
    assert BEGIN not in code and END not in code
    for line in solution_lines(solution):
        assert line not in code, f"solution text leaked into {path.name}: {line}"
    for cell in student.cells:
        assert not cell.get("outputs")
    for cell in solution.cells:
        assert STUDENT_TAG not in cell.metadata.get("tags", []), (
            f"{path.name}: tag solution cells 'student-fails'; {STUDENT_TAG} is generated")


def test_check_mode_passes_on_committed_copies():
    assert main(["--check"]) == 0


def test_every_stub_fails_and_solution_passes():
    """Run 06's code cells: with solutions each check passes, with stubs each one fails."""
    path = NOTEBOOKS / "solutions" / "06_recode_from_scratch.ipynb"
    solution = nbformat.read(path, as_version=4)
    for notebook, should_pass in ((solution, True), (student_notebook(solution), False)):
        scope: dict = {}
        for cell in notebook.cells:
            if cell.cell_type != "code" or "load_mnist(" in cell.source \
                    or "model.decode" in cell.source:
                continue
            if cell.source.startswith("check_"):
                if should_pass:
                    exec(cell.source, scope)
                else:
                    with pytest.raises(NotImplementedError, match="TODO"):
                        exec(cell.source, scope)
            else:
                exec(cell.source.replace("device = setup_notebook(seed=0)", ""), scope)


def test_long_todo_is_wrapped_and_still_valid():
    out, _ = stub_source(f"def f():\n    # TODO: {'word ' * 15}\n    {BEGIN}\n    pass\n    {END}")
    assert all(len(line) <= 99 for line in out.splitlines())
    compile(out, "<stub>", "exec")


def _cell_defining(path: Path, name: str) -> str:
    """The source of the code cell of a solution notebook that defines ``name``."""
    notebook = nbformat.read(path, as_version=4)
    return next(c.source for c in notebook.cells
                if c.cell_type == "code" and f"def {name}(" in c.source)


@pytest.fixture(scope="module")
def check_generate_even():
    """The check of 05's even-digit exercise, as defined in the notebook."""
    from cvae_lib import CVAE

    scope = {"torch": torch, "CVAE": CVAE}
    exec(_cell_defining(NOTEBOOKS / "solutions" / "05_modify_parameters.ipynb",
                        "check_generate_even"), scope)
    return scope["check_generate_even"]


def _even(model, n):
    return model.generate(torch.arange(0, 10, 2).repeat_interleave(n))


def test_even_check_accepts_both_right_answers(check_generate_even, capsys):
    check_generate_even(_even)
    check_generate_even(lambda model, n: torch.cat([model.generate([d] * n)
                                                    for d in (0, 2, 4, 6, 8)]))
    assert "OK" in capsys.readouterr().out


WRONG_EVEN = {
    "odd digits": (lambda m, n: m.generate(torch.arange(1, 10, 2).repeat_interleave(n)),
                   r"odd digit\(s\) \[1, 3, 5, 7, 9\]"),
    "one odd digit": (lambda m, n: m.generate([d for d in (0, 2, 4, 6, 9) for _ in range(n)]),
                      r"odd digit\(s\) \[9\]"),
    "too few": (lambda m, n: _even(m, n)[:-1], "must return"),
    "too many": (lambda m, n: _even(m, n + 1), "must return"),
    "not grouped": (lambda m, n: m.generate([0, 2, 4, 6, 8] * n), "grouped"),
    "images not flattened": (lambda m, n: _even(m, n).reshape(-1, 28, 28), "shape"),
    "not from the model": (lambda m, n: _even(m, n) * 0, "not drawn by the model"),
    "a list": (lambda m, n: list(_even(m, n)), "tensor"),
}


@pytest.mark.parametrize("wrong, message", WRONG_EVEN.values(), ids=WRONG_EVEN.keys())
def test_even_check_rejects_wrong_answers(check_generate_even, wrong, message):
    with pytest.raises(AssertionError, match=message):
        check_generate_even(wrong)
