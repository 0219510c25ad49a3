"""Shared fixtures: a small slice of the real MNIST data and a checkpoint folder per test."""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:  # torch is imported in the fixtures: the xdist controller never loads it
    import torch

# The cache the notebooks run by nbval use (their kernels start before any fixture runs).
NOTEBOOK_CACHE = os.environ.get("CVAE_CACHE_DIR")


@pytest.fixture(scope="session")
def mnist_small() -> tuple[torch.Tensor, torch.Tensor]:
    """The first 512 real MNIST training images and their labels."""
    from cvae_lib.data import load_mnist
    return load_mnist(train=True, limit=512)


@pytest.fixture(autouse=True)
def _isolated_cache(tmp_path, monkeypatch) -> None:
    """Each test caches checkpoints in its own temporary folder."""
    monkeypatch.setenv("CVAE_CACHE_DIR", str(tmp_path / "checkpoints"))


@pytest.fixture
def notebook_cache(monkeypatch) -> Path:
    """The cache of the notebooks nbval runs: a test that runs whole notebooks loads their
    fast-mode models instead of training its own (a per-config lock makes one process train)."""
    if NOTEBOOK_CACHE is None:
        monkeypatch.delenv("CVAE_CACHE_DIR")
    else:
        monkeypatch.setenv("CVAE_CACHE_DIR", NOTEBOOK_CACHE)
    from cvae_lib.infra.storage import cache_dir
    return cache_dir()


@pytest.fixture
def corrupt_data(tmp_path, monkeypatch) -> Path:
    """A data folder whose training images are truncated; returns that file."""
    from tests.fake_data import small_mnist
    monkeypatch.setenv("CVAE_DATA_DIR", str(tmp_path / "data"))
    victim = small_mnist(tmp_path / "data") / "train-images-idx3-ubyte"
    victim.write_bytes(victim.read_bytes()[:1000])
    return victim
