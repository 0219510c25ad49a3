"""The grader's sandbox: it starts from a venv symlinked into /tmp, it refuses to run student
code unsandboxed unless the instructor passes ``--no-sandbox``, and a hostile class (forged
passes, a forged report line, reads of secrets, links, a fork storm, a 2 GB write) gets no OK
but the correct solution's, no forged line and no secret in the report.
"""

from __future__ import annotations

import contextlib
import csv
import io
import os
import shutil
import socket
import subprocess
import sysconfig
import tempfile
import uuid
import venv
from collections.abc import Iterator
from pathlib import Path

import nbformat
import pytest
from test_grading import (NOTEBOOKS, RIGHT, SOLUTION, Listener, cell_defining, printed_rows,
                          reparameterize_variant, skip_without_sandbox, with_body)

from cvae_lib.classroom.grading import grade as grading
from cvae_lib.classroom.grading import run as submission_run
from cvae_lib.classroom.grading import sandbox

# What bwrap prints where unprivileged user namespaces are switched off.
FAILING_BWRAP = "#!/bin/sh\necho 'bwrap: setting up uid map: Permission denied' >&2\nexit 1\n"


@pytest.fixture
def linked_checkout() -> Iterator[tuple[Path, Path]]:
    """A checkout outside /tmp whose .venv links to a venv under /tmp: (checkout, real venv).

    The venv under /tmp is a real one whose site-packages add this project's (torch,
    ipykernel, the editable cvae_lib): the layout of a 6 GB environment kept off a small disk.
    """
    real = Path(tempfile.mkdtemp(prefix="cvae-venv-", dir="/tmp")) / "venv"
    venv.create(real, symlinks=True, with_pip=False)
    site_packages = next(real.glob("lib/python*/site-packages"))
    project = sysconfig.get_paths()["purelib"]
    (site_packages / "project.pth").write_text(f"import site; site.addsitedir({project!r})\n")
    checkout = Path(tempfile.mkdtemp(prefix="cvae-checkout-", dir="/var/tmp"))
    (checkout / ".venv").symlink_to(real, target_is_directory=True)
    yield checkout, real
    shutil.rmtree(checkout)
    shutil.rmtree(real.parent)


def test_a_venv_symlinked_into_tmp_grades_sandboxed(linked_checkout: tuple[Path, Path],
                                                     tmp_path: Path) -> None:
    """The kernel starts in bubblewrap, and what a submission writes to the host's /tmp,
    the venv or the checkout never appears there."""
    skip_without_sandbox(sandbox.find_sandbox().problem)
    checkout, real = linked_checkout
    targets = [Path("/tmp") / f"cvae-escaped-{uuid.uuid4().hex}.txt", tmp_path / "escaped.txt",
               real / "escaped.txt", checkout / "escaped.txt"]
    write = (f"for target in {[str(t) for t in targets]!r}:\n    try:\n"
             "        open(target, 'w').write('written by a submission')\n"
             "    except OSError:\n        pass\n")
    folder = tmp_path / "class"
    folder.mkdir()
    nbformat.write(nbformat.read(SOLUTION, as_version=4), folder / "correct.ipynb")
    nbformat.write(reparameterize_variant(write + RIGHT), folder / "escape.ipynb")
    run = subprocess.run([str(checkout / ".venv" / "bin" / "python"), "-m", "cvae_lib", "grade",
                          str(folder), "--exercise", "06", "--out", str(tmp_path / "report")],
                         capture_output=True, text=True, timeout=600, cwd=checkout)
    assert run.returncode == 0, run.stderr
    header = run.stdout.splitlines()[1:3]
    assert header[0].startswith("Sandbox: bubblewrap"), run.stdout
    assert f"06: {grading._default_timeout('06'):g} s (default: " in header[1]
    rows = printed_rows(run.stdout)
    assert rows["correct.ipynb"][1:] == rows["escape.ipynb"][1:] == [submission_run.OK] * 3
    assert not [target for target in targets if target.exists()]


@pytest.fixture
def marking_class(tmp_path: Path) -> tuple[Path, Path]:
    """A class of one 06 submission whose first cell leaves a file behind: (folder, file)."""
    marker, folder = tmp_path / "ran.txt", tmp_path / "class"
    folder.mkdir()
    nb = nbformat.read(SOLUTION, as_version=4)
    setup = next(cell for cell in nb.cells if cell.cell_type == "code")
    setup.source = f"open({str(marker)!r}, 'w').close()\n{setup.source}"
    nbformat.write(nb, folder / "marks.ipynb")
    return folder, marker


