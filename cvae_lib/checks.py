"""One-line self-checks for the from-scratch exercises.

Introduced in 06_recode_from_scratch. Each check probes the student's code with controlled
inputs, prints a short success message, or raises ``AssertionError`` that names the mistake
and says how to fix it.
"""

from __future__ import annotations

from typing import Callable

import torch
import torch.nn.functional as F

NUM_PIXELS = 784
NUM_CLASSES = 10


def _one_hot(labels: list[int]) -> torch.Tensor:
    """Float one-hot rows for a list of digit labels."""
    return F.one_hot(torch.tensor(labels), NUM_CLASSES).float()


def _explain_runtime_error(err: RuntimeError, where: str) -> AssertionError:
    """Turn a PyTorch shape error from the student's model into advice."""
    text = str(err)
    if "Sizes of tensors must match" in text or "mat1 and mat2" in text:
        return AssertionError(
            f"The {where} crashed with a shape error ({text.splitlines()[0]}). Concatenate "
            "along the feature axis with torch.cat([a, b], dim=1) (dim=0 stacks images), and "
            f"make the first {where} layer take 784 + 10 = 794 inputs (the decoder: "
            "latent_dim + 10).")
    return AssertionError(f"The {where} raised an error: {text}")


def _assert_shape(tensor: object, shape: tuple[int, ...], what: str) -> None:
    """Fail with a clear message when ``tensor`` is not a tensor of ``shape``."""
    assert isinstance(tensor, torch.Tensor), f"{what} should be a tensor, got {type(tensor)}."
    assert tuple(tensor.shape) == shape, (
        f"{what} has shape {tuple(tensor.shape)}, expected {shape}.")


def _probe_encoder(model: torch.nn.Module, latent_dim: int) -> None:
    """Encoder: right shapes for batch sizes 1 and 3, and the label changes its output."""
    torch.manual_seed(0)
    for batch in (1, 3):
        x = torch.rand(batch, NUM_PIXELS)
        try:
            mu, logvar = model.encode(x, _one_hot([1] * batch))
        except RuntimeError as err:
            raise _explain_runtime_error(err, "encoder") from None
        _assert_shape(mu, (batch, latent_dim), f"encode(x, y) mu for a batch of {batch}")
        _assert_shape(logvar, (batch, latent_dim), f"encode(x, y) logvar for a batch of {batch}")
    x = torch.rand(1, NUM_PIXELS).repeat(2, 1)
    mu, logvar = model.encode(x, _one_hot([3, 8]))
    assert not torch.allclose(mu[0], mu[1]), (
        "The encoder ignores the label: the same image with labels 3 and 8 gives the same mu. "
        "Concatenate y to x (torch.cat([x, y], dim=1)) before the first encoder layer.")


def _probe_decoder(model: torch.nn.Module, latent_dim: int) -> None:
    """Decoder: right shapes, the label changes the image, outputs are probabilities."""
    torch.manual_seed(0)
    for batch in (1, 3):
        z = torch.randn(batch, latent_dim)
        try:
            out = model.decode(z, _one_hot([2] * batch))
        except RuntimeError as err:
            raise _explain_runtime_error(err, "decoder") from None
        _assert_shape(out, (batch, NUM_PIXELS), f"decode(z, y) for a batch of {batch}")
    z = (3 * torch.randn(1, latent_dim)).repeat(2, 1)
    out = model.decode(z, _one_hot([0, 7]))
    assert not torch.allclose(out[0], out[1]), (
        "The decoder ignores the label: the same z with labels 0 and 7 gives the same image. "
        "Concatenate y to z (torch.cat([z, y], dim=1)) before the first decoder layer.")
    assert out.min() >= 0 and out.max() <= 1, (
        f"decode returned values in [{out.min():.2f}, {out.max():.2f}], not pixel "
        "probabilities: end the decoder with torch.sigmoid (or nn.Sigmoid()).")


def _require_callable(obj: object, what: str, example: str) -> None:
    """Raise a TypeError unless ``obj`` can be called (a class or a function)."""
    if not callable(obj):
        raise TypeError(f"pass your {what} itself, e.g. {example}, not a "
                        f"{type(obj).__name__}")


def check_simple_cvae(model_class: Callable[..., torch.nn.Module], latent_dim: int = 3) -> None:
    """Check a student SimpleCVAE class: sizes, both concatenations, sigmoid, forward."""
    _require_callable(model_class, "class", "check_simple_cvae(SimpleCVAE)")
    model = model_class(latent_dim=latent_dim).eval()
    with torch.no_grad():
        _probe_encoder(model, latent_dim)
        _probe_decoder(model, latent_dim)
        outputs = model(torch.rand(3, NUM_PIXELS), _one_hot([4, 5, 6]))
    assert isinstance(outputs, tuple) and len(outputs) == 3, (
        "forward(x, y) should return (reconstruction, mu, logvar).")
    _assert_shape(outputs[0], (3, NUM_PIXELS), "forward reconstruction")
    print(f"check_simple_cvae: OK ({model_class.__name__} encodes and decodes with the label)")


