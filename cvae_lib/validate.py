"""Friendly errors at the door: every check that turns a caller's mistake into a clear message.

Notebooks, the command line and instructors call in through ``generate``, ``TrainConfig``,
``load_model``, the widgets, the evaluation and the plots; those call these functions first,
so the model, the loss and the training step can stay the bare idea.
"""

from __future__ import annotations

import dataclasses
import inspect
import math
import numbers
from collections.abc import Sequence
from typing import TypeVar

import numpy as np
import torch
from torch import nn

from cvae_lib.data import DATASETS, IMAGE_DIM

T = TypeVar("T")
LabelsLike = torch.Tensor | np.ndarray | Sequence[int] | int


def integer(value: object, name: str, maximum: int | None = None, minimum: int = 1) -> int:
    """Return ``value`` if it is an int in minimum..maximum (not a bool), else raise ValueError.

    The one integer check of the package: counts, sizes, steps and seeds all come through here.
    """
    whole = not isinstance(value, bool) and isinstance(value, numbers.Integral)
    if not whole or value < minimum:
        wanted = ("a positive integer" if minimum == 1 else
                  f"an integer >= {minimum}" if maximum is None else
                  f"an integer from {minimum} to {maximum}")
        raise ValueError(f"{name} must be {wanted}, not {value!r}")
    if maximum is not None and value > maximum:
        raise ValueError(f"{name} must be at most {maximum:,}, not {value:,}")
    return int(value)


def one_of(value: object, name: str, choices: Sequence[object]) -> object:
    """Return ``value`` if it is one of ``choices``, else raise a ValueError listing them."""
    if value not in choices:
        raise ValueError(f"{name} must be one of {tuple(choices)}, not {value!r}")
    return value


def finite_number(value: object, name: str, low: float = 0.0) -> float:
    """Return ``value`` as a float if it is a finite real number >= ``low``, else raise."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a number, not {type(value).__name__}")
    if not math.isfinite(value) or value < low:
        raise ValueError(f"{name} must be a finite number >= {low:g}, not {value!r}")
    return float(value)


def instance_of(value: T, kind: type, name: str, hint: str = "") -> T:
    """Return ``value`` if it is a ``kind``, else raise a TypeError naming both (and ``hint``)."""
    if not isinstance(value, kind):
        package = kind.__module__.split(".")[0]  # torch.Tensor, but TrainConfig
        wanted = kind.__name__ if package in ("builtins", "cvae_lib") else \
            f"{package}.{kind.__name__}"
        raise TypeError(f"{name} must be a {wanted}, not {type(value).__name__}"
                        + (f" ({hint})" if hint else ""))
    return value


def check_tensor(value: object, name: str) -> torch.Tensor:
    """Return ``value`` if it is a torch.Tensor, else raise a TypeError naming it."""
    return instance_of(value, torch.Tensor, name, "wrap it with torch.tensor(...)")


def check_model(model: object) -> nn.Module:
    """Return ``model`` if it is a cvae_lib model (a CVAE or VAE), else raise a TypeError."""
    if not (isinstance(model, nn.Module) and hasattr(model, "latent_dim")
            and hasattr(model, "one_hot")):
        raise TypeError(f"model must be a cvae_lib CVAE, not {type(model).__name__}; load one "
                        f"with course_model(name) or load_model(path)")
    return model


def model_device(model: nn.Module) -> torch.device:
    """The device the model's weights live on."""
    return next(model.parameters()).device


def label_classes(model: nn.Module) -> int:
    """How many label values the model takes: its classes (a VAE takes and ignores digits)."""
    return getattr(model, "label_classes", model.num_classes)


