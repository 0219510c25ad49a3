"""The course as students get it on the hub: a release outside the instructor's checkout.

Introduced in the book's hub guide. The instructor's checkout holds the exercises' solutions,
the grades, the hub's state and its git history; it stays private (mode 0700). ``python -m
cvae_lib.classroom.hub release`` builds, in ``CVAE_HUB_RELEASE`` (default ``/srv/cvae-course``),
everything a student's server reads, owned by root and read-only to students:

- ``venv/``: the instructor's Python environment with the course package *installed* (not
  editable, so nothing points back into the checkout). Its files are hard links to the
  instructor's venv where both are on one disk: built in seconds, no second 5 GB copy.
- ``course.git``: the lessons' student copies (never ``notebooks/solutions/``) as a git
  repository, which each student's server pulls with nbgitpuller (``coursegit``). A rebuild
  keeps its history and adds a commit, so students' copies merge what changed.
- ``cache/`` and ``data/``: the models ``make prepare`` trained and MNIST, shared by everyone.
- ``trainings/``: the folder where every student's training registers, made by root.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

from cvae_lib.classroom import coursegit
from cvae_lib.data import data_dir, raw_dir
from cvae_lib.infra.storage import cache_dir, publish_folder, staging_folder
from cvae_lib.infra.trainings import make_registry

REPO = Path(__file__).resolve().parents[2]
# nbgitpuller behind a guard that lets a student's server pull the course and nothing else.
PULL_GUARD = REPO / "hub" / "cvae_pullguard.py"
# The editable install of the course in the instructor's venv: the release installs it instead.
EDITABLE = ("__editable__", "cvae_course-")


def release_dir() -> Path:
    """Where the hub serves the course from: ``$CVAE_HUB_RELEASE`` or ``/srv/cvae-course``."""
    return Path(os.environ.get("CVAE_HUB_RELEASE", "/srv/cvae-course"))


def release_python(release: Path) -> Path:
    """The Python every student's server and kernel runs."""
    return release / "venv" / "bin" / "python"


def _link_or_copy(source: str, target: str) -> None:
    """A hard link to ``source`` (same disk), else a copy."""
    try:
        os.link(source, target)
    except OSError:
        shutil.copy2(source, target)


def _venv(target: Path) -> None:
    """A venv on the instructor's interpreter holding their packages and the installed course."""
    base = Path(getattr(sys, "_base_executable", sys.executable)).resolve()
    subprocess.run([str(base), "-m", "venv", "--without-pip", str(target)], check=True)
    source, version = Path(sys.prefix), f"python{sys.version_info[0]}.{sys.version_info[1]}"
    packages = Path("lib") / version / "site-packages"
    for part in ("share", "etc", str(packages)):
        if (source / part).is_dir():
            shutil.copytree(source / part, target / part, symlinks=True, dirs_exist_ok=True,
                            copy_function=_link_or_copy,
                            ignore=lambda folder, names: [n for n in names
                                                          if n.startswith(EDITABLE)])
    source = target / "course-source"  # built from a copy: nothing is written into the checkout
    source.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copyfile(REPO / name, source / name)
    shutil.copytree(REPO / "cvae_lib", source / "cvae_lib",
                    ignore=shutil.ignore_patterns("__pycache__"))
    subprocess.run([str(target / "bin" / "python"), "-m", "pip", "install", "--quiet",
                    "--no-deps", "--no-build-isolation", "--no-index", str(source)],
                   check=True, capture_output=True, text=True, cwd=target)
    shutil.rmtree(source)
    shutil.copyfile(PULL_GUARD, target / packages / PULL_GUARD.name)


def _copy_files(source: Path, target: Path, pattern: str = "*") -> None:
    """The regular files matching ``pattern`` in ``source`` (no locks or temporaries)."""
    target.mkdir(parents=True, exist_ok=True)
    for path in sorted(source.glob(pattern)):
        if path.is_file() and not path.is_symlink() and not path.name.startswith(".") \
                and path.suffix not in (".lock", ".tmp"):
            shutil.copyfile(path, target / path.name)


def build_release(release: Path | None = None) -> Path:
    """Build the course release students run (see the module's docstring); return its folder."""
    release = Path(release or release_dir())
    release.parent.mkdir(parents=True, exist_ok=True)
    staging = staging_folder(release)
    try:
        _venv(staging / "venv")
        old = coursegit.repo_path(release)
        if old.is_dir():  # the history students' copies already hold
            shutil.copytree(old, coursegit.repo_path(staging), symlinks=True)
        coursegit.publish(REPO / "notebooks", staging, served_at=release)
        _copy_files(cache_dir(), staging / "cache")
        _copy_files(raw_dir(data_dir()), raw_dir(staging / "data"))
        # Root's and read-only to students; the venv keeps its owner (its files are the
        # instructor's own, hard-linked), and only gains read rights for everyone.
        ours = [str(staging / part)
                for part in (coursegit.REPO_NAME, coursegit.GITCONFIG, "cache", "data")]
        subprocess.run(["chown", "-R", "0:0", *ours], check=True)
        subprocess.run(["chmod", "-R", "u+rwX,go+rX,go-w", str(staging)], check=True)
        make_registry(staging / "trainings", shared=True)  # before any student runs
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return publish_folder(staging, release)


def publish_notebooks(notebooks: Path = REPO / "notebooks", release: Path | None = None) -> str:
    """Commit changed lessons to the served release (no rebuild); what students will pull."""
    release = Path(release or release_dir())
    if not coursegit.repo_path(release).is_dir():
        raise FileNotFoundError(f"no course release in {release}: build it first with "
                                f"`python -m cvae_lib.classroom.hub release`")
    commit = coursegit.publish(notebooks, release)
    return (f"Published {commit[:12]} in {coursegit.repo_path(release)}: students get it at "
            f"their next login or launch button." if commit else
            "The notebooks have not changed since the last release: nothing to publish.")
