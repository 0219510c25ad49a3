"""The (conditional) VAE objective: reconstruction plus KL, in nats.

Introduced in 01_vae_fundamentals. Reporting convention, used wherever a number is shown:
**nats per image** = the sum over the 784 pixels (reconstruction) and over the latent
dimensions (KL), averaged over images. Functions here return per-batch *sums*; divide by
the batch size to get nats per image.
"""

from __future__ import annotations

import math
import numbers
from typing import NamedTuple

import torch
import torch.nn.functional as F


class LossTerms(NamedTuple):
    """Total loss and its two parts, each summed over the batch."""

    total: torch.Tensor
    recon: torch.Tensor
    kl: torch.Tensor


def _same_shape(a: object, b: object, names: str) -> None:
    """Raise unless ``a`` and ``b`` are tensors of one shape (``names`` says which)."""
    first, second = names.split(" and ")
    for value, name in ((a, first), (b, second)):
        if not isinstance(value, torch.Tensor):
            raise TypeError(f"{name} must be a torch.Tensor, not {type(value).__name__}")
    if a.shape != b.shape:
        raise ValueError(f"{names} must have the same shape, not {tuple(a.shape)} and "
                         f"{tuple(b.shape)}")


def _check_weight(value: object, name: str) -> float:
    """Return ``value`` if it is a finite number >= 0, else raise."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a number, not {type(value).__name__}")
    if not math.isfinite(value) or value < 0:
        raise ValueError(f"{name} must be a finite number >= 0, not {value!r}")
    return float(value)


def _check_pixels(logits: torch.Tensor, x: torch.Tensor) -> None:
    """Raise unless ``logits`` and ``x`` share a shape and ``x`` holds intensities in [0, 1]."""
    _same_shape(logits, x, "logits and x")
    low, high = torch.aminmax(x.detach()) if x.numel() else (0, 0)
    if low < 0 or high > 1:
        raise ValueError(f"x must hold pixel intensities in [0, 1], not values from "
                         f"{float(low):g} to {float(high):g}")


def reconstruction_loss(logits: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """Bernoulli negative log-likelihood from pixel logits, summed over pixels and batch.

    Same value as ``F.binary_cross_entropy(torch.sigmoid(logits), x, reduction="sum")`` but
    stable: it never takes the log of a sigmoid that has saturated to 0 or 1.
    """
    _check_pixels(logits, x)
    return F.binary_cross_entropy_with_logits(logits, x, reduction="sum")


def kl_divergence(mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """KL(N(mu, exp(logvar)) || N(0, I)) in closed form, summed over dimensions and batch."""
    _same_shape(mu, logvar, "mu and logvar")
    return _kl_sum(mu, logvar)


def _kl_sum(mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """``kl_divergence`` without the input checks."""
    return -0.5 * torch.sum(1 + logvar - mu.pow(2) - logvar.exp())


def cvae_loss(logits: torch.Tensor, x: torch.Tensor, mu: torch.Tensor, logvar: torch.Tensor,
              beta: float = 1.0) -> LossTerms:
    """Negative ELBO with a KL weight ``beta``: total = recon + beta * KL (batch sums)."""
    beta = _check_weight(beta, "beta")
    _check_pixels(logits, x)
    _same_shape(mu, logvar, "mu and logvar")
    return _loss_terms(logits, x, mu, logvar, beta)


def _loss_terms(logits: torch.Tensor, x: torch.Tensor, mu: torch.Tensor, logvar: torch.Tensor,
                beta: float) -> LossTerms:
    """``cvae_loss`` without the input checks, for the training loop's already-checked data."""
    recon = F.binary_cross_entropy_with_logits(logits, x, reduction="sum")
    kl = _kl_sum(mu, logvar)
    return LossTerms(recon + beta * kl, recon, kl)


def kl_weight(step: int, warmup_steps: int, beta: float = 1.0) -> float:
    """KL warm-up: the KL weight rises linearly from 0 to ``beta`` over ``warmup_steps``."""
    for value, name in ((step, "step"), (warmup_steps, "warmup_steps")):
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise ValueError(f"{name} must be an integer >= 0, not {value!r}")
    beta = _check_weight(beta, "beta")
    if warmup_steps <= 0:
        return beta
    return beta * min(1.0, step / warmup_steps)
