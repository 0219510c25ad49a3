"""``check_cvae_loss`` (see 06_recode_from_scratch): each known mistake is a formula; the one
that matches the student's loss at every size of random input is named."""

from __future__ import annotations

from typing import Callable

import torch
import torch.nn.functional as F

from cvae_lib.checks.base import NUM_PIXELS, checking, describe, require

LOSS_SHAPES = ((3, 4), (1, 2), (2, 7))  # (batch, latent_dim) of the probes
MU_RANGE, LOGVAR_RANGE = 6.0, (-4.0, 3.0)  # mu wide enough for mu^2 to dominate the KL
KL_CASES = (", with logvar = 0 and mu != 0", ", with mu = 0 and logvar != 0", ", with both")
Formula = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


def _bce(recon: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """Binary cross-entropy summed over pixels and images, in float64."""
    return F.binary_cross_entropy(recon.double(), x.double(), reduction="sum")


def _kl_entries(mu: torch.Tensor, logvar: torch.Tensor, variance: Callable = torch.exp,
                ) -> torch.Tensor:
    """The entries 1 + logvar - mu^2 - variance(logvar) of the closed-form KL, in float64."""
    mu, logvar = mu.double(), logvar.double()
    return 1 + logvar - mu.pow(2) - variance(logvar)


# What each reconstruction term computes, the right one first: recon, x -> value.
RECON_FORMULAS: dict[str, Formula] = {
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
KL_FORMULAS: dict[str, Formula] = {
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
FORMULAS = {"recon": RECON_FORMULAS, "kl": KL_FORMULAS}


def _close(got: float, expected: float, scale: float) -> bool:
    """Within 1e-4 (relative above 1), plus float32 steps of ``scale``, the loss's size."""
    return abs(got - expected) <= 1e-4 * max(1.0, abs(expected)) + 1e-6 * scale


class LossProbe:
    """Random inputs of one size, and how the student's loss changes across them: the
    reconstruction term alone (mu = logvar = 0), then the KL term alone (a fixed recon)."""

    def __init__(self, cvae_loss: Callable[..., torch.Tensor], batch: int, latent: int) -> None:
        low, high = LOGVAR_RANGE
        self.size = f"a batch of {batch} with latent_dim {latent}"
        self.x = torch.rand(batch, NUM_PIXELS).round()
        self.blurry = 0.001 + 0.998 * torch.rand(batch, NUM_PIXELS)
        self.sharp = torch.where(self.x > 0.5, 0.875, 0.125)  # exact in float32, as is 1 - it
        zeros = torch.zeros(batch, latent)
        means = (2 * torch.rand(batch, latent) - 1) * MU_RANGE
        logvars = low + (high - low) * torch.rand(batch, latent)
        self.cases = [(means, zeros), (zeros, logvars), (means, logvars), (zeros, zeros)]
        values = [cvae_loss(self.blurry, self.x, *self.cases[-1])]
        values += [cvae_loss(self.sharp, self.x, *case) for case in self.cases]
        for value in values:
            require(isinstance(value, torch.Tensor) and value.numel() == 1, "not_scalar",
                    got=describe(value))
        *changes, self.at_prior = [value.item() for value in values]
        self.got = {"recon": [changes[0] - self.at_prior],
                    "kl": [change - self.at_prior for change in changes[1:]]}

    def mismatch(self, term: str, formula: Formula) -> tuple[int, float, float] | None:
        """The first case where ``term`` ("recon" or "kl") differs from ``formula``: (case,
        got, expected)."""
        if term == "recon":
            want = [(formula(self.blurry, self.x) - formula(self.sharp, self.x)).item()]
        else:
            *values, prior = [formula(*case).item() for case in self.cases]
            want = [value - prior for value in values]
        return next(((case, got, expected) for case, (got, expected)
                     in enumerate(zip(self.got[term], want))
                     if not _close(got, expected, self.at_prior)), None)


def _name(probes: list[LossProbe], term: str) -> str:
    """The key of the first formula ``term`` equals on every probe, else "<term>_formula"."""
    return next((key for key, formula in FORMULAS[term].items()
                 if not any(probe.mismatch(term, formula) for probe in probes)), f"{term}_formula")


def _finding(probes: list[LossProbe], term: str) -> str:
    """Where ``term`` first differs from the right formula, in words ("" if nowhere)."""
    for probe in probes:
        found = probe.mismatch(term, FORMULAS[term]["correct"])
        if found:
            case, got, expected = found
            return (f"is {got:.3f} for {probe.size}{KL_CASES[case] if term == 'kl' else ''}, "
                    f"where {expected:.3f} is right")
    return ""


def check_cvae_loss(cvae_loss: Callable[..., torch.Tensor]) -> None:
    """Check loss(reconstruction, original, mu, logvar) = BCE(sum) + KL(sum), naming slips:
    the reconstruction term, then the KL, then a constant added to the loss."""
    with checking(cvae_loss, "function", "check_cvae_loss(cvae_loss)"):
        probes = [LossProbe(cvae_loss, batch, latent) for batch, latent in LOSS_SHAPES]
        keys = {term: _name(probes, term) for term in FORMULAS}
        require(list(keys.values()) != ["bce_per_image", "kl_per_image"], "loss_per_image")
        for term, key in keys.items():
            require(key == "correct", key, finding=_finding(probes, term))
        # At mu = 0 and logvar = 0 the KL is 0, so the loss is the summed BCE alone.
        first = probes[0]
        bce = _bce(first.sharp, first.x).item()
        kl_without_one = 0.5 * first.cases[0][0].numel()  # the KL there without its "1 +"
        require(not _close(first.at_prior, bce + kl_without_one, first.at_prior), "kl_one",
                kl=first.at_prior - bce)
        require(_close(first.at_prior, bce, first.at_prior), "offset",
                offset=first.at_prior - bce)
    print("check_cvae_loss: OK (binary cross-entropy summed + KL summed)")
