"""A class server's layout: models prepared once in a shared cache, read by every student.

A student's own cache (``CVAE_CACHE_DIR``) is looked in first, then the class's shared one
(``CVAE_SHARED_CACHE_DIR``); nothing is ever written or locked in the shared one, and what a
student trains that the shared cache lacks goes to their own.
"""

from __future__ import annotations

from pathlib import Path
import torch

from cvae_lib.checkpoints import cache_path, load_or_train
from cvae_lib.infra.storage import find_cached
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
