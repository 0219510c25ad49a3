"""The course served to a class by a real JupyterHub, tried by students in Chromium and by attacks.

Run by ``make test-hub`` (its own stage of ``.ci/run``, after the suite: marked ``hub``, so
``make test`` leaves it out). As root it prepares the tiny models once, builds the release
students run, issues the accounts (an instructor and three students), closes the checkout as
an instructor would, checks the hub as an unprivileged user, and starts the hub and its proxy
on 127.0.0.1. Two students then work in their own JupyterLab; a third opens lesson 04 from the
book's launch button and gets the instructor's later fix beside her own edit. The tests try
what a hostile student would: claim a name, guess passwords, read the answers, change the
course others pull or pull another repository into a classmate's home, stall the trainings
folder, leave a process behind, and run past the memory and process caps. Everything is
stopped by process group, by user and by cgroup, and the accounts are removed.

``CVAE_HUB_TEST_CACHE=<folder> make test-hub`` serves the full models an instructor's
``make prepare`` left in that folder instead (it is only read), as a real class would see them.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import pwd
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import nbformat
import pytest
import requests
from tornado.httpclient import HTTPRequest
from tornado.websocket import websocket_connect

from browser import (ROOT, SCREENSHOTS, check_generation_widget, chromium_page, free_port,
                     require_browser, screenshot_on_failure, write_lab_settings)
from cvae_lib.classroom import accounts, coursegit, limits
from cvae_lib.classroom.book import BOOK
from cvae_lib.classroom.coursegit import COURSE_FOLDER
from cvae_lib.classroom.hub import OWN_CACHE, PROXY

pytestmark = pytest.mark.hub
ADMIN = "cvae-teach"
# cid never logs in: the name others try; dan's first visit is through the book's button.
STUDENTS = ("cvae-ada", "cvae-bea", "cvae-cid", "cvae-dan")
ADA, BEA, CID, DAN = STUDENTS
LAB_TIMEOUT_MS = 180_000


def _user_exists(name: str) -> bool:
    """True if the system has a user ``name``."""
    try:
        pwd.getpwnam(name)
    except KeyError:
        return False
    return True


def _reason_to_skip() -> str | None:
    """Why the hub cannot start on this machine, or None."""
    if os.geteuid() != 0:
        return "needs root: the hub starts each student's server as their own system user"
    if not PROXY.is_file():
        return "JupyterHub's proxy is not installed: `npm ci --prefix hub` (make test-hub)"
    if shutil.which("useradd") is None:
        return "no useradd on this machine to create the student accounts"
    if limits.problems():
        return limits.problems()[0]
    taken = [name for name in (ADMIN, *STUDENTS) if _user_exists(name)]
    if taken:
        return f"the test's accounts already exist: {taken}"
    return None


@pytest.fixture(scope="module")
def python_reachable() -> Iterator[None]:
    """Let others pass through the folders above the base interpreter (restored after).

    The release's venv runs on the instructor's interpreter, which lives in /root on this
    machine; a class server would use one outside a private home (the guide says so).
    """
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


def _remove_account(name: str) -> None:
    """Stop every process of ``name``, their cgroup, and delete the account and its home."""
    limits.stop_group(name)
    subprocess.run(["pkill", "-KILL", "-u", name], capture_output=True)
    time.sleep(0.5)
    subprocess.run(["userdel", "--remove", name], capture_output=True)


@dataclass
class Hub:
    """A running hub: where students connect, its folders, and the passwords issued."""

    url: str
    base: Path
    cache: Path
    release: Path
    env: dict[str, str]
    passwords: dict[str, str]
    before: dict[str, float] = field(default_factory=dict)
    admin_token: str = ""

    def home(self, name: str) -> Path:
        """The student's home."""
        return Path(pwd.getpwnam(name).pw_dir)

    def api(self, method: str, path: str, **kwargs: object) -> requests.Response:
        """A call to the hub's REST API as the admin."""
        return requests.request(method, f"{self.url}/hub/api{path}", timeout=60,
                                headers={"Authorization": f"token {self.admin_token}"},
                                **kwargs)


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
    pid_file = state / "proxy.pid"
    if pid_file.is_file():
        try:
            os.killpg(int(pid_file.read_text()), signal.SIGKILL)
        except (ProcessLookupError, ValueError):
            pass
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


