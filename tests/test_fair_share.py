"""Trainings running at once share the cores: each counts the others and takes its share."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile

import pytest
import torch

from cvae_lib.infra.storage import FairShare


@pytest.fixture(autouse=True)
def _own_registry(tmp_path, monkeypatch) -> None:
    """A registry of this test's own, so trainings of other test workers are not counted."""
    monkeypatch.setenv("TMPDIR", str(tmp_path))
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))


HOLD = ("import time; from cvae_lib.infra.storage import FairShare; s = FairShare(); "
        "print('ready', flush=True); time.sleep(60)")


def test_a_second_training_halves_the_threads_and_a_killed_one_is_forgotten() -> None:
    before = torch.get_num_threads()
    threads = max(2, os.cpu_count() or 1)
    torch.set_num_threads(threads)  # every core, as a lone training has, even in a test worker
    share = FairShare()
    alone = share.running()
    assert alone == 1 and torch.get_num_threads() == threads
    other = subprocess.Popen([sys.executable, "-c", HOLD], stdout=subprocess.PIPE, text=True)
    try:
        assert other.stdout.readline().strip() == "ready"
        assert share.running() == alone + 1
        share.adjust()
        assert torch.get_num_threads() == threads // 2
        other.send_signal(signal.SIGKILL)  # dies without cleaning up: the OS drops its lock
        other.wait()
        assert share.running() == alone
        share.close()
        assert torch.get_num_threads() == threads
    finally:
        other.kill()
        torch.set_num_threads(before)


def test_sharing_can_be_switched_off(monkeypatch) -> None:
    monkeypatch.setenv("CVAE_SHARE_CORES", "0")
    threads = torch.get_num_threads()
    other = subprocess.Popen([sys.executable, "-c", HOLD], stdout=subprocess.PIPE, text=True)
    try:
        assert other.stdout.readline().strip() == "ready"
        share = FairShare()
        assert torch.get_num_threads() == threads
        share.close()
    finally:
        other.kill()
