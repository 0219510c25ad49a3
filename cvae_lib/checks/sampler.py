"""``check_reparameterize`` (see 06_recode_from_scratch): over six crafted (mu, logvar) cases,
epsilon = (z - mu) / exp(0.5 * logvar) must be fresh N(0, 1) noise, its moments within
``Z_LIMIT`` standard errors of a normal's, which a right answer misses about once in 1e8."""

from __future__ import annotations

import math
from typing import Callable

import torch

from cvae_lib.checks.base import checking, describe, require

Sampler = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
# (mu, logvar) of the probe's rows, row i holding case i % 6: mu far from 0, where a missing mu
# shows, and logvar across an encoder's range, so a formula right at one point is still caught.
CASES = torch.tensor([(-20.0, -4.0), (15.0, -2.5), (-5.0, -1.0), (3.0, math.log(4)),
                      (10.0, 2.0), (-12.0, 3.0)], dtype=torch.float64)
# The shapes a wrong std may take, the right one first: logvar -> std of the noise.
STD_SHAPES = {"noise_scale": lambda lv: lv.mul(0.5).exp(), "std_exp_logvar": torch.exp,
              "std_logvar": torch.abs}
Z_LIMIT, ENTRIES, SMALL_ENTRIES, SMALL_BATCHES = 6.0, 2 ** 16, 2048, (1, 2, 5)


def _require_z(z: float | torch.Tensor, key: str, **facts: object) -> None:
    """Fail unless the statistic ``z`` (in standard errors) lies within ``Z_LIMIT`` of 0."""
    require(abs(float(z)) <= Z_LIMIT, key, **facts)


def _z(a: torch.Tensor, b: torch.Tensor | float = 0.0) -> torch.Tensor:
    """How many standard errors the means of ``a``'s rows lie from ``b`` (a number, or the
    means of ``b``'s rows)."""
    def se(t: torch.Tensor) -> torch.Tensor:
        return t.std(-1) / math.sqrt(t.shape[-1])
    if isinstance(b, float):
        return (a.mean(-1) - b) / se(a)
    return (a.mean(-1) - b.mean(-1)) / se(a).hypot(se(b))


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


def _check_mean(z: torch.Tensor, eps: torch.Tensor) -> None:
    """In every case the noise averages 0; if not, say whether z follows mu at all."""
    mus = CASES[:, 0] - CASES[:, 0].mean()
    slope = (_by_case(z.detach().double()).mean(1) @ mus / mus.pow(2).sum()).item()
    stats = _z(_by_case(eps))
    k = int(stats.abs().argmax())
    _require_z(stats[k], "mu_missing" if abs(slope) < 0.5 else "reparam_formula", slope=slope,
               finding=f"At mu = {CASES[k, 0]:g}, logvar = {CASES[k, 1]:.2f} your z is "
               f"centred {_by_case(eps)[k].mean():.2f} std away from mu")


def _check_batch_sizes(reparameterize: Sampler, eps: torch.Tensor) -> None:
    """In batches of 1, 2 or 5, epsilon has the mean and variance it has in one large batch."""
    width = eps.shape[1]
    for batch in SMALL_BATCHES:
        rows = len(CASES) * batch * math.ceil(SMALL_ENTRIES / (len(CASES) * batch * width))
        mu, logvar = _cases(rows, width)
        z = torch.cat([_sample(reparameterize, *pair)
                       for pair in zip(mu.split(batch), logvar.split(batch))])
        small = _noise(z, mu, logvar).flatten()
        for power in (1, 2):
            _require_z(_z(small.pow(power), eps.flatten().pow(power)), "noise_batch",
                       batch=batch, std=small.std(), rows=len(eps), std_all=eps.std())


def _check_scale(eps: torch.Tensor) -> None:
    """In every case epsilon has variance 1; if not, name the shape the noise's std follows."""
    squares = _by_case(eps).pow(2)
    logvar, tolerance = CASES[:, 1], 1 + Z_LIMIT / math.sqrt(squares.shape[1])
    right = logvar.mul(0.5).exp()
    std = squares.mean(1).sqrt() * right  # of the noise in each case
    ratios = {key: std / shape(logvar) for key, shape in STD_SHAPES.items()}
    fits = [key for key, ratio in ratios.items() if ratio.max() / ratio.min() < tolerance]
    k = int(ratios["noise_scale"].log().abs().argmax())
    finding = (f"Your noise is {ratios['noise_scale'].mean():.2g} times exp(0.5 * logvar)"
               if fits[:1] == ["noise_scale"] else f"At logvar = {logvar[k]:.2f} your noise "
               f"has std {std[k]:.3f}, where exp(0.5 * logvar) = {right[k]:.3f}")
    _require_z(_z(squares, 1.0).abs().max(), fits[0] if fits else "noise_scale", finding=finding)


def _check_gradient(z: torch.Tensor, mu: torch.Tensor, logvar: torch.Tensor) -> None:
    """Gradients of z reach both mu and logvar."""
    if z.requires_grad:
        z.sum().backward()
    reach = [p.grad is not None and p.grad.abs().sum() > 0 for p in (mu, logvar)]
    require(any(reach), "no_gradient")
    require(reach[0], "no_gradient_mu")
    require(reach[1], "no_gradient_logvar")


def check_reparameterize(reparameterize: Sampler) -> None:
    """Check z = mu + exp(0.5 * logvar) * eps: fresh N(0, 1) eps per entry, gradients flow;
    over about 2^16 entries of the model's width (a method may draw its noise with
    ``self.latent_dim``), then in small batches."""
    with checking(reparameterize, "function", "check_reparameterize(reparameterize)"):
        width = getattr(getattr(reparameterize, "__self__", None), "latent_dim", 4)
        width = width if isinstance(width, int) and 0 < width <= 512 else 4
        mu, logvar = _cases(len(CASES) * max(2, ENTRIES // (len(CASES) * width)), width, True)
        z = _sample(reparameterize, mu, logvar)
        require(torch.isfinite(z).all(), "noise_scale", finding="Your z has nan or inf")
        eps, again = _noise(z, mu, logvar), _sample(reparameterize, mu, logvar).detach()
        require(not torch.allclose(z.detach(), mu.detach()), "no_noise")
        require(not torch.equal(z.detach(), again), "same_noise_every_call")
        require(eps.std(dim=0).min() > 0.1, "noise_shared_batch")
        require(width < 2 or eps[:, 0].sub(eps[:, 1]).abs().max() > 0.1, "noise_shared_dims")
        require((eps < 0).double().mean() > 0.01, "uniform_noise")
        _check_mean(z, eps)
        with torch.no_grad():
            _check_batch_sizes(reparameterize, eps)
        _check_scale(eps)
        fourth = eps.flatten().pow(4)  # 3 for a normal; a uniform or two-point noise gives less
        _require_z(_z(fourth, 3.0), "not_normal", m4=fourth.mean())
        _check_gradient(z, mu, logvar)
    print("check_reparameterize: OK (z = mu + std * eps, eps ~ N(0, I) per entry)")
