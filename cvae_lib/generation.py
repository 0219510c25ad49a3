"""Controlled generation: pick the label, choose or draw z, decode.

Introduced in 04_generation.
"""

from __future__ import annotations

import torch

from cvae_lib.data import IMAGE_DIM
from cvae_lib.models import (CVAE, LabelsLike, as_images, as_labels, check_temperature,
                             check_tensor)


def _device(model: CVAE) -> torch.device:
    """The device the model's weights live on."""
    return model.fc_mu.weight.device


def check_model(model: object) -> CVAE:
    """Return ``model`` if it is a cvae_lib CVAE (or VAE), else raise a TypeError."""
    if not isinstance(model, CVAE):
        raise TypeError(f"model must be a cvae_lib CVAE, not {type(model).__name__}; load one "
                        f"with course_model(name) or load_model(path)")
    return model


def one_code(model: CVAE, z: object, name: str = "z") -> torch.Tensor:
    """Check that ``z`` (a tensor or a list of numbers) is one finite latent code of the model.

    Accepts shape (latent_dim,) or (1, latent_dim); returns a float tensor (1, latent_dim).
    """
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


def sample_z(model: CVAE, n: int, temperature: float = 1.0, seed: int | None = None
             ) -> torch.Tensor:
    """``n`` latent codes from N(0, temperature^2 I), repeatable when ``seed`` is given."""
    check_model(model)
    if isinstance(n, bool) or not isinstance(n, int) or n <= 0:
        raise ValueError(f"n must be a positive integer, not {n!r}")
    temperature = check_temperature(temperature)
    if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int)):
        raise TypeError(f"seed must be an integer or None, not {seed!r}")
    generator = None if seed is None else torch.Generator().manual_seed(seed)
    return temperature * torch.randn(n, model.latent_dim, generator=generator)


def samples_per_class(model: CVAE, n_per_class: int = 10, labels: LabelsLike | None = None,
                      temperature: float = 1.0, seed: int | None = 0) -> torch.Tensor:
    """Images (len(labels) * n_per_class, 784): row i holds samples of ``labels[i]``."""
    labels = as_labels(range(model.num_classes) if labels is None else labels,
                       model.num_classes)
    z = sample_z(model, len(labels) * n_per_class, temperature, seed)
    return model.generate(labels.repeat_interleave(n_per_class), z=z.to(_device(model)))


def same_z_all_labels(model: CVAE, z: torch.Tensor) -> torch.Tensor:
    """One latent code decoded under every label: (num_classes, 784)."""
    z = one_code(check_model(model), z)
    return model.generate(list(range(model.num_classes)), z=z.to(_device(model)))


def interpolate(model: CVAE, z_start: torch.Tensor, z_end: torch.Tensor, label: int,
                steps: int = 10) -> torch.Tensor:
    """Decode ``steps`` codes on the straight line from ``z_start`` to ``z_end``."""
    if isinstance(steps, bool) or not isinstance(steps, int) or steps < 2:
        raise ValueError(f"steps must be an integer >= 2, not {steps!r}")
    z_start = one_code(check_model(model), z_start, "z_start").cpu()
    z_end = one_code(model, z_end, "z_end").cpu()
    t = torch.linspace(0, 1, steps).unsqueeze(1)
    z = (1 - t) * z_start + t * z_end
    return model.generate([label] * steps, z=z.to(_device(model)))


@torch.no_grad()
def relabel(model: CVAE, x: torch.Tensor, label: int) -> torch.Tensor:
    """Encode a real image under its own ``label``, then decode its mean z under all labels."""
    if check_tensor(x, "x").numel() != IMAGE_DIM:
        raise ValueError(f"relabel takes one image of {IMAGE_DIM} pixels, shape (784,), "
                         f"(28, 28) or (1, 784), not {tuple(x.shape)}")
    x = as_images(x.reshape(1, IMAGE_DIM))
    mu, _ = check_model(model).encode(x.to(_device(model)), model.one_hot([label]))
    return same_z_all_labels(model, mu)
