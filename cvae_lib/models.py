"""The Conditional VAE: an encoder and a decoder that both see the label.

Introduced in 02_label_conditioning (the unconditional parts in 01_vae_fundamentals).
Every public method checks its inputs first and says what is wrong in the student's terms.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from cvae_lib.data import IMAGE_DIM

LabelsLike = torch.Tensor | Sequence[int] | int


def mlp(sizes: Sequence[int]) -> nn.Sequential:
    """Linear layers of the given sizes with a ReLU after each one but the last."""
    sizes = _sizes(sizes, "mlp sizes", min_len=2)
    layers: list[nn.Module] = []
    for i, (n_in, n_out) in enumerate(zip(sizes[:-1], sizes[1:])):
        layers.append(nn.Linear(n_in, n_out))
        if i < len(sizes) - 2:
            layers.append(nn.ReLU())
    return nn.Sequential(*layers)


def _positive_int(value: object, name: str) -> int:
    """Return ``value`` if it is a positive int, else raise a clear error."""
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise ValueError(f"{name} must be a positive integer, not {value!r}")
    return value


def _sizes(values: object, name: str, min_len: int = 1) -> tuple[int, ...]:
    """Return ``values`` as a tuple of positive ints (at least ``min_len``), else raise."""
    if isinstance(values, (int, str, bytes)) or not isinstance(values, Sequence):
        raise TypeError(f"{name} must be a list or tuple of positive integers, e.g. (256, 256), "
                        f"not {values!r}")
    if len(values) < min_len:
        raise ValueError(f"{name} needs at least {min_len} size(s), not {tuple(values)!r}")
    return tuple(_positive_int(v, f"each of {name}") for v in values)


def check_temperature(temperature: object) -> float:
    """Return ``temperature`` as a float if it is a finite number >= 0, else raise."""
    if isinstance(temperature, bool) or not isinstance(temperature, numbers.Real):
        raise TypeError(f"temperature must be a number (1.0 samples the prior), "
                        f"not {type(temperature).__name__}")
    if not math.isfinite(temperature) or temperature < 0:
        raise ValueError(f"temperature must be a finite number >= 0, not {temperature!r}")
    return float(temperature)


def check_tensor(value: object, name: str) -> torch.Tensor:
    """Return ``value`` if it is a torch.Tensor, else raise a TypeError naming it."""
    if not isinstance(value, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, not {type(value).__name__} "
                        f"(wrap it with torch.tensor(...))")
    return value


def as_labels(labels: LabelsLike, num_classes: int, name: str = "labels") -> torch.Tensor:
    """Turn an int, a list of ints or an integer tensor into a checked int64 tensor (N,)."""
    if isinstance(labels, np.ndarray):
        labels = torch.from_numpy(labels)
    if isinstance(labels, bool) or (isinstance(labels, torch.Tensor)
                                    and labels.dtype == torch.bool):
        raise TypeError(f"{name} must be integer class ids, not booleans")
    if isinstance(labels, numbers.Integral):
        labels = [int(labels)]
    if not isinstance(labels, torch.Tensor):
        if isinstance(labels, (str, bytes)) or not hasattr(labels, "__iter__"):
            raise TypeError(f"{name} must be an int, a list of ints or an integer tensor, "
                            f"not {type(labels).__name__}")
        items = list(labels)
        bad = [v for v in items if isinstance(v, bool) or not isinstance(v, numbers.Real)
               and not (isinstance(v, torch.Tensor) and v.numel() == 1)]
        if bad:
            raise TypeError(f"{name} must be integers 0..{num_classes - 1}; got {bad[0]!r}")
        labels = torch.as_tensor([float(v) for v in items], dtype=torch.float64)
    if labels.dim() != 1:
        raise ValueError(f"{name} must be one id per image, shape (N,), not {tuple(labels.shape)}"
                         f" (pass integer ids, not one-hot vectors)")
    if labels.is_floating_point():
        whole = torch.isfinite(labels) & (labels == labels.round())
        if not whole.all():
            raise ValueError(f"{name} must be whole numbers 0..{num_classes - 1}; "
                             f"got {labels[~whole][:1].tolist()}")
    elif labels.is_complex():
        raise TypeError(f"{name} must be integer class ids, not complex numbers")
    if len(labels) and (labels.min() < 0 or labels.max() >= num_classes):
        raise ValueError(f"{name} must lie in 0..{num_classes - 1}; got values from "
                         f"{int(labels.min())} to {int(labels.max())}")
    return labels.long()


def as_images(x: torch.Tensor) -> torch.Tensor:
    """Check an image batch and flatten (B, 1, 28, 28) or (B, 28, 28) to (B, 784)."""
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"images must be a torch.Tensor, not {type(x).__name__}")
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
    return x


class CVAE(nn.Module):
    """A Conditional VAE on flattened 28x28 images (introduced in 02_label_conditioning).

    The default is the course's reference architecture: image 784 + one-hot 10 -> 256 -> 256
    -> (mu, logvar) of ``latent_dim``; latent + 10 -> 256 -> 256 -> 784. ``extra_classes``
    adds further one-hot conditions, e.g. ``(3,)`` for thin / medium / thick strokes.
    """

    def __init__(self, latent_dim: int = 16, num_classes: int = 10,
                 hidden_dims: Sequence[int] = (256, 256),
                 extra_classes: Sequence[int] = ()) -> None:
        super().__init__()
        self.latent_dim = _positive_int(latent_dim, "latent_dim")
        self.num_classes = _positive_int(num_classes, "num_classes")
        self.hidden_dims = _sizes(hidden_dims, "hidden_dims")
        self.extra_classes = _sizes(extra_classes, "extra_classes", min_len=0)
        self.cond_dim = self.num_classes + sum(self.extra_classes)
        self.encoder = mlp([IMAGE_DIM + self.cond_dim, *self.hidden_dims])
        self.fc_mu = nn.Linear(self.hidden_dims[-1], self.latent_dim)
        self.fc_logvar = nn.Linear(self.hidden_dims[-1], self.latent_dim)
        self.decoder = mlp([self.latent_dim + self.cond_dim, *self.hidden_dims[::-1], IMAGE_DIM])


    def one_hot(self, labels: LabelsLike, extra: torch.Tensor | None = None) -> torch.Tensor:
        """The condition vector ``y_onehot``: one-hot digit, then one-hot of each extra label."""
        labels = as_labels(labels, self.num_classes)
        parts = [F.one_hot(labels, self.num_classes)]
        if self.extra_classes:
            if extra is None:
                raise ValueError(f"this model is also conditioned on {len(self.extra_classes)} "
                                 f"extra label(s) with {self.extra_classes} classes: pass extra")
            extra = torch.as_tensor(extra)
            extra = extra.reshape(len(extra), -1) if extra.dim() == 1 else extra
            if extra.shape != (len(labels), len(self.extra_classes)):
                raise ValueError(f"extra must have shape ({len(labels)}, "
                                 f"{len(self.extra_classes)}), not {tuple(extra.shape)}")
            for i, count in enumerate(self.extra_classes):
                column = as_labels(extra[:, i], count, name=f"extra[:, {i}]")
                parts.append(F.one_hot(column, count))
        elif extra is not None:
            raise ValueError("this model is conditioned on the digit only: do not pass extra")
        return torch.cat(parts, dim=1).float().to(self.fc_mu.weight.device)

    def _check_condition(self, y_onehot: torch.Tensor, batch: int, what: str) -> None:
        """Raise if ``y_onehot`` does not hold one condition row per item of the batch."""
        check_tensor(y_onehot, "y_onehot")
        if y_onehot.dim() != 2 or y_onehot.shape[1] != self.cond_dim:
            raise ValueError(f"y_onehot must have shape (batch, {self.cond_dim}), not "
                             f"{tuple(y_onehot.shape)}; build it with model.one_hot(labels)")
        if len(y_onehot) != batch:
            raise ValueError(f"{batch} {what} but {len(y_onehot)} labels: "
                             f"give every item exactly one label")

    def encode(self, x: torch.Tensor, y_onehot: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Map images and their labels to the mean and log-variance of q(z | x, y)."""
        x = as_images(x)
        self._check_condition(y_onehot, len(x), "images")
        return self._encode(x, y_onehot)

    def _encode(self, x: torch.Tensor, y_onehot: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``encode`` without the input checks, for the training loop's already-checked data."""
        h = F.relu(self.encoder(torch.cat([x, y_onehot], dim=1)))
        return self.fc_mu(h), self.fc_logvar(h)

    def reparameterize(self, mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
        """Draw z = mu + sigma * eps with eps ~ N(0, I), so gradients reach mu and logvar."""
        if check_tensor(mu, "mu").shape != check_tensor(logvar, "logvar").shape:
            raise ValueError(f"mu and logvar must have the same shape, not {tuple(mu.shape)} "
                             f"and {tuple(logvar.shape)}")
        return self._reparameterize(mu, logvar)

    @staticmethod
    def _reparameterize(mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
        """``reparameterize`` without the input checks, for the training loop."""
        return mu + torch.exp(0.5 * logvar) * torch.randn_like(mu)

    def decode_logits(self, z: torch.Tensor, y_onehot: torch.Tensor) -> torch.Tensor:
        """Pixel logits (before the sigmoid) for latent codes and labels."""
        if check_tensor(z, "z").dim() != 2 or z.shape[1] != self.latent_dim:
            raise ValueError(f"z must have shape (batch, latent_dim={self.latent_dim}), "
                             f"not {tuple(z.shape)}")
        self._check_condition(y_onehot, len(z), "latent codes")
        return self._decode_logits(z, y_onehot)

    def _decode_logits(self, z: torch.Tensor, y_onehot: torch.Tensor) -> torch.Tensor:
        """``decode_logits`` without the input checks, for the training loop."""
        return self.decoder(torch.cat([z, y_onehot], dim=1))

    def decode(self, z: torch.Tensor, y_onehot: torch.Tensor) -> torch.Tensor:
        """Pixel intensities in [0, 1], shape (batch, 784), for latent codes and labels."""
        return torch.sigmoid(self.decode_logits(z, y_onehot))

    def forward_logits(self, x: torch.Tensor, labels: LabelsLike,
                       extra: torch.Tensor | None = None
                       ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Encode, sample z and decode; return (pixel logits, mu, logvar) for a stable loss."""
        y_onehot = self.one_hot(labels, extra)
        mu, logvar = self.encode(x, y_onehot)
        z = self.reparameterize(mu, logvar)
        return self.decode_logits(z, y_onehot), mu, logvar

    def forward(self, x: torch.Tensor, labels: LabelsLike, extra: torch.Tensor | None = None
                ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Return (reconstruction in [0, 1], mu, logvar) for images and integer labels."""
        logits, mu, logvar = self.forward_logits(x, labels, extra)
        return torch.sigmoid(logits), mu, logvar

    @torch.no_grad()
    def generate(self, labels: LabelsLike, z: torch.Tensor | None = None,
                 extra: torch.Tensor | None = None, temperature: float = 1.0) -> torch.Tensor:
        """Decode one image per label from ``z`` (default: z ~ N(0, temperature^2 I))."""
        y_onehot = self.one_hot(labels, extra)
        temperature = check_temperature(temperature)
        if z is None:
            z = temperature * torch.randn(len(y_onehot), self.latent_dim)
        check_tensor(z, "z")
        z = z.reshape(1, -1) if z.dim() == 1 else z
        if z.shape[-1] == self.latent_dim and len(z) == 1 and len(y_onehot) > 1:
            z = z.expand(len(y_onehot), -1)
        if not torch.isfinite(z).all():
            raise ValueError("z contains NaN or infinite values")
        was_training = self.training
        self.eval()
        try:
            return self.decode(z.to(y_onehot.device, torch.float32), y_onehot)
        finally:
            self.train(was_training)


class SimpleCVAE(CVAE):
    """The exercise architecture of 06_recode_from_scratch: 794 -> 256 -> 128 and back."""

    def __init__(self, latent_dim: int = 16, num_classes: int = 10,
                 extra_classes: Sequence[int] = ()) -> None:
        super().__init__(latent_dim, num_classes, hidden_dims=(256, 128),
                         extra_classes=extra_classes)



class VAE(CVAE):
    """An unconditional VAE (01_vae_fundamentals): it is given no label information at all.

    It reuses the CVAE's code with a single class: every image gets the same constant
    "label", which is only a fixed extra input, so the model cannot be told which digit to draw.
    """

    def __init__(self, latent_dim: int = 16, hidden_dims: Sequence[int] = (256, 256)) -> None:
        super().__init__(latent_dim, num_classes=1, hidden_dims=hidden_dims)

    def one_hot(self, labels: LabelsLike, extra: torch.Tensor | None = None) -> torch.Tensor:
        """The same constant condition for every item: the labels' values are ignored."""
        return torch.ones(len(as_labels(labels, 10)), 1, device=self.fc_mu.weight.device)