def _hub_cmd(module: str, *args: str, env: dict[str, str],
             check: bool = True) -> subprocess.CompletedProcess:
    """``python -m <module> args`` as the instructor runs it, from the checkout."""
    return subprocess.run([sys.executable, "-m", module, *args], env=env, cwd=ROOT,
                          capture_output=True, text=True, check=check)


def _login(url: str, name: str, password: str) -> requests.Session | None:
    """A session logged in through the hub's login form, or None if the hub refused."""
    session = requests.Session()
    session.get(f"{url}/hub/login", timeout=30)
    reply = session.post(f"{url}/hub/login?next=/hub/home", timeout=60, allow_redirects=False,
                         data={"username": name, "password": password,
                               "_xsrf": session.cookies.get("_xsrf", "")})
    return session if reply.status_code == 302 and "login" not in reply.headers["location"] \
        else None


def _admin_token(url: str, password: str) -> str:
    """An API token of the admin, made through the admin's logged-in session."""
    session = _login(url, ADMIN, password)
    assert session is not None, "the admin could not log in with the issued password"
    reply = session.post(f"{url}/hub/api/users/{ADMIN}/tokens", json={"note": "hub test"},
                         headers={"X-XSRFToken": session.cookies.get("_xsrf", "")}, timeout=30)
    reply.raise_for_status()
    return reply.json()["token"]


@pytest.fixture(scope="module")
def hub(python_reachable) -> Iterator[Hub]:
    """The instructor's side: prepare, release, accounts, a private checkout, check, start."""
    require_browser()
    base = Path(tempfile.mkdtemp(prefix="cvae-hub-"))
    base.chmod(0o755)
    prepared = os.environ.get("CVAE_HUB_TEST_CACHE")
    cache = Path(prepared).resolve() if prepared else base / "cache"
    env = {**os.environ, "CVAE_FAST": "0" if prepared else "1", "CVAE_OFFLINE": "1",
           "CVAE_CACHE_DIR": str(cache), "CVAE_HUB_STUDENTS": " ".join(STUDENTS),
           "CVAE_HUB_ADMIN": ADMIN, "CVAE_HUB_HOMES": str(base / "homes"),
           "CVAE_HUB_STATE": str(base / "state"), "CVAE_HUB_RELEASE": str(base / "release")}
    checkout_mode = ROOT.stat().st_mode & 0o7777
    log, proc = base / "hub.log", None
    try:
        if not prepared:  # an instructor's cache is only read (release copies it), never written
            _hub_cmd("cvae_lib", "prepare", env=env)
        _hub_cmd("cvae_lib.classroom.hub", "release", env=env)
        issued = _hub_cmd("cvae_lib.classroom.hub", "accounts", env=env).stdout
        passwords = dict(re.findall(r"^(\S+)\t(\S+)$", issued, flags=re.MULTILINE))
        assert sorted(passwords) == sorted([ADMIN, *STUDENTS]), issued
        for name in (ADA, BEA, DAN):
            settings = Path(pwd.getpwnam(name).pw_dir) / ".jupyter" / "lab" / "user-settings"
            write_lab_settings(settings)
            subprocess.run(["chown", "-R", f"{name}:{name}", str(settings.parents[2])],
                           check=True)
        ROOT.chmod(0o700)  # the instructor's checkout is private: students run the release
        checked = _hub_cmd("cvae_lib.classroom.hub", "check", env=env, check=False)
        assert checked.returncode == 0, checked.stderr
        print(checked.stdout.strip())
        before = _files(cache)
        port = _free_ports()  # chosen at the last moment: kernels elsewhere take ports too
        env["CVAE_HUB_PORT"] = str(port)
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
        url = f"http://127.0.0.1:{port}"
        yield Hub(url, base, cache, base / "release", env, passwords, before,
                  _admin_token(url, passwords[ADMIN]))
    finally:
        if proc is not None:
            _stop(proc, base / "state")
            SCREENSHOTS.mkdir(exist_ok=True)
            shutil.copyfile(log, SCREENSHOTS / "hub.log")  # beside the failures' pictures
        ROOT.chmod(checkout_mode)
        for name in (ADMIN, *STUDENTS):  # each one, even if removing another failed
            try:
                _remove_account(name)
            except RuntimeError as err:
                print(f"could not remove {name}: {err}")
        shutil.rmtree(base, ignore_errors=True)


