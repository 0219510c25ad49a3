"""``check_reparameterize``: probe a student's sampler across many random inputs.

Introduced in 06_recode_from_scratch (see ``cvae_lib.checks``). A property test: over random
``mu`` far from 0, ``logvar`` from -4 to 3 and several batch sizes, epsilon = (z - mu) / std must
be fresh N(0, 1) noise, so a formula right at one point only is still caught. A statistical
probe passes within ``Z_LIMIT`` standard errors, which a right answer misses about once in 1e8.
"""

from __future__ import annotations

import math
from typing import Callable

import torch

from cvae_lib.checks.base import LOGVAR_RANGE, describe, require, require_callable, seeded

Sampler = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]

Z_LIMIT = 6.0  # standard errors; a normal statistic lies beyond them with probability 2e-9
KS_LIMIT = 3.1  # sqrt(n) * Kolmogorov distance; a right answer exceeds it with probability 1e-8
MU_RANGE = 20.0  # mu is drawn from [-20, 20]: far from 0, where a missing mu shows
BIN_EDGES = range(-4, 3)  # the unit bins of logvar in which the noise is checked
PROBE_ENTRIES, SMALL_ENTRIES, SMALL_BATCHES = 2 ** 16, 2048, (1, 2, 5)
STD_FIX = "std = torch.exp(0.5 * logvar)"


def _require_z(z: float, key: str, message: str, limit: float = Z_LIMIT) -> None:
    """Fail unless the statistic ``z`` (in standard errors) lies within ``limit`` of 0."""
    require(abs(z) <= limit, key, message)


def _z(a: torch.Tensor, b: torch.Tensor | None = None) -> float:
    """How many standard errors the mean of ``a`` lies from 0, or from the mean of ``b``."""
    se = [t.std().item() / math.sqrt(len(t)) for t in (a, b) if t is not None]
    return (a.mean().item() - (0 if b is None else b.mean().item())) / math.hypot(*se)


