"""The checks of notebook 06 pass every correct variant and name the mistake in each wrong one.

Each correct variant is written in another convention (integer or one-hot labels, separate
layers or nn.Sequential, a method or a function, BCE and KL by library call or by hand). Each
wrong variant holds one mistake; its CheckFailure must carry that mistake's key and a phrase
of advice.
"""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch.distributions import Bernoulli, Normal, kl_divergence

from cvae_lib.checks import base as check_base
from cvae_lib.checks import sampler as check_sampler
from cvae_lib.checks import (MISTAKES, CheckFailure, check_cvae_loss, check_reparameterize,
                             check_simple_cvae)

# --- models --------------------------------------------------------------------------------


class SpecCVAE(nn.Module):
    """The exercise's layout: forward takes integer labels, encode/decode take one-hot rows."""

    def __init__(self, latent_dim=16, num_classes=10):
        super().__init__()
        self.latent_dim, self.num_classes = latent_dim, num_classes
        self.encoder_fc1 = nn.Linear(784 + num_classes, 256)
        self.encoder_fc2 = nn.Linear(256, 128)
        self.fc_mu = nn.Linear(128, latent_dim)
        self.fc_logvar = nn.Linear(128, latent_dim)
        self.decoder_fc1 = nn.Linear(latent_dim + num_classes, 128)
        self.decoder_fc2 = nn.Linear(128, 256)
        self.decoder_fc3 = nn.Linear(256, 784)

    def encode(self, x, labels_onehot):
        combined = torch.cat([x, labels_onehot], dim=1)
        h = F.relu(self.encoder_fc2(F.relu(self.encoder_fc1(combined))))
        return self.fc_mu(h), self.fc_logvar(h)

    def reparameterize(self, mu, logvar):
        std = torch.exp(0.5 * logvar)
        return mu + std * torch.randn_like(std)

    def decode(self, z, labels_onehot):
        combined = torch.cat([z, labels_onehot], dim=1)
        h = F.relu(self.decoder_fc2(F.relu(self.decoder_fc1(combined))))
        return torch.sigmoid(self.decoder_fc3(h))

    def forward(self, x, labels):
        labels_onehot = F.one_hot(labels, self.num_classes).float()
        mu, logvar = self.encode(x, labels_onehot)
        return self.decode(self.reparameterize(mu, logvar), labels_onehot), mu, logvar


class SequentialOneHotCVAE(nn.Module):
    """nn.Sequential blocks, own names, one-hot labels in forward, latent_dim required."""

    def __init__(self, latent_dim):
        super().__init__()
        self.body = nn.Sequential(nn.Linear(794, 256), nn.ReLU(), nn.Linear(256, 128), nn.ReLU())
        self.heads = nn.Linear(128, 2 * latent_dim)
        self.generator = nn.Sequential(nn.Linear(latent_dim + 10, 128), nn.ReLU(),
                                       nn.Linear(128, 256), nn.ReLU(), nn.Linear(256, 784),
                                       nn.Sigmoid())

    def encode(self, x, y_onehot):
        return self.heads(self.body(torch.cat((x, y_onehot), 1))).chunk(2, dim=1)

    def decode(self, z, y_onehot):
        return self.generator(torch.cat((z, y_onehot), -1))

    def forward(self, x, y_onehot):
        mu, logvar = self.encode(x, y_onehot)
        z = Normal(mu, logvar.mul(0.5).exp()).rsample()
        return self.decode(z, y_onehot), mu, logvar


def sample_z(mu, logvar):
    """A reparameterize written as a free function."""
    return torch.randn(mu.shape) * torch.sqrt(logvar.exp()) + mu


class EyeHstackCVAE(SpecCVAE):
    """torch.hstack, one-hot rows from torch.eye, latent_dim 2, a free sampling function."""

    def __init__(self, latent_dim=2):
        super().__init__(latent_dim)

    def encode(self, x, labels_onehot):
        h = F.relu(self.encoder_fc2(F.relu(self.encoder_fc1(torch.hstack([x, labels_onehot])))))
        return self.fc_mu(h), self.fc_logvar(h)

    def forward(self, x, labels):
        labels_onehot = torch.eye(10)[labels]
        mu, logvar = self.encode(x, labels_onehot)
        return self.decode(sample_z(mu, logvar), labels_onehot), mu, logvar