def _free_ports(count: int = 3) -> int:
    """The first of ``count`` consecutive free ports: the hub uses its port and the next two."""
    for _ in range(100):
        first = free_port()
        with contextlib.ExitStack() as held:
            try:
                for port in range(first, first + count):
                    sock = held.enter_context(socket.socket())
                    sock.bind(("127.0.0.1", port))
            except OSError:
                continue
        return first
    raise RuntimeError(f"no {count} consecutive free ports on 127.0.0.1")


def _as(name: str) -> dict:
    """Popen's arguments that run a command as user ``name`` with only that user's group."""
    return {"user": name, "group": pwd.getpwnam(name).pw_gid, "extra_groups": []}


def _memory_mb(name: str) -> float:
    """Resident memory of every process of user ``name``, in MB."""
    out = subprocess.run(["ps", "-u", name, "-o", "rss="], capture_output=True, text=True).stdout
    return sum(int(kb) for kb in out.split()) / 1024


def _open_04_and_move_a_slider(hub: Hub, name: str) -> dict[str, float]:
    """Log ``name`` in with the issued password, run 04, move a slider; times in s."""
    with chromium_page() as page, screenshot_on_failure(page, f"hub-{name}"):
        start = time.monotonic()
        page.goto(f"{hub.url}/hub/login")
        page.fill("#username_input", name)
        page.fill("#password_input", hub.passwords[name])
        page.click("#login_submit")
        page.wait_for_url(re.compile(rf"/user/{name}/lab"), timeout=LAB_TIMEOUT_MS)
        lab = time.monotonic() - start
        page.goto(f"{hub.url}/user/{name}/lab/tree/{COURSE_FOLDER}/04_generation.ipynb")
        page.get_by_text("Python 3 (ipykernel) | Idle").wait_for(timeout=LAB_TIMEOUT_MS)
        # jupyter-resource-usage: the student sees their memory against their cap.
        cap_mb = limits.caps_from_env(hub.env).memory_bytes / 2**20
        shown = rf"Mem:\s*[\d.]+\s*/\s*{cap_mb:.0f}(\.\d+)?\s*MB"
        statusbar = page.locator("#jp-main-statusbar")
        _wait_for(lambda: re.search(shown, statusbar.inner_text()), LAB_TIMEOUT_MS / 1000,
                  f"'Mem: ... / {cap_mb:.0f} MB' in the status bar")
        page.locator(".lm-MenuBar-itemLabel", has_text=re.compile(r"^Run$")).click()
        page.locator(".lm-Menu-itemLabel", has_text=re.compile(r"^Run All Cells$")).click()
        # A widget's redraw waits behind the cells still queued in the kernel; on a loaded
        # server those can take longer than the redraw's 5 s, so wait until Run All is done.
        page.locator(".jp-InputPrompt", has_text="[*]").first.wait_for(timeout=LAB_TIMEOUT_MS)
        busy = page.locator(".jp-InputPrompt", has_text="[*]")
        _wait_for(lambda: busy.count() == 0, LAB_TIMEOUT_MS / 1000, f"{name}'s Run All")
        check_generation_widget(page, f"hub-{name}")
        redrawn = time.monotonic() - start
        return {"lab": lab, "redrawn": redrawn, "memory_mb": _memory_mb(name)}