def _draw(rows: int, width: int, grad: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
    """Random mu in [-20, 20] and logvar in [-4, 3], one of each per entry."""
    low, high = LOGVAR_RANGE
    mu = (2 * torch.rand(rows, width) - 1) * MU_RANGE
    logvar = low + (high - low) * torch.rand(rows, width)
    return mu.requires_grad_(grad), logvar.requires_grad_(grad)


def _sample(reparameterize: Sampler, mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """reparameterize(mu, logvar), after checking it is a tensor shaped like mu."""
    z = reparameterize(mu, logvar)
    require(isinstance(z, torch.Tensor) and z.shape == mu.shape, "shape",
            f"reparameterize(mu, logvar) should return z shaped like mu, {tuple(mu.shape)}; "
            f"it gave {describe(z)}.")
    return z


def _noise(z: torch.Tensor, mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """epsilon = (z - mu) / exp(0.5 * logvar) in float64: N(0, 1) per entry if z is right."""
    return (z.detach().double() - mu.detach().double()) / logvar.detach().double().mul(0.5).exp()


def _check_noise_layout(z: torch.Tensor, mu: torch.Tensor, z_again: torch.Tensor,
                        eps: torch.Tensor) -> None:
    """Fresh noise for every entry and every call."""
    fix = "draw epsilon with torch.randn_like(std), one value per entry"
    require(not torch.allclose(z, mu), "no_noise", "reparameterize returned mu unchanged: add "
            "noise, z = mu + std * epsilon with epsilon = torch.randn_like(std).")
    require(not torch.equal(z, z_again), "same_noise_every_call",
            "Two calls with the same mu and logvar gave the same z: draw epsilon afresh inside "
            "reparameterize with torch.randn_like(std) (and don't call torch.manual_seed there).")
    require(eps.std(dim=0).min() > 0.1, "noise_shared_batch",
            f"Every image in the batch got the same noise: {fix}, not torch.randn(latent_dim).")
    require(eps.shape[1] < 2 or eps[:, 0].sub(eps[:, 1]).abs().max() > 0.1, "noise_shared_dims",
            f"Every latent dimension got the same noise: {fix}, not torch.randn(batch, 1).")


def _bins(logvar: torch.Tensor) -> list[torch.Tensor]:
    """Masks of the entries whose logvar lies in each bin of BIN_EDGES."""
    logvar = logvar.detach().flatten()
    return [(logvar >= edge) & (logvar < edge + 1) for edge in BIN_EDGES]


def _check_centre(z: torch.Tensor, mu: torch.Tensor, logvar: torch.Tensor,
                  eps: torch.Tensor) -> None:
    """z follows mu one for one, and the noise averages 0 for every logvar, taking both signs."""
    eps = eps.flatten()
    require((eps < 0).double().mean() > 0.01, "uniform_noise",
            "z never falls below mu: the noise is never negative. torch.rand / rand_like draw "
            "uniform numbers in [0, 1); use standard normal noise, torch.randn_like(std).")
    z, mu = z.detach().double().flatten(), mu.detach().double().flatten()
    mu_c = mu - mu.mean()
    slope = (mu_c * z).sum().item() / mu_c.pow(2).sum().item()
    residual = z - z.mean() - slope * mu_c
    se = residual.std().item() / (mu_c.std().item() * math.sqrt(len(z)))
    key, fix = (("mu_missing", "add mu once") if abs(slope) < 0.5
                else ("reparam_formula", "add mu once and unscaled"))
    _require_z((slope - 1) / se, key,
               f"For mu from -{MU_RANGE:g} to {MU_RANGE:g} your z moves {slope:.2f} per unit of "
               f"mu, not 1: {fix}, z = mu + std * epsilon.")
    for edge, mask in zip(BIN_EDGES, _bins(logvar)):
        _require_z(_z(eps[mask]), "reparam_formula",
                   f"For logvar from {edge} to {edge + 1} your z is centred "
                   f"{eps[mask].mean().item():.2f} std away from mu, not on mu: z = mu + std * "
                   f"epsilon with {STD_FIX} and epsilon = torch.randn_like(std), whose mean is 0.")


# The shapes a wrong noise scale may take, the right one first: logvar -> scale of epsilon.
SCALE_SHAPES: dict[str, Callable[[torch.Tensor], torch.Tensor]] = {
    "noise_scale": lambda lv: lv.mul(0.5).exp(), "std_exp_logvar": torch.exp,
    "std_logvar": torch.abs,
}


def _scale_shape(variance: torch.Tensor, se: torch.Tensor, bins: list[torch.Tensor],
                 logvar: torch.Tensor) -> tuple[str, float]:
    """The shape in SCALE_SHAPES, times a constant, that fits the variance of each logvar bin."""
    for key, scale in SCALE_SHAPES.items():
        ratio = scale(logvar).div(logvar.mul(0.5).exp()).pow(2)
        expected = torch.stack([ratio[b].mean() for b in bins])
        factor = (variance / expected).mean()
        # 1.5: the fitted factor adds its own error to each bin's
        if ((variance - factor * expected).abs() <= 1.5 * Z_LIMIT * se).all():
            return key, factor.sqrt().item()
    return "noise_scale", math.nan


def _scale_advice(key: str, factor: float, variance: list[float]) -> str:
    """Advice for a noise of ``variance`` (in units of the right one) in each logvar bin."""
    if key == "noise_scale" and not math.isnan(factor):
        return (f"Your noise is {factor:.2g} times the standard deviation exp(0.5 * logvar) for "
                f"every logvar from {BIN_EDGES[0]} to {BIN_EDGES[-1] + 1}: scale epsilon once "
                f"by {STD_FIX}.")
    (low, v_low), (high, v_high) = [(BIN_EDGES[i] + 0.5, variance[i]) for i in (0, -1)]
    where = (f"near logvar = {low:g} your noise has std {math.sqrt(v_low) * math.exp(low / 2):.3f}"
             f", expected exp(0.5 * logvar) = {math.exp(low / 2):.3f}; near logvar = {high:g} it "
             f"has {math.sqrt(v_high) * math.exp(high / 2):.3f}, expected {math.exp(high / 2):.3f}")
    return {"std_exp_logvar": f"Your noise grows like exp(logvar): {where}. exp(logvar) is the "
            "variance; the standard deviation is torch.exp(0.5 * logvar).",
            "std_logvar": f"Your noise grows like logvar: {where}. You scaled the noise by logvar "
            "itself; logvar is the log of the variance, the standard deviation is "
            "torch.exp(0.5 * logvar).",
            "noise_scale": "Your noise does not have standard deviation exp(0.5 * logvar): "
            f"{where}. Scale epsilon once by {STD_FIX}."}[key]


def _check_scale(eps: torch.Tensor, logvar: torch.Tensor) -> None:
    """Within every bin of logvar, epsilon has variance 1; else name the scale's shape."""
    eps, bins, logvar = eps.flatten(), _bins(logvar), logvar.detach().double().flatten()
    squares = [eps[b].pow(2) for b in bins]
    variance = torch.stack([s.mean() for s in squares])
    se = torch.stack([s.std() / math.sqrt(len(s)) for s in squares])
    worst = ((variance - 1) / se).abs().nan_to_num(math.inf).max().item()
    key, advice = "noise_scale", ""
    if worst > Z_LIMIT:  # only a failure needs its shape named
        key, factor = _scale_shape(variance, se, bins, logvar)
        advice = _scale_advice(key, factor, variance.tolist())
    _require_z(worst, key, advice)


def _check_normal(eps: torch.Tensor) -> None:
    """epsilon is standard normal: its distribution is within KS_LIMIT of N(0, 1)."""
    eps = eps.flatten().sort().values
    n = len(eps)
    cdf = torch.special.ndtr(eps)
    steps = torch.arange(n + 1, dtype=torch.float64) / n
    distance = torch.maximum(steps[1:] - cdf, cdf - steps[:-1]).max().item()
    tails = (eps.abs() > 2).double().mean().item()
    _require_z(math.sqrt(n) * distance, "not_normal",
               f"{tails:.1%} of your samples lie beyond 2 std (a normal gives 4.6%), and their "
               f"distribution is {distance:.3f} away from N(0, 1): the noise must be standard "
               "normal, torch.randn_like(std).", KS_LIMIT)


def _check_batch_sizes(reparameterize: Sampler, eps: torch.Tensor) -> None:
    """For a batch of 1, 2 or 5, epsilon has the mean and variance it has for a large batch."""
    rows, width = eps.shape
    eps = eps.flatten()
    for batch in SMALL_BATCHES:
        mu, logvar = _draw(batch * math.ceil(SMALL_ENTRIES / (batch * width)), width)
        z = torch.cat([_sample(reparameterize, *pair)
                       for pair in zip(mu.split(batch), logvar.split(batch))])
        small = _noise(z, mu, logvar).flatten()
        advice = (f"With a batch of {batch} your noise has mean {small.mean().item():.2f} and "
                  f"std {small.std().item():.2f} (in units of exp(0.5 * logvar)), with a batch "
                  f"of {rows} mean {eps.mean().item():.2f} and std {eps.std().item():.2f}: the "
                  "noise must not depend on the batch size. Draw epsilon = "
                  "torch.randn_like(std), with nothing computed from the batch.")
        _require_z(_z(small, eps), "noise_batch", advice)
        _require_z(_z(small.pow(2), eps.pow(2)), "noise_batch", advice)


def _check_gradient(z: torch.Tensor, mu: torch.Tensor, logvar: torch.Tensor) -> None:
    """Gradients of z reach both mu and logvar."""
    if z.requires_grad:
        z.sum().backward()
    reach = [p.grad is not None and p.grad.abs().sum() > 0 for p in (mu, logvar)]
    require(any(reach), "no_gradient",
            "Your z has the right distribution but no gradient flows back to mu and logvar, so "
            "the encoder could not learn. torch.normal(mu, std) and Normal(mu, std).sample() "
            "draw samples without a gradient; write z = mu + std * epsilon with "
            "epsilon = torch.randn_like(std), or use .rsample().")
    require(reach[0], "no_gradient_mu", "No gradient flows from z back to mu: don't detach mu "
            "(or take it from .data); z = mu + std * epsilon.")
    require(reach[1], "no_gradient_logvar",
            "No gradient flows from z back to logvar, so the encoder could not learn its "
            "variance: the noise part was drawn with torch.normal / .sample() or detached. "
            f"Write std * epsilon with {STD_FIX} and epsilon = torch.randn_like(std).")


@seeded
def _check_sampler(reparameterize: Sampler) -> None:
    """The probes of check_reparameterize: random mu and logvar for 2^16 entries of the model's
    width (a method may draw its noise with ``self.latent_dim``), then small batches."""
    width = getattr(getattr(reparameterize, "__self__", None), "latent_dim", 4)
    width = width if isinstance(width, int) and 0 < width <= 512 else 4
    mu, logvar = _draw(max(64, PROBE_ENTRIES // width), width, grad=True)
    z = _sample(reparameterize, mu, logvar)
    require(torch.isfinite(z).all(), "noise_scale",
            f"reparameterize returned nan or inf for some logvar from {LOGVAR_RANGE[0]:g} to "
            f"{LOGVAR_RANGE[1]:g}: {STD_FIX} is finite for every logvar "
            "(torch.sqrt(logvar) or torch.log(logvar) are not).")
    eps = _noise(z, mu, logvar)
    _check_noise_layout(z.detach(), mu.detach(), _sample(reparameterize, mu, logvar).detach(),
                        eps)
    _check_centre(z, mu, logvar, eps)
    with torch.no_grad():
        _check_batch_sizes(reparameterize, eps)
    _check_scale(eps, logvar)
    _check_normal(eps)
    _check_gradient(z, mu, logvar)


def check_reparameterize(reparameterize: Sampler) -> None:
    """Check z = mu + exp(0.5 * logvar) * eps: fresh N(0, 1) eps per entry, gradients flow."""
    require_callable(reparameterize, "function", "check_reparameterize(reparameterize)")
    _check_sampler(reparameterize)
    print("check_reparameterize: OK (z = mu + std * eps, eps ~ N(0, I) per entry, "
          "differentiable)")
