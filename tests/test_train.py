"""Training, checkpoints and the cache, on a real MNIST subset."""

from __future__ import annotations

import dataclasses
import importlib
import json
from pathlib import Path

import numpy as np
import pytest
import torch

import cvae_lib
from cvae_lib.infra import runtime
from cvae_lib.__main__ import main
from cvae_lib.checkpoints import load_checkpoint, load_model, load_or_train, save_checkpoint
from cvae_lib.losses import cvae_loss
from cvae_lib.infra.storage import cache_dir
from cvae_lib.models import CVAE
from cvae_lib.training import TINY_MOMENT, History, TrainConfig, flush_tiny_moments, train
from tests.learned import TRAIN_RECIPE, check

ROOT = Path(__file__).resolve().parents[1]
SMALL = TrainConfig(**TRAIN_RECIPE)


def test_training_lowers_the_test_loss_and_records_history():
    model, history = train(SMALL, progress=False)
    assert history.epoch == [1, 2, 3] and not history.interrupted
    check("train_first_loss", history.test_total[0])
    check("train_loss_drop", history.test_total[0] - history.test_total[-1])
    for split in ("train", "test"):
        for a, b, c in zip(*(getattr(history, f"{split}_{n}") for n in ("total", "recon", "kl"))):
            assert abs(a - (b + c)) < 1e-3 * a
    assert history.seconds == sorted(history.seconds) and not model.training


def test_a_continued_run_starts_from_its_model_and_extends_its_history():
    parent_config = TrainConfig(num_epochs=1, batch_size=128, train_limit=256)
    parent, parent_history = train(parent_config, progress=False)
    still = dataclasses.replace(parent_config, lr=1e-12, continues=parent_config.key())
    child, history = train(still, progress=False, start=(parent, parent_history))
    assert history.epoch == [1, 2] and history.test_total[0] == parent_history.test_total[0]
    assert history.seconds[1] > history.seconds[0] == parent_history.seconds[0]
    for (name, before), after in zip(parent.state_dict().items(), child.state_dict().values()):
        assert torch.allclose(before, after, atol=1e-6), name  # a tiny rate: it stayed put
    fresh, _ = train(dataclasses.replace(still, continues=None), progress=False)
    assert not torch.allclose(fresh.fc_mu.weight, parent.fc_mu.weight, atol=1e-3)
    with pytest.raises(ValueError, match="exactly when config.continues is set"):
        train(still, progress=False)


@pytest.mark.parametrize("kwargs, error, message", [
    ({"on_epoch": lambda: None}, TypeError, "on_epoch must be a function that takes the history"),
    ({"on_epoch": "print"}, TypeError, "on_epoch must be a function"),
    ({"start": (1, 2)}, TypeError, "start must be \\(model, history\\)"),
    ({"start": "latent_dim"}, ValueError, "latent_dim 4 but the config asks for 16"),
], ids=["callback without argument", "not a function", "start not a pair",
        "start of another size"])
def test_bad_callback_or_start_is_refused_before_any_data_is_loaded(monkeypatch, kwargs, error,
                                                                     message):
    """A mistake in train's arguments costs no epoch: it is refused before the data loads."""
    monkeypatch.setattr(TrainConfig, "load_data", lambda *a, **k: pytest.fail("data loaded"))
    config = TrainConfig(num_epochs=1, train_limit=256)
    if "start" in kwargs:
        config = dataclasses.replace(config, continues="parent")
        if kwargs["start"] == "latent_dim":
            kwargs = {"start": (CVAE(latent_dim=4), History())}
    with pytest.raises(error, match=message):
        train(config, progress=False, **kwargs)


def test_numpy_numbers_are_plain_numbers_in_the_config():
    """seed=np.random.randint(...) and friends work, and the cache key is still computed."""
    config = TrainConfig(seed=np.int64(3), latent_dim=np.int64(8), lr=np.float32(1e-3))
    assert (type(config.seed), type(config.latent_dim), type(config.lr)) == (int, int, float)
    assert config.key().startswith("mnist-cvae-z8-e50-")