def test_two_students_each_run_04_in_their_own_lab_and_stay_apart(hub: Hub) -> None:
    figures = {name: _open_04_and_move_a_slider(hub, name) for name in (ADA, BEA)}
    for name, f in figures.items():
        used = limits.usage(name)
        print(f"{name}: lab after {f['lab']:.1f} s, slider redrawn {f['redrawn']:.1f} s after "
              f"login, {f['memory_mb']:.0f} MB; cgroup peak {used['memory_peak'] / 2**20:.0f} "
              f"MiB, {used['tasks_peak']} tasks")
    lessons = sorted(p.name for p in (ROOT / "notebooks").glob("*.ipynb"))
    homes = {name: hub.home(name) for name in (ADA, BEA)}
    for name, home in homes.items():
        user = pwd.getpwnam(name)
        assert home.stat().st_mode & 0o777 == 0o700, f"{home} is open to others"
        course = home / COURSE_FOLDER
        assert sorted(p.name for p in course.glob("*.ipynb")) == lessons
        assert (course / ".git").is_dir(), f"{name}'s copy was not pulled by nbgitpuller"
        assert not (course / "solutions").exists(), "a student got the exercises' solutions"
        folded = [p.name for p in course.glob("*.ipynb") if "<summary>Solution" in p.read_text()]
        assert not folded, f"{name} can open the folded answers of {folded}"
        assert all(p.stat().st_uid == user.pw_uid for p in course.iterdir())
        own = home / OWN_CACHE
        assert not own.exists() or not list(own.rglob("*.pt")), f"{name} trained a course model"
        server = limits.processes(name)
        assert server, f"{name}'s server is not in their cgroup"
    assert _files(hub.cache) == hub.before, "the release build wrote to the instructor's cache"

    theirs = homes[BEA] / COURSE_FOLDER / "04_generation.ipynb"
    peek = subprocess.run(["cat", str(theirs)], capture_output=True, text=True, **_as(ADA))
    assert peek.returncode != 0 and "Permission denied" in peek.stderr
    write = subprocess.run(["touch", str(homes[BEA] / "from-ada")], capture_output=True,
                           text=True, **_as(ADA))
    assert write.returncode != 0 and not (homes[BEA] / "from-ada").exists()

    grades = Path(tempfile.mkdtemp(dir=ROOT, prefix=".hub-test-grades-"))
    try:  # the instructor grades straight from the homes, into their private checkout
        graded = _hub_cmd("cvae_lib", "grade", str(homes[ADA].parent), "--exercise", "05",
                          "--out", str(grades), env=hub.env, check=False)
        assert graded.returncode == 0, graded.stderr
        for name in (ADA, BEA):  # their untouched copies: every TODO still open
            assert re.search(rf"{name}/{COURSE_FOLDER}/05_\S+\s.*TODO left", graded.stdout), \
                graded.stdout
        assert list(grades.iterdir())
        for name in (ADA, BEA):
            peek = subprocess.run(["ls", str(grades)], capture_output=True, **_as(name))
            assert peek.returncode != 0, f"{name} could list the grades"
    finally:
        shutil.rmtree(grades, ignore_errors=True)


def _class_book(hub: Hub, folder: Path) -> Path:
    """Lesson 04's page of the book built for this hub: the course's config, theme and extension.

    Only what the test needs: the intro and 04, not executed (the launch button does not
    depend on outputs; executing would take minutes of the machine's two cores).
    """
    source = folder / "book"
    shutil.copytree(BOOK, source, ignore=shutil.ignore_patterns("_build", "lessons"))
    (source / "lessons").mkdir()
    shutil.copyfile(ROOT / "notebooks" / "04_generation.ipynb",
                    source / "lessons" / "04_generation.ipynb")
    (source / "_toc.yml").write_text(json.dumps(
        {"format": "jb-book", "root": "intro", "chapters": [{"file": "lessons/04_generation"}]}))
    config = source / "_config.yml"
    config.write_text(config.read_text().replace("execute_notebooks: cache",
                                                 "execute_notebooks: 'off'"))
    subprocess.run([str(Path(sys.executable).parent / "jupyter-book"), "build", str(source),
                    "--path-output", str(folder / "out")], cwd=folder, capture_output=True,
                   env=dict(hub.env, CVAE_BOOK_HUB_URL=hub.url), check=True)
    return folder / "out" / "_build" / "html" / "lessons" / "04_generation.html"


def _launch(page, name: str, password: str | None):  # noqa: ANN001, ANN202 - playwright Pages
    """Click the page's launch button; sign in if asked; the JupyterLab tab it opened, on 04."""
    button = page.locator("a.btn-launch-hub")
    if not button.is_visible():  # the theme's launch menu is closed: open it
        page.locator(".dropdown-launch-buttons button.dropdown-toggle").click()
    with page.context.expect_page(timeout=30_000) as opened:
        button.click()
    lab = opened.value
    if password is not None:
        lab.wait_for_url(re.compile(r"/hub/login"), timeout=60_000)
        lab.fill("#username_input", name)
        lab.fill("#password_input", password)
        lab.click("#login_submit")
    lab.wait_for_url(re.compile(rf"/user/{name}/lab/tree/{COURSE_FOLDER}/04_generation.ipynb"),
                     timeout=LAB_TIMEOUT_MS)
    lab.locator(".lm-TabBar-tab.lm-mod-current",
                has_text="04_generation.ipynb").wait_for(timeout=LAB_TIMEOUT_MS)
    return lab


