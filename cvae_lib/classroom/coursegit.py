"""The course as a git repository that the hub hands out with nbgitpuller, and its links.

Introduced in the book's hub guide. The release (``cvae_lib.classroom.release``) holds
``course.git``: a bare repository with the lessons' student copies only (never
``notebooks/solutions/``, and without the folded solutions of the self-study copies: a class
server is where exercises are graded), committed by ``hub release`` and ``hub publish``, owned
by root and read-only to students. Each student's server pulls it with nbgitpuller into
``~/cvae-course``, as the student: at every login (the server's start page is the pull link)
and from every launch button of the book. nbgitpuller merges what the instructor published
into the student's copy; where both changed the same lines, the student's edit wins.
"""

from __future__ import annotations

import os
import subprocess
import tempfile
from datetime import datetime, timezone
from pathlib import Path
from urllib.parse import urlencode

from cvae_lib.classroom.exercises import graded_text

REPO_NAME = "course.git"
BRANCH = "main"
COURSE_FOLDER = "cvae-course"  # the student's copy of the notebooks, in their home
# Git refuses to serve a repository that another user owns unless that user's system or
# global config names it safe. Students get a system config of the release's own (their
# ~/.gitconfig stays theirs); local clones ignore per-command settings such as -c.
GITCONFIG = "gitconfig"
# What only an answer holds: nbgrader's marker (notebooks/solutions/), and the folded solution
# of a self-study copy's markdown (exercises.SOLUTION_BLOCK), as git grep -E -i patterns.
SOLUTION_PATTERNS = ("### BEGIN SOLUTION", "<summary>[[:space:]]*solution")


def repo_path(release: Path) -> Path:
    """The bare repository students pull the course from."""
    return Path(release) / REPO_NAME


def repo_url(release: Path) -> str:
    """The repository as nbgitpuller fetches it: a ``file://`` URL (a shallow clone needs one)."""
    return repo_path(release).resolve().as_uri()


def pull_path(release: Path, notebook: str = "") -> str:
    """The path, below a student's server, that pulls the course and opens ``notebook``."""
    urlpath = f"lab/tree/{COURSE_FOLDER}" + (f"/{notebook}" if notebook else "")
    query = {"repo": repo_url(release), "branch": BRANCH, "targetpath": COURSE_FOLDER,
             "urlpath": urlpath}
    return f"git-pull?{urlencode(query, safe='/:')}"


def launch_link(hub_url: str, release: Path, notebook: str) -> str:
    """The hub's link that signs a student in, pulls the course and opens ``notebook``."""
    return f"{hub_url.rstrip('/')}/hub/user-redirect/{pull_path(release, notebook)}"


def student_env(release: Path) -> dict[str, str]:
    """What a student's server needs to pull the course, and all that its pull guard allows."""
    return {"GIT_CONFIG_SYSTEM": str(Path(release) / GITCONFIG),
            "CVAE_COURSE_REPO": repo_url(release), "CVAE_COURSE_BRANCH": BRANCH,
            "CVAE_COURSE_FOLDER": COURSE_FOLDER}


def _run(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    """Run git as the instructor (any commit is the course's, not theirs)."""
    return subprocess.run(["git", "-c", "user.name=cvae-course", "-c",
                           "user.email=cvae-course@localhost", *args], capture_output=True,
                          text=True, env={**os.environ, **(env or {})})


def _git(*args: str, env: dict[str, str] | None = None, check: bool = True) -> str:
    """git's output; "" if it failed and ``check`` is off."""
    done = _run(*args, env=env)
    if check and done.returncode != 0:
        raise RuntimeError(f"git {' '.join(args)} failed: {done.stderr.strip()}")
    return done.stdout.strip() if done.returncode == 0 else ""


def publish(notebooks: Path, release: Path, served_at: Path | None = None) -> str | None:
    """Commit the student notebooks of ``notebooks`` (not its ``solutions/``), without folded
    solutions, to the release.

    Returns the new commit, or None if they have not changed. ``served_at`` is where the
    release will be served from, if it is being built elsewhere.
    """
    repo = repo_path(release)
    if not repo.is_dir():
        _git("init", "--quiet", "--bare", f"--initial-branch={BRANCH}", str(repo))
    (Path(release) / GITCONFIG).write_text(
        f"[safe]\n\tdirectory = {repo_path(served_at or release).resolve()}\n")
    with tempfile.TemporaryDirectory() as scratch:
        tree = Path(scratch) / "tree"
        tree.mkdir()
        for source in sorted(Path(notebooks).glob("*.ipynb")):
            if source.is_file() and not source.is_symlink():
                (tree / source.name).write_text(graded_text(source))
        # A fresh index holds exactly these files: a lesson removed here leaves the course.
        env = {"GIT_DIR": str(repo), "GIT_WORK_TREE": str(tree),
               "GIT_INDEX_FILE": str(Path(scratch) / "index")}
        _git("add", "--all", env=env)
        parent = _git("rev-parse", "--verify", "--quiet", f"refs/heads/{BRANCH}", env=env,
                      check=False)
        unchanged = parent and _run("diff", "--cached", "--quiet", parent,
                                    env=env).returncode == 0
        if not unchanged:
            stamp = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
            _git("commit", "--quiet", "-m", f"The course as published on {stamp}", env=env)
    subprocess.run(["chmod", "-R", "u+rwX,go+rX,go-w", str(repo), str(release / GITCONFIG)],
                   check=True)
    head = _git("--git-dir", str(repo), "rev-parse", f"refs/heads/{BRANCH}")
    return None if head == parent else head


def repo_problems(release: Path, solutions: list[Path]) -> list[str]:
    """What is wrong with the release's repository: missing, or holding a solution anywhere."""
    repo = repo_path(release)
    git = ("--git-dir", str(repo))
    if not _git(*git, "rev-parse", "--verify", "--quiet", f"refs/heads/{BRANCH}", check=False):
        return [f"the release {release} has no course repository ({repo}, branch {BRANCH}) "
                f"for nbgitpuller to hand out: run `python -m cvae_lib.classroom.hub release`"]
    found = []
    for line in _git(*git, "rev-list", "--objects", "--all").splitlines():
        _, _, path = line.partition(" ")
        if path.split("/")[0] == "solutions":
            found.append(path)
    hashes = {_git("hash-object", str(path)): path.name for path in solutions}
    blobs = _git(*git, "cat-file", "--batch-all-objects", "--batch-check=%(objectname)")
    found += [f"a copy of solutions/{hashes[blob]}" for blob in blobs.split() if blob in hashes]
    revisions = _git(*git, "rev-list", "--all").split()
    patterns = [arg for pattern in SOLUTION_PATTERNS for arg in ("-e", pattern)]
    marked = _git(*git, "grep", "-l", "-i", "-E", *patterns, *revisions, check=False)
    found += [f"{path} in commit {rev[:12]}" for rev, _, path in
              (line.partition(":") for line in marked.splitlines())]
    if found:
        return [f"the course repository {repo} holds solutions ({', '.join(sorted(set(found)))}"
                f"): students would pull them. Remove the release folder and rebuild it with "
                f"`hub release` from student copies (`make student-copies`)"]
    return []
