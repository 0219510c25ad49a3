"""The course on a JupyterHub: one server for a class, the models prepared once for everyone.

Introduced in the README's instructor section (``make hub``). The hub's configuration,
``hub/jupyterhub_config.py``, calls ``student_spawn`` before each student's server starts:
the student becomes a system user with a private home (mode 0700), gets their own copy of
the notebooks at first login (never overwritten later), and an environment that reads the
instructor's prepared models and MNIST read-only (``CVAE_SHARED_CACHE_DIR``, ``CVAE_DATA_DIR``)
and writes what the student trains to their own cache. ``python -m cvae_lib.classroom.hub
check`` says, before the hub starts, what would stop it from serving the class.
"""

from __future__ import annotations

import argparse
import os
import pwd
import re
import stat
import subprocess
import sys
from pathlib import Path

from cvae_lib.classroom.course import COURSE_CONFIGS, course_config
from cvae_lib.checkpoints import cache_path
from cvae_lib.classifier import classifier_path
from cvae_lib.data import FILES, data_dir, raw_dir
from cvae_lib.infra.storage import cache_dir

REPO = Path(__file__).resolve().parents[2]
NOTEBOOKS = REPO / "notebooks"
PROXY = REPO / "hub" / "node_modules" / ".bin" / "configurable-http-proxy"
COURSE_FOLDER = "cvae-course"  # the student's copy of the notebooks, in their home
OWN_CACHE = ".cache/cvae-course"  # what the student trains, in their home
USERNAME = re.compile(r"[a-z_][a-z0-9_-]{0,31}")


def roster(text: str) -> list[str]:
    """The student names in ``text`` (commas, spaces or lines), checked as system user names."""
    names = [name for name in re.split(r"[\s,]+", text) if name]
    bad = [name for name in names if not USERNAME.fullmatch(name)]
    if bad:
        raise ValueError(f"not a valid student user name: {', '.join(map(repr, bad))}; use "
                         f"lower-case letters, digits, '-' and '_', starting with a letter "
                         f"(at most 32 characters)")
    if not names:
        raise ValueError("the class roster is empty: set CVAE_HUB_STUDENTS to the students' "
                         "user names, e.g. CVAE_HUB_STUDENTS='alice bob'")
    return list(dict.fromkeys(names))


def ensure_student(name: str, homes: Path) -> pwd.struct_passwd:
    """The student's system user, created (with a private home under ``homes``) if missing."""
    roster(name)  # a name useradd would refuse, refused here with what to use instead
    try:
        user = pwd.getpwnam(name)
    except KeyError:
        subprocess.run(["useradd", "--create-home", "--home-dir", str(homes / name),
                        "--shell", "/bin/bash", "--user-group", name],
                       check=True, capture_output=True, text=True)
        user = pwd.getpwnam(name)
    home = Path(user.pw_dir)
    home.mkdir(mode=0o700, parents=True, exist_ok=True)
    os.chown(home, user.pw_uid, user.pw_gid)
    home.chmod(0o700)  # no other student may read or change it
    return user


# Run as the student, so that their files are written with their rights alone: a symlink they
# planted in their home cannot make the hub (root) write or chown anywhere else.
COPY_AS_STUDENT = """
import os, shutil, sys
from pathlib import Path
folder = Path(sys.argv[1])
folder.mkdir(exist_ok=True)
for source in map(Path, sys.argv[2:]):
    target = folder / source.name
    if not os.path.lexists(target):
        shutil.copyfile(source, target)
        target.chmod(0o600)
        print(target)
"""


def give_course(user: pwd.struct_passwd, notebooks: Path = NOTEBOOKS) -> list[Path]:
    """Copy the student notebooks the student lacks into their course folder; never overwrite.

    The copy runs as the student. The exercises' solutions (``notebooks/solutions/``) stay
    with the instructor.
    """
    sources = [str(p) for p in sorted(notebooks.glob("*.ipynb"))]
    done = subprocess.run([sys.executable, "-c", COPY_AS_STUDENT,
                           str(Path(user.pw_dir) / COURSE_FOLDER), *sources],
                          user=user.pw_uid, group=user.pw_gid, extra_groups=[], cwd="/",
                          env={"PATH": os.environ.get("PATH", "/usr/bin")},
                          capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"could not copy the course into {user.pw_dir}/{COURSE_FOLDER} as "
                           f"{user.pw_name}: {done.stderr.strip().splitlines()[-1:]}")
    return [Path(line) for line in done.stdout.splitlines()]