class FixedSizeCVAE(SpecCVAE):
    """A constructor without arguments (latent size 8); decodes mu when not training."""

    def __init__(self):
        super().__init__(latent_dim=8)

    def forward(self, x, labels):
        labels_onehot = F.one_hot(labels.long(), num_classes=10).to(x.dtype)
        mu, logvar = self.encode(x, labels_onehot)
        z = self.reparameterize(mu, logvar) if self.training else mu
        return self.decode(z, labels_onehot), mu, logvar


class IntegerLabelsEverywhereCVAE(SpecCVAE):
    """encode and decode take integer labels and build the one-hot rows themselves."""

    def encode(self, x, labels):
        return super().encode(x, F.one_hot(labels, 10).float())

    def decode(self, z, labels):
        return super().decode(z, F.one_hot(labels, 10).float())

    def forward(self, x, labels):
        mu, logvar = self.encode(x, labels)
        return self.decode(self.reparameterize(mu, logvar), labels), mu, logvar


class EncoderDim0(SpecCVAE):
    def encode(self, x, labels_onehot):
        h = F.relu(self.encoder_fc2(F.relu(self.encoder_fc1(torch.cat([x, labels_onehot])))))
        return self.fc_mu(h), self.fc_logvar(h)


class EncoderVstack(SpecCVAE):
    def encode(self, x, labels_onehot):
        h = F.relu(self.encoder_fc2(F.relu(self.encoder_fc1(torch.vstack([x, labels_onehot])))))
        return self.fc_mu(h), self.fc_logvar(h)


class DecoderDim0(SpecCVAE):
    def decode(self, z, labels_onehot):
        h = F.relu(self.decoder_fc2(F.relu(self.decoder_fc1(torch.cat([z, labels_onehot], 0)))))
        return torch.sigmoid(self.decoder_fc3(h))


class Encoder784(SpecCVAE):
    def __init__(self, latent_dim=16):
        super().__init__(latent_dim)
        self.encoder_fc1 = nn.Linear(784, 256)


class DecoderNoPlus10(SpecCVAE):
    def __init__(self, latent_dim=16):
        super().__init__(latent_dim)
        self.decoder_fc1 = nn.Linear(latent_dim, 128)


class EncoderZeroLabel(SpecCVAE):
    def encode(self, x, labels_onehot):
        return super().encode(x, torch.zeros_like(labels_onehot))


class EncoderNoConcat(SpecCVAE):
    def encode(self, x, labels_onehot):
        h = F.relu(self.encoder_fc2(F.relu(self.encoder_fc1(x))))
        return self.fc_mu(h), self.fc_logvar(h)


class DecoderZeroLabel(SpecCVAE):
    def decode(self, z, labels_onehot):
        return super().decode(z, torch.zeros_like(labels_onehot))


class DecoderNoConcat(SpecCVAE):
    def decode(self, z, labels_onehot):
        h = F.relu(self.decoder_fc2(F.relu(self.decoder_fc1(z))))
        return torch.sigmoid(self.decoder_fc3(h))


class DecoderBadHidden(SpecCVAE):
    def __init__(self, latent_dim=16):
        super().__init__(latent_dim)
        self.decoder_fc2 = nn.Linear(64, 256)


class NoSigmoid(SpecCVAE):
    def decode(self, z, labels_onehot):
        h = F.relu(self.decoder_fc2(F.relu(self.decoder_fc1(torch.cat([z, labels_onehot], 1)))))
        return self.decoder_fc3(h)


def ending_with(output):
    """A SpecCVAE whose decoder ends with ``output`` of decoder_fc3's values, not a sigmoid."""

    class Ending(SpecCVAE):
        def decode(self, z, labels_onehot):
            combined = torch.cat([z, labels_onehot], dim=1)
            return output(self.decoder_fc3(F.relu(self.decoder_fc2(F.relu(
                self.decoder_fc1(combined))))))

    return Ending


