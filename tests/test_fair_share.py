"""Trainings running at once share the cores: each counts the others and takes its share.

The registry they count each other in may be shared by every student of a class: the tests
marked ``as_root`` run real processes as other users (uids 65534 and 65533) who plant links,
folders, FIFOs, their own files and held locks in it, and check that no training crashes,
stalls or loses its share, and that nothing outside the registry is created or deleted.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest
import torch

from cvae_lib.infra.trainings import (ADJUST_EVERY, FairShare, check_registry, make_registry,
                                      shares_cores)

STUDENT, OTHER_STUDENT = 65534, 65533  # nobody, and a uid no account uses
as_root = pytest.mark.skipif(os.geteuid() != 0,
                             reason="needs root: runs processes as other real users")


@pytest.fixture(autouse=True)
def _own_registry(tmp_path, monkeypatch) -> None:
    """A registry of this test's own, so trainings of other test workers are not counted."""
    monkeypatch.setenv("TMPDIR", str(tmp_path))
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))


@pytest.fixture
def class_folder(monkeypatch):
    """A fresh folder in /tmp that other users can reach (pytest's tmp_path is root's alone)."""
    folder = Path(tempfile.mkdtemp(prefix="cvae-test-", dir="/tmp"))
    folder.chmod(0o1777)
    yield folder
    shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture
def shared_registry(class_folder, monkeypatch) -> Path:
    """A class hub's trainings folder, made as the hub makes it, set for every training."""
    registry = make_registry(class_folder / "trainings", shared=True)
    monkeypatch.setenv("CVAE_TRAININGS_DIR", str(registry))
    return registry


def _cores() -> int:
    """The cores a lone training gets: every one, at least two so a share is visible."""
    return max(2, os.cpu_count() or 1)


def _python(code: str, uid: int | None = None, *argv: str) -> dict:
    """Popen's arguments for a Python child running ``code`` with ``argv``, as ``uid`` if given.

    The child imports the course as root, then drops to ``uid`` for good (real, effective and
    saved ids): the Python under the closed /root stays closed to other users.
    """
    drop = (f"import fcntl, os, sys, time, torch, cvae_lib.infra.storage; os.setgroups([]); "
            f"os.setgid({uid}); os.setuid({uid})\n" if uid is not None else "")
    return {"args": [sys.executable, "-c", drop + code, *argv], "text": True,
            "env": {**os.environ, "HOME": "/", "OMP_NUM_THREADS": str(_cores())}}


def _start(code: str, uid: int | None = None, *argv: str) -> subprocess.Popen:
    """A Python child running ``code`` (as ``uid`` if given) that says 'ready' when it is."""
    child = subprocess.Popen(**_python(code, uid, *argv), stdin=subprocess.PIPE,
                             stdout=subprocess.PIPE)
    assert child.stdout.readline().strip() == "ready"
    return child


def _ask(child: subprocess.Popen) -> int:
    """Make a HOLD_AND_ANSWER child adjust its threads and return how many it now has."""
    child.stdin.write("\n")
    child.stdin.flush()
    return int(child.stdout.readline())


HOLD = ("import time; from cvae_lib.infra.trainings import FairShare; s = FairShare(); "
        "print('ready', flush=True); time.sleep(60)")
HOLD_AND_ANSWER = ("import sys, torch; from cvae_lib.infra.trainings import FairShare; "
                   "s = FairShare(); print('ready', flush=True)\n"
                   "for _ in sys.stdin: s.adjust(); print(torch.get_num_threads(), flush=True)")


def test_a_second_training_halves_the_threads_and_a_killed_one_is_forgotten() -> None:
    before = torch.get_num_threads()
    threads = _cores()
    torch.set_num_threads(threads)  # every core, as a lone training has, even in a test worker
    share = FairShare()
    alone = share.running()
    assert alone == 1 and torch.get_num_threads() == threads
    other = _start(HOLD)
    try:
        assert share.running() == alone + 1
        share.adjust()
        assert torch.get_num_threads() == threads // 2
        other.send_signal(signal.SIGKILL)  # dies without cleaning up: its entry goes stale
        other.wait()
        assert share.running() == alone
        assert len(list(Path(tempfile.gettempdir()).glob("cvae_lib-trainings-*/*"))) == 1
        share.close()
        assert torch.get_num_threads() == threads
    finally:
        other.kill()
        torch.set_num_threads(before)


