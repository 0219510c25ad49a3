"""The course served to a class by a real JupyterHub, two students in headless Chromium.

Run by ``make test-hub`` (its own stage of ``.ci/run``, after the suite: marked ``hub``, so
``make test`` leaves it out). As root it prepares the tiny models once into a shared cache,
creates two student accounts, starts the hub and its proxy on 127.0.0.1, logs both students
in, has each open 04 and move a slider, then checks that each has their own notebooks, that
neither can read the other's home, and that neither trained a course model. Everything is
stopped by process group and by user, and the accounts are removed.

``CVAE_HUB_TEST_CACHE=<folder> make test-hub`` serves the full models an instructor's
``make prepare`` left in that folder instead (it is only read), as a real class would see them.
"""

from __future__ import annotations

import os
import pwd
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import torch

from browser import (ROOT, check_generation_widget, chromium_page, free_port, require_browser,
                     screenshot_on_failure, write_lab_settings)
from cvae_lib.classroom.hub import COURSE_FOLDER, OWN_CACHE, PROXY, ensure_student, give_course
from cvae_lib.infra.storage import FairShare

pytestmark = pytest.mark.hub
STUDENTS = ("cvae-ada", "cvae-bea")
PASSWORD = "course-password-1"
LAB_TIMEOUT_MS = 180_000


def _reason_to_skip() -> str | None:
    """Why the hub cannot start on this machine, or None."""
    if os.geteuid() != 0:
        return "needs root: the hub starts each student's server as their own system user"
    if not PROXY.is_file():
        return "JupyterHub's proxy is not installed: `npm ci --prefix hub` (make test-hub)"
    if shutil.which("useradd") is None:
        return "no useradd on this machine to create the student accounts"
    taken = [name for name in STUDENTS if _user_exists(name)]
    if taken:
        return f"the test's student accounts already exist: {taken}"
    return None


def _user_exists(name: str) -> bool:
    """True if the system has a user ``name``."""
    try:
        pwd.getpwnam(name)
    except KeyError:
        return False
    return True


@pytest.fixture(scope="module")
def python_reachable() -> Iterator[None]:
    """Let other users pass through the folders above the course's Python (restored after)."""
    reason = _reason_to_skip()
    if reason:
        pytest.skip(reason)
    opened = {}
    for folder in reversed(Path(sys.executable).resolve().parents):
        mode = folder.stat().st_mode
        if not mode & 0o001:
            opened[folder] = mode
            folder.chmod(mode | 0o001)
    try:
        yield
    finally:
        for folder, mode in opened.items():
            folder.chmod(mode)


def _remove_student(name: str) -> None:
    """Stop every process of ``name`` and delete the account and its home."""
    subprocess.run(["pkill", "-KILL", "-u", name], capture_output=True)
    time.sleep(0.5)
    subprocess.run(["userdel", "--remove", name], capture_output=True)


@dataclass
class Hub:
    """A running hub: where students connect, and the folders it serves from."""

    url: str
    base: Path
    cache: Path
    before: dict[str, float]
    env: dict[str, str]

    def home(self, name: str) -> Path:
        """The student's home."""
        return Path(pwd.getpwnam(name).pw_dir)


def _files(folder: Path) -> dict[str, float]:
    """Every file under ``folder`` with its modification time."""
    return {str(p.relative_to(folder)): p.stat().st_mtime for p in folder.rglob("*")
            if p.is_file()}


