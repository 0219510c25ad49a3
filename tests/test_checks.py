"""Each check accepts correct variants and names the one mistake in each wrong variant."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from cvae_lib.checks import check_cvae_loss, check_reparameterize, check_simple_cvae


def good_reparam(mu, logvar):
    return mu + torch.exp(0.5 * logvar) * torch.randn_like(mu)


def dist_reparam(mu, logvar):
    return torch.distributions.Normal(mu, (0.5 * logvar).exp()).rsample()


WRONG_REPARAM = {
    "exp(logvar)": (lambda mu, lv: mu + lv.exp() * torch.randn_like(mu), r"exp\(0\.5 \* logvar\)"),
    "no noise": (lambda mu, lv: mu, "unchanged"),
    "half noise": (lambda mu, lv: mu + 0.5 * (0.5 * lv).exp() * torch.randn_like(mu),
                   "standard normal"),
    "uniform": (lambda mu, lv: mu + (0.5 * lv).exp() * torch.rand_like(mu), "standard normal"),
    "shared batch": (lambda mu, lv: mu + (0.5 * lv).exp() * torch.randn(mu.shape[1]),
                     "same noise"),
    "shared dims": (lambda mu, lv: mu + (0.5 * lv).exp() * torch.randn(mu.shape[0], 1),
                    "latent dimension"),
}


@pytest.mark.parametrize("fn", [good_reparam, dist_reparam])
def test_reparameterize_accepts_correct_variants(fn, capsys):
    check_reparameterize(fn)
    assert "OK" in capsys.readouterr().out


def test_reparameterize_accepts_a_bound_method(capsys):
    class Model(nn.Module):
        def reparameterize(self, mu, logvar):
            return mu + torch.randn_like(mu) * logvar.mul(0.5).exp()

    check_reparameterize(Model().reparameterize)
    assert "OK" in capsys.readouterr().out


@pytest.mark.parametrize("name", sorted(WRONG_REPARAM))
def test_reparameterize_names_the_mistake(name):
    fn, message = WRONG_REPARAM[name]
    with pytest.raises(AssertionError, match=message):
        check_reparameterize(fn)


def kl(mu, logvar):
    return -0.5 * torch.sum(1 + logvar - mu.pow(2) - logvar.exp())


def good_loss(recon, x, mu, logvar):
    return F.binary_cross_entropy(recon, x, reduction="sum") + kl(mu, logvar)


def dist_loss(recon, x, mu, logvar):
    q = torch.distributions.Normal(mu, (0.5 * logvar).exp())
    p = torch.distributions.Normal(torch.zeros_like(mu), torch.ones_like(mu))
    bce = -torch.distributions.Bernoulli(probs=recon).log_prob(x).sum()
    return bce + torch.distributions.kl_divergence(q, p).sum()


WRONG_LOSS = {
    "mean": (lambda r, x, m, lv: F.binary_cross_entropy(r, x) + kl(m, lv), "averaged"),
    "sign": (lambda r, x, m, lv: F.binary_cross_entropy(r, x, reduction="sum") - kl(m, lv),
             "wrong sign"),
    "no one": (lambda r, x, m, lv: F.binary_cross_entropy(r, x, reduction="sum")
               - 0.5 * torch.sum(lv - m.pow(2) - lv.exp()), "'1 \\+'"),
    "no kl": (lambda r, x, m, lv: F.binary_cross_entropy(r, x, reduction="sum"), "no KL"),
}


@pytest.mark.parametrize("fn", [good_loss, dist_loss])
def test_loss_accepts_correct_variants(fn, capsys):
    check_cvae_loss(fn)
    assert "OK" in capsys.readouterr().out


@pytest.mark.parametrize("name", sorted(WRONG_LOSS))
def test_loss_names_the_mistake(name):
    fn, message = WRONG_LOSS[name]
    with pytest.raises(AssertionError, match=message):
        check_cvae_loss(fn)


class GoodCVAE(nn.Module):
    """A correct SimpleCVAE with its own layer names and F.one_hot-free inputs."""

    def __init__(self, latent_dim=2, enc_cat=1, dec_cat=1, enc_label=True, dec_label=True,
                 sigmoid=True, enc_in=794):
        super().__init__()
        self.opts = (enc_cat, dec_cat, enc_label, dec_label, sigmoid)
        self.trunk = nn.Sequential(nn.Linear(enc_in, 256), nn.ReLU(), nn.Linear(256, 128),
                                   nn.ReLU())
        self.mean_head = nn.Linear(128, latent_dim)
        self.logvar_head = nn.Linear(128, latent_dim)
        self.up = nn.Sequential(nn.Linear(latent_dim + 10, 128), nn.ReLU(),
                                nn.Linear(128, 256), nn.ReLU(), nn.Linear(256, 784))

    def encode(self, x, y):
        enc_cat, _, enc_label, _, _ = self.opts
        y = y if enc_label else torch.zeros_like(y)
        h = self.trunk(torch.cat([x, y], dim=enc_cat))
        return self.mean_head(h), self.logvar_head(h)

    def decode(self, z, y):
        _, dec_cat, _, dec_label, sigmoid = self.opts
        y = y if dec_label else torch.zeros_like(y)
        out = self.up(torch.cat([z, y], dim=dec_cat))
        return torch.sigmoid(out) if sigmoid else out

    def forward(self, x, y):
        mu, logvar = self.encode(x, y)
        return self.decode(good_reparam(mu, logvar), y), mu, logvar


def variant(**options):
    """A class whose constructor takes only latent_dim, with one mistake built in."""
    return lambda latent_dim: GoodCVAE(latent_dim, **options)


def test_simple_cvae_accepts_correct_model(capsys):
    check_simple_cvae(GoodCVAE)
    assert "OK" in capsys.readouterr().out


@pytest.mark.parametrize("options, message", [
    ({"enc_cat": 0}, "dim=1"), ({"dec_cat": 0}, "dim=1"), ({"enc_in": 784}, "794"),
    ({"enc_label": False}, "encoder ignores the label"),
    ({"dec_label": False}, "decoder ignores the label"), ({"sigmoid": False}, "sigmoid")])
def test_simple_cvae_names_the_mistake(options, message):
    with pytest.raises(AssertionError, match=message):
        check_simple_cvae(variant(**options))