def as_labels(labels: LabelsLike, num_classes: int, name: str = "labels") -> torch.Tensor:
    """An int, a list of ints or an integer array/tensor as a checked int64 tensor (N,)."""
    if isinstance(labels, np.ndarray):
        labels = torch.from_numpy(labels)
    if isinstance(labels, np.integer):
        labels = int(labels)
    if isinstance(labels, bool) or (isinstance(labels, torch.Tensor)
                                    and labels.dtype == torch.bool):
        raise TypeError(f"{name} must be integer class ids, not booleans")
    if isinstance(labels, numbers.Integral):
        labels = [int(labels)]
    if not isinstance(labels, torch.Tensor):
        if not isinstance(labels, (list, tuple, range)):
            raise TypeError(f"{name} must be an int, a list of ints or an integer tensor, "
                            f"not {type(labels).__name__}")
        bad = [v for v in labels if isinstance(v, bool) or not isinstance(v, numbers.Real)
               and not (isinstance(v, torch.Tensor) and v.numel() == 1)]
        if bad:
            raise TypeError(f"{name} must be integers 0..{num_classes - 1}; got {bad[0]!r}")
        labels = torch.as_tensor([float(v) for v in labels], dtype=torch.float64)
    if labels.is_complex():
        raise TypeError(f"{name} must be integer class ids, not complex numbers")
    if labels.dim() == 0:
        labels = labels.reshape(1)
    if labels.dim() != 1:
        raise ValueError(f"{name} must be one id per image, shape (N,), not {tuple(labels.shape)}"
                         f" (pass integer ids, not one-hot vectors)")
    if labels.is_floating_point():
        whole = torch.isfinite(labels) & (labels == labels.round())
        if not whole.all():
            raise ValueError(f"{name} must be whole numbers 0..{num_classes - 1}; "
                             f"got {labels[~whole][:1].tolist()}")
    if len(labels) and (labels.min() < 0 or labels.max() >= num_classes):
        raise ValueError(f"{name} must lie in 0..{num_classes - 1}; got values from "
                         f"{int(labels.min())} to {int(labels.max())}")
    return labels.long()


def as_images(x: object) -> torch.Tensor:
    """Check an image batch of intensities in [0, 1]; flatten (B, 1, 28, 28) to (B, 784)."""
    x = check_tensor(x, "images")
    if not x.is_floating_point():
        raise TypeError(f"images must be floats in [0, 1], not {x.dtype} "
                        f"(divide uint8 pixels by 255)")
    if x.dim() in (3, 4) and tuple(x.shape[-2:]) == (28, 28) and (x.dim() == 3 or x.shape[1] == 1):
        x = x.reshape(len(x), IMAGE_DIM)
    if x.dim() != 2 or x.shape[1] != IMAGE_DIM:
        raise ValueError(f"images must have shape (batch, 784) or (batch, 1, 28, 28), "
                         f"not {tuple(x.shape)}")
    if not torch.isfinite(x).all():
        raise ValueError("images contain NaN or infinite values; check the data pipeline")
    if x.numel() and (x.min() < 0 or x.max() > 1):
        raise ValueError(f"images must hold intensities in [0, 1], not values from "
                         f"{float(x.min()):g} to {float(x.max()):g} (divide 0..255 pixels by 255)")
    return x


def as_extra(model: nn.Module, extra: object, count: int) -> torch.Tensor | None:
    """Check the extra labels (e.g. thickness) of ``count`` images: (count, n_extra) ints."""
    if not getattr(model, "extra_classes", ()):  # only ThicknessCVAE has extra labels
        if extra is not None:
            raise ValueError("this model is conditioned on the digit only: do not pass extra")
        return None
    if extra is None:
        raise ValueError(f"this model is also conditioned on {len(model.extra_classes)} extra "
                         f"label(s) with {model.extra_classes} classes: pass extra")
    extra = torch.as_tensor(extra)
    extra = extra.reshape(len(extra), -1) if extra.dim() == 1 else extra
    if extra.shape != (count, len(model.extra_classes)):
        raise ValueError(f"extra must have shape ({count}, {len(model.extra_classes)}), "
                         f"not {tuple(extra.shape)}")
    columns = [as_labels(extra[:, i], n, name=f"extra[:, {i}]")
               for i, n in enumerate(model.extra_classes)]
    return torch.stack(columns, dim=1)


def latent_codes(model: nn.Module, z: object, count: int) -> torch.Tensor:
    """Check ``count`` latent codes (or one, repeated) for the model: a float (count, d) tensor."""
    z = check_tensor(z, "z")
    if z.is_complex() or not (z.is_floating_point() or z.dtype in (torch.int32, torch.int64)):
        raise TypeError(f"z must hold real numbers, not {z.dtype}")
    z = z.reshape(1, -1) if z.dim() == 1 else z
    if z.dim() != 2 or z.shape[1] != model.latent_dim or len(z) not in (1, count):
        raise ValueError(f"z must have shape ({count}, {model.latent_dim}) or "
                         f"({model.latent_dim},), not {tuple(z.shape)}")
    if not torch.isfinite(z).all():
        raise ValueError("z contains NaN or infinite values")
    return z.float().expand(count, -1)