def test_an_evaluation_takes_its_share_like_a_training_once_per_process() -> None:
    @shares_cores
    def evaluation() -> tuple[int, int]:
        """What an evaluation step sees: its threads and the trainings counted."""
        return torch.get_num_threads(), len(list(Path(tempfile.gettempdir()).glob(
            "cvae_lib-trainings-*/*")))

    before = torch.get_num_threads()
    torch.set_num_threads(_cores())
    other = _start(HOLD)
    try:
        assert evaluation() == (_cores() // 2, 2)  # a training elsewhere: half the cores
        assert torch.get_num_threads() == _cores()  # given back after the step
        share = FairShare()
        assert evaluation() == (torch.get_num_threads(), 2)  # inside a training: no entry
        share.close()
    finally:
        other.kill()
        torch.set_num_threads(before)


def test_a_training_is_recounted_every_hundred_optimizer_steps_and_only_inside(
        monkeypatch) -> None:
    """The share wraps a training from outside: torch's step hook, not the step, recounts."""
    counts = []
    monkeypatch.setattr(FairShare, "adjust", lambda self: counts.append(1))
    weight = torch.nn.Parameter(torch.zeros(1))
    optimizer = torch.optim.SGD([weight], lr=0.1)
    with FairShare():
        for _ in range(2 * ADJUST_EVERY):
            optimizer.step()
    assert len(counts) == 1 + 2  # on entry, then every ADJUST_EVERY steps
    for _ in range(ADJUST_EVERY):
        optimizer.step()
    assert len(counts) == 3 and FairShare.held == 0


def test_sharing_can_be_switched_off(monkeypatch) -> None:
    monkeypatch.setenv("CVAE_SHARE_CORES", "0")
    threads = torch.get_num_threads()
    other = _start(HOLD)
    try:
        share = FairShare()
        assert torch.get_num_threads() == threads
        share.close()
    finally:
        other.kill()


@as_root
def test_two_users_training_at_once_get_half_the_cores_each(shared_registry) -> None:
    first = _start(HOLD_AND_ANSWER, STUDENT)
    second = _start(HOLD_AND_ANSWER, OTHER_STUDENT)
    try:
        assert _ask(second) == _cores() // 2
        assert _ask(first) == _cores() // 2
        second.kill()
        second.wait()
        assert _ask(first) == _cores(), "a finished user's share was not given back"
    finally:
        for child in (first, second):
            child.kill()
            child.wait()


# Run as a student in the shared registry: plants everything the issue names, each under a name
# a training would use (a pid and start time of the hub's training, passed as argv[2] and [3]).
PLANT = """
registry, pid, start = sys.argv[1:4]
outside = os.path.join(os.path.dirname(registry), "outside")
os.mkfifo(os.path.join(outside, "fifo"))
name = lambda tag: os.path.join(registry, f"{pid}-{start}-{tag}.training")
os.symlink(os.path.join(outside, "fifo"), name("link"))
os.symlink(os.path.join(outside, "victim"), name("victimlink"))
os.mkdir(name("dir"))
os.mkfifo(name("fifo"))
open(name("foreign"), "w").close()  # a regular file naming the hub's training, not its owner's
held = [open(os.path.join(registry, f"{i}.lock"), "w") for i in range(50)]
held.append(open(name("held"), "w"))
for f in held:
    fcntl.flock(f, fcntl.LOCK_EX)
print("ready", flush=True)
time.sleep(60)
"""
REPORT = ("import torch; from cvae_lib.infra.trainings import FairShare; s = FairShare(); "
          "print(s.running(), torch.get_num_threads()); s.close()")


@as_root
def test_what_a_student_plants_in_the_registry_is_ignored(shared_registry, class_folder) -> None:
    outside = class_folder / "outside"
    outside.mkdir(mode=0o777)
    outside.chmod(0o777)
    victim = outside / "victim"
    victim.write_text("root's file")
    stale = shared_registry / "999999999-1-stale.training"  # ours, of a process long gone
    stale.touch()
    me = Path(f"/proc/{os.getpid()}/stat").read_text().rsplit(")", 1)[1].split()[19]
    student = _start(PLANT, STUDENT, str(shared_registry), str(os.getpid()), me)
    try:
        planted = sorted(p.name for p in shared_registry.iterdir() if p != stale)
        done = subprocess.run(**_python(REPORT), capture_output=True, check=False,
                              timeout=120)  # a FIFO opened would hang it
        assert done.returncode == 0, done.stderr
        assert done.stdout.split() == ["1", str(_cores())], "planted entries were counted"
        assert sorted(p.name for p in shared_registry.iterdir()) == planted
        assert not stale.exists(), "our own stale entry was kept"
        assert victim.read_text() == "root's file" and sorted(os.listdir(outside)) == [
            "fifo", "victim"]
    finally:
        student.kill()
        student.wait()


FIFTY = ("import sys, torch; from cvae_lib.infra.trainings import FairShare; "
         "shares = [FairShare() for _ in range(50)]; print('ready', flush=True); sys.stdin.read()")


@as_root
def test_fifty_trainings_of_one_student_count_as_one_user(shared_registry) -> None:
    student = _start(FIFTY, STUDENT)
    before = torch.get_num_threads()
    try:
        torch.set_num_threads(8)  # as on 8 cores, so 1 of 2 users and 1 of 51 trainings differ
        share = FairShare()
        assert share.running() == 51
        assert share.trainings() == {STUDENT: 50, 0: 1}
        assert torch.get_num_threads() == 4
        share.close()
    finally:
        student.kill()
        student.wait()
        torch.set_num_threads(before)


PLANT_REGISTRY = ("import os, sys; kind, path, victim = sys.argv[1:4]\n"
                  "os.symlink(victim, path) if kind == 'link' else os.mkdir(path, 0o777)\n"
                  "os.chmod(path, 0o777) if kind == 'folder' else None")


@as_root
@pytest.mark.parametrize("kind", ["link", "folder"])
def test_a_private_registry_planted_by_another_user_is_bypassed(
        kind, class_folder, tmp_path, monkeypatch) -> None:
    monkeypatch.setattr(tempfile, "tempdir", str(class_folder))  # a /tmp every user writes in
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    victim = tmp_path / "victim"
    victim.mkdir()
    (victim / "1-1-old.training").touch()  # a stale-looking entry a misled run would delete
    planted = class_folder / f"cvae_lib-trainings-{os.geteuid()}"
    subprocess.run(**_python(PLANT_REGISTRY, STUDENT, kind, str(planted), str(victim)),
                   check=True)
    with pytest.warns(UserWarning, match=f"{planted}.*Registering trainings in"):
        share = FairShare()
    try:
        assert share.running() == 1
        assert [p.parent for p in (tmp_path / "home").rglob("*.training")] == [share._folder]
        assert os.listdir(victim) == ["1-1-old.training"]
        assert planted.is_symlink() or os.listdir(planted) == []
    finally:
        share.close()


@as_root
def test_the_hub_refuses_a_trainings_folder_a_student_made_first(class_folder) -> None:
    planted = class_folder / "trainings"
    subprocess.run(**_python(PLANT_REGISTRY, STUDENT, "folder", str(planted), "-"),
                   check=True)
    with pytest.raises(PermissionError, match="made by another user"):
        make_registry(planted, shared=True)
    assert planted.stat().st_mode & 0o7777 == 0o777  # left as it was
    with pytest.raises(PermissionError, match="not a trainings folder made by the class hub"):
        check_registry(planted)


def test_a_shared_registry_that_is_missing_or_a_link_is_refused(tmp_path) -> None:
    with pytest.raises(FileNotFoundError, match="does not exist"):
        check_registry(tmp_path / "missing")
    (tmp_path / "link").symlink_to(make_registry(tmp_path / "real", shared=True))
    with pytest.raises(PermissionError, match="is a link"):
        check_registry(tmp_path / "link")
    assert check_registry(tmp_path / "real") == tmp_path / "real"