class LinearInRange(NoSigmoid):
    """No sigmoid, but decoder_fc3 made small around 0.5, so its values lie in [0, 1]."""

    def __init__(self, latent_dim=16):
        super().__init__(latent_dim)
        with torch.no_grad():
            self.decoder_fc3.weight.mul_(0.05)
            self.decoder_fc3.bias.fill_(0.5)


class OneHotNoNumClasses(SpecCVAE):
    def forward(self, x, labels):
        labels_onehot = F.one_hot(labels).float()
        mu, logvar = self.encode(x, labels_onehot)
        return self.decode(self.reparameterize(mu, logvar), labels_onehot), mu, logvar


class ReturnsMuFirst(SpecCVAE):
    def forward(self, x, labels):
        reconstruction, mu, logvar = super().forward(x, labels)
        return mu, logvar, reconstruction


class DecodesMu(SpecCVAE):
    def forward(self, x, labels):
        labels_onehot = F.one_hot(labels, 10).float()
        mu, logvar = self.encode(x, labels_onehot)
        return self.decode(mu, labels_onehot), mu, logvar


class EncodeOneTensor(SpecCVAE):
    def encode(self, x, labels_onehot):
        return torch.cat(super().encode(x, labels_onehot), dim=1)


class EncodeRaises(SpecCVAE):
    def encode(self, x, labels_onehot):
        raise ValueError("labels_onehot must be a float tensor")


class IntegerLabelsEncodeRaises(IntegerLabelsEverywhereCVAE):
    def encode(self, x, labels):
        F.one_hot(labels, 10).float()
        raise ValueError("the encoder is not written yet")


class NoDecode(nn.Module):
    def __init__(self, latent_dim=16):
        super().__init__()
        self.inner = SpecCVAE(latent_dim)
        self.encode = self.inner.encode

    def forward(self, x, labels):
        return self.inner(x, labels)


class NeedsHiddenSize(SpecCVAE):
    def __init__(self, latent_dim, hidden_dim):
        super().__init__(latent_dim)


# --- reparameterize ------------------------------------------------------------------------


def normal_sample(mu, logvar):
    return Normal(mu, torch.exp(0.5 * logvar)).sample()


def normal_noise_only(mu, logvar):
    return mu + torch.normal(torch.zeros_like(mu), torch.exp(0.5 * logvar))


def seeded_inside(mu, logvar):
    torch.manual_seed(1)
    return mu + torch.exp(0.5 * logvar) * torch.randn_like(mu)


def centred_uniform(mu, logvar):
    return mu + torch.exp(0.5 * logvar) * (torch.rand_like(mu) - 0.5) * math.sqrt(12)


def std_then_normal_(mu, logvar):
    std = logvar.exp().sqrt()
    return torch.empty_like(std).normal_().mul(std).add(mu)


def batch_standardized(mu, logvar):
    """Noise standardized over the batch: right for a large batch, not for a small one."""
    epsilon = torch.randn_like(mu)
    centred = epsilon - epsilon.mean(dim=0)
    epsilon = centred / (centred.pow(2).sum(dim=0) / (len(mu) - 1)).sqrt()
    return mu + torch.exp(0.5 * logvar) * epsilon


def two_point_noise(mu, logvar):
    """Noise of mean 0, variance 1 and 4.6% beyond 2 std (as a normal), but only four values."""
    far = torch.rand_like(mu) < 0.0455
    size = torch.where(far, 2.0001, math.sqrt((1 - 0.0455 * 2.0001 ** 2) / 0.9545))
    return mu + torch.exp(0.5 * logvar) * size * torch.randn_like(mu).sign()


# --- cvae_loss -----------------------------------------------------------------------------


def bce(r, x):
    return F.binary_cross_entropy(r, x, reduction="sum")


def kl(mu, logvar):
    return -0.5 * torch.sum(1 + logvar - mu.pow(2) - logvar.exp())


def spec_loss(reconstruction, original, mu, logvar):
    recon_loss = F.binary_cross_entropy(reconstruction, original, reduction="sum")
    kl_loss = -0.5 * torch.sum(1 + logvar - mu.pow(2) - logvar.exp())
    return recon_loss + kl_loss


