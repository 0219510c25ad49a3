"""The grader's sandbox: it starts from a venv symlinked into /tmp, and it refuses to run
student code unsandboxed unless the instructor passes ``--no-sandbox``.
"""

from __future__ import annotations

import shutil
import subprocess
import sysconfig
import tempfile
import uuid
import venv
from collections.abc import Iterator
from pathlib import Path

import nbformat
import pytest
from test_grading import (RIGHT, SOLUTION, printed_rows, reparameterize_variant,
                          skip_without_sandbox)

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