def test_the_books_launch_button_opens_04_in_the_students_own_copy_kept_up_to_date(
        hub: Hub, tmp_path: Path) -> None:
    start = time.monotonic()
    page_04 = _class_book(hub, tmp_path)
    built = time.monotonic() - start
    mine = hub.home(DAN) / COURSE_FOLDER / "04_generation.ipynb"
    note, fix = "# a note of dan", "Fixed by your instructor after the first class."
    with chromium_page() as page, screenshot_on_failure(page, "hub-launch"):
        page.goto(page_04.as_uri())
        start = time.monotonic()
        lab = _launch(page, DAN, hub.passwords[DAN])
        first = time.monotonic() - start
        assert mine.is_file() and mine.stat().st_uid == pwd.getpwnam(DAN).pw_uid
        with screenshot_on_failure(lab, "hub-launch-lab"):
            code = lab.locator(".jp-Notebook .jp-CodeCell .cm-content").nth(3)
            code.click()
            lab.keyboard.press("Control+Home")
            lab.keyboard.type(note)
            lab.keyboard.press("Enter")
            lab.keyboard.press("Control+s")
            _wait_for(lambda: note in mine.read_text(), 60, "dan's save")
        lab.close()  # nothing of his left open to save over the pull

        lessons = _lessons_with_a_fix(tmp_path / "lessons", fix)
        published = _hub_cmd("cvae_lib.classroom.hub", "publish", "--notebooks", str(lessons),
                             env=hub.env)
        assert "Published" in published.stdout, published.stdout

        start = time.monotonic()
        lab = _launch(page, DAN, None)  # signed in already: the click pulls, then opens 04
        again = time.monotonic() - start
        with screenshot_on_failure(lab, "hub-launch-again"):
            lab.locator(".jp-MarkdownCell", has_text=fix).first.wait_for(timeout=60_000)
            lab.locator(".jp-CodeCell .cm-content", has_text=note).first.wait_for(timeout=60_000)
    text = mine.read_text()
    assert note in text and fix in text
    print(f"launch button: class book (04 only, not executed) built in {built:.1f} s; 04 open "
          f"in {DAN}'s JupyterLab {first:.1f} s after the click (sign-in and first pull), "
          f"{again:.1f} s after the second click (pull with merge)")


def _lessons_with_a_fix(folder: Path, fix: str) -> Path:
    """The student notebooks, with ``fix`` added to 04's first markdown cell, as an instructor
    would change them in the checkout."""
    folder.mkdir()
    for path in (ROOT / "notebooks").glob("*.ipynb"):
        shutil.copyfile(path, folder / path.name)
    lesson = folder / "04_generation.ipynb"
    notebook = nbformat.read(lesson, as_version=4)
    notebook.cells[0].source += f"\n\n{fix}"
    nbformat.write(notebook, lesson)
    return folder


def test_nobody_logs_in_under_a_name_that_is_not_theirs(hub: Hub) -> None:
    own = "my-own-password-42"
    assert _login(hub.url, ADMIN, own) is None, "the admin's name was claimed"
    assert _login(hub.url, CID, own) is None, "a roster name was claimed"
    assert _login(hub.url, "cvae-stranger", own) is None
    visitor = requests.Session()  # sign-up is off: nobody can make an account
    visitor.get(f"{hub.url}/hub/login", timeout=30)
    assert visitor.get(f"{hub.url}/hub/signup", timeout=30).status_code == 404
    form = {"username": "cvae-stranger", "signup_password": own,
            "signup_password_confirmation": own, "_xsrf": visitor.cookies.get("_xsrf", "")}
    assert visitor.post(f"{hub.url}/hub/signup", data=form, timeout=30).status_code == 404
    assert "cvae-stranger" not in accounts.issued(hub.base / "state")

    for _ in range(3):  # three wrong guesses block the name, even for the right password
        assert _login(hub.url, CID, "wrong-guess-0000") is None
    assert _login(hub.url, CID, hub.passwords[CID]) is None, "no limit on failed logins"

    fresh = dict(hub.env, CVAE_HUB_STATE=str(hub.base / "no-accounts"),
                 CVAE_HUB_PORT=str(_free_ports()))
    refused = subprocess.run([str(Path(sys.executable).parent / "jupyterhub"), "-f",
                              str(ROOT / "hub" / "jupyterhub_config.py")], env=fresh,
                             cwd=hub.base, capture_output=True, text=True, timeout=120)
    assert refused.returncode != 0 and "No first password was issued" in refused.stderr

    with pytest.raises(FileExistsError, match="never adopts"):
        accounts.create_user("nobody", hub.base / "state", hub.base / "homes")
    with pytest.raises(PermissionError, match="not an account this hub created"):
        accounts.own_user("nobody", hub.base / "state", hub.base / "homes")