def test_same_seed_same_weights_other_seed_other_weights():
    config = TrainConfig(num_epochs=1, batch_size=128, train_limit=256)
    a, _ = train(config, progress=False)
    b, _ = train(config, progress=False)
    c, _ = train(TrainConfig(num_epochs=1, batch_size=128, train_limit=256, seed=1),
                 progress=False)
    for (name, pa), pb, pc in zip(a.state_dict().items(), b.state_dict().values(),
                                  c.state_dict().values()):
        assert torch.equal(pa, pb), name
    assert not torch.equal(a.fc_mu.weight, c.fc_mu.weight)


def test_ctrl_c_returns_what_was_learned():
    def interrupt_after_second_epoch(history):
        if len(history.epoch) == 2:
            raise KeyboardInterrupt

    model, history = train(SMALL, progress=False, on_epoch=interrupt_after_second_epoch)
    assert history.interrupted and history.epoch == [1, 2]
    fresh = SMALL.build_model()
    assert not torch.equal(model.fc_mu.weight, fresh.fc_mu.weight)


def test_tiny_adam_moments_are_set_to_zero_and_others_kept():
    model = SMALL.build_model()
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    x, labels, _ = SMALL.load_data(train=True)
    y_onehot = model.one_hot(labels[:64])
    mu, logvar = model.encode(x[:64], y_onehot)
    logits = model.decode_logits(model.reparameterize(mu, logvar), y_onehot)
    cvae_loss(logits, x[:64], mu, logvar).total.backward()
    optimizer.step()
    state = optimizer.state[model.encoder[0].weight]
    state["exp_avg"][0, :3] = torch.tensor([1e-39, -1e-31, 1e-29])
    before = state["exp_avg"].clone()
    flush_tiny_moments(optimizer)
    after = state["exp_avg"]
    assert after[0, :3].tolist() == [0.0, 0.0, pytest.approx(1e-29)]
    assert torch.equal(after[before.abs() >= TINY_MOMENT], before[before.abs() >= TINY_MOMENT])
    assert (after[0] != 0).any()


def test_interrupted_run_is_not_cached_as_finished():
    def interrupt(history):
        raise KeyboardInterrupt

    load_or_train(SMALL, progress=False, on_epoch=interrupt)
    assert not list(cache_dir().glob("*.pt"))


def test_checkpoint_round_trip_is_atomic_and_safe(tmp_path):
    model, history = train(TrainConfig(num_epochs=1, train_limit=128), progress=False)
    path = save_checkpoint(tmp_path / "m.pt", model, TrainConfig(num_epochs=1, train_limit=128),
                           history)
    assert [p.name for p in tmp_path.iterdir()] == ["m.pt"]  # no temporary file left behind
    payload = torch.load(path, weights_only=True)
    assert set(payload) == {"version", "config", "state_dict", "history"}
    loaded = load_model(path)
    z = torch.randn(3, 16)
    assert torch.equal(loaded.generate([1, 2, 3], z=z), model.generate([1, 2, 3], z=z))


def test_config_mismatch_is_explained(tmp_path):
    config = TrainConfig(num_epochs=1, train_limit=128)
    path = save_checkpoint(tmp_path / "m.pt", config.build_model(), config)
    with pytest.raises(ValueError, match="latent_dim: checkpoint has 16, you asked for 8"):
        load_checkpoint(path, expected=TrainConfig(num_epochs=1, train_limit=128, latent_dim=8))


def test_missing_and_corrupt_checkpoints(tmp_path):
    with pytest.raises(FileNotFoundError, match="python -m cvae_lib train"):
        load_model(tmp_path / "nope.pt")
    (tmp_path / "bad.pt").write_bytes(b"half a file")
    with pytest.raises(ValueError, match="not a readable checkpoint") as err:
        load_model(tmp_path / "bad.pt")
    assert "weights_only" not in str(err.value)  # never the advice to load unsafely
    with pytest.raises(ValueError, match="not a readable checkpoint") as err:
        load_model(ROOT / "notebooks" / "01_vae_fundamentals.ipynb")
    assert "\n" not in str(err.value) and "weights_only" not in str(err.value)
    with pytest.raises(TypeError, match="path must be a file path"):
        load_model(None)


