"""Trainings running at once share the cores: each counts the others and takes its share."""

from __future__ import annotations

import os
import signal
import subprocess
import sys

import torch

from cvae_lib.storage import FairShare

HOLD = ("import time; from cvae_lib.storage import FairShare; s = FairShare(); "
        "print('ready', flush=True); time.sleep(60)")


def test_a_second_training_halves_the_threads_and_a_killed_one_is_forgotten() -> None:
    threads, cores = torch.get_num_threads(), os.cpu_count() or 1
    share = FairShare()
    alone = share.running()  # 1, unless another training runs on this machine right now
    other = subprocess.Popen([sys.executable, "-c", HOLD], stdout=subprocess.PIPE, text=True)
    try:
        assert other.stdout.readline().strip() == "ready"
        assert share.running() == alone + 1
        share.adjust()
        assert torch.get_num_threads() == max(1, min(threads, cores // (alone + 1)))
        other.send_signal(signal.SIGKILL)  # dies without cleaning up: the OS drops its lock
        other.wait()
        assert share.running() == alone
        share.close()
        assert torch.get_num_threads() == threads
    finally:
        other.kill()
        torch.set_num_threads(threads)


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
