"""The course on a JupyterHub: one server for a class that no student can take over or stall.

Introduced in the book's hub guide (``make hub``). Before the hub starts, the instructor builds
the release students run (``release``: see ``cvae_lib.classroom.release``) and issues the
accounts (``accounts``: see ``cvae_lib.classroom.accounts``); ``check`` then tries, as an
unprivileged user, what a student could do, and refuses to go on if the solutions or the hub's
state are readable, the course repository holds a solution or is writable, or a student's
server cannot start. ``hub/jupyterhub_config.py`` calls ``student_spawn`` before each
student's server starts (their account must be one the hub created; the shared models
read-only; what their server needs to pull the course with nbgitpuller; a cgroup with the caps
of ``cvae_lib.classroom.limits``) and ``student_stopped`` after it stops (every process in the
student's cgroup is killed). ``publish`` commits the instructor's changed lessons to the
release's course repository: students get them at their next login or launch button.
"""

from __future__ import annotations

import argparse
import grp
import json
import os
import pwd
import subprocess
import sys
from pathlib import Path

from cvae_lib.checkpoints import cache_path
from cvae_lib.classifier import classifier_path
from cvae_lib.classroom import accounts, coursegit, limits
from cvae_lib.classroom.release import (REPO, build_release, publish_notebooks, release_dir,
                                        release_python)
from cvae_lib.course import COURSE_CONFIGS, course_config
from cvae_lib.data import FILES, raw_dir
from cvae_lib.infra.mapped import float_images_path
from cvae_lib.infra.trainings import check_registry

PROXY = REPO / "hub" / "node_modules" / ".bin" / "configurable-http-proxy"
OWN_CACHE = ".cache/cvae-course"  # what the student trains, in their home
STUDENT_ID = 65534  # 'nobody': who `check` acts as, a user with no rights of its own


def state_dir() -> Path:
    """The hub's own files (database, cookie secret, passwords): ``$CVAE_HUB_STATE``."""
    return Path(os.environ.get("CVAE_HUB_STATE", REPO / "hub" / "state"))


def homes_dir() -> Path:
    """Where the hub creates its accounts' homes: ``$CVAE_HUB_HOMES`` or ``/home``."""
    return Path(os.environ.get("CVAE_HUB_HOMES", "/home"))


def admin_name() -> str:
    """The instructor's account on the hub: ``$CVAE_HUB_ADMIN`` or ``instructor``."""
    return os.environ.get("CVAE_HUB_ADMIN", "instructor")


def student_env(user: pwd.struct_passwd, release: Path) -> dict[str, str]:
    """The course's settings for one student's server: shared models read-only, own cache.

    A kernel's waiting threads sleep instead of spinning (``OMP_WAIT_POLICY=PASSIVE``): beside
    another student's work, spinning threads made a training 5.7x slower, sleeping ones 2x
    (``benchmarks/README.md``).
    """
    return {"CVAE_SHARED_CACHE_DIR": str(release / "cache"),
            "CVAE_DATA_DIR": str(release / "data"),
            "CVAE_CACHE_DIR": str(Path(user.pw_dir) / OWN_CACHE), "CVAE_OFFLINE": "1",
            "CVAE_TRAININGS_DIR": str(check_registry(release / "trainings")),
            "OMP_WAIT_POLICY": "PASSIVE",
            "PATH": f"{release_python(release).parent}:/usr/local/bin:/usr/bin:/bin",
            **coursegit.student_env(release),
            **{key: os.environ[key] for key in ("CVAE_FAST",) if key in os.environ}}


def student_spawn(spawner: object) -> None:
    """JupyterHub's ``pre_spawn_hook``: the student's checked account, caps and environment.

    The server's start page pulls the course into their home (``coursegit.pull_path``).
    """
    name, release = spawner.user.name, release_dir()
    user = accounts.own_user(name, state_dir(), homes_dir())
    caps = limits.caps_from_env()
    limits.create_group(name, grp.getgrgid(user.pw_gid).gr_name, caps)
    spawner.cmd = limits.wrap(name, [str(release_python(release)), "-m",
                                     "jupyterhub.singleuser"])
    spawner.mem_limit = caps.memory_bytes  # MEM_LIMIT: jupyter-resource-usage shows what is left
    spawner.environment.update(student_env(user, release))
    spawner.notebook_dir = user.pw_dir  # nbgitpuller pulls into the course folder inside it
    spawner.default_url = f"/{coursegit.pull_path(release)}"


