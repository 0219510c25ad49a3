"""The (conditional) VAE objective, the negative ELBO: reconstruction plus KL, in nats.

Introduced in 01_vae_fundamentals. Reporting convention, used wherever a number is shown:
**nats per image** = the sum over the 784 pixels (reconstruction) and over the latent
dimensions (KL), averaged over images. Functions here return per-batch *sums*; divide by
the batch size to get nats per image.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
import torch.nn.functional as F


class LossTerms(NamedTuple):
    """Total loss and its two parts, each summed over the batch."""

    total: torch.Tensor
    recon: torch.Tensor
    kl: torch.Tensor


def reconstruction_loss(logits: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """Bernoulli negative log-likelihood of the pixels, summed over pixels and batch.

    The same value as ``F.binary_cross_entropy(torch.sigmoid(logits), x, reduction="sum")``,
    but it never takes the log of a sigmoid that has rounded to exactly 0 or 1.
    """
    return F.binary_cross_entropy_with_logits(logits, x, reduction="sum")


def kl_divergence(mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """KL(N(mu, exp(logvar)) || N(0, I)) in closed form (Kingma & Welling 2014, appendix B)."""
    return -0.5 * torch.sum(1 + logvar - mu.pow(2) - logvar.exp())


def cvae_loss(logits: torch.Tensor, x: torch.Tensor, mu: torch.Tensor, logvar: torch.Tensor,
              beta: float = 1.0) -> LossTerms:
    """Negative ELBO with a KL weight ``beta``: total = recon + beta * KL (batch sums)."""
    recon = reconstruction_loss(logits, x)
    kl = kl_divergence(mu, logvar)
    return LossTerms(recon + beta * kl, recon, kl)


def kl_weight(step: int, warmup_steps: int, beta: float = 1.0) -> float:
    """KL warm-up: the weight rises linearly from 0 to ``beta`` over ``warmup_steps`` steps."""
    if warmup_steps <= 0:
        return beta
    return beta * min(1.0, step / warmup_steps)