def _must_not_train(*args: object, **kwargs: object) -> None:
    raise AssertionError("load_or_train trained again instead of loading the cache")


def test_load_or_train_caches_by_config(monkeypatch):
    config = TrainConfig(num_epochs=1, train_limit=256)
    first, _ = load_or_train(config, progress=False)
    monkeypatch.setattr(importlib.import_module("cvae_lib.checkpoints"), "train", _must_not_train)
    second, history = load_or_train(config, progress=False)
    assert history.epoch == [1]
    assert torch.equal(first.fc_mu.weight.cpu(), second.fc_mu.weight.cpu())
    assert len(list(cache_dir().glob("*.pt"))) == 1


@pytest.mark.parametrize("kwargs, message", [
    ({"latent_dim": 0}, "latent_dim must be a positive integer"),
    ({"num_epochs": 1.5}, "num_epochs"),
    ({"batch_size": -1}, "batch_size"),
    ({"lr": 0}, "lr must be a number between 0 and 1"),
    ({"lr": 5.0}, "lr must be"),
    ({"dataset": "cifar10"}, "dataset must be one of"),
    ({"beta": -1}, "beta"),
    ({"schedule": "cosine"}, "schedule"),
    ({"train_limit": 0}, "train_limit"),
    ({"num_epochs": 10**20}, "num_epochs"),
    ({"latent_dim": 10_000_000}, "latent_dim"),
    ({"seed": 2**32}, "seed"),
    ({"batch_size": 60_001}, "batch_size"),
    ({"train_limit": 100, "batch_size": 128}, "batch_size"),
    ({"warmup_epochs": float("inf")}, "warmup_epochs"),
])
def test_bad_configs_fail_before_any_work(kwargs, message):
    with pytest.raises(ValueError, match=message):
        TrainConfig(**kwargs)


def test_device_preference(monkeypatch):
    assert runtime.pick_device().type == ("cuda" if torch.cuda.is_available() else "cpu")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert runtime.pick_device().type == "cuda"
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: True)
    assert runtime.pick_device().type == "mps"


def test_main_job_writes_five_files(tmp_path, capsys):
    out = tmp_path / "out"
    assert main(["train", "--epochs", "1", "--out", str(out)]) == 0
    names = {p.name for p in out.iterdir()}
    assert names == {"cvae_generated_samples.png", "cvae_conditional_generation.png",
                     "cvae_training_curves.png", "model.pt", "metrics.json"}
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["epochs"] == 1
    check("job_test_loss", metrics["test_loss"])  # fast mode: 2,048 images
    assert metrics["train_seconds"] > 0
    assert abs(metrics["test_loss"] - metrics["test_recon"] - metrics["test_kl"]) < 1e-6
    evaluation = metrics["evaluation"]
    assert evaluation["eval_images"] == 200 and evaluation["iwae_k"] == 10  # fast mode
    check("job_iwae", evaluation["iwae_nll"])
    check("job_iwae_minus_loss", evaluation["iwae_nll"] - metrics["test_loss"])
    assert len(evaluation["kl_per_dim"]) == 16 and 0 <= evaluation["active_units"] <= 16
    assert 0 <= evaluation["conditional_accuracy"] <= 1 and evaluation["diversity_ratio"] > 0
    assert set(evaluation["conditional_accuracy_per_label"]) == {str(d) for d in range(10)}
    assert isinstance(cvae_lib.load_model(out / "model.pt"), cvae_lib.CVAE)
    printed = capsys.readouterr().out
    assert metrics["config"]["train_limit"] == 2048 and "FAST mode" in printed
    # One epoch is not the course's default recipe: the course cache is left alone.
    assert "cached as" not in printed and not list(cache_dir().glob("mnist-cvae-*.pt"))


def test_main_job_rejects_bad_options(tmp_path, capsys):
    assert main(["train", "--latent-dim", "0", "--out", str(tmp_path / "x")]) == 2
    assert "latent_dim must be a positive integer" in capsys.readouterr().err
    assert not (tmp_path / "x").exists()