def trainings_dir() -> Path:
    """The folder where every student's training registers, so they share the cores fairly."""
    folder = Path(os.environ.get("CVAE_TRAININGS_DIR", "/tmp/cvae-course-trainings"))
    folder.mkdir(exist_ok=True)
    made = os.lstat(folder)  # not a symlink a student planted in /tmp before the hub started
    if not stat.S_ISDIR(made.st_mode) or made.st_uid != os.geteuid():
        raise RuntimeError(f"{folder} is not a folder the hub made (someone else owns it, or it "
                           f"is a link): remove it, or set CVAE_TRAININGS_DIR to a new folder")
    folder.chmod(0o1777)  # everyone registers; nobody removes another's file
    return folder


def student_env(user: pwd.struct_passwd) -> dict[str, str]:
    """The course's settings for one student's server: shared models read-only, own cache."""
    return {"CVAE_SHARED_CACHE_DIR": str(cache_dir()), "CVAE_DATA_DIR": str(data_dir()),
            "CVAE_CACHE_DIR": str(Path(user.pw_dir) / OWN_CACHE), "CVAE_OFFLINE": "1",
            "CVAE_TRAININGS_DIR": str(trainings_dir()),
            **{key: os.environ[key] for key in ("CVAE_FAST",) if key in os.environ}}


def student_spawn(spawner: object) -> None:
    """JupyterHub's ``pre_spawn_hook``: the student's user, home, notebooks and environment."""
    homes = Path(os.environ.get("CVAE_HUB_HOMES", "/home"))
    user = ensure_student(spawner.user.name, homes)
    give_course(user)
    spawner.environment.update(student_env(user))
    spawner.notebook_dir = str(Path(user.pw_dir) / COURSE_FOLDER)


def _reachable_by_others(path: Path) -> Path | None:
    """The first folder on the way to ``path`` that other users cannot enter, or None."""
    for folder in [*reversed(path.parents)]:
        if folder.is_dir() and not folder.stat().st_mode & 0o001:
            return folder
    return None


def missing_models() -> list[str]:
    """The course models and data the prepared cache lacks (``make prepare`` builds them)."""
    missing = [name for name in COURSE_CONFIGS if name != "fashion"
               and not cache_path(course_config(name)).is_file()]
    if not classifier_path().is_file():
        missing.append("the evaluation classifier")
    if not all((raw_dir(data_dir()) / name).is_file() for split in FILES.values()
               for name in split):
        missing.append("MNIST data")
    return missing


def problems() -> list[str]:
    """What would stop this machine from serving the class, each with what to do instead."""
    found = []
    if os.geteuid() != 0:
        found.append("the hub must run as root to start each student's server as their own "
                     "system user: run `sudo make hub`")
    blocked = _reachable_by_others(Path(sys.executable))
    if blocked is not None:
        found.append(f"students cannot run the course's Python ({sys.executable}): {blocked} "
                     f"is closed to other users. Build the environment in a folder they can "
                     f"reach (e.g. /opt), or let them pass through with `chmod o+x {blocked}`")
    if not PROXY.is_file():
        found.append("JupyterHub's proxy is not installed: run `npm ci --prefix hub` "
                     "(`make hub` does)")
    missing = missing_models()
    if missing:
        found.append(f"the shared cache {cache_dir()} lacks {', '.join(missing)}: run "
                     f"`make prepare` once first, so that no student trains a course model")
    return found


def main(argv: list[str] | None = None) -> int:
    """``check``: print what stops the hub from serving the class; exit 1 if anything does."""
    parser = argparse.ArgumentParser(prog="python -m cvae_lib.classroom.hub",
                                     description=main.__doc__)
    parser.add_argument("command", choices=["check"])
    parser.parse_args(argv)
    found = problems()
    for problem in found:
        print(f"error: {problem}", file=sys.stderr)
    if not found:
        print(f"Ready: models and MNIST in {cache_dir()} and {data_dir()}, shared read-only.")
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main())
