"""``check_cvae_loss``: compare a student's loss with the closed forms over a range of inputs.

Introduced in 06_recode_from_scratch (see ``cvae_lib.checks``). The loss is evaluated at
several batch and latent sizes on random reconstructions, ``mu`` in [-6, 6] and ``logvar`` in
[-4, 3]; each known mistake is a formula, and the one that matches everywhere is named.
"""

from __future__ import annotations

from typing import Callable

import torch
import torch.nn.functional as F

from cvae_lib.checks.base import (LOGVAR_RANGE, NUM_PIXELS, describe, require, require_callable,
                                  seeded)

LOSS_SHAPES = ((3, 4), (1, 2), (2, 7))  # (batch, latent_dim) of the probes
KL_MU_RANGE = 6.0  # mu of the probes: wide enough for mu^2 to dominate the KL


def _bce(recon: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """Binary cross-entropy summed over pixels and images, in float64."""
    return F.binary_cross_entropy(recon.double(), x.double(), reduction="sum")


def _kl_entries(mu: torch.Tensor, logvar: torch.Tensor,
                variance: Callable[[torch.Tensor], torch.Tensor] = torch.exp) -> torch.Tensor:
    """The entries 1 + logvar - mu^2 - variance(logvar) of the closed-form KL, in float64."""
    mu, logvar = mu.double(), logvar.double()
    return 1 + logvar - mu.pow(2) - variance(logvar)


# What each reconstruction term computes, the right one first: recon, x -> value.
RECON_FORMULAS: dict[str, Callable[[torch.Tensor, torch.Tensor], torch.Tensor]] = {
    "correct": _bce,
    "bce_mean": lambda r, x: _bce(r, x) / r.numel(),
    "bce_per_image": lambda r, x: _bce(r, x) / len(r),
    "no_bce": lambda r, x: torch.zeros((), dtype=torch.float64),
    "bce_sign": lambda r, x: -_bce(r, x),
    "bce_swapped": lambda r, x: _bce(x, r),
    "bce_one_term": lambda r, x: -(x.double() * r.double().log()).sum(),
    "bce_logits": lambda r, x: F.binary_cross_entropy_with_logits(r.double(), x.double(),
                                                                  reduction="sum"),
    "mse": lambda r, x: F.mse_loss(r.double(), x.double(), reduction="sum"),
}

# What each KL term computes, the right one first: mu, logvar -> value.
KL_FORMULAS: dict[str, Callable[[torch.Tensor, torch.Tensor], torch.Tensor]] = {
    "correct": lambda m, lv: -0.5 * _kl_entries(m, lv).sum(),
    "no_kl": lambda m, lv: torch.zeros((), dtype=torch.float64),
    "kl_sign": lambda m, lv: 0.5 * _kl_entries(m, lv).sum(),
    "kl_half": lambda m, lv: -_kl_entries(m, lv).sum(),
    "kl_mean": lambda m, lv: -0.5 * _kl_entries(m, lv).mean(),
    "kl_per_image": lambda m, lv: -0.5 * _kl_entries(m, lv).sum() / len(m),
    "kl_first_image": lambda m, lv: -0.5 * _kl_entries(m, lv)[0].sum(),
    "kl_no_mu2": lambda m, lv: -0.5 * _kl_entries(0 * m, lv).sum(),
    "kl_logvar2": lambda m, lv: -0.5 * _kl_entries(m, lv, lambda v: v.pow(2)).sum(),
    "kl_std": lambda m, lv: -0.5 * _kl_entries(m, lv, lambda v: v.mul(0.5).exp()).sum(),
}


def _close(got: list[float], expected: list[float], scale: float = 0.0) -> bool:
    """Every value within a relative 1e-4 of its expected value (absolute below 1), plus a few
    float32 steps of ``scale``, the size of the loss the value was taken from."""
    return all(abs(g - e) <= 1e-4 * max(1.0, abs(e)) + 1e-6 * scale
               for g, e in zip(got, expected))


class LossProbe:
    """One batch of random inputs of one size, and how the student's loss changes across it:
    the reconstruction term alone (mu = logvar = 0), then the KL term alone (a fixed recon)."""

    def __init__(self, cvae_loss: Callable[..., torch.Tensor], batch: int, latent_dim: int,
                 ) -> None:
        low, high = LOGVAR_RANGE
        self.batch, self.latent_dim, self.cvae_loss = batch, latent_dim, cvae_loss
        self.x = torch.rand(batch, NUM_PIXELS).round()
        self.blurry = 0.001 + 0.998 * torch.rand(batch, NUM_PIXELS)
        self.sharp = torch.where(self.x > 0.5, 0.875, 0.125)  # exact in float32, as is 1 - it
        zeros = torch.zeros(batch, latent_dim)
        means = (2 * torch.rand(batch, latent_dim) - 1) * KL_MU_RANGE
        logvars = low + (high - low) * torch.rand(batch, latent_dim)
        self.cases = [(means, zeros), (zeros, logvars), (means, logvars), (zeros, zeros)]
        self.at_prior = self.loss(self.sharp, self.cases[-1])
        self.got = {"recon": [self.loss(self.blurry, self.cases[-1]) - self.at_prior],
                    "kl": [self.loss(self.sharp, c) - self.at_prior for c in self.cases[:-1]]}

    def loss(self, recon: torch.Tensor, case: tuple[torch.Tensor, torch.Tensor]) -> float:
        """The student's loss as a float, after checking it is a single number."""
        value = self.cvae_loss(recon, self.x, *case)
        require(isinstance(value, torch.Tensor) and value.numel() == 1, "not_scalar",
                got=describe(value))
        return value.item()

    def expected(self, term: str, formula: Callable) -> list[float]:
        """How ``formula`` of ``term`` ("recon" or "kl") changes where the student's was read."""
        if term == "recon":
            return [(formula(self.blurry, self.x) - formula(self.sharp, self.x)).item()]
        values = [formula(*case).item() for case in self.cases]
        return [v - values[-1] for v in values[:-1]]

    def matches(self, term: str, formula: Callable) -> bool:
        """Whether the student's ``term`` equals ``formula`` on this probe."""
        return _close(self.got[term], self.expected(term, formula), abs(self.at_prior))

    def size(self) -> str:
        """The probe's sizes in words."""
        return f"a batch of {self.batch} with latent_dim {self.latent_dim}"


def _name(probes: list[LossProbe], term: str, formulas: dict[str, Callable]) -> str:
    """The key of the first formula that ``term`` equals on every probe, else "<term>_formula"."""
    return next((key for key, formula in formulas.items()
                 if all(p.matches(term, formula) for p in probes)), f"{term}_formula")


def _finding(probes: list[LossProbe], term: str) -> str:
    """What is wrong with a term that matches no known formula: one factor everywhere, right for
    some sizes only, or the values at two cases."""
    correct = (RECON_FORMULAS if term == "recon" else KL_FORMULAS)["correct"]
    ratios = [g / e for p in probes for g, e in zip(p.got[term], p.expected(term, correct))]
    if max(ratios) - min(ratios) < 1e-3 * abs(ratios[0]):
        return f"is {ratios[0]:.3g} times the right value for every input: check the factor"
    right = [p.matches(term, correct) for p in probes]
    if any(right):
        good, bad = probes[right.index(True)], probes[right.index(False)]
        return (f"is right for {good.size()}, but for {bad.size()} it is {bad.got[term][-1]:.3f}, "
                f"expected {bad.expected(term, correct)[-1]:.3f}: don't hard-code a size, sum "
                "over every entry")
    if term == "recon":
        return "does not match the summed binary cross-entropy"
    got, expected = probes[0].got["kl"], probes[0].expected("kl", correct)
    return (f"does not match the closed form. With logvar = 0 and mu != 0 it is {got[0]:.3f} "
            f"(expected {expected[0]:.3f}); with mu = 0 and logvar != 0 it is {got[1]:.3f} "
            f"(expected {expected[1]:.3f})")


def _check_offset(probes: list[LossProbe]) -> None:
    """With mu = 0 and logvar = 0 the KL is 0, so the loss is the summed BCE alone."""
    at_prior = [p.at_prior for p in probes]
    expected = [_bce(p.sharp, p.x).item() for p in probes]
    offset = at_prior[0] - expected[0]
    require(not _close(at_prior, [e + 0.5 * p.batch * p.latent_dim
                                  for e, p in zip(expected, probes)]), "kl_one", kl=offset)
    require(_close(at_prior, expected), "offset", loss=at_prior[0], bce=expected[0],
            offset=offset)


@seeded
def _check_loss(cvae_loss: Callable[..., torch.Tensor]) -> None:
    """The probes of check_cvae_loss: name the reconstruction term, then the KL, then look for
    a constant, over every size of LOSS_SHAPES."""
    probes = [LossProbe(cvae_loss, batch, latent_dim) for batch, latent_dim in LOSS_SHAPES]
    recon_key = _name(probes, "recon", RECON_FORMULAS)
    kl_key = _name(probes, "kl", KL_FORMULAS)
    if (recon_key, kl_key) == ("bce_per_image", "kl_per_image"):
        recon_key = kl_key = "loss_per_image"
    for term, key in (("recon", recon_key), ("kl", kl_key)):
        require(key == "correct", key, **({"finding": _finding(probes, term)}
                                          if key.endswith("_formula") else {}))
    _check_offset(probes)


def check_cvae_loss(cvae_loss: Callable[..., torch.Tensor]) -> None:
    """Check loss(reconstruction, original, mu, logvar) = BCE(sum) + KL(sum), naming slips."""
    require_callable(cvae_loss, "function", "check_cvae_loss(cvae_loss)")
    _check_loss(cvae_loss)
    print("check_cvae_loss: OK (binary cross-entropy summed + KL summed)")
