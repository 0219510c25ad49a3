"""Shared fixtures: a small slice of the real MNIST data and a checkpoint folder per test."""

from __future__ import annotations

import pytest
import torch

from cvae_lib.data import load_mnist


@pytest.fixture(scope="session")
def mnist_small() -> tuple[torch.Tensor, torch.Tensor]:
    """The first 512 real MNIST training images and their labels."""
    return load_mnist(train=True, limit=512)


@pytest.fixture(autouse=True)
def _isolated_cache(tmp_path, monkeypatch) -> None:
    """Each test caches checkpoints in its own temporary folder."""
    monkeypatch.setenv("CVAE_CACHE_DIR", str(tmp_path / "checkpoints"))