def path_with(tmp_path: Path, bwrap: str | None) -> str:
    """A PATH holding only ``bwrap`` (a script), or nothing when it is None."""
    folder = tmp_path / "bin"
    folder.mkdir()
    if bwrap is not None:
        (folder / "bwrap").write_text(bwrap)
        (folder / "bwrap").chmod(0o755)
    return str(folder)


@pytest.mark.parametrize("bwrap, reason", [
    (None, "bubblewrap (bwrap) is not installed; install it (apt-get install -y bubblewrap)"),
    (FAILING_BWRAP, "bubblewrap cannot start Python in the sandbox (bwrap: setting up uid map: "
                    "Permission denied)"),
], ids=["bwrap missing", "bwrap cannot start Python"])
def test_without_a_sandbox_no_submission_runs(
        marking_class: tuple[Path, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture, bwrap: str | None, reason: str) -> None:
    """One line on stderr says why and how to fix it; no kernel starts, no report is written."""
    folder, marker = marking_class
    monkeypatch.setenv("PATH", path_with(tmp_path, bwrap))
    out = tmp_path / "report"
    assert grading.main([str(folder), "--out", str(out)]) == 2
    captured = capsys.readouterr()
    assert not captured.out and len(captured.err.strip().splitlines()) == 1
    assert reason in captured.err and "pass --no-sandbox" in captured.err
    assert not marker.exists() and not out.exists()


def test_no_sandbox_runs_unsandboxed_and_says_so(
        marking_class: tuple[Path, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture) -> None:
    """With --no-sandbox the class is graded, and the header's second line says NO SANDBOX."""
    folder, marker = marking_class
    monkeypatch.setenv("PATH", path_with(tmp_path, None))
    assert grading.main([str(folder), "--out", str(tmp_path / "report"), "--no-sandbox"]) == 0
    printed = capsys.readouterr().out
    assert printed.splitlines()[1].startswith("NO SANDBOX (--no-sandbox)")
    assert printed_rows(printed)["marks.ipynb"][1:] == [submission_run.OK] * 3
    assert marker.exists()


# A forged row and colours, as a report-injection submission writes them.
FORGED = "\nzz_fake_student.ipynb  OK  OK  OK\n\x1b[32mALL GOOD\x1b[0m"
STUDENT_COPY = NOTEBOOKS / "06_recode_from_scratch.ipynb"


def student_copy(extra_setup: str = "") -> nbformat.NotebookNode:
    """The 06 student copy (every TODO left), with ``extra_setup`` at the end of its setup."""
    nb = nbformat.read(STUDENT_COPY, as_version=4)
    setup = next(cell for cell in nb.cells if cell.cell_type == "code")
    setup.source += "\n" + extra_setup
    return nb


def forgeries() -> dict[str, nbformat.NotebookNode]:
    """Student copies that try to get OK without doing the work (each passed on the old grader
    or hid its TODOs there)."""
    rebound = student_copy()
    rebound.cells.insert(2, nbformat.v4.new_code_cell(
        "check_simple_cvae = check_reparameterize = check_cvae_loss = lambda *a, **k: None"))
    deleted = student_copy()
    deleted.cells = [c for c in deleted.cells if "check_" not in c.source
                     or c is deleted.cells[1]]
    fake_line = ('{"nonce": "%s", "check": "%s", "outcome": ["ok"], "earlier": null}')
    return {
        "transformer.ipynb": student_copy(
            "get_ipython().input_transformers_cleanup.append(\n"
            "    lambda lines: ['pass\\n'] if 'check_' in ''.join(lines) else lines)"),
        "rebound.ipynb": rebound,
        "deleted.ipynb": deleted,
        "printed.ipynb": student_copy(
            "import os\nfor check in ('check_simple_cvae', 'check_reparameterize', "
            "'check_cvae_loss'):\n"
            f"    line = {fake_line!r} % ('0' * 64, check)\n"
            "    print('OK:', check, 'passed')\n    print(line)\n"
            "    for fd in range(1, 40):\n        try:\n"
            "            os.write(fd, (line + '\\n').encode())\n"
            "        except OSError:\n            pass"),
        "own_assertion.ipynb": student_copy(
            "AssertionError = type('AssertionError', (Exception,), {})"),
        "dumps.ipynb": student_copy(  # rewrites every result line the grader would send
            "import json\ndumps = json.dumps\njson.dumps = lambda line, *a, **k: dumps(\n"
            "    {**line, 'outcome': ['ok']} if isinstance(line, dict) else line, *a, **k)"),
    }


def patched() -> nbformat.NotebookNode:
    """A student copy that turns the checks into no-ops and rebinds AssertionError."""
    return student_copy(
        "import builtins\nimport cvae_lib.checks as c\nimport cvae_lib.checks.base as b\n"
        "for f in (c.check_simple_cvae, c.check_reparameterize, c.check_cvae_loss):\n"
        "    f.__code__ = (lambda *a, **k: None).__code__\n"
        "b.require = lambda *a, **k: None\nbuiltins.AssertionError = Exception")


def wrong_and_hidden(old: str, new: str, hide: str) -> nbformat.NotebookNode:
    """The 06 solution with one mistake made (``old`` -> ``new``) and ``hide`` run in its setup
    to keep the check from seeing it."""
    nb = nbformat.read(SOLUTION, as_version=4)
    cell = next(c for c in nb.cells if c.cell_type == "code" and old in c.source)
    cell.source = cell.source.replace(old, new)
    next(c for c in nb.cells if c.cell_type == "code").source += "\n" + hide
    return nb


KL_SIGN = ("kl_loss = -0.5 * torch.sum", "kl_loss = 0.5 * torch.sum")
TAMPERED = {  # each name, table or attribute was added or changed in place, not rebound
    "shadow_builtin.ipynb": wrong_and_hidden(
        *KL_SIGN, "import cvae_lib.checks.loss as L\nL.any = lambda found: False"),
    "tensor_method.ipynb": wrong_and_hidden(
        "std = torch.exp(0.5 * logvar)", "std = torch.exp(logvar)",
        "torch.Tensor.__float__ = lambda self: 0.0"),
    "formula_table.ipynb": wrong_and_hidden(
        *KL_SIGN, "import cvae_lib.checks.loss as L\n"
                  "L.KL_FORMULAS['correct'] = L.KL_FORMULAS['kl_sign']"),
    "runner_rebound.ipynb": student_copy(  # the loop's own helpers, rebound in its module
        "import cvae_lib.classroom.grading.runner as R\n"
        "R._run = lambda *args: None\nR._changed = lambda prints: False"),
}
# Each reaches into Python to pass with a wrong answer where the fingerprint cannot see it (a
# hostile-student review found all six); the tripwire reads them before anything runs.
KL_FORMULA_CODE = ("from cvae_lib.checks.loss import KL_FORMULAS as K\n"
                   "K['correct'].__code__ = K['kl_sign'].__code__")
MSE_AS_BCE = ("import torch._C._nn as nn_c\n"
              "def bce(input, target, weight=None, reduction=1):\n"
              "    return ((input - target) ** 2).sum()\nnn_c.binary_cross_entropy = bce")
ITEM_ZERO = ("from torch.overrides import TorchFunctionMode\nclass Zero(TorchFunctionMode):\n"
             "    def __torch_function__(self, func, types, args=(), kwargs=None):\n"
             "        return 0.0 if func is torch.Tensor.item else func(*args, **(kwargs or {}))\n"
             "Zero().__enter__()")
SELF_RESTORING = ("import cvae_lib.checks.loss as L\noriginal = L.require\n"
                  "def fake(condition, key, **facts):\n    if key == 'offset':\n"
                  "        L.require = original\n"
                  "def swap_in():\n    if L.require is original:\n        L.require = fake")
NONCE_FROM_GC = ("import gc, json, os\nfor o in gc.get_objects():\n"
                 "    if type(o) is dict and 'nonce' in o and 'result_fd' in o:\n"
                 "        for c in ('check_simple_cvae', 'check_reparameterize', "
                 "'check_cvae_loss'):\n"
                 "            line = {'nonce': o['nonce'], 'check': c, 'earlier': None, "
                 "'outcome': ['ok']}\n"
                 "            os.write(o['result_fd'], (json.dumps(line) + '\\n').encode())")
REACHING = {
    "kl_code.ipynb": wrong_and_hidden(*KL_SIGN, KL_FORMULA_CODE),
    "mse_c.ipynb": wrong_and_hidden("F.binary_cross_entropy(reconstruction, original, "
                                    "reduction=\"sum\")", "F.mse_loss(reconstruction, original,"
                                    " reduction=\"sum\")", MSE_AS_BCE),
    "item_zero.ipynb": wrong_and_hidden(*KL_SIGN, ITEM_ZERO),
    "sqrt.ipynb": wrong_and_hidden("std = torch.exp(0.5 * logvar)", "std = torch.exp(logvar)",
                                   "import math\nmath.sqrt = lambda value: 1e-12"),
    "restoring.ipynb": wrong_and_hidden("kl_loss = -0.5 * torch.sum",
                                        "swap_in()\n    kl_loss = 0.5 * torch.sum",
                                        SELF_RESTORING),
    "nonce.ipynb": student_copy(NONCE_FROM_GC),
}
# Walks the stack to the runner's job and makes every check cell a no-op; the loop runs copies.
STEPS_REWRITTEN = ("import sys\nframe = sys._getframe()\n"
                   "while 'job' not in frame.f_locals:\n    frame = frame.f_back\n"
                   "for step in frame.f_locals['job']['steps']:\n"
                   "    if step[0] == 'check':\n        step[-1] = 'pass'")


def with_todo_loss(nb: nbformat.NotebookNode) -> nbformat.NotebookNode:
    """``nb`` with its loss function's body a TODO again."""
    cell = cell_defining(nb, "cvae_loss")
    cell.source = with_body(cell.source, 'raise NotImplementedError("TODO: the loss")')
    return nb


def reader(secrets: list[str], socket_path: str) -> nbformat.NotebookNode:
    """A submission whose reparameterize reads secrets and connects to a Unix socket; it
    crashes (with what it stole) if any worked, else leaves a TODO."""
    body = (f"import socket\nstolen = []\nfor path in {secrets!r}:\n    try:\n"
            "        stolen.append(open(path).read(200))\n    except OSError:\n        pass\n"
            "try:\n    s = socket.socket(socket.AF_UNIX)\n"
            f"    s.connect({socket_path!r})\n    stolen.append('socket')\nexcept OSError:\n"
            "    pass\nif stolen:\n    raise KeyError('\\n'.join(stolen))\n"
            "raise NotImplementedError('TODO: nothing to steal')")
    return with_todo_loss(reparameterize_variant(body))


def injection() -> nbformat.NotebookNode:
    """A submission whose exception's class name and message forge a row and colours."""
    body = f"raise type({FORGED!r}, (Exception,), {{}})({FORGED!r})"
    return with_todo_loss(reparameterize_variant(body))


def inspector() -> nbformat.NotebookNode:
    """A student copy that ends itself if it runs as root or sees more than grading needs."""
    hidden = ["/etc", "/var", "/run", "/home", "/root/.cache", str(sandbox.REPO / "notebooks"),
              str(sandbox.REPO / "hub"), str(sandbox.REPO / "tests")]
    return student_copy(f"import os\nif os.getuid() == 0 or any(map(os.path.exists, {hidden!r})):"
                        "\n    os._exit(3)")


CAPPED = {
    # At most 200 children, each asleep: past the cap the fork fails and the TODOs remain.
    "fork_storm.ipynb": "import os, time\nforked = 0\ntry:\n    for _ in range(200):\n"
                        "        if os.fork() == 0:\n            time.sleep(120)\n"
                        "            os._exit(0)\n        forked += 1\nexcept OSError:\n"
                        "    pass\nif forked >= 200:\n    os._exit(3)",
    # 2 GiB in one file, then in 64 MiB files: the file cap, then the /tmp cap, stops it.
    "big_write.ipynb": "import os\nwritten = 0\nchunk = bytes(2 ** 24)\n"
                       "for count, name in [(128, 'one')] + [(4, f'f{i}') for i in range(32)]:\n"
                       "    try:\n        with open(os.path.join(os.environ['TMPDIR'], name), "
                       "'wb') as f:\n            for _ in range(count):\n"
                       "                f.write(chunk)\n                f.flush()\n"
                       "                written += len(chunk)\n    except OSError:\n"
                       "        pass\nif written >= 2 ** 31:\n    os._exit(3)",
}


def unix_listener(folder: Path) -> Listener:
    """A root-only Unix socket in ``folder`` (a stand-in for docker.sock), counting connections."""
    server = socket.socket(socket.AF_UNIX)
    server.bind(str(folder / "root-only.sock"))
    os.chmod(folder / "root-only.sock", 0o600)
    server.listen()
    return Listener(server)


@pytest.fixture(scope="module")
def hostile_class() -> Iterator[dict]:
    """A class inside the checkout (as in the README) holding the correct solution, a
    classmate's, every forgery, readers of secrets, links, a FIFO, a huge file and two
    submissions that hit the caps, graded once as root would grade it."""
    skip_without_sandbox(sandbox.find_sandbox().problem)
    base = Path(tempfile.mkdtemp(prefix=".grading-class-", dir=sandbox.REPO))
    outside = Path(tempfile.mkdtemp(dir="/var/tmp"))
    folder, out = base / "class", base / "grades"
    (folder / "bob").mkdir(parents=True)
    secret = outside / "secret.txt"
    secret.write_text(f"SECRET-{uuid.uuid4().hex}")
    secret.chmod(0o600)
    listener = unix_listener(outside)
    solution = nbformat.read(SOLUTION, as_version=4)
    samples = {"correct.ipynb": solution, "bob/06.ipynb": solution, **forgeries(),
               "patched.ipynb": patched(), "injection.ipynb": injection(),
               f"name{FORGED.split(chr(10))[1]}\n\x1b[32m.ipynb": student_copy(),
               "reader.ipynb": reader(["/etc/shadow", str(secret), str(SOLUTION),
                                       str(folder / "bob" / "06.ipynb")],
                                      listener.server.getsockname()),
               "inspector.ipynb": inspector(), "steps.ipynb": student_copy(STEPS_REWRITTEN),
               **TAMPERED, **REACHING,
               **{name: student_copy(code) for name, code in CAPPED.items()}}
    for name, nb in samples.items():
        nbformat.write(nb, folder / name)
    (folder / "stolen_from_bob.ipynb").symlink_to(folder / "bob" / "06.ipynb")
    (folder / "shadow.ipynb").symlink_to("/etc/shadow")
    (folder / "etc").symlink_to("/etc", target_is_directory=True)
    os.mkfifo(folder / "fifo.ipynb")
    with open(folder / "huge.ipynb", "wb") as f:
        f.truncate(30 * 2 ** 30)  # sparse: 30 GiB long, no disk used
    printed, errors = io.StringIO(), io.StringIO()
    try:
        with contextlib.redirect_stdout(printed), contextlib.redirect_stderr(errors):
            code = grading.main([str(folder), "--exercise", "06", "--out", str(out),
                                 "--timeout", "120", "--jobs", "2"])
        listener.server.close()
        yield {"code": code, "printed": printed.getvalue(), "errors": errors.getvalue(),
               "out": out, "samples": samples, "listener": listener,
               "secrets": [secret.read_text(), *Path("/etc/shadow").read_text().split()[:1]]}
    finally:
        shutil.rmtree(base)
        shutil.rmtree(outside)


def test_only_the_correct_solutions_get_ok(hostile_class: dict) -> None:
    """Every forgery keeps its TODOs (or is flagged for review); the whole class is graded."""
    assert hostile_class["code"] == 0, hostile_class["errors"]
    rows = printed_rows(hostile_class["printed"])
    todo, ok = [submission_run.TODO] * 3, [submission_run.OK] * 3
    assert rows["correct.ipynb"][1:] == rows["bob/06.ipynb"][1:] == ok
    for name in [*forgeries(), "reader.ipynb", "inspector.ipynb", "steps.ipynb", *CAPPED]:
        assert rows[name][1:] == todo, name
    for name in ("patched.ipynb", *TAMPERED):
        assert rows[name][1:] == [submission_run.CHANGED] * 3, name
    for name in REACHING:
        assert submission_run.OK not in rows[name][1:], (name, rows[name])
        assert submission_run.REVIEW in rows[name][1:], (name, rows[name])
    assert submission_run.OK not in rows["injection.ipynb"][1:]
    with open(hostile_class["out"] / "grades.csv", newline="") as f:
        table = [row for row in csv.DictReader(f) if row["status"] == "graded"]
    assert len(table) == len(hostile_class["samples"])
    ok = [row["submission"] for row in table if submission_run.OK in row.values()]
    assert sorted(ok) == ["bob/06.ipynb", "correct.ipynb"]


def test_links_fifos_and_huge_files_are_listed_unread(hostile_class: dict) -> None:
    """Not graded, with the reason: nothing of Bob's or of /etc reaches another row."""
    rows = printed_rows(hostile_class["printed"])
    assert rows["stolen_from_bob.ipynb"] == ["not graded: a symbolic link"]
    assert rows["shadow.ipynb"] == ["not graded: a symbolic link"]
    assert rows["fifo.ipynb"] == ["not graded: a FIFO"]
    assert rows["huge.ipynb"] == [f"not graded: larger than {grading.MAX_MB} MiB"]
    assert "etc  " in hostile_class["printed"] and "passwd" not in hostile_class["printed"]


def test_the_report_holds_no_forged_line_and_no_secret(hostile_class: dict) -> None:
    """No fake row, no colour code, nothing read outside: in the table, the totals, the files."""
    texts = [hostile_class["printed"], hostile_class["errors"],
             (hostile_class["out"] / "grades.csv").read_text(),
             (hostile_class["out"] / "grades.html").read_text()]
    for text in texts:
        assert "\x1b" not in text and "ALL GOOD" not in text
        assert not any(line.startswith("zz_fake") for line in text.splitlines())
        assert not any(secret in text for secret in hostile_class["secrets"])
    assert hostile_class["listener"].connections == 0
