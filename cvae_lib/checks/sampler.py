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
# The shapes a wrong noise scale may take, the right one first: logvar -> scale of epsilon.
SCALE_SHAPES: dict[str, Callable[[torch.Tensor], torch.Tensor]] = {
    "noise_scale": lambda lv: lv.mul(0.5).exp(), "std_exp_logvar": torch.exp,
    "std_logvar": torch.abs}


def _require_z(z: float, key: str, limit: float = Z_LIMIT, **facts: object) -> None:
    """Fail unless the statistic ``z`` (in standard errors) lies within ``limit`` of 0."""
    require(abs(z) <= limit, key, **facts)


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
            call="reparameterize(mu, logvar)", want=f"z shaped like mu, {tuple(mu.shape)}",
            got=describe(z))
    return z


def _noise(z: torch.Tensor, mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """epsilon = (z - mu) / exp(0.5 * logvar) in float64: N(0, 1) per entry if z is right."""
    return (z.detach().double() - mu.detach().double()) / logvar.detach().double().mul(0.5).exp()


def _bins(logvar: torch.Tensor) -> list[torch.Tensor]:
    """Masks of the entries whose logvar lies in each bin of BIN_EDGES."""
    logvar = logvar.detach().flatten()
    return [(logvar >= edge) & (logvar < edge + 1) for edge in BIN_EDGES]


def _check_centre(z: torch.Tensor, mu: torch.Tensor, logvar: torch.Tensor,
                  eps: torch.Tensor) -> None:
    """z follows mu one for one, and the noise averages 0 for every logvar, taking both signs."""
    eps = eps.flatten()
    require((eps < 0).double().mean() > 0.01, "uniform_noise")
    z, mu = z.detach().double().flatten(), mu.detach().double().flatten()
    mu_c = mu - mu.mean()
    slope = (mu_c * z).sum().item() / mu_c.pow(2).sum().item()
    residual = z - z.mean() - slope * mu_c
    se = residual.std().item() / (mu_c.std().item() * math.sqrt(len(z)))
    _require_z((slope - 1) / se, "mu_missing" if abs(slope) < 0.5 else "reparam_formula",
               slope=slope, finding=f"For mu from -20 to 20 your z moves {slope:.2f} per unit of "
               "mu, not 1: add mu once and unscaled")
    for edge, mask in zip(BIN_EDGES, _bins(logvar)):
        _require_z(_z(eps[mask]), "reparam_formula", finding=f"For logvar from {edge} to "
                   f"{edge + 1} your z is centred {eps[mask].mean():.2f} std away from mu")


def _scale_mistake(variance: torch.Tensor, se: torch.Tensor, bins: list[torch.Tensor],
                   logvar: torch.Tensor) -> tuple[str, dict[str, str]]:
    """The shape in SCALE_SHAPES, times a constant, that fits the variance of each logvar bin,
    and the facts of its advice."""
    fitted = None
    for key, scale in SCALE_SHAPES.items():
        ratio = scale(logvar).div(logvar.mul(0.5).exp()).pow(2)
        expected = torch.stack([ratio[b].mean() for b in bins])
        factor = (variance / expected).mean()
        # 1.5: the fitted factor adds its own error to each bin's
        if ((variance - factor * expected).abs() <= 1.5 * Z_LIMIT * se).all():
            fitted = key
            break
    if fitted == "noise_scale":
        return fitted, {"finding": f"Your noise is {factor.sqrt():.2g} times the standard "
                        "deviation exp(0.5 * logvar) for every logvar from -4 to 3"}
    std = [(edge + 0.5, math.sqrt(v) * math.exp((edge + 0.5) / 2), math.exp((edge + 0.5) / 2))
           for edge, v in zip(BIN_EDGES, variance.tolist())]
    spread = "; ".join(f"near logvar = {lv:g} your noise has std {got:.3f}, expected {want:.3f}"
                       for lv, got, want in (std[0], std[-1]))
    return fitted or "noise_scale", {
        "spread": spread, "finding": f"Your noise does not have standard deviation "
        f"exp(0.5 * logvar): {spread}"}


def _check_scale(eps: torch.Tensor, logvar: torch.Tensor) -> None:
    """Within every bin of logvar, epsilon has variance 1; else name the scale's shape."""
    eps, bins, logvar = eps.flatten(), _bins(logvar), logvar.detach().double().flatten()
    squares = [eps[b].pow(2) for b in bins]
    variance = torch.stack([s.mean() for s in squares])
    se = torch.stack([s.std() / math.sqrt(len(s)) for s in squares])
    worst = ((variance - 1) / se).abs().nan_to_num(math.inf).max().item()
    key, facts = (_scale_mistake(variance, se, bins, logvar) if worst > Z_LIMIT  # a failure
                  else ("noise_scale", {}))
    _require_z(worst, key, **facts)


def _check_normal(eps: torch.Tensor) -> None:
    """epsilon is standard normal: its distribution is within KS_LIMIT of N(0, 1)."""
    eps = eps.flatten().sort().values
    cdf, n = torch.special.ndtr(eps), len(eps)
    steps = torch.arange(n + 1, dtype=torch.float64) / n
    distance = torch.maximum(steps[1:] - cdf, cdf - steps[:-1]).max().item()
    _require_z(math.sqrt(n) * distance, "not_normal", KS_LIMIT, distance=distance,
               tails=(eps.abs() > 2).double().mean().item())


def _check_batch_sizes(reparameterize: Sampler, eps: torch.Tensor) -> None:
    """For a batch of 1, 2 or 5, epsilon has the mean and variance it has for a large batch."""
    rows, width = eps.shape
    eps = eps.flatten()
    for batch in SMALL_BATCHES:
        mu, logvar = _draw(batch * math.ceil(SMALL_ENTRIES / (batch * width)), width)
        z = torch.cat([_sample(reparameterize, *pair)
                       for pair in zip(mu.split(batch), logvar.split(batch))])
        small = _noise(z, mu, logvar).flatten()
        facts = {"batch": batch, "mean": small.mean(), "std": small.std(), "rows": rows,
                 "mean_all": eps.mean(), "std_all": eps.std()}
        _require_z(_z(small, eps), "noise_batch", **facts)
        _require_z(_z(small.pow(2), eps.pow(2)), "noise_batch", **facts)


def _check_gradient(z: torch.Tensor, mu: torch.Tensor, logvar: torch.Tensor) -> None:
    """Gradients of z reach both mu and logvar."""
    if z.requires_grad:
        z.sum().backward()
    reach = [p.grad is not None and p.grad.abs().sum() > 0 for p in (mu, logvar)]
    require(any(reach), "no_gradient")
    require(reach[0], "no_gradient_mu")
    require(reach[1], "no_gradient_logvar")


@seeded
def _check_sampler(reparameterize: Sampler) -> None:
    """The probes of check_reparameterize: random mu and logvar for 2^16 entries of the model's
    width (a method may draw its noise with ``self.latent_dim``), then small batches."""
    width = getattr(getattr(reparameterize, "__self__", None), "latent_dim", 4)
    width = width if isinstance(width, int) and 0 < width <= 512 else 4
    mu, logvar = _draw(max(64, PROBE_ENTRIES // width), width, grad=True)
    z = _sample(reparameterize, mu, logvar)
    require(torch.isfinite(z).all(), "noise_scale", finding="reparameterize returned nan or inf "
            "for some logvar from -4 to 3, where torch.exp(0.5 * logvar) is finite "
            "(torch.sqrt(logvar) or torch.log(logvar) are not)")
    eps, z_again = _noise(z, mu, logvar), _sample(reparameterize, mu, logvar).detach()
    require(not torch.allclose(z.detach(), mu.detach()), "no_noise")
    require(not torch.equal(z.detach(), z_again), "same_noise_every_call")
    require(eps.std(dim=0).min() > 0.1, "noise_shared_batch")
    require(width < 2 or eps[:, 0].sub(eps[:, 1]).abs().max() > 0.1, "noise_shared_dims")
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
