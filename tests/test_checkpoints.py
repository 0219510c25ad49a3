"""Checkpoints and the model cache: written whole or not at all, read safely, trained once.

Two processes and a killed writer are real subprocesses; a full disk is a monkeypatched write.
"""

from __future__ import annotations

import errno
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from cvae_lib import classifier
from cvae_lib.checkpoints import CheckpointError, load_model, load_or_train, save_checkpoint
from cvae_lib.infra import storage
from cvae_lib.models import CVAE
from cvae_lib.training import TrainConfig

ROOT = Path(__file__).resolve().parents[1]
TINY = TrainConfig(num_epochs=1, train_limit=256)
FULL_DISK = OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

def run_python(code: str, *args: str, **kwargs: object) -> subprocess.Popen:
    """Start ``python -c code args`` from the repository, its output piped as text."""
    return subprocess.Popen([sys.executable, "-c", code, *args], cwd=ROOT, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, **kwargs)


def test_load_or_train_with_an_unwritable_cache_returns_the_model(tmp_path, monkeypatch):
    monkeypatch.setenv("CVAE_CACHE_DIR", str(tmp_path / "a-file"))
    (tmp_path / "a-file").write_text("a file where the cache folder should be")
    with pytest.warns(UserWarning, match="not cached"):
        model, history = load_or_train(TINY, progress=False)
    assert isinstance(model, CVAE) and history.epoch == [1]


def test_load_or_train_with_a_full_cache_returns_the_model(monkeypatch):
    def full(path: Path, write: object) -> None:
        raise FULL_DISK

    monkeypatch.setattr(storage, "atomic_write", full)
    with pytest.warns(UserWarning, match="No space left"):
        model, history = load_or_train(TINY, progress=False)
    assert isinstance(model, CVAE) and history.epoch == [1]


TRAIN_ONCE = """
import sys, time
from pathlib import Path
import cvae_lib.checkpoints as checkpoints
from cvae_lib.training import TrainConfig
real_train = checkpoints.train
def announced_train(*args, **kwargs):
    print("TRAINING", flush=True)
    while not Path(sys.argv[1]).exists():  # the test says when to go on
        time.sleep(0.1)
    return real_train(*args, **kwargs)
checkpoints.train = announced_train
checkpoints.load_or_train(TrainConfig(num_epochs=1, train_limit=256))
"""


def test_two_processes_train_the_same_config_once(tmp_path):
    env = {**os.environ, "CVAE_CACHE_DIR": str(tmp_path / "cache"), "PYTHONPATH": str(ROOT)}
    go = tmp_path / "go"
    first = run_python(TRAIN_ONCE, str(go), env=env)
    assert first.stdout.readline().strip() == "TRAINING"  # it holds the lock now
    second = run_python(TRAIN_ONCE, str(tmp_path), env=env)  # would train at once
    waited = next((line for line in second.stderr if "waiting for it" in line), None)
    go.touch()
    second_out, _ = second.communicate(timeout=300)
    first.communicate(timeout=300)
    assert first.returncode == second.returncode == 0 and waited
    assert "TRAINING" not in second_out and "Loaded the cached model" in second_out
    assert len(list((tmp_path / "cache").glob("*.pt"))) == 1


# 4. A writer killed mid-save leaves a temp file; the next save removes it.

KILLED_WRITER = """
import sys, time
from pathlib import Path
from cvae_lib.infra.storage import atomic_write
def slow(f):
    f.write(b"half a checkpoint")
    f.flush()
    print("WRITING", flush=True)
    time.sleep(120)
atomic_write(Path(sys.argv[1]), slow)
"""


def test_temp_file_of_a_killed_writer_is_removed_by_the_next_save(tmp_path):
    path = tmp_path / "model.pt"
    writer = run_python(KILLED_WRITER, str(path), env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert writer.stdout.readline().strip() == "WRITING"
    writer.send_signal(signal.SIGKILL)
    writer.wait(timeout=30)
    (leftover,) = tmp_path.glob(".model.pt.*.tmp")
    assert f".model.pt.{writer.pid}." in leftover.name and not path.exists()
    live = tmp_path / f".model.pt.{os.getpid()}.abc.tmp"  # a writer that is still running
    live.write_bytes(b"in progress")
    storage.atomic_write(path, lambda f: f.write(b"whole"))
    assert path.read_bytes() == b"whole" and not leftover.exists() and live.exists()


def test_atomic_write_flushes_to_disk_before_renaming(tmp_path, monkeypatch):
    synced = []
    real_fsync = os.fsync
    monkeypatch.setattr(storage.os, "fsync", lambda fd: synced.append(fd) or real_fsync(fd))
    storage.atomic_write(tmp_path / "m.pt", lambda f: f.write(b"x"))
    assert len(synced) == 1


def test_a_checkpoint_with_nan_weights_is_refused(tmp_path, monkeypatch):
    model = CVAE()
    with torch.no_grad():
        model.decoder[0].weight[0, 0] = float("nan")
    path = save_checkpoint(tmp_path / "m.pt", model, TrainConfig())
    with pytest.raises(ValueError, match="NaN"):
        load_model(path)
    cached = save_checkpoint(storage.cache_dir() / f"{TINY.key()}.pt", model, TINY)
    with pytest.raises(ValueError):
        load_or_train(TINY, progress=False)
    assert cached.exists()


def _checkpoint(tmp_path: Path, **changes: object) -> Path:
    """A checkpoint file of a fresh model with some of its payload replaced or removed."""
    config = TrainConfig(latent_dim=4)
    payload = torch.load(save_checkpoint(tmp_path / "ok.pt", config.build_model(), config),
                         weights_only=True)
    payload.update({k: v for k, v in changes.items() if v is not None})
    for key in [k for k, v in changes.items() if v is None]:
        del payload[key]
    torch.save(payload, tmp_path / "bad.pt")
    return tmp_path / "bad.pt"


@pytest.mark.parametrize("changes", [
    {"state_dict": None},
    {"config": {**TrainConfig(latent_dim=4).to_dict(), "hidden_dims": [512]}},
    {"state_dict": CVAE(latent_dim=8).state_dict()},
    {"config": {**TrainConfig().to_dict(), "latent_dim": 10**9}},
    {"history": "none"},
], ids=["missing key", "unknown config key", "shape mismatch", "bad config value",
        "bad history"])
def test_malformed_checkpoint_is_a_checkpoint_error(tmp_path, changes):
    with pytest.raises(CheckpointError, match="delete it and train again"):
        load_model(_checkpoint(tmp_path, **changes))


def test_classifier_checkpoint_without_accuracy_is_a_clear_error(monkeypatch):
    payload = {"version": classifier.CLASSIFIER_VERSION,
               "state_dict": classifier.DigitClassifier().state_dict()}
    classifier.classifier_path().parent.mkdir(parents=True)
    torch.save(payload, classifier.classifier_path())
    with pytest.raises(ValueError, match="delete it"):
        classifier.load_or_train_classifier(progress=False)


def test_missing_model_file_does_not_suggest_the_root_folder():
    with pytest.raises(FileNotFoundError) as err:
        load_model(Path("/nonexistent.pt"))
    assert "--out /" not in str(err.value).replace("--out FOLDER", "")