def test_students_cannot_read_the_answers_and_check_says_when_they_could(hub: Hub) -> None:
    solution = next((ROOT / "notebooks" / "solutions").glob("06_*.ipynb"))
    state = hub.base / "state"
    for path in (solution, state / "jupyterhub_cookie_secret", state / "jupyterhub.sqlite",
                 state / accounts.SLIPS, ROOT / ".git" / "HEAD"):
        peek = subprocess.run(["cat", str(path)], capture_output=True, text=True, **_as(ADA))
        assert peek.returncode != 0 and "Permission denied" in peek.stderr, path

    ROOT.chmod(0o755)  # an instructor forgets to close the checkout
    try:
        opened = _hub_cmd("cvae_lib.classroom.hub", "check", env=hub.env, check=False)
    finally:
        ROOT.chmod(0o700)
    assert opened.returncode == 1 and "a student can read" in opened.stderr
    assert str(solution) in opened.stderr

    venv = hub.release / "venv"
    venv.chmod(0o700)  # a student's server cannot start
    try:
        closed = _hub_cmd("cvae_lib.classroom.hub", "check", env=hub.env, check=False)
    finally:
        venv.chmod(0o755)
    assert closed.returncode == 1 and "a student's server cannot start" in closed.stderr

    refs = coursegit.repo_path(hub.release) / "refs" / "heads"
    refs.chmod(0o777)  # anyone could move the course's branch
    try:
        opened = _hub_cmd("cvae_lib.classroom.hub", "check", env=hub.env, check=False)
    finally:
        refs.chmod(0o755)
    assert opened.returncode == 1 and f"a student can change {refs}" in opened.stderr


EVIL = """
import os, subprocess, sys
folder = sys.argv[1]
os.makedirs(folder)
open(os.path.join(folder, "00-mine.py"), "w").write("open('/tmp/cvae-owned', 'w')")
env = dict(os.environ, GIT_DIR=os.path.join(folder, ".git"), GIT_WORK_TREE=folder)
for step in (["init", "-q", "-b", "main"], ["add", "-A"], ["commit", "-qm", "x"]):
    subprocess.run(["git", "-c", "user.name=a", "-c", "user.email=a@b", *step], env=env,
                   check=True)
"""


def test_a_student_can_neither_change_the_course_nor_pull_another_into_a_classmates_home(
        hub: Hub) -> None:
    repo, ada_course = coursegit.repo_path(hub.release), hub.home(ADA) / COURSE_FOLDER
    student_git = {"HOME": str(hub.home(ADA)), "PATH": "/usr/bin:/bin",
                   **coursegit.student_env(hub.release)}
    head = subprocess.run(["git", "--git-dir", str(repo), "rev-parse", "main"],
                          capture_output=True, text=True, check=True).stdout
    pushed = subprocess.run(["git", "-C", str(ada_course), "push", "--force", "origin",
                             "HEAD:main"], capture_output=True, text=True, env=student_git,
                            cwd="/", **_as(ADA))
    assert pushed.returncode != 0, pushed.stdout
    planted = subprocess.run(["touch", str(repo / "objects" / "ada"), str(repo / "hooks" / "x")],
                             capture_output=True, text=True, cwd="/", **_as(ADA))
    assert planted.returncode != 0 and not (repo / "objects" / "ada").exists()
    assert subprocess.run(["git", "--git-dir", str(repo), "rev-parse", "main"],
                          capture_output=True, text=True).stdout == head

    # ada's own repository, readable by all, and pull links for bea's server made of it.
    evil = Path(tempfile.mkdtemp(prefix="cvae-ada-")) / "repo"
    evil.parent.chmod(0o755)
    shutil.chown(evil.parent, ADA, ADA)
    subprocess.run([str(hub.release / "venv" / "bin" / "python"), "-c", EVIL, str(evil)],
                   check=True, cwd="/",
                   env={"PATH": "/usr/bin:/bin", "HOME": str(hub.home(ADA))}, **_as(ADA))
    try:
        _server_running(hub, BEA)
        made = hub.api("POST", f"/users/{BEA}/tokens", json={"note": "bea opens ada's links"})
        made.raise_for_status()
        as_bea = {"Authorization": f"token {made.json()['token']}"}
        course = _query_of(coursegit.pull_path(hub.release))
        startup = ".ipython/profile_default/startup"
        links = [{**course, "repo": evil.as_uri(), "targetpath": startup},
                 {**course, "repo": evil.as_uri()}, {**course, "targetpath": startup},
                 {**course, "urlpath": "lab/tree/cvae-course/<img src=x onerror=alert(1)>"},
                 {**course, "backup": "true"}]
        own = requests.get(f"{hub.url}/user/{BEA}/git-pull", params=course, headers=as_bea,
                           timeout=60)
        assert own.status_code == 200, "the guard refuses the course's own link"
        for query in links:
            for path in ("git-pull", "git-pull/api"):
                reply = requests.get(f"{hub.url}/user/{BEA}/{path}", params=query,
                                     headers=as_bea, timeout=60)
                assert reply.status_code == 403, (path, query, reply.status_code)
        assert not list(hub.home(BEA).rglob("00-mine.py")) and not Path("/tmp/cvae-owned").exists()
        made = hub.api("POST", f"/users/{ADA}/tokens", json={"note": "ada's own"})
        reply = requests.get(f"{hub.url}/user/{BEA}/git-pull/api", params=course, timeout=60,
                             headers={"Authorization": f"token {made.json()['token']}"})
        assert reply.status_code == 403, "ada reached bea's server"
    finally:
        shutil.rmtree(evil.parent, ignore_errors=True)