def check_reparameterize(reparameterize: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
                         ) -> None:
    """Check z = mu + exp(0.5 * logvar) * eps with fresh standard normal eps per entry."""
    _require_callable(reparameterize, "function", "check_reparameterize(reparameterize)")
    torch.manual_seed(0)
    num, dims, std, shift = 20000, 4, 2.0, 3.0
    mu = torch.full((num, dims), shift)
    logvar = torch.full((num, dims), 2 * torch.log(torch.tensor(std)).item())
    z = reparameterize(mu, logvar)
    _assert_shape(z, (num, dims), "reparameterize(mu, logvar)")
    assert not torch.allclose(z, mu), (
        "reparameterize returned mu unchanged: add noise, z = mu + std * eps with "
        "eps = torch.randn_like(std).")
    assert z.std(dim=0).min() > 0.1, (
        "Every image in the batch got the same noise: draw eps with torch.randn_like(std), "
        "one value per entry, not torch.randn(latent_dim) or torch.randn(1).")
    assert z[:, 0].sub(z[:, 1]).abs().max() > 0.1, (
        "Every latent dimension got the same noise: draw eps with torch.randn_like(std).")
    mean, spread = z.mean().item(), z.std().item()
    assert abs(spread - std ** 2) > 0.2 or abs(spread - std) < 0.1, (
        f"With logvar = log(4) the samples have std {spread:.2f}, expected 2: the standard "
        "deviation is torch.exp(0.5 * logvar), not torch.exp(logvar).")
    assert abs(mean - shift) < 0.1 and abs(spread - std) < 0.1, (
        f"With mu = 3 and std = 2 the samples have mean {mean:.2f} and std {spread:.2f}: use "
        "z = mu + torch.exp(0.5 * logvar) * torch.randn_like(mu) (standard normal noise, "
        "not torch.rand).")
    tails = ((z - shift).abs() > 2 * std).float().mean().item()
    assert 0.03 < tails < 0.06, (
        f"{tails:.1%} of samples lie beyond 2 std (a normal gives 4.6%): the noise must be "
        "standard normal, torch.randn_like(mu).")
    print("check_reparameterize: OK (z = mu + std * eps, eps ~ N(0, I) per entry)")


def _reference_terms(recon: torch.Tensor, x: torch.Tensor, mu: torch.Tensor,
                     logvar: torch.Tensor) -> tuple[float, float]:
    """Summed binary cross-entropy and KL of the reference loss."""
    bce = F.binary_cross_entropy(recon, x, reduction="sum").item()
    kl = (-0.5 * torch.sum(1 + logvar - mu.pow(2) - logvar.exp())).item()
    return bce, kl


def _close(a: float, b: float) -> bool:
    """Relative closeness used to recognise a loss value."""
    return abs(a - b) <= 1e-3 * max(1.0, abs(b))


def check_cvae_loss(cvae_loss: Callable[..., torch.Tensor]) -> None:
    """Check loss(reconstruction, x, mu, logvar) = BCE(sum) + KL(sum), diagnosing slips."""
    _require_callable(cvae_loss, "function", "check_cvae_loss(cvae_loss)")
    torch.manual_seed(0)
    batch, dims = 3, 5
    x = torch.rand(batch, NUM_PIXELS).round()
    recon = torch.rand(batch, NUM_PIXELS).clamp(0.05, 0.95)
    cases = {"prior": (torch.zeros(batch, dims), torch.zeros(batch, dims)),
             "general": (torch.randn(batch, dims), 0.5 * torch.randn(batch, dims))}
    for name, (mu, logvar) in cases.items():
        value = cvae_loss(recon, x, mu, logvar)
        assert isinstance(value, torch.Tensor) and value.numel() == 1, (
            "The loss should be a single number (a scalar tensor): sum both terms.")
        got = value.item()
        bce, kl = _reference_terms(recon, x, mu, logvar)
        if _close(got, bce + kl):
            continue
        mean_bce = bce / (batch * NUM_PIXELS)
        assert not (_close(got, mean_bce + kl) or _close(got, mean_bce)), (
            "The reconstruction term is averaged: use F.binary_cross_entropy(recon, x, "
            "reduction='sum') so it is summed over pixels and images like the KL.")
        assert not _close(got, bce - kl), (
            "The KL term has the wrong sign: KL = -0.5 * sum(1 + logvar - mu^2 - exp(logvar)).")
        missing_one = bce + kl + 0.5 * batch * dims
        assert not (_close(got, missing_one) or _close(got, bce - kl - 0.5 * batch * dims)), (
            "The KL term misses the '1 +': KL = -0.5 * sum(1 + logvar - mu^2 - exp(logvar)).")
        assert not _close(got, bce), "The loss has no KL term: add the KL divergence to it."
        assert not _close(got, kl), "The loss has no reconstruction term: add the BCE."
        raise AssertionError(
            f"For the {name} case the loss is {got:.3f}, expected {bce + kl:.3f} = "
            f"BCE(sum) {bce:.3f} + KL {kl:.3f}. Check both terms against the formula.")
    print("check_cvae_loss: OK (summed BCE + KL)")
