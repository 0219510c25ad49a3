"""The loss: stable BCE from logits, closed-form KL, beta and warm-up."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch.distributions import Normal, kl_divergence as torch_kl

from cvae_lib.losses import cvae_loss, kl_divergence, kl_weight, reconstruction_loss


def test_reconstruction_matches_bce_of_sigmoid(mnist_small):
    x, _ = mnist_small
    logits = torch.randn(8, 784)
    expected = F.binary_cross_entropy(torch.sigmoid(logits), x[:8], reduction="sum")
    assert torch.allclose(reconstruction_loss(logits, x[:8]), expected, rtol=1e-5)


def test_reconstruction_stays_finite_when_the_sigmoid_saturates():
    x = torch.tensor([[1.0, 0.0]])
    logits = torch.tensor([[-200.0, 200.0]])  # confidently wrong: sigmoid is exactly 0 and 1
    loss = reconstruction_loss(logits, x)
    assert torch.isfinite(loss) and abs(loss.item() - 400.0) < 1e-3
    clamped = F.binary_cross_entropy(torch.sigmoid(logits), x, reduction="sum")
    assert clamped.item() == 200.0  # torch clamps log(0) to -100: the naive loss is wrong


def test_kl_matches_torch_distributions():
    torch.manual_seed(0)
    mu, logvar = torch.randn(5, 16), torch.randn(5, 16)
    q = Normal(mu, torch.exp(0.5 * logvar))
    p = Normal(torch.zeros_like(mu), torch.ones_like(mu))
    assert torch.allclose(kl_divergence(mu, logvar), torch_kl(q, p).sum(), rtol=1e-5)
    assert kl_divergence(torch.zeros(3, 4), torch.zeros(3, 4)).item() == 0


def test_total_is_recon_plus_beta_kl():
    torch.manual_seed(0)
    logits, x = torch.randn(4, 784), torch.rand(4, 784)
    mu, logvar = torch.randn(4, 16), torch.randn(4, 16)
    terms = cvae_loss(logits, x, mu, logvar, beta=4.0)
    assert torch.allclose(terms.total, terms.recon + 4.0 * terms.kl)


def test_kl_warmup_rises_linearly_to_beta():
    assert [kl_weight(s, 4, beta=2.0) for s in (0, 1, 2, 4, 10)] == [0, 0.5, 1.0, 2.0, 2.0]
    assert kl_weight(0, 0) == 1.0
