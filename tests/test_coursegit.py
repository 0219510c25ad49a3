"""The course repository the hub hands out, its pull links, and the guard on those links.

No hub here: git, nbgitpuller's merge as a student's server runs it, and the guard's verdicts.
``tests/test_hub.py`` tries the same on a real hub, as students in Chromium.
"""

from __future__ import annotations

import importlib.util
import shutil
import subprocess
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import nbformat
import pytest
from nbgitpuller import GitPuller

from cvae_lib.classroom import coursegit, exercises

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = ROOT / "notebooks"
SOLUTIONS = sorted((NOTEBOOKS / "solutions").glob("*.ipynb"))
spec = importlib.util.spec_from_file_location("cvae_pullguard", ROOT / "hub" / "cvae_pullguard.py")
pullguard = importlib.util.module_from_spec(spec)
spec.loader.exec_module(pullguard)


def _lessons(folder: Path) -> Path:
    """A copy of the student notebooks, to change as an instructor would."""
    folder.mkdir()
    for path in NOTEBOOKS.glob("*.ipynb"):
        shutil.copyfile(path, folder / path.name)
    return folder


def _edit(path: Path, index: int, text: str) -> None:
    """Put ``text`` at the top of cell ``index`` of a notebook."""
    notebook = nbformat.read(path, as_version=4)
    notebook.cells[index].source = f"{text}\n{notebook.cells[index].source}"
    nbformat.write(notebook, path)


def _pull(release: Path, home: Path) -> None:
    """What a student's server does at a pull link: nbgitpuller into the course folder."""
    puller = GitPuller(coursegit.repo_url(release), str(home / coursegit.COURSE_FOLDER),
                       branch=coursegit.BRANCH, depth=1)
    for _ in puller.pull():
        pass


def test_publishing_twice_adds_nothing_and_a_change_is_one_commit(tmp_path: Path) -> None:
    release = tmp_path / "release"
    release.mkdir()
    first = coursegit.publish(NOTEBOOKS, release)
    assert first and coursegit.publish(NOTEBOOKS, release) is None
    lessons = _lessons(tmp_path / "lessons")
    _edit(lessons / "04_generation.ipynb", 0, "A fix.")
    second = coursegit.publish(lessons, release)
    repo = str(coursegit.repo_path(release))
    log = subprocess.run(["git", "--git-dir", repo, "log", "--format=%H"], capture_output=True,
                         text=True, check=True).stdout.split()
    assert log == [second, first]
    files = subprocess.run(["git", "--git-dir", repo, "ls-tree", "--name-only", "main"],
                           capture_output=True, text=True, check=True).stdout.split()
    assert files == sorted(p.name for p in NOTEBOOKS.glob("*.ipynb"))
    assert coursegit.repo_problems(release, SOLUTIONS) == []


def test_a_students_edit_and_the_instructors_fix_both_survive_a_pull(tmp_path: Path) -> None:
    release, home = tmp_path / "release", tmp_path / "home"
    release.mkdir()
    home.mkdir()
    coursegit.publish(NOTEBOOKS, release)
    _pull(release, home)
    mine = home / coursegit.COURSE_FOLDER / "04_generation.ipynb"
    code = [i for i, cell in enumerate(nbformat.read(mine, 4).cells) if cell.cell_type == "code"]
    _edit(mine, code[3], "# the student's own line")
    lessons = _lessons(tmp_path / "lessons")
    _edit(lessons / "04_generation.ipynb", 0, "The instructor's fix.")
    coursegit.publish(lessons, release)
    _pull(release, home)
    text = mine.read_text()
    assert "the student's own line" in text and "The instructor's fix." in text


def test_check_finds_a_solution_anywhere_in_the_course_history(tmp_path: Path) -> None:
    release = tmp_path / "release"
    release.mkdir()
    coursegit.publish(NOTEBOOKS / "solutions", release)  # a mistake, undone by the next release
    coursegit.publish(NOTEBOOKS, release)
    found = " ".join(coursegit.repo_problems(release, SOLUTIONS))
    assert "holds solutions" in found and "a copy of solutions/06_" in found
    assert coursegit.repo_problems(tmp_path / "none", SOLUTIONS)[0].startswith("the release")


def _git_show(release: Path, *args: str) -> str:
    """What git prints about the course repository of ``release``."""
    return subprocess.run(["git", "--git-dir", str(coursegit.repo_path(release)), *args],
                          capture_output=True, text=True, check=True).stdout


def test_the_hub_hands_out_graded_copies_without_folded_solutions(tmp_path: Path) -> None:
    """The self-study copies in notebooks/ fold an answer under 05's and 07's hints; what the
    class pulls is the graded copy, byte for byte, so no student opens the answer it is graded
    on."""
    release = tmp_path / "release"
    release.mkdir()
    folded = sorted(path.name for path in NOTEBOOKS.glob("*.ipynb")
                    if "<summary>Solution" in path.read_text())
    assert folded == ["05_modify_parameters.ipynb", "07_challenge_thickness.ipynb"]
    coursegit.publish(NOTEBOOKS, release)
    for name in folded:
        published = _git_show(release, "show", f"main:{name}")
        assert published == exercises.render(NOTEBOOKS / "solutions" / name, graded=True)
        assert "<summary>Solution" not in published
    assert coursegit.repo_problems(release, SOLUTIONS) == []


def test_check_finds_a_folded_solution_an_older_release_published(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    release = tmp_path / "release"
    release.mkdir()
    with monkeypatch.context() as older:
        older.setattr(coursegit, "graded_text", lambda path: path.read_text())
        coursegit.publish(NOTEBOOKS, release)
    coursegit.publish(NOTEBOOKS, release)
    found = " ".join(coursegit.repo_problems(release, SOLUTIONS))
    assert "holds solutions" in found and "05_modify_parameters.ipynb in commit" in found, found


def _query(link: str) -> dict[str, list[bytes]]:
    """A link's query as tornado hands it to a handler."""
    return {k: [v.encode() for v in vs] for k, vs in parse_qs(urlsplit(link).query).items()}


@pytest.fixture
def course_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """The environment the hub gives a student's server."""
    for name, value in coursegit.student_env(tmp_path).items():
        monkeypatch.setenv(name, value)
    return tmp_path


def test_the_guard_lets_the_book_link_through_and_nothing_else(course_env: Path) -> None:
    link = coursegit.launch_link("https://hub.example.edu/", course_env, "04_generation.ipynb")
    assert link.startswith("https://hub.example.edu/hub/user-redirect/git-pull?")
    good = _query(link)
    assert pullguard.refusal(good) is None
    assert pullguard.refusal({**good, "_xsrf": [b"token"]}) is None
    other = (course_env.parent / "theirs.git").as_uri().encode()
    for bad in ({"repo": [other]}, {"targetpath": [b".ipython/profile_default/startup"]},
                {"targetpath": [b"/tmp/x"]}, {"branch": [b"theirs"]},
                {"urlpath": [b"lab/tree/cvae-course/<script>alert(1)</script>"]},
                {"urlpath": [b"lab/tree/../../etc"]}, {"backup": [b"true"]},
                {"repo": [good["repo"][0], other]}):
        assert pullguard.refusal({**good, **bad}) is not None, bad


def test_the_guard_refuses_everything_outside_the_hub(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CVAE_COURSE_REPO", raising=False)
    link = coursegit.launch_link("http://hub", Path("/srv/cvae-course"), "04_generation.ipynb")
    assert "not started by the class hub" in pullguard.refusal(_query(link))