def student_stopped(spawner: object) -> None:
    """JupyterHub's ``post_stop_hook``: nothing the student started outlives their server."""
    limits.stop_group(spawner.user.name)


def missing_models(cache: Path, data: Path) -> list[str]:
    """The course models and MNIST files that ``cache`` and ``data`` lack (``make prepare``)."""
    missing = [name for name in COURSE_CONFIGS if name != "fashion"
               and not (cache / cache_path(course_config(name)).name).is_file()]
    if not (cache / classifier_path().name).is_file():
        missing.append("the evaluation classifier")
    if not all((raw_dir(data) / name).is_file() for split in FILES.values()
               for name in split):
        missing.append("MNIST data")
    elif not all(float_images_path(raw_dir(data) / images).is_file()
                 for images, _ in FILES.values()):
        missing.append("MNIST's float32 copy that every kernel maps")
    return missing


def solution_files() -> list[Path]:
    """The exercises' solutions in the instructor's checkout."""
    return sorted((REPO / "notebooks" / "solutions").glob("*.ipynb"))


def secrets() -> list[Path]:
    """What no student may read: the checkout (solutions, grades, history) and the hub's state."""
    state = state_dir()
    found = [REPO, REPO / ".git" / "HEAD", state]
    found += solution_files()
    found += sorted(p for p in state.glob("*") if p.is_file()) if state.is_dir() else []
    return found


def unwritable(release: Path) -> list[Path]:
    """What no student may change: the release, the folders above it, the course repository."""
    above = [p for p in Path(release).resolve().parents if not p.stat().st_mode & 0o1000]
    return [Path(release), *above, *sorted(coursegit.repo_path(release).rglob("*"))]


# Run as an unprivileged user with a student's environment: the imports a server and a kernel
# make, where the course package comes from, which secrets it could read, which of the
# release's paths it could change, and whether its git can read the course repository.
PROBE = """
import json, os, subprocess, sys
import ipykernel, jupyter_resource_usage, jupyterhub.singleuser.app, jupyterlab, nbgitpuller
import torch
import cvae_lib
import cvae_pullguard
asked = json.loads(sys.argv[1])
readable = []
for path in asked["secrets"]:
    try:
        os.listdir(path) if os.path.isdir(path) else open(path, "rb").close()
    except OSError:
        continue
    readable.append(path)
writable = [path for path in asked["unwritable"] if os.access(path, os.W_OK)]
heads = subprocess.run(["git", "ls-remote", "--heads", "--", asked["repo"]],
                       capture_output=True, text=True)
print(json.dumps({"course": cvae_lib.__file__, "readable": readable, "writable": writable,
                  "pulls": heads.returncode == 0 and bool(heads.stdout.strip()),
                  "git": heads.stderr.strip()[-300:]}))
"""


def probe_as_student(release: Path) -> tuple[dict | None, str]:
    """What an unprivileged user sees with a student's Python: (findings, error output)."""
    python = release_python(release)
    env = {"HOME": "/", "PATH": f"{python.parent}:/usr/bin:/bin", "CVAE_OFFLINE": "1",
           **coursegit.student_env(release)}
    asked = {"secrets": list(map(str, secrets())), "repo": coursegit.repo_url(release),
             "unwritable": list(map(str, unwritable(release)))}
    try:
        done = subprocess.run([str(python), "-c", PROBE, json.dumps(asked)], cwd="/",
                              env=env, user=STUDENT_ID, group=STUDENT_ID, extra_groups=[],
                              capture_output=True, text=True, timeout=120)
    except (OSError, subprocess.SubprocessError) as err:
        return None, str(err)
    if done.returncode != 0:
        return None, (done.stderr.strip().splitlines() or [f"exit {done.returncode}"])[-1]
    return json.loads(done.stdout.strip().splitlines()[-1]), ""