def _query_of(path: str) -> dict[str, str]:
    """The parameters of a pull path, one value each."""
    return {key: values[0] for key, values in parse_qs(urlsplit(path).query).items()}


def _server_running(hub: Hub, name: str) -> None:
    """Start ``name``'s server if it is not running, and wait until it is ready."""
    if not hub.api("GET", f"/users/{name}").json()["servers"]:
        hub.api("POST", f"/users/{name}/server").raise_for_status()
    _wait_for(lambda: hub.api("GET", f"/users/{name}").json()["servers"].get("", {})
              .get("ready"), 180, f"{name}'s server to start")


def _terminal(hub: Hub, name: str, command: str, seconds: float = 3.0) -> str:
    """Type ``command`` into a new terminal of ``name``'s JupyterLab, as the student would.

    Returns what the terminal printed in its first ``seconds``; the command goes on after.
    """
    _server_running(hub, name)
    made = hub.api("POST", f"/users/{name}/tokens", json={"note": "hub test"})
    made.raise_for_status()  # the student's own token: admins cannot reach students' servers
    auth = {"Authorization": f"token {made.json()['token']}"}
    made = requests.post(f"{hub.url}/user/{name}/api/terminals", headers=auth, timeout=60)
    made.raise_for_status()
    ws_url = hub.url.replace("http", "ws", 1)
    request = HTTPRequest(f"{ws_url}/user/{name}/terminals/websocket/{made.json()['name']}",
                          headers=auth)

    async def type_it() -> str:
        """Connect, wait for the prompt, type, read a while, and leave the terminal running."""
        socket, printed = await websocket_connect(request), []
        await asyncio.wait_for(socket.read_message(), timeout=30)
        await socket.write_message(json.dumps(["stdin", f"{command}\r"]))
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            try:
                message = await asyncio.wait_for(socket.read_message(), timeout=0.5)
            except asyncio.TimeoutError:
                continue
            if message is None:
                break
            kind, *content = json.loads(message)
            printed += [str(c) for c in content] if kind == "stdout" else []
        socket.close()
        return "".join(printed)

    return asyncio.run(type_it())


