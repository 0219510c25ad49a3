"""Controlled generation: pick the label, choose or draw z, decode.

Introduced in 04_generation.
"""

from __future__ import annotations

import torch

from cvae_lib.data import IMAGE_DIM
from cvae_lib.infra.trainings import shares_cores
from cvae_lib.models import CVAE
from cvae_lib.validate import (MAX_SEED, LabelsLike, as_images, as_labels, check_model,
                               check_tensor, finite_number, integer, model_device, one_code)


def sample_z(model: CVAE, n: int, temperature: float = 1.0, seed: int | None = None
             ) -> torch.Tensor:
    """``n`` latent codes from N(0, temperature^2 I), repeatable when ``seed`` is given."""
    check_model(model)
    n = integer(n, "n", maximum=1_000_000)
    temperature = finite_number(temperature, "temperature")
    generator = None if seed is None else \
        torch.Generator().manual_seed(integer(seed, "seed", MAX_SEED, minimum=0))
    return temperature * torch.randn(n, model.latent_dim, generator=generator)


@shares_cores
def samples_per_class(model: CVAE, n_per_class: int = 10, labels: LabelsLike | None = None,
                      temperature: float = 1.0, seed: int | None = 0) -> torch.Tensor:
    """Images (len(labels) * n_per_class, 784): row i holds samples of ``labels[i]``."""
    labels = as_labels(range(check_model(model).num_classes) if labels is None else labels,
                       model.num_classes)
    n_per_class = integer(n_per_class, "n_per_class", maximum=100_000)
    z = sample_z(model, len(labels) * n_per_class, temperature, seed)
    return model.generate(labels.repeat_interleave(n_per_class), z=z.to(model_device(model)))


def same_z_all_labels(model: CVAE, z: torch.Tensor) -> torch.Tensor:
    """One latent code decoded under every label: (num_classes, 784)."""
    z = one_code(check_model(model), z)
    return model.generate(list(range(model.num_classes)), z=z.to(model_device(model)))


def interpolate(model: CVAE, z_start: torch.Tensor, z_end: torch.Tensor, label: int,
                steps: int = 10) -> torch.Tensor:
    """Decode ``steps`` codes on the straight line from ``z_start`` to ``z_end``."""
    steps = integer(steps, "steps", minimum=2)
    z_start = one_code(check_model(model), z_start, "z_start").cpu()
    z_end = one_code(model, z_end, "z_end").cpu()
    t = torch.linspace(0, 1, steps).unsqueeze(1)
    z = (1 - t) * z_start + t * z_end
    return model.generate([label] * steps, z=z.to(model_device(model)))


@torch.no_grad()
def relabel(model: CVAE, x: torch.Tensor, label: int) -> torch.Tensor:
    """Encode a real image under its own ``label``, then decode its mean z under all labels."""
    if check_tensor(x, "x").numel() != IMAGE_DIM:
        raise ValueError(f"relabel takes one image of {IMAGE_DIM} pixels, shape (784,), "
                         f"(28, 28) or (1, 784), not {tuple(x.shape)}")
    x = as_images(x.reshape(1, IMAGE_DIM))
    label = as_labels(label, check_model(model).num_classes, "label")
    mu, _ = model.encode(x.to(model_device(model)), model.one_hot(label.to(model_device(model))))
    return same_z_all_labels(model, mu)
