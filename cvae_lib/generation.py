"""Controlled generation: pick the label, choose or draw z, decode.

Introduced in 04_generation.
"""

from __future__ import annotations

import torch

from cvae_lib.models import CVAE, LabelsLike, as_labels


def _device(model: CVAE) -> torch.device:
    """The device the model's weights live on."""
    return model.fc_mu.weight.device


def sample_z(model: CVAE, n: int, temperature: float = 1.0, seed: int | None = None
             ) -> torch.Tensor:
    """``n`` latent codes from N(0, temperature^2 I), repeatable when ``seed`` is given."""
    if isinstance(n, bool) or not isinstance(n, int) or n <= 0:
        raise ValueError(f"n must be a positive integer, not {n!r}")
    if not temperature >= 0:
        raise ValueError(f"temperature must be >= 0, not {temperature!r}")
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
    z = torch.as_tensor(z, dtype=torch.float32).reshape(1, -1)
    return model.generate(list(range(model.num_classes)), z=z.to(_device(model)))


def interpolate(model: CVAE, z_start: torch.Tensor, z_end: torch.Tensor, label: int,
                steps: int = 10) -> torch.Tensor:
    """Decode ``steps`` codes on the straight line from ``z_start`` to ``z_end``."""
    if isinstance(steps, bool) or not isinstance(steps, int) or steps < 2:
        raise ValueError(f"steps must be an integer >= 2, not {steps!r}")
    t = torch.linspace(0, 1, steps).unsqueeze(1)
    z = (1 - t) * z_start.reshape(1, -1).cpu() + t * z_end.reshape(1, -1).cpu()
    return model.generate([label] * steps, z=z.to(_device(model)))


@torch.no_grad()
def relabel(model: CVAE, x: torch.Tensor, label: int) -> torch.Tensor:
    """Encode a real image under its own ``label``, then decode its mean z under all labels."""
    mu, _ = model.encode(x.reshape(1, -1).to(_device(model)), model.one_hot([label]))
    return same_z_all_labels(model, mu)