def by_hand_loss(r, x, mu, logvar):
    recon = -(x * torch.log(r) + (1 - x) * torch.log(1 - r)).sum()
    q, prior = Normal(mu, (0.5 * logvar).exp()), Normal(torch.zeros_like(mu), 1.0)
    return recon + kl_divergence(q, prior).sum()


class SelfLatentDimCVAE(SpecCVAE):
    """Draws its noise with the model's own latent size, as the spec's sampling code does."""

    def reparameterize(self, mu, logvar):
        epsilon = torch.randn(mu.size(0), self.latent_dim)
        return mu + torch.exp(0.5 * logvar) * epsilon


def distributions_loss(r, x, mu, logvar):
    recon = -Bernoulli(probs=r).log_prob(x).sum()
    return recon + 0.5 * (mu ** 2 + logvar.exp() - 1 - logvar).sum()


def per_row_loss(r, x, mu, logvar):
    recon = F.binary_cross_entropy(r, x, reduction="none").sum(dim=1)
    std = torch.exp(0.5 * logvar)
    kl_rows = 0.5 * (std ** 2 + mu ** 2 - 1 - torch.log(std ** 2)).sum(dim=1)
    return (recon + kl_rows).sum()


def module_loss(r, x, mu, logvar):
    return nn.BCELoss(reduction="sum")(r, x) + kl(mu, logvar)


def logits_bce(r, x, mu, logvar):
    return F.binary_cross_entropy_with_logits(r, x, reduction="sum") + kl(mu, logvar)


def kl_of_means(r, x, mu, logvar):
    """The closed form applied to the batch's mean mu and logvar: right when all entries agree."""
    mean_mu, mean_logvar = mu.mean(), logvar.mean()
    return bce(r, x) - 0.5 * mu.numel() * (1 + mean_logvar - mean_mu ** 2 - mean_logvar.exp())


def kl_with(variance):
    """A loss whose KL uses ``variance(logvar)`` in place of exp(logvar)."""
    return lambda r, x, m, lv: bce(r, x) - 0.5 * torch.sum(1 + lv - m.pow(2) - variance(lv))


# --- the tables ----------------------------------------------------------------------------

CORRECT = [
    pytest.param(check_simple_cvae, SpecCVAE, id="model: the exercise's layout"),
    pytest.param(check_simple_cvae, SequentialOneHotCVAE, id="model: Sequential, one-hot forward"),
    pytest.param(check_simple_cvae, EyeHstackCVAE, id="model: hstack, torch.eye, latent 2"),
    pytest.param(check_simple_cvae, FixedSizeCVAE, id="model: no constructor args, eval mu"),
    pytest.param(check_simple_cvae, IntegerLabelsEverywhereCVAE, id="model: integer labels"),
    pytest.param(check_reparameterize, SpecCVAE().reparameterize, id="reparam: bound method"),
    pytest.param(check_reparameterize, SelfLatentDimCVAE().reparameterize,
                 id="reparam: randn(batch, self.latent_dim)"),
    pytest.param(check_reparameterize, sample_z, id="reparam: randn(shape) * sqrt(exp)"),
    pytest.param(check_reparameterize, lambda mu, lv: Normal(mu, (0.5 * lv).exp()).rsample(),
                 id="reparam: Normal.rsample"),
    pytest.param(check_reparameterize, std_then_normal_, id="reparam: empty_like().normal_()"),
    pytest.param(check_reparameterize,
                 lambda mu, lv: torch.randn_like(lv) * lv.mul(0.5).exp_() + mu,
                 id="reparam: in-place exp_"),
    pytest.param(check_cvae_loss, spec_loss, id="loss: the exercise's solution"),
    pytest.param(check_cvae_loss, by_hand_loss, id="loss: BCE by hand, kl_divergence"),
    pytest.param(check_cvae_loss, distributions_loss, id="loss: Bernoulli, KL rearranged"),
    pytest.param(check_cvae_loss, per_row_loss, id="loss: per image rows, then summed"),
    pytest.param(check_cvae_loss, module_loss, id="loss: nn.BCELoss module"),
]

