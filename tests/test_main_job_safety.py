"""The main job (`python -m cvae_lib train --out DIR`) loses nothing and mixes nothing.

Refused before training when its output cannot be written; a failed save or Ctrl-C keeps the
trained model (in a rescue folder) and the previous run's files whole; bad data is one line.
Full or read-only disks are a monkeypatched write raising OSError(ENOSPC) or a file where a
folder should be (the tests run as root, so chmod cannot forbid anything).
"""

from __future__ import annotations

import errno
import json
import os
from pathlib import Path
from types import SimpleNamespace

import matplotlib.figure
import pytest

from cvae_lib import __main__ as cli
from cvae_lib.checkpoints import load_model
from cvae_lib.infra import storage
from cvae_lib.models import CVAE
from cvae_lib.training import History, TrainConfig, train
from tests.fake_data import small_mnist

TINY = TrainConfig(num_epochs=1, train_limit=256)
FULL_DISK = OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

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


def test_cli_reports_corrupt_data_in_one_line(corrupt_data, tmp_path, capsys):
    assert cli.main(["train", "--epochs", "1", "--out", str(tmp_path / "out")]) == 1
    err = capsys.readouterr().err
    assert one_line_error(err) and str(corrupt_data) in err and "Delete it" in err


def test_cli_reports_an_unreadable_or_unwritable_data_folder_in_one_line(tmp_path, monkeypatch,
                                                                        capsys):
    monkeypatch.setenv("CVAE_OFFLINE", "1")
    folder = small_mnist(tmp_path / "data")
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
