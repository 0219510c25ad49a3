"""Checkpoints: save and load a trained model safely, and the cache behind ``load_or_train``.

Introduced in 03_training. Checkpoints are written atomically (``cvae_lib.infra.storage``) and read
with ``weights_only=True``, so a file from elsewhere cannot run code. ``load_or_train(config)``
trains once and afterwards loads in about a second; two processes asking for the same model
at once train it once: the second waits for the first, then loads.
"""

from __future__ import annotations

import sys
import warnings
from collections.abc import Callable
from pathlib import Path

import torch

from cvae_lib.models import CVAE
from cvae_lib.infra.runtime import pick_device
from cvae_lib.infra.storage import (CheckpointError, cache_dir, check_writable, exclusive,
                                    find_cached, read_payload, write_or_warn, write_payload)
from cvae_lib.training import History, TrainConfig, train
from cvae_lib.validate import finite_weights, instance_of

CHECKPOINT_VERSION = 2


def _payload(model: CVAE, config: TrainConfig, history: History | None) -> dict:
    """What a CVAE checkpoint holds: its version, config, weights and history."""
    return {"version": CHECKPOINT_VERSION, "config": config.to_dict(),
            "state_dict": {k: v.detach().cpu() for k, v in model.state_dict().items()},
            "history": (history or History()).to_dict()}


def save_checkpoint(path: Path, model: CVAE, config: TrainConfig,
                    history: History | None = None) -> Path:
    """Write state_dict, config and history to ``path`` atomically."""
    return write_payload(path, _payload(model, config, history))


# What to do about a file that is not a checkpoint: never "load it unsafely".
REPAIR = ("Load a model.pt written by `python -m cvae_lib train`; if this is a damaged "
          "checkpoint of yours or of the model cache, delete it and train again.")


def _read(path: Path) -> tuple[CVAE, TrainConfig, History]:
    """Rebuild model, config and history from the file, or raise CheckpointError."""
    payload = read_payload(path, CHECKPOINT_VERSION, REPAIR)
    try:
        config = TrainConfig(**payload["config"])
        model = config.build_model()
        model.load_state_dict(payload["state_dict"])
        history = History(**payload["history"])
    except (KeyError, TypeError, ValueError, RuntimeError) as err:
        raise CheckpointError(f"{path} is not a cvae_lib checkpoint ({type(err).__name__}: "
                              f"{str(err).splitlines()[0]}). {REPAIR}") from err
    finite_weights(model, str(path))
    return model, config, history


def load_checkpoint(path: Path, expected: TrainConfig | None = None,
                    device: torch.device | None = None) -> tuple[CVAE, TrainConfig, History]:
    """Load a checkpoint safely; check it was trained with ``expected`` when given."""
    if not isinstance(path, (str, Path)):
        raise TypeError(f"path must be a file path (a str or Path), not {type(path).__name__}")
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no checkpoint at {path}; train one with "
                                f"`python -m cvae_lib train --out FOLDER` and load "
                                f"FOLDER/model.pt")
    model, config, history = _read(path)
    if expected is not None and config != expected:
        diffs = [f"{k}: checkpoint has {v!r}, you asked for {expected.to_dict()[k]!r}"
                 for k, v in config.to_dict().items() if expected.to_dict()[k] != v]
        raise CheckpointError(f"{path} was trained with a different config ("
                              + "; ".join(diffs) + "). Delete it or pass the matching config.")
    model.to(pick_device() if device is None else device).eval()
    return model, config, history


def load_model(path: Path, device: torch.device | None = None) -> CVAE:
    """A ready-to-use model (in eval mode) from a checkpoint file."""
    return load_checkpoint(path, device=device)[0]


def save_or_warn(path: Path, model: CVAE, config: TrainConfig, history: History) -> bool:
    """Save the checkpoint; if that fails, warn with where and why, and keep going."""
    return write_or_warn(path, _payload(model, config, history), "the trained model")


def cache_path(config: TrainConfig) -> Path:
    """The file that caches the model of ``config``."""
    return cache_dir() / f"{config.key()}.pt"


def load_or_train(config: TrainConfig = TrainConfig(), device: torch.device | None = None,
                  progress: bool = True, on_epoch: Callable[[History], None] | None = None,
                  start: tuple[CVAE, History] | None = None) -> tuple[CVAE, History]:
    """Load the cached model of ``config`` if there is one, otherwise train and cache it.

    The own cache is looked in first, then a class's shared one (``find_cached``).

    ``start`` is passed to ``train``: the model a ``config.continues`` run starts from.
    """
    path = cache_path(instance_of(config, TrainConfig, "config"))
    shared = find_cached(path)
    if shared != path:  # the class's prepared cache has it: read it, never lock or write there
        return _load_or_train_unlocked(shared, config, device, progress, on_epoch, start,
                                       save=False)
    try:
        check_writable(path.parent)
    except OSError as err:
        warnings.warn(f"{err}; the model will be trained but not cached", stacklevel=2)
        return _load_or_train_unlocked(path, config, device, progress, on_epoch, start,
                                       save=False)
    with exclusive(path, on_wait=lambda: print(
            f"Another process is training {path.name}; waiting for it, then loading.",
            file=sys.stderr)):
        return _load_or_train_unlocked(path, config, device, progress, on_epoch, start,
                                       save=True)


def _load_or_train_unlocked(path: Path, config: TrainConfig, device: torch.device | None,
                            progress: bool, on_epoch: Callable[[History], None] | None,
                            start: tuple[CVAE, History] | None, save: bool
                            ) -> tuple[CVAE, History]:
    """Load ``path`` if it exists, else train ``config`` (and save it when ``save``)."""
    if path.is_file():
        model, _, history = load_checkpoint(path, expected=config, device=device)
        if progress:
            print(f"Loaded the cached model {path.name} (trained {len(history.epoch)} epochs).")
        return model, history
    model, history = train(config, device=device, progress=progress, on_epoch=on_epoch,
                           start=start)
    if save and not history.interrupted:
        save_or_warn(path, model, config, history)
    return model, history