def one_code(model: nn.Module, z: object, name: str = "z") -> torch.Tensor:
    """Check that ``z`` (a tensor or list of numbers) is one finite latent code: (1, d)."""
    if torch.is_tensor(z) and z.is_complex():
        raise TypeError(f"{name} must hold real numbers, not {z.dtype}")
    try:
        z = torch.as_tensor(z, dtype=torch.float32)
    except (TypeError, ValueError, RuntimeError):
        raise TypeError(f"{name} must be a tensor or a list of {model.latent_dim} numbers, "
                        f"not {type(z).__name__}") from None
    if z.numel() != model.latent_dim or z.dim() > 2 or (z.dim() == 2 and len(z) != 1):
        raise ValueError(f"{name} must be one latent code of {model.latent_dim} numbers, "
                         f"shape ({model.latent_dim},) or (1, {model.latent_dim}), "
                         f"not {tuple(z.shape)}")
    if not torch.isfinite(z).all():
        raise ValueError(f"{name} contains NaN or infinite values")
    return z.reshape(1, -1)


def generation_inputs(model: nn.Module, labels: LabelsLike, z: object, extra: object = None
                      ) -> tuple[torch.Tensor, torch.Tensor | None, torch.Tensor | None]:
    """Check what ``generate`` was given; return labels, z and extra on the model's device."""
    device = model_device(model)
    labels = as_labels(labels, label_classes(model))
    extra = as_extra(model, extra, len(labels))
    if z is not None:
        z = latent_codes(model, z, len(labels)).to(device)
    return labels.to(device), z, None if extra is None else extra.to(device)


def finite_weights(model: nn.Module, source: str) -> nn.Module:
    """Return ``model`` if all its weights are finite, else say the source is unusable."""
    for name, tensor in model.state_dict().items():
        if tensor.is_floating_point() and not torch.isfinite(tensor).all():
            raise ValueError(f"{source} holds NaN or infinite weights ({name}): the training "
                             f"diverged or the file is damaged. Delete it and train again.")
    return model


MAX_EPOCHS = 10_000
MAX_LATENT_DIM = 1024
TRAIN_IMAGES = 60_000
MAX_SEED = 2**32 - 1


def plain_numbers(config: object) -> dict[str, object]:
    """The dataclass fields of ``config`` that hold numpy scalars, as plain Python numbers."""
    values = {f.name: getattr(config, f.name) for f in dataclasses.fields(config)}
    return {name: value.item() for name, value in values.items()
            if isinstance(value, np.generic)}


def train_config(config: object) -> None:
    """Check every field of a TrainConfig before any data is loaded or any step is taken."""
    for name, choices in (("dataset", tuple(DATASETS)), ("architecture", ("cvae", "vae")),
                          ("condition", ("digit", "digit+thickness")),
                          ("schedule", ("constant", "onecycle"))):
        one_of(getattr(config, name), name, choices)
    if config.condition != "digit" and config.architecture != "cvae":
        raise ValueError(f"condition={config.condition!r} needs architecture='cvae'")
    integer(config.latent_dim, "latent_dim", MAX_LATENT_DIM)
    integer(config.num_epochs, "num_epochs", MAX_EPOCHS)
    images = TRAIN_IMAGES if config.train_limit is None else \
        integer(config.train_limit, "train_limit", TRAIN_IMAGES)
    integer(config.batch_size, "batch_size", images)
    if not 0 < finite_number(config.lr, "lr") < 1:
        raise ValueError(f"lr must be a number between 0 and 1 (e.g. 1e-3), not {config.lr!r}")
    finite_number(config.beta, "beta")
    if finite_number(config.warmup_epochs, "warmup_epochs") > config.num_epochs:
        raise ValueError(f"warmup_epochs ({config.warmup_epochs:g}) must not exceed num_epochs "
                         f"({config.num_epochs})")
    integer(config.seed, "seed", MAX_SEED, minimum=0)


def train_inputs(config: object, on_epoch: object, start: object) -> None:
    """Check ``train``'s callback and starting point before any data is loaded."""
    if on_epoch is not None:
        try:
            inspect.signature(on_epoch).bind(None)
        except TypeError:
            raise TypeError(f"on_epoch must be a function that takes the history, called after "
                            f"every epoch (pass the function itself), not {on_epoch!r}") from None
        except ValueError:  # a builtin without a signature: trust it
            pass
    if (start is None) != (config.continues is None):
        raise ValueError("pass start=(model, history) exactly when config.continues is set")
    if start is None:
        return
    if not (isinstance(start, tuple) and len(start) == 2 and isinstance(start[0], nn.Module)
            and hasattr(start[1], "to_dict")):
        raise TypeError("start must be (model, history), as course_model and load_or_train "
                        "return them")
    if getattr(start[0], "latent_dim", None) != config.latent_dim:
        raise ValueError(f"start's model has latent_dim {getattr(start[0], 'latent_dim', None)}"
                         f" but the config asks for {config.latent_dim}: continue a model of "
                         f"the same size")