def _stop(proc: subprocess.Popen, state: Path) -> None:
    """Stop the hub (it stops the servers and the proxy), then whatever is left, by group."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)
    for pid_file in (state / "proxy.pid",):
        if pid_file.is_file():
            try:
                os.killpg(int(pid_file.read_text()), signal.SIGKILL)
            except (ProcessLookupError, ValueError):
                pass
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


@pytest.fixture(scope="module")
def hub(python_reachable) -> Iterator[Hub]:
    """The instructor's side: prepare once, create the accounts, start the hub; always clean up."""
    require_browser()
    base = Path(tempfile.mkdtemp(prefix="cvae-hub-"))
    base.chmod(0o755)
    port = free_port()
    prepared = os.environ.get("CVAE_HUB_TEST_CACHE")
    cache = Path(prepared).resolve() if prepared else base / "cache"
    env = {**os.environ, "CVAE_FAST": "0" if prepared else "1", "CVAE_OFFLINE": "1",
           "CVAE_CACHE_DIR": str(cache), "CVAE_HUB_STUDENTS": " ".join(STUDENTS),
           "CVAE_HUB_HOMES": str(base / "homes"), "CVAE_HUB_STATE": str(base / "state"),
           "CVAE_HUB_PORT": str(port), "CVAE_TRAININGS_DIR": str(base / "trainings")}
    (base / "homes").mkdir()
    log = base / "hub.log"
    proc = None
    try:
        if not prepared:  # an instructor's cache is only checked (next line), never written
            subprocess.run([sys.executable, "-m", "cvae_lib", "prepare"], env=env, check=True,
                           cwd=ROOT, capture_output=True)
        subprocess.run([sys.executable, "-m", "cvae_lib.classroom.hub", "check"], env=env,
                       check=True, cwd=ROOT)
        for name in STUDENTS:  # the accounts, as an administrator makes them from the roster
            user = ensure_student(name, base / "homes")
            settings = Path(user.pw_dir) / ".jupyter" / "lab" / "user-settings"
            write_lab_settings(settings)
            subprocess.run(["chown", "-R", f"{name}:{name}", str(Path(user.pw_dir) / ".jupyter")],
                           check=True)
        before = _files(cache)
        with open(log, "wb") as out:
            proc = subprocess.Popen([str(Path(sys.executable).parent / "jupyterhub"), "-f",
                                     str(ROOT / "hub" / "jupyterhub_config.py")], env=env,
                                    cwd=base, stdout=out, stderr=subprocess.STDOUT,
                                    start_new_session=True)
        deadline = time.monotonic() + 90
        while "JupyterHub is now running" not in log.read_text(errors="replace"):
            if proc.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"the hub did not start:\n{log.read_text(errors='replace')}")
            time.sleep(0.5)
        yield Hub(f"http://127.0.0.1:{port}", base, cache, before, env)
    finally:
        if proc is not None:
            _stop(proc, base / "state")
        for name in STUDENTS:
            _remove_student(name)
        shutil.rmtree(base, ignore_errors=True)


def _as(name: str) -> dict:
    """Popen's arguments that run a command as user ``name`` with only that user's group."""
    return {"user": name, "group": pwd.getpwnam(name).pw_gid, "extra_groups": []}


def _memory_mb(name: str) -> float:
    """Resident memory of every process of user ``name``, in MB."""
    out = subprocess.run(["ps", "-u", name, "-o", "rss="], capture_output=True, text=True).stdout
    return sum(int(kb) for kb in out.split()) / 1024


def _open_04_and_move_a_slider(hub: Hub, name: str) -> dict[str, float]:
    """Log ``name`` in (first use sets the password), run 04, move a slider; times in s."""
    with chromium_page() as page, screenshot_on_failure(page, f"hub-{name}"):
        start = time.monotonic()
        page.goto(f"{hub.url}/hub/login")
        page.fill("#username_input", name)
        page.fill("#password_input", PASSWORD)
        page.click("#login_submit")
        page.wait_for_url(re.compile(rf"/user/{name}/lab"), timeout=LAB_TIMEOUT_MS)
        lab = time.monotonic() - start
        page.goto(f"{hub.url}/user/{name}/lab/tree/04_generation.ipynb")
        page.get_by_text("Python 3 (ipykernel) | Idle").wait_for(timeout=LAB_TIMEOUT_MS)
        page.locator(".lm-MenuBar-itemLabel", has_text=re.compile(r"^Run$")).click()
        page.locator(".lm-Menu-itemLabel", has_text=re.compile(r"^Run All Cells$")).click()
        check_generation_widget(page, f"hub-{name}")
        redrawn = time.monotonic() - start
        return {"lab": lab, "redrawn": redrawn, "memory_mb": _memory_mb(name)}