WRONG = [
    # check_simple_cvae
    (check_simple_cvae, EncoderDim0, "cat_dim0", "torch.cat([x, labels_onehot], dim=1)"),
    (check_simple_cvae, DecoderDim0, "cat_dim0", "torch.cat([z, labels_onehot], dim=1)"),
    (check_simple_cvae, EncoderVstack, "cat_dim0", "torch.cat([x, labels_onehot], dim=1)"),
    (check_simple_cvae, Encoder784, "encoder_size", "nn.Linear(784 + 10, 256)"),
    (check_simple_cvae, DecoderNoPlus10, "decoder_size", "nn.Linear(latent_dim + 10, 128)"),
    (check_simple_cvae, EncoderZeroLabel, "encoder_no_label", "labels 3 and 8"),
    (check_simple_cvae, EncoderNoConcat, "encoder_no_label", "gets only the pixels"),
    (check_simple_cvae, DecoderZeroLabel, "decoder_no_label", "labels 0 and 7"),
    (check_simple_cvae, DecoderNoConcat, "decoder_no_label", "gets only z"),
    (check_simple_cvae, DecoderBadHidden, "layer_sizes", "latent_dim + 10 -> 128 -> 256 -> 784"),
    (check_simple_cvae, NoSigmoid, "no_sigmoid", "torch.sigmoid"),
    # ... a decoder output in [0, 1] on a small probe, but not a sigmoid of decoder_fc3
    (check_simple_cvae, ending_with(lambda a: a.clamp(0, 1)), "no_sigmoid", "decoder_fc3(h)"),
    (check_simple_cvae, ending_with(lambda a: F.hardtanh(a, 0, 1)), "no_sigmoid",
     "torch.sigmoid(self.decoder_fc3(h))"),
    (check_simple_cvae, ending_with(lambda a: (torch.tanh(a) + 1) / 2), "no_sigmoid",
     "torch.sigmoid(self.decoder_fc3(h))"),
    (check_simple_cvae, ending_with(lambda a: (a / 4 + 0.5).clamp(0, 1)), "no_sigmoid",
     "torch.sigmoid(self.decoder_fc3(h))"),
    (check_simple_cvae, LinearInRange, "no_sigmoid", "torch.sigmoid(self.decoder_fc3(h))"),
    (check_simple_cvae, OneHotNoNumClasses, "one_hot_width", "num_classes=10"),
    (check_simple_cvae, ReturnsMuFirst, "forward_return", "(reconstruction, mu, logvar)"),
    (check_simple_cvae, DecodesMu, "forward_no_sampling", "self.reparameterize(mu, logvar)"),
    (check_simple_cvae, EncodeOneTensor, "shape", "should return (mu, logvar)"),
    (check_simple_cvae, EncodeRaises, "crash", "ValueError: labels_onehot must be a float"),
    (check_simple_cvae, IntegerLabelsEncodeRaises, "crash", "ValueError: the encoder is not"),
    (check_simple_cvae, NoDecode, "missing_method", "a decode method"),
    (check_simple_cvae, NeedsHiddenSize, "constructor", "also needs hidden_dim"),
    # check_reparameterize
    (check_reparameterize, lambda mu, lv: mu + lv.exp() * torch.randn_like(mu),
     "std_exp_logvar", "exp(logvar) is the variance"),
    (check_reparameterize, lambda mu, lv: mu + lv * torch.randn_like(mu), "std_logvar",
     "the log of the variance"),
    (check_reparameterize, lambda mu, lv: mu, "no_noise", "Add noise"),
    (check_reparameterize, lambda mu, lv: mu + 0.5 * (0.5 * lv).exp() * torch.randn_like(mu),
     "noise_scale", "0.5 times exp(0.5 * logvar)"),
    (check_reparameterize, lambda mu, lv: mu + (-0.5 * lv).exp() * torch.randn_like(mu),
     "noise_scale", "torch.exp(0.5 * logvar)"),
    (check_reparameterize, lambda mu, lv: mu + (0.5 * lv).exp() * torch.rand_like(mu),
     "uniform_noise", "torch.rand"),
    (check_reparameterize, centred_uniform, "not_normal", "not 3"),
    (check_reparameterize, lambda mu, lv: mu + (0.5 * lv).exp() * torch.randn(mu.shape[1]),
     "noise_shared_batch", "one value per entry"),
    (check_reparameterize, lambda mu, lv: mu + (0.5 * lv).exp() * torch.randn(len(mu), 1),
     "noise_shared_dims", "one value per entry"),
    (check_reparameterize, lambda mu, lv: torch.normal(mu, (0.5 * lv).exp()), "no_gradient",
     "torch.normal and .sample()"),
    (check_reparameterize, normal_sample, "no_gradient", "torch.normal and .sample()"),
    (check_reparameterize, normal_noise_only, "no_gradient_logvar", "Let logvar get a gradient"),
    (check_reparameterize, lambda mu, lv: mu.detach() + (0.5 * lv).exp() * torch.randn_like(mu),
     "no_gradient_mu", "Don't detach mu"),
    (check_reparameterize, lambda mu, lv: (0.5 * lv).exp() * torch.randn_like(mu), "mu_missing",
     "add mu"),
    (check_reparameterize, seeded_inside, "same_noise_every_call", "torch.manual_seed"),
    (check_reparameterize, lambda mu, lv: mu + (0.5 * lv).exp() + torch.randn_like(mu),
     "reparam_formula", "std away from mu"),
    (check_reparameterize, lambda mu, lv: (mu + torch.randn_like(mu)).sum(dim=1), "shape",
     "shaped like mu"),
    # ... right at one probe point: mu = 3, logvar = log(4) (std 2), 20,000 rows
    (check_reparameterize, lambda mu, lv: mu + 0.5 * lv.exp() * torch.randn_like(mu),
     "std_exp_logvar", "exp(logvar) is the variance"),
    (check_reparameterize, lambda mu, lv: mu + lv * (2 / math.log(4)) * torch.randn_like(mu),
     "std_logvar", "the log of the variance"),
    (check_reparameterize, lambda mu, lv: mu + (lv + 2 - math.log(4)) * torch.randn_like(mu),
     "noise_scale", "At logvar = -4.00 your noise has std"),
    (check_reparameterize, lambda mu, lv: mu + 2 * (lv / math.log(4)) ** 2 * torch.randn_like(mu),
     "noise_scale", "where exp(0.5 * logvar) = 0.135"),
    (check_reparameterize, lambda mu, lv: 3 + (0.5 * lv).exp() * torch.randn_like(mu),
     "mu_missing", "add mu once"),
    (check_reparameterize, lambda mu, lv: mu + (0.5 * lv).exp() * torch.randn_like(mu)
     + (lv - math.log(4)) / 4, "reparam_formula", "At mu = -20, logvar = -4.00"),
    (check_reparameterize, lambda mu, lv: mu + (0.5 * lv).exp() * torch.randn_like(mu)
     * math.sqrt(len(mu) / 20000), "noise_batch", "in 16380 rows"),
    (check_reparameterize, batch_standardized, "noise_batch", "In batches of 1"),
    (check_reparameterize, two_point_noise, "not_normal", "not 3"),
    (check_reparameterize, lambda mu, lv: mu + lv.sqrt() * torch.randn_like(mu), "noise_scale",
     "nan or inf"),
    # check_cvae_loss
    (check_cvae_loss, lambda r, x, m, lv: F.binary_cross_entropy(r, x) + kl(m, lv), "bce_mean",
     "reduction='sum'"),
    (check_cvae_loss, lambda r, x, m, lv: bce(r, x) / len(x) + kl(m, lv), "bce_per_image",
     "Sum the BCE as the KL is"),
    (check_cvae_loss, lambda r, x, m, lv: (bce(r, x) + kl(m, lv)) / len(x), "loss_per_image",
     "Drop the division"),
    (check_cvae_loss, lambda r, x, m, lv: kl(m, lv), "no_bce", "Add the reconstruction term"),
    (check_cvae_loss, lambda r, x, m, lv: (x * r.log() + (1 - x) * (1 - r).log()).sum()
     + kl(m, lv), "bce_sign", "leading minus"),
    (check_cvae_loss, lambda r, x, m, lv: bce(x, r) + kl(m, lv), "bce_swapped",
     "The reconstruction comes first"),
    (check_cvae_loss, logits_bce, "bce_logits", "ends with a sigmoid already"),
    (check_cvae_loss, lambda r, x, m, lv: F.mse_loss(r, x, reduction="sum") + kl(m, lv), "mse",
     "Score pixel probabilities"),
    (check_cvae_loss, lambda r, x, m, lv: bce(r[:1], x[:1]) + kl(m, lv), "recon_formula",
     "for a batch of 3 with latent_dim 4, where"),
    (check_cvae_loss, lambda r, x, m, lv: bce(r, x), "no_kl", "Add kl_loss"),
    (check_cvae_loss, lambda r, x, m, lv: bce(r, x) - kl(m, lv), "kl_sign", "never negative"),
    (check_cvae_loss, lambda r, x, m, lv: bce(r, x) + 2 * kl(m, lv), "kl_half", "0.5 in front"),
    (check_cvae_loss, lambda r, x, m, lv: bce(r, x)
     - 0.5 * torch.mean(1 + lv - m.pow(2) - lv.exp()), "kl_mean", "torch.mean"),
    (check_cvae_loss, lambda r, x, m, lv: bce(r, x)
     - 0.5 * torch.sum(1 + lv - m.pow(2) - lv.exp(), dim=1).mean(), "kl_per_image",
     "Sum the KL over images too"),
    (check_cvae_loss, lambda r, x, m, lv: bce(r, x) + kl(m[0], lv[0]), "kl_first_image",
     "Sum over every image"),
    (check_cvae_loss, lambda r, x, m, lv: bce(r, x) - 0.5 * torch.sum(1 + lv - lv.exp()),
     "kl_no_mu2", "Put back the - mu^2 term"),
    (check_cvae_loss, kl_with(lambda lv: lv.pow(2)), "kl_logvar2", "The variance is exp(logvar):"),
    (check_cvae_loss, kl_with(lambda lv: (0.5 * lv).exp()), "kl_std", "not the std"),
    (check_cvae_loss, lambda r, x, m, lv: bce(r, x) - 0.5 * torch.sum(lv - m.pow(2) - lv.exp()),
     "kl_one", "put back '1 +'"),
    (check_cvae_loss, lambda r, x, m, lv: bce(r, x) + 0.75 * kl(m, lv), "kl_formula",
     "with logvar = 0 and mu != 0"),
    (check_cvae_loss, lambda r, x, m, lv: bce(r, x) - 0.5 * torch.sum(1 + lv - m - lv.exp()),
     "kl_formula", "with logvar = 0 and mu != 0"),
    (check_cvae_loss, lambda r, x, m, lv: (bce(r, x), kl(m, lv)), "not_scalar", "one number"),
    (check_cvae_loss, lambda r, x, m, lv: F.binary_cross_entropy(r, x, reduction="none").sum(1)
     - 0.5 * torch.sum(1 + lv - m.pow(2) - lv.exp(), dim=1), "not_scalar", "one number"),
    (check_cvae_loss, lambda r, x, m, lv: bce(r, x) + kl(m, lv) + 1.0, "offset", "+1.000"),
    # ... right at one point: an all-ink image, r in [0.01, 0.99], a batch of 3, mu = logvar = 0
    (check_cvae_loss, lambda r, x, m, lv: -(x * r.log()).sum() + kl(m, lv), "bce_one_term",
     "(1 - x) * log(1 - r)"),
    (check_cvae_loss, lambda r, x, m, lv: bce(r.clamp(0.01, 0.99), x) + kl(m, lv),
     "recon_formula", "Your reconstruction term is"),
    (check_cvae_loss, lambda r, x, m, lv: 784 * 3 * F.binary_cross_entropy(r, x) + kl(m, lv),
     "recon_formula", "for a batch of 1 with latent_dim 2"),
    (check_cvae_loss, lambda r, x, m, lv: bce(r, x)
     - 0.5 * 12 * torch.mean(1 + lv - m.pow(2) - lv.exp()), "kl_formula",
     "for a batch of 1 with latent_dim 2"),
    (check_cvae_loss, kl_with(lambda lv: 1 + lv), "kl_formula", "with mu = 0 and logvar != 0"),
    (check_cvae_loss, lambda r, x, m, lv: bce(r, x) - 0.5 * torch.sum(1 + lv - m.abs() - lv.exp()),
     "kl_formula", "with logvar = 0 and mu != 0"),
    (check_cvae_loss, lambda r, x, m, lv: bce(r, x) + 0.5 * torch.sum(m.pow(2) + lv.pow(2) / 2),
     "kl_formula", "with mu = 0 and logvar != 0"),
    (check_cvae_loss, kl_of_means, "kl_formula", "Your KL is"),
]