def _wait_for(condition, timeout: float, what: str) -> None:  # noqa: ANN001 - a callable
    """Poll ``condition()`` until it is true; fail naming ``what`` after ``timeout`` s."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(0.5)


def _owned_by(name: str) -> list[str]:
    """The command lines of every process of user ``name``."""
    out = subprocess.run(["ps", "-u", name, "-o", "args="], capture_output=True, text=True)
    return out.stdout.splitlines()


def test_nothing_a_student_started_outlives_their_server(hub: Hub) -> None:
    _terminal(hub, ADA, "setsid sleep 901 < /dev/null > /dev/null 2>&1 &")
    _wait_for(lambda: any("sleep 901" in line for line in _owned_by(ADA)), 30, "ada's daemon")
    daemon = next(pid for pid in limits.processes(ADA)
                  if b"sleep\x00901" in Path(f"/proc/{pid}/cmdline").read_bytes())
    assert os.getsid(daemon) == daemon, "the daemon did not leave its session"

    hub.api("DELETE", f"/users/{ADA}/server").raise_for_status()
    _wait_for(lambda: not hub.api("GET", f"/users/{ADA}").json()["servers"], 120,
              "ada's server to stop")
    _wait_for(lambda: not _owned_by(ADA), 30, "ada's processes to end")
    assert not (limits.CGROUP_ROOT / "pids" / limits.group_name(ADA)).exists()


def test_caps_hold_while_a_classmate_keeps_working(hub: Hub) -> None:
    caps = limits.caps_from_env(hub.env)
    figures = {}
    worker = threading.Thread(target=lambda: figures.update(_open_04_and_move_a_slider(hub, ADA)))
    worker.start()  # ada logs in again (a new server) and redraws her slider meanwhile
    # bea, in her JupyterLab terminal: twice her memory (every page touched), then a storm.
    printed = _terminal(hub, BEA, f"python -c 'x = b\"1\" * {2 * caps.memory_bytes}'", 20)
    assert limits.usage(BEA)["oom_kills"] > 0, f"bea's memory cap did not hold: {printed}"
    _terminal(hub, BEA, f"for i in $(seq {2 * caps.processes}); do sleep 120 & done")
    _wait_for(lambda: limits.usage(BEA)["process_refusals"] > 0, 120, "bea's process cap")
    worker.join(timeout=LAB_TIMEOUT_MS / 1000 * 2)
    assert figures, "ada's slider did not redraw while bea ran past her caps"
    used = limits.usage(BEA)
    print(f"{ADA}: slider redrawn {figures['redrawn']:.1f} s after login while {BEA} hit her "
          f"caps ({used}; caps: {caps.describe()})")
    assert used["memory_peak"] <= caps.memory_bytes
    assert len(limits.processes(BEA)) <= caps.processes
    subprocess.run(["pkill", "-u", BEA, "-x", "sleep"], capture_output=True)


PLANT = """
import fcntl, os, sys, time
folder = sys.argv[1]
os.symlink("/etc/shadow", os.path.join(folder, "shadow.lock"))
os.mkdir(os.path.join(folder, "folder.lock"))
os.mkfifo(os.path.join(folder, "fifo.lock"))
held = open(os.path.join(folder, "held.lock"), "w")
fcntl.flock(held, fcntl.LOCK_EX)
print("planted", flush=True)
time.sleep(120)
"""
TRAIN = ("import torch; from cvae_lib.infra.trainings import FairShare; share = FairShare(); "
         "print('threads', torch.get_num_threads(), flush=True); share.close()")


def test_a_student_cannot_stall_the_trainings_of_others(hub: Hub) -> None:
    trainings = hub.release / "trainings"
    env = {"HOME": str(hub.home(BEA)), "PATH": "/usr/bin:/bin", "CVAE_FAST": "1",
           "CVAE_OFFLINE": "1", "CVAE_TRAININGS_DIR": str(trainings),
           "CVAE_SHARED_CACHE_DIR": str(hub.release / "cache"),
           "CVAE_DATA_DIR": str(hub.release / "data"),
           "CVAE_CACHE_DIR": str(hub.home(BEA) / OWN_CACHE)}
    python = str(hub.release / "venv" / "bin" / "python")
    planter = subprocess.Popen([python, "-c", PLANT, str(trainings)], stdout=subprocess.PIPE,
                               text=True, cwd="/", env={"PATH": "/usr/bin:/bin"}, **_as(ADA))
    try:
        assert planter.stdout.readline().strip() == "planted"
        share = subprocess.run([python, "-c", TRAIN], capture_output=True, text=True, cwd="/",
                               env=env, timeout=60, **_as(BEA))
        assert share.returncode == 0, share.stderr
        cores = os.cpu_count() or 1
        assert f"threads {min(cores, 2)}" in share.stdout, share.stdout  # ada trains nothing
        run = subprocess.run([python, "-m", "cvae_lib", "train", "--epochs", "1", "--out",
                              str(hub.home(BEA) / "run")], capture_output=True, text=True,
                             cwd=str(hub.home(BEA)), env=env, timeout=300, **_as(BEA))
        assert run.returncode == 0, run.stderr[-2000:]
        assert (hub.home(BEA) / "run" / "model.pt").is_file()
        assert Path("/etc/shadow").stat().st_mode & 0o777 in (0o640, 0o600, 0o000)
    finally:
        planter.kill()
        planter.wait()