def test_two_students_each_run_04_in_their_own_lab_and_stay_apart(hub: Hub) -> None:
    figures = {name: _open_04_and_move_a_slider(hub, name) for name in STUDENTS}
    for name, f in figures.items():
        print(f"{name}: lab after {f['lab']:.1f} s, slider redrawn {f['redrawn']:.1f} s after "
              f"login, {f['memory_mb']:.0f} MB")
    lessons = sorted(p.name for p in (ROOT / "notebooks").glob("*.ipynb"))
    (ada, bea), homes = STUDENTS, {name: hub.home(name) for name in STUDENTS}
    for name, home in homes.items():
        user = pwd.getpwnam(name)
        assert home.stat().st_mode & 0o777 == 0o700, f"{home} is open to others"
        course = home / COURSE_FOLDER
        assert sorted(p.name for p in course.glob("*.ipynb")) == lessons
        assert not (course / "solutions").exists(), "a student got the exercises' solutions"
        assert all(p.stat().st_uid == user.pw_uid for p in course.iterdir())
        own = home / OWN_CACHE
        assert not own.exists() or not list(own.rglob("*.pt")), f"{name} trained a course model"
    assert _files(hub.cache) == hub.before, "a student wrote to the shared cache"

    theirs = homes[bea] / COURSE_FOLDER / "04_generation.ipynb"
    peek = subprocess.run(["cat", str(theirs)], capture_output=True, text=True, **_as(ada))
    assert peek.returncode != 0 and "Permission denied" in peek.stderr
    write = subprocess.run(["touch", str(homes[bea] / "from-ada")], capture_output=True,
                           text=True, **_as(ada))
    assert write.returncode != 0 and not (homes[bea] / "from-ada").exists()

    grades = hub.base / "grades"  # the instructor grades straight from the homes, sandboxed
    graded = subprocess.run([sys.executable, "-m", "cvae_lib", "grade", str(homes[ada].parent),
                             "--exercise", "05", "--out", str(grades)], cwd=ROOT,
                            capture_output=True, text=True, env=hub.env)
    assert graded.returncode == 0, graded.stderr
    for name in STUDENTS:  # their untouched copies: every TODO still open
        assert re.search(rf"{name}/{COURSE_FOLDER}/05_\S+\s.*TODO left", graded.stdout), \
            graded.stdout

    mine = homes[ada] / COURSE_FOLDER / "04_generation.ipynb"
    mine.write_text(mine.read_text().replace('"cells": [', '"cells": [ ', 1))  # ada's work
    edited = mine.read_bytes()
    assert give_course(pwd.getpwnam(ada)) == []  # her next login copies nothing over it
    assert mine.read_bytes() == edited


def test_the_hook_creates_a_missing_student_with_a_private_home(python_reachable) -> None:
    name, homes = "cvae-cid", Path(tempfile.mkdtemp(prefix="cvae-homes-"))
    homes.chmod(0o755)
    assert not _user_exists(name)
    try:
        user = ensure_student(name, homes)
        assert Path(user.pw_dir) == homes / name
        assert (homes / name).stat().st_mode & 0o777 == 0o700
        assert (homes / name).stat().st_uid == user.pw_uid
        copied = give_course(user)
        assert [p.name for p in copied] == sorted(
            p.name for p in (ROOT / "notebooks").glob("*.ipynb"))
        assert give_course(user) == []
    finally:
        _remove_student(name)
        shutil.rmtree(homes, ignore_errors=True)


def test_a_link_a_student_plants_does_not_make_the_hook_write_elsewhere(
        python_reachable) -> None:
    name, homes = "cvae-dan", Path(tempfile.mkdtemp(prefix="cvae-homes-"))
    homes.chmod(0o755)
    elsewhere = Path(tempfile.mkdtemp(prefix="cvae-not-theirs-"))
    elsewhere.chmod(0o755)  # root's: the student may read it, not write it
    try:
        user = ensure_student(name, homes)
        (homes / name / COURSE_FOLDER).symlink_to(elsewhere)  # as if the student made it
        with pytest.raises(RuntimeError, match="could not copy the course"):
            give_course(user)
        assert not list(elsewhere.iterdir())
        assert elsewhere.stat().st_uid == 0
    finally:
        _remove_student(name)
        shutil.rmtree(homes, ignore_errors=True)
        shutil.rmtree(elsewhere, ignore_errors=True)


HOLD = ("import time; from cvae_lib.infra.storage import FairShare; s = FairShare(); "
        "print('ready', flush=True); time.sleep(60)")


def test_trainings_of_two_students_share_the_cores(python_reachable, monkeypatch) -> None:
    registry = Path(tempfile.mkdtemp(prefix="cvae-trainings-"))
    registry.chmod(0o1777)  # what the hub makes: everyone registers, nobody removes another's
    monkeypatch.setenv("CVAE_TRAININGS_DIR", str(registry))
    other = subprocess.Popen([sys.executable, "-c", HOLD], stdout=subprocess.PIPE, text=True,
                             cwd="/", env={**os.environ, "HOME": "/"}, **_as("nobody"))
    before = torch.get_num_threads()
    try:
        assert other.stdout.readline().strip() == "ready"
        torch.set_num_threads(2)
        share = FairShare()
        assert share.running() == 2, "another student's training was not counted"
        assert torch.get_num_threads() == 1
        share.close()
    finally:
        other.kill()
        other.wait()
        torch.set_num_threads(before)
        shutil.rmtree(registry, ignore_errors=True)