@pytest.mark.parametrize("check, candidate", CORRECT)
def test_correct_variant_passes(check, candidate, capsys):
    check(candidate)
    assert "OK" in capsys.readouterr().out


@pytest.mark.parametrize("check, candidate, key, phrase", WRONG,
                         ids=[f"{c.__name__}: {key}" for c, _, key, _ in WRONG])
def test_wrong_variant_names_its_mistake(check, candidate, key, phrase):
    with pytest.raises(CheckFailure) as failure:
        check(candidate)
    assert (failure.value.key, failure.value.label) == (key, MISTAKES[key]), str(failure.value)
    assert phrase in str(failure.value)


def test_right_variants_pass_under_any_seed(monkeypatch, capsys):
    """Under 20 other seeds no right variant fails, and no statistic comes near its limit."""
    worst = {}
    require_z = check_sampler._require_z

    def recording(z, key, **facts):
        worst[key] = max(worst.get(key, 0.0), abs(float(z)) / check_sampler.Z_LIMIT)
        require_z(z, key, **facts)

    monkeypatch.setattr(check_sampler, "_require_z", recording)
    for seed in range(1, 21):
        monkeypatch.setattr(check_base, "SEED", seed)
        for param in CORRECT:
            check, candidate = param.values
            check(candidate)
    with capsys.disabled():
        print("\nworst statistic / its limit over 20 seeds:",
              ", ".join(f"{key} {ratio:.2f}" for key, ratio in sorted(worst.items())))
    assert set(worst) == {"reparam_formula", "noise_batch", "noise_scale", "not_normal"}
    assert max(worst.values()) < 1


