"""A class server's layout: models prepared once in a shared cache, read by every student.

A student's own cache (``CVAE_CACHE_DIR``) is looked in first, then the class's shared one
(``CVAE_SHARED_CACHE_DIR``); nothing is ever written or locked in the shared one, and what a
student trains that the shared cache lacks goes to their own. The lock that serialises writes
to a cache is its owner's alone: no other user can open it, so none can hold it to stall them.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest
import torch

from cvae_lib.checkpoints import cache_path, load_or_train
from cvae_lib.infra.storage import exclusive, find_cached
from cvae_lib.training import TrainConfig

TINY = TrainConfig(num_epochs=1, train_limit=512, latent_dim=2)


def _files(folder: Path) -> dict[str, float]:
    """Every file under ``folder`` (lock files included) with its modification time."""
    return {str(p.relative_to(folder)): p.stat().st_mtime for p in folder.rglob("*")
            if p.is_file()}


def test_a_model_in_the_shared_cache_is_read_there_and_nothing_is_written(
        tmp_path, monkeypatch) -> None:
    shared, own = tmp_path / "shared", tmp_path / "own"
    monkeypatch.setenv("CVAE_CACHE_DIR", str(shared))
    prepared, _ = load_or_train(TINY, progress=False)  # the instructor's `make prepare`
    before = _files(shared)
    monkeypatch.setenv("CVAE_CACHE_DIR", str(own))
    monkeypatch.setenv("CVAE_SHARED_CACHE_DIR", str(shared))
    assert find_cached(cache_path(TINY)) == shared / cache_path(TINY).name
    model, history = load_or_train(TINY, progress=False)
    assert len(history.epoch) == 1
    for mine, theirs in zip(model.state_dict().values(), prepared.state_dict().values()):
        assert torch.equal(mine, theirs)
    assert _files(shared) == before, "the shared cache was written to"
    assert not own.exists() or not _files(own), "a student cache got a copy of a shared model"


def test_a_model_the_shared_cache_lacks_is_trained_into_the_own_cache(
        tmp_path, monkeypatch) -> None:
    shared, own = tmp_path / "shared", tmp_path / "own"
    shared.mkdir()
    monkeypatch.setenv("CVAE_CACHE_DIR", str(own))
    monkeypatch.setenv("CVAE_SHARED_CACHE_DIR", str(shared))
    load_or_train(TINY, progress=False)
    assert (own / cache_path(TINY).name).is_file()
    assert not _files(shared)
    assert find_cached(cache_path(TINY)) == own / cache_path(TINY).name  # own comes first


STUDENT = 65534  # nobody
# Run as the student: open the lock file as flock needs it, read-only, and hold it.
HOLD_LOCK = ("import fcntl, os, sys, time; os.setgroups([]); os.setgid({uid}); os.setuid({uid});"
             " fd = os.open(sys.argv[1], os.O_RDONLY); fcntl.flock(fd, fcntl.LOCK_EX); "
             "print('held', flush=True); time.sleep(60)")


@pytest.fixture
def readable_cache() -> Path:
    """An instructor's cache folder every user can read, in /tmp (pytest's is root's alone)."""
    folder = Path(tempfile.mkdtemp(prefix="cvae-cache-", dir="/tmp"))
    folder.chmod(0o755)
    yield folder
    shutil.rmtree(folder, ignore_errors=True)


def _stalled() -> None:
    """``exclusive``'s ``on_wait`` where waiting is the failure (instead of a hang)."""
    raise AssertionError("another user's hold on the lock stalled this user's cache write")


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root: opens the lock as another user")
def test_a_student_cannot_hold_a_cache_lock_to_stall_the_instructor(readable_cache) -> None:
    old = readable_cache / "old.pt.lock"
    old.touch()
    old.chmod(0o644)  # as an older version made them: the student opens it and holds it
    student = subprocess.Popen([sys.executable, "-c", HOLD_LOCK.format(uid=STUDENT), str(old)],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert student.stdout.readline().strip() == "held", student.stderr.read()
        for model in (readable_cache / "old.pt", readable_cache / "new.pt"):
            with exclusive(model, on_wait=_stalled):
                pass
            lock = Path(f"{model}.lock")
            assert lock.stat().st_mode & 0o777 == 0o600
            again = subprocess.run([sys.executable, "-c", HOLD_LOCK.format(uid=STUDENT),
                                    str(lock)], capture_output=True, text=True, timeout=60,
                                   check=False)
            assert again.returncode != 0 and "PermissionError" in again.stderr, again.stderr
    finally:
        student.kill()
        student.wait()


def test_a_second_writer_waits_for_the_first(tmp_path) -> None:
    hold = ("import sys, time; from cvae_lib.infra.storage import exclusive\n"
            "with exclusive(sys.argv[1]): print('held', flush=True); time.sleep(1)")
    first = subprocess.Popen([sys.executable, "-c", hold, str(tmp_path / "m.pt")],
                             stdout=subprocess.PIPE, text=True)
    try:
        assert first.stdout.readline().strip() == "held"
        began, waited = time.monotonic(), []
        with exclusive(tmp_path / "m.pt", on_wait=lambda: waited.append(True)):
            assert waited and time.monotonic() - began > 0.5, "the second writer did not wait"
    finally:
        first.kill()
        first.wait()


def test_a_link_planted_as_a_cache_lock_is_never_followed(tmp_path) -> None:
    target = tmp_path / "elsewhere"
    Path(f"{tmp_path / 'm.pt'}.lock").symlink_to(target)
    with pytest.raises(PermissionError, match="is a link"), exclusive(tmp_path / "m.pt"):
        pass
    assert not target.exists()
