"""``check_reparameterize``: over a few crafted (mu, logvar) cases, z must be mu plus fresh
N(0, 1) noise times exp(0.5 * logvar) (06). A statistic passes within ``Z_LIMIT`` standard
errors, which a right answer misses about once in 1e8."""

from __future__ import annotations

import math
from typing import Callable

import torch

from cvae_lib.checks.base import describe, require, require_callable, seeded

Sampler = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
# (mu, logvar) of the probe's rows, row i holding case i % 6: mu far from 0, where a missing mu
# shows, and logvar across an encoder's range, so a formula right at one point is still caught.
CASES = torch.tensor([(-20.0, -4.0), (15.0, -2.5), (-5.0, -1.0), (3.0, math.log(4)),
                      (10.0, 2.0), (-12.0, 3.0)], dtype=torch.float64)
# The shapes a wrong std may take, the right one first: logvar -> std of the noise.
STD_SHAPES = {"noise_scale": lambda lv: lv.mul(0.5).exp(), "std_exp_logvar": torch.exp,
              "std_logvar": torch.abs}
Z_LIMIT, KS_LIMIT = 6.0, 3.1  # a right answer exceeds either with probability about 1e-8
ENTRIES, SMALL_ENTRIES, SMALL_BATCHES = 2 ** 16, 2048, (1, 2, 5)


def _require_z(z: float, key: str, limit: float = Z_LIMIT, **facts: object) -> None:
    """Fail unless the statistic ``z`` (in standard errors) lies within ``limit`` of 0."""
    require(abs(z) <= limit, key, **facts)


def _z(a: torch.Tensor, b: torch.Tensor | None = None) -> float:
    """How many standard errors the mean of ``a`` lies from 0, or from the mean of ``b``."""
    se = [t.std().item() / math.sqrt(t.numel()) for t in (a, b) if t is not None]
    return (a.mean().item() - (0 if b is None else b.mean().item())) / math.hypot(*se)