def test_tables_are_large_and_reach_every_mistake():
    assert len(CORRECT) >= 10 and len(WRONG) >= 25
    assert {key for _, _, key, _ in WRONG} == set(MISTAKES)


def test_labels_are_short_distinct_assertion_errors():
    assert all(0 < len(label) <= 30 for label in MISTAKES.values())
    assert len(set(MISTAKES.values())) == len(MISTAKES)
    failure = CheckFailure("kl_sign", "message")
    assert isinstance(failure, AssertionError) and str(failure) == "message"
    assert failure.label == "KL sign"
    with pytest.raises(KeyError, match="no mistake named 'kl_typo'"):
        CheckFailure("kl_typo", "message")


@pytest.mark.parametrize("check, what", [(check_simple_cvae, "class"),
                                         (check_reparameterize, "function"),
                                         (check_cvae_loss, "function")])
@pytest.mark.parametrize("bad", [3, "SimpleCVAE", None])
def test_non_callables_are_type_errors(check, what, bad):
    with pytest.raises(TypeError, match=f"pass your {what} itself"):
        check(bad)


def test_a_model_instance_is_a_type_error():
    with pytest.raises(TypeError, match=r"check_simple_cvae\(SimpleCVAE\)"):
        check_simple_cvae(SpecCVAE())


def test_unfinished_code_raises_its_own_todo():
    def todo(*args):
        raise NotImplementedError("TODO: write me")

    for check in (check_reparameterize, check_cvae_loss):
        with pytest.raises(NotImplementedError, match="TODO"):
            check(todo)


def test_checks_leave_the_random_state_and_threads_alone(capsys):
    threads = torch.get_num_threads()
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    check_simple_cvae(SpecCVAE)
    check_reparameterize(sample_z)
    check_cvae_loss(spec_loss)
    assert torch.equal(torch.rand(3), expected) and torch.get_num_threads() == threads