def _student_problems(release: Path) -> list[str]:
    """What a student's server could not do, or could see and must not."""
    python = release_python(release)
    found, error = probe_as_student(release)
    if found is None:
        return [f"a student's server cannot start: {python}, run as an unprivileged user with "
                f"a student's environment, failed ({error}). Every folder on the way to it and "
                f"to its base interpreter ({Path(os.path.realpath(python))}) must be open to "
                f"others (mode o+rx): build the instructor's venv on a Python outside a private "
                f"home (e.g. /usr/bin/python3 or /opt), then rebuild the release"]
    problems = []
    if not Path(found["course"]).is_relative_to(release):
        problems.append(f"a student's Python imports the course from {found['course']}, not "
                        f"from the release {release}: rebuild it with `hub release`")
    if found["readable"]:
        problems.append(f"a student can read {', '.join(found['readable'])}: the solutions, "
                        f"grades and the hub's state must stay private. Close the checkout "
                        f"(`chmod 700 {REPO}`) and keep CVAE_HUB_STATE inside it or in another "
                        f"private folder; students run the release in {release}")
    if found["writable"]:
        problems.append(f"a student can change {', '.join(found['writable'][:5])}: they could "
                        f"rewrite the course others pull. The release and the folders above it "
                        f"must be root's and not writable by others (rebuild it with `hub "
                        f"release`)")
    if not found["pulls"]:
        problems.append(f"a student's git cannot read the course repository "
                        f"{coursegit.repo_url(release)} ({found['git']}): rebuild the release")
    return problems


def problems() -> list[str]:
    """What would stop this machine from serving the class safely, each with what to do."""
    if os.geteuid() != 0:
        return ["the hub must run as root to start each student's server as their own system "
                "user and cap it: run `sudo make hub`"]
    release, found = release_dir(), list(limits.problems())
    if not PROXY.is_file():
        found.append("JupyterHub's proxy is not installed: run `npm ci --prefix hub` "
                     "(`make hub` does)")
    if not release_python(release).is_file():
        return [*found, f"no course release in {release}: run `python -m "
                        f"cvae_lib.classroom.hub release` (`make hub` does)"]
    found += coursegit.repo_problems(release, solution_files())
    missing = missing_models(release / "cache", release / "data")
    if missing:
        found.append(f"the release {release} lacks {', '.join(missing)}: run `make prepare` "
                     f"once, then rebuild the release, so that no student trains a course model")
    if admin_name() not in accounts.issued(state_dir()):
        found.append(f"the admin account {admin_name()!r} has no password the instructor "
                     f"issued, so the first visitor could claim it: run `python -m "
                     f"cvae_lib.classroom.hub accounts` before the hub starts")
    return found + _student_problems(release)


def main(argv: list[str] | None = None) -> int:
    """``release``, ``publish``, ``accounts`` or ``check`` (exit 1, naming each problem)."""
    parser = argparse.ArgumentParser(prog="python -m cvae_lib.classroom.hub",
                                     description=main.__doc__)
    parser.add_argument("command", choices=["release", "publish", "accounts", "check"])
    parser.add_argument("--reissue", nargs="+", default=[], metavar="NAME",
                        help="accounts: give these people a new first password")
    parser.add_argument("--notebooks", type=Path, default=REPO / "notebooks",
                        help="publish: the folder of student notebooks (default: notebooks/)")
    args = parser.parse_args(argv)
    if args.command == "release":
        print(f"Course release built in {build_release()}: students run it, read-only, and "
              f"pull the lessons from {coursegit.repo_path(release_dir())}.")
        return 0
    if args.command == "publish":
        print(publish_notebooks(args.notebooks))
        return 0
    if args.command == "accounts":
        names = accounts.roster(os.environ.get("CVAE_HUB_STUDENTS", ""))
        given = accounts.setup_accounts(names, admin_name(), state_dir(), homes_dir(),
                                        args.reissue)
        for name, password in given.items():
            print(f"{name}\t{password}")
        print(f"{len(given)} first password(s) issued (also in {state_dir() / accounts.SLIPS}, "
              f"mode 0600); everyone changes theirs at /hub/change-password.")
        return 0
    found = problems()
    for problem in found:
        print(f"error: {problem}", file=sys.stderr)
    if not found:
        print(f"Ready: the release in {release_dir()} is read-only to students, who pull the "
              f"course from it and cannot read the solutions or the hub's state; caps per "
              f"student: "
              f"{limits.caps_from_env().describe()}.")
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main())