def _cases(rows: int, width: int, grad: bool = False) -> list[torch.Tensor]:
    """mu and logvar for ``rows`` rows (a multiple of 6) of ``width`` entries."""
    table = CASES.float().repeat(rows // len(CASES), 1)
    return [column[:, None].repeat(1, width).requires_grad_(grad) for column in table.T]


def _by_case(t: torch.Tensor) -> torch.Tensor:
    """The entries of ``t`` (rows as _cases makes them) in one row per case."""
    return t.reshape(-1, len(CASES), t.shape[1]).transpose(0, 1).reshape(len(CASES), -1)


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


def _check_centre(z: torch.Tensor, eps: torch.Tensor) -> None:
    """In every case the noise averages 0; if not, say whether z follows mu at all."""
    z_means, mus = _by_case(z.detach().double()).mean(1), CASES[:, 0] - CASES[:, 0].mean()
    slope = (z_means @ mus / mus.pow(2).sum()).item()
    stats = [_z(case) for case in _by_case(eps)]
    worst = max(range(len(CASES)), key=lambda k: abs(stats[k]))
    mu, logvar = CASES[worst].tolist()
    _require_z(stats[worst], "mu_missing" if abs(slope) < 0.5 else "reparam_formula",
               slope=slope, finding=f"At mu = {mu:g}, logvar = {logvar:.2f} your z is centred "
               f"{_by_case(eps)[worst].mean():.2f} std away from mu")


def _check_batch_sizes(reparameterize: Sampler, eps: torch.Tensor) -> None:
    """In batches of 1, 2 or 5, epsilon has the mean and variance it has in one large batch."""
    width = eps.shape[1]
    for batch in SMALL_BATCHES:
        rows = len(CASES) * batch * math.ceil(SMALL_ENTRIES / (len(CASES) * batch * width))
        mu, logvar = _cases(rows, width)
        z = torch.cat([_sample(reparameterize, *pair)
                       for pair in zip(mu.split(batch), logvar.split(batch))])
        small = _noise(z, mu, logvar)
        facts = {"batch": batch, "std": small.std(), "rows": len(eps), "std_all": eps.std()}
        _require_z(_z(small, eps), "noise_batch", **facts)
        _require_z(_z(small.pow(2), eps.pow(2)), "noise_batch", **facts)


def _spread(ratio: torch.Tensor) -> float:
    """How far from constant ``ratio`` is: its largest value over its smallest."""
    return (ratio.max() / ratio.min()).item()


def _check_scale(eps: torch.Tensor) -> None:
    """In every case epsilon has variance 1; if not, name the shape the noise's std follows."""
    squares = _by_case(eps).pow(2)
    n, variance = squares.shape[1], squares.mean(1)
    worst = ((variance - 1) / (squares.std(1) / math.sqrt(n))).abs().max().item()
    logvar = CASES[:, 1]
    right = logvar.mul(0.5).exp()
    std = variance.sqrt() * right  # of the noise in each case
    fits = [key for key, shape in STD_SHAPES.items()
            if _spread(std / shape(logvar)) < 1 + Z_LIMIT / math.sqrt(n)]
    k = int((std / right).log().abs().argmax())
    finding = (f"Your noise is {(std / right).mean():.2g} times exp(0.5 * logvar) at every "
               "logvar" if fits[:1] == ["noise_scale"] else f"At logvar = {logvar[k]:.2f} your "
               f"noise has std {std[k]:.3f}, where exp(0.5 * logvar) = {right[k]:.3f}")
    _require_z(worst, fits[0] if fits else "noise_scale", finding=finding)


def _check_normal(eps: torch.Tensor) -> None:
    """epsilon is standard normal: its Kolmogorov distance to N(0, 1) is within KS_LIMIT."""
    eps = eps.flatten().sort().values
    cdf, n = torch.special.ndtr(eps), len(eps)
    steps = torch.arange(n + 1, dtype=torch.float64) / n
    distance = torch.maximum(steps[1:] - cdf, cdf - steps[:-1]).max().item()
    _require_z(math.sqrt(n) * distance, "not_normal", KS_LIMIT,
               tails=(eps.abs() > 2).double().mean().item())


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
    """The probes of check_reparameterize, over about 2^16 entries of the model's width (a
    method may draw its noise with ``self.latent_dim``), then in small batches."""
    width = getattr(getattr(reparameterize, "__self__", None), "latent_dim", 4)
    width = width if isinstance(width, int) and 0 < width <= 512 else 4
    mu, logvar = _cases(len(CASES) * max(2, ENTRIES // (len(CASES) * width)), width, grad=True)
    z = _sample(reparameterize, mu, logvar)
    require(torch.isfinite(z).all(), "noise_scale", finding="Your z has nan or inf for some "
            "logvar from -4 to 3")
    eps, again = _noise(z, mu, logvar), _sample(reparameterize, mu, logvar).detach()
    require(not torch.allclose(z.detach(), mu.detach()), "no_noise")
    require(not torch.equal(z.detach(), again), "same_noise_every_call")
    require(eps.std(dim=0).min() > 0.1, "noise_shared_batch")
    require(width < 2 or eps[:, 0].sub(eps[:, 1]).abs().max() > 0.1, "noise_shared_dims")
    require((eps < 0).double().mean() > 0.01, "uniform_noise")
    _check_centre(z, eps)
    with torch.no_grad():
        _check_batch_sizes(reparameterize, eps)
    _check_scale(eps)
    _check_normal(eps)
    _check_gradient(z, mu, logvar)


def check_reparameterize(reparameterize: Sampler) -> None:
    """Check z = mu + exp(0.5 * logvar) * eps: fresh N(0, 1) eps per entry, gradients flow."""
    require_callable(reparameterize, "function", "check_reparameterize(reparameterize)")
    _check_sampler(reparameterize)
    print("check_reparameterize: OK (z = mu + std * eps, eps ~ N(0, I) per entry, "
          "differentiable)")
