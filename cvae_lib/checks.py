"""One-line self-checks for the from-scratch exercise.

Introduced in 06_recode_from_scratch. Each check feeds the student's code controlled inputs and
either prints a short OK or raises ``CheckFailure``: an ``AssertionError`` whose message names
the mistake in the student's terms and says what to write instead, and whose ``label`` is a
short name of the mistake for grading tools. ``MISTAKES`` lists every label.

Any correct convention passes: ``forward`` taking integer labels or one-hot rows, layers as
separate ``nn.Linear``s or in ``nn.Sequential``, ``reparameterize`` as a method or a function,
the BCE from ``F.binary_cross_entropy`` or by hand, the KL in closed form or from
``torch.distributions``. The checks run under a fixed seed and leave the caller's random state
as it was.
"""

from __future__ import annotations

import functools
import inspect
import math
import re
from typing import Callable, TypeVar

import torch
import torch.nn.functional as F
from torch import nn

NUM_PIXELS = 784
NUM_CLASSES = 10
LOSS_BATCH, LOSS_LATENT = 3, 4

# Short label of every mistake the checks can name, by key (CheckFailure.key).
MISTAKES: dict[str, str] = {
    # check_simple_cvae
    "constructor": "constructor needs arguments",
    "missing_method": "missing encode/decode",
    "crash": "code raises an error",
    "cat_dim0": "dim=0 concatenation",
    "encoder_size": "encoder input size",
    "decoder_size": "decoder input size",
    "encoder_no_label": "encoder ignores the label",
    "decoder_no_label": "decoder ignores the label",
    "layer_sizes": "hidden layer sizes",
    "one_hot_width": "one_hot without num_classes",
    "shape": "wrong output shape",
    "no_sigmoid": "no sigmoid on the output",
    "forward_return": "forward return value",
    "forward_no_sampling": "forward decodes mu, no sample",
    # check_reparameterize
    "no_noise": "no noise added",
    "same_noise_every_call": "same noise on every call",
    "noise_shared_batch": "noise shared across images",
    "noise_shared_dims": "noise shared across dims",
    "mu_missing": "mu not added",
    "uniform_noise": "uniform noise (torch.rand)",
    "std_exp_logvar": "std = exp(logvar)",
    "std_logvar": "logvar used as std",
    "noise_scale": "wrong noise scale",
    "not_normal": "noise not standard normal",
    "reparam_formula": "reparameterization formula",
    "no_gradient": "torch.normal: no gradient",
    "no_gradient_mu": "no gradient to mu",
    "no_gradient_logvar": "no gradient to logvar",
    # check_cvae_loss
    "not_scalar": "loss is not one number",
    "loss_per_image": "loss divided by batch size",
    "bce_mean": "BCE averaged (mean)",
    "bce_per_image": "BCE divided by batch size",
    "no_bce": "no reconstruction term",
    "bce_sign": "BCE sign",
    "bce_swapped": "BCE arguments swapped",
    "bce_logits": "BCE-with-logits on probs",
    "mse": "MSE instead of BCE",
    "recon_formula": "reconstruction formula",
    "no_kl": "no KL term",
    "kl_sign": "KL sign",
    "kl_half": "KL missing the 0.5",
    "kl_mean": "KL averaged (mean)",
    "kl_per_image": "KL divided by batch size",
    "kl_first_image": "KL of first image only",
    "kl_no_mu2": "KL without mu^2",
    "kl_logvar2": "KL: logvar^2 for exp(logvar)",
    "kl_std": "KL: std for variance",
    "kl_one": "KL missing the '1 +'",
    "kl_formula": "KL formula",
    "offset": "constant added to loss",
}

LABEL_FORMAT_ERRORS = ("one_hot is only applicable", "same number of dimensions",
                       "used as indices must be", "argument #1 'indices'")

T = TypeVar("T")


class CheckFailure(AssertionError):
    """A failed check: ``str()`` is advice for the student, ``label`` names the mistake."""

    def __init__(self, key: str, message: str) -> None:
        if key not in MISTAKES:
            raise KeyError(f"no mistake named {key!r}: the keys are listed in MISTAKES")
        super().__init__(message)
        self.key, self.label = key, MISTAKES[key]


def _require(condition: object, key: str, message: str) -> None:
    """Raise ``CheckFailure(key, message)`` unless ``condition`` holds."""
    if not condition:
        raise CheckFailure(key, message)


def _seeded(check: Callable[..., T]) -> Callable[..., T]:
    """Run ``check`` under seed 0 without changing the caller's random state."""
    @functools.wraps(check)
    def wrapper(*args: object, **kwargs: object) -> T:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(0)
            return check(*args, **kwargs)
    return wrapper


def _require_callable(obj: object, what: str, example: str) -> None:
    """Raise a TypeError unless ``obj`` can be called (a class or a function)."""
    if not callable(obj) or (what == "class" and isinstance(obj, nn.Module)):
        raise TypeError(f"pass your {what} itself, e.g. {example}, not a "
                        f"{type(obj).__name__}")


def _describe(obj: object) -> str:
    """A short description of what the student's code returned."""
    if isinstance(obj, torch.Tensor):
        return f"a tensor of shape {tuple(obj.shape)}"
    if isinstance(obj, tuple):
        return f"a tuple of {len(obj)} ({', '.join(_describe(item) for item in obj)})"
    return f"a {type(obj).__name__}"


def _one_hot(labels: list[int]) -> torch.Tensor:
    """Float one-hot rows for a list of digit labels."""
    return F.one_hot(torch.tensor(labels), NUM_CLASSES).float()


# --- check_simple_cvae ---------------------------------------------------------------------

def _build(model_class: Callable[..., nn.Module]) -> nn.Module:
    """An instance made with the constructor's defaults (latent_dim=3 if it has none)."""
    try:
        params = inspect.signature(model_class).parameters.values()
    except (TypeError, ValueError):
        params = []
    required = [p.name for p in params if p.default is p.empty
                and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)]
    name, extra = getattr(model_class, "__name__", "SimpleCVAE"), set(required) - {"latent_dim"}
    _require(not extra, "constructor",
             f"The check builds your model as {name}() (or {name}(latent_dim=3)), but its "
             f"constructor also needs {', '.join(sorted(extra))}: give it a default, as in "
             "def __init__(self, latent_dim=16, num_classes=10).")
    model = model_class(latent_dim=3) if required else model_class()
    _require(isinstance(model, nn.Module), "constructor",
             f"{name}() gave {_describe(model)}, not a model: SimpleCVAE should subclass "
             "nn.Module.")
    return model


def _method(model: nn.Module, name: str, signature: str) -> Callable:
    """The model's method ``name``, or a failure saying the exercise's layout needs it."""
    method = getattr(model, name, None)
    _require(callable(method), "missing_method",
             f"{type(model).__name__} has no {name} method: the exercise's layout has "
             f"{signature}, used by forward and by the sampling code later on.")
    return method


def _is_label_format_error(err: Exception) -> bool:
    """Whether ``err`` only says the labels came in the other format (integers vs one-hot)."""
    return any(marker in str(err) for marker in LABEL_FORMAT_ERRORS)


def _call(fn: Callable, first: torch.Tensor, labels: list[int], where: str, latent_dim: int,
          ints_first: bool) -> object:
    """``fn(first, labels)`` with integer labels or one-hot rows, whichever ``fn`` expects."""
    ints, rows = torch.tensor(labels), _one_hot(labels)
    errors = []
    for label_input in ((ints, rows) if ints_first else (rows, ints)):
        try:
            return fn(first, label_input)
        except NotImplementedError:
            raise
        except (RuntimeError, TypeError, IndexError, ValueError) as err:
            errors.append(err)
    real = [err for err in errors if not _is_label_format_error(err)] or errors
    raise _explain(real[0], where, latent_dim) from None


def _explain(err: Exception, where: str, latent_dim: int) -> CheckFailure:
    """Turn an error raised inside the student's model into advice."""
    text = str(err).splitlines()[0] if str(err) else type(err).__name__
    first = "z" if where == "decode" else "x"
    if "must match except in dimension 0" in text:
        return CheckFailure(
            "cat_dim0", f"In {where} you concatenated along dim=0, the batch dimension, which "
            f"stacks the label rows under the rows of {first}. The label belongs beside the "
            f"features, on dim=1: torch.cat([{first}, labels_onehot], dim=1).")
    sizes = re.search(r"\((\d+)x(\d+) and (\d+)x(\d+)\)", text)
    if sizes:
        return _explain_sizes(where, int(sizes[2]), int(sizes[3]), latent_dim)
    hint = (" forward should turn the integer labels into one-hot rows, "
            "F.one_hot(labels, 10).float(), and pass them to encode and decode."
            if where == "forward" else "")
    return CheckFailure("crash", f"{where} raised {type(err).__name__}: {text}.{hint}")


def _explain_sizes(where: str, got: int, expected: int, latent_dim: int) -> CheckFailure:
    """Advice for a linear layer that received ``got`` features but expects ``expected``."""
    if where == "decode":
        if got == latent_dim + NUM_CLASSES:
            return CheckFailure(
                "decoder_size", f"decoder_fc1 takes {expected} inputs, but it receives z and the "
                f"one-hot label side by side: latent_dim + 10 = {got}. Make it "
                "nn.Linear(latent_dim + 10, 128).")
        if got == latent_dim:
            return CheckFailure(
                "decoder_no_label", f"The first decoder layer expects {expected} inputs but gets "
                f"only z ({latent_dim} numbers): concatenate the label first, "
                "combined = torch.cat([z, labels_onehot], dim=1).")
        return CheckFailure(
            "layer_sizes", f"A decoder layer receives {got} numbers but expects {expected}: the "
            "decoder goes latent_dim + 10 -> 128 -> 256 -> 784.")
    if got == NUM_PIXELS + NUM_CLASSES:
        return CheckFailure(
            "encoder_size", f"encoder_fc1 takes {expected} inputs, but it receives the image and "
            "the one-hot label side by side: 784 + 10 = 794. Make it nn.Linear(784 + 10, 256).")
    if got == NUM_PIXELS:
        return CheckFailure(
            "encoder_no_label", f"The first encoder layer expects {expected} inputs but gets only "
            "the 784 pixels: concatenate the label first, "
            "combined = torch.cat([x, labels_onehot], dim=1).")
    if where == "forward" and NUM_PIXELS < got < NUM_PIXELS + NUM_CLASSES:
        return CheckFailure(
            "one_hot_width", f"forward made one-hot rows {got - NUM_PIXELS} wide, not 10, for "
            "labels [4, 5, 6]: F.one_hot(labels) without num_classes is only as wide as the "
            "largest label in the batch + 1. Write F.one_hot(labels, num_classes=10).float().")
    return CheckFailure(
        "layer_sizes", f"An encoder layer receives {got} numbers but expects {expected}: the "
        "encoder goes 794 -> 256 -> 128 -> latent_dim (once for mu, once for logvar).")


def _probe_encoder(model: nn.Module) -> int:
    """Encoder: (mu, logvar) shaped (batch, latent_dim) that depend on the label; latent_dim."""
    encode = _method(model, "encode", "encode(x, labels_onehot) returning (mu, logvar)")
    latent_sizes = set()
    for batch in (1, 3):
        out = _call(encode, torch.rand(batch, NUM_PIXELS), [1] * batch, "encode", 0, False)
        ok = (isinstance(out, tuple) and len(out) == 2 and all(
            isinstance(t, torch.Tensor) and t.dim() == 2 and len(t) == batch for t in out)
            and out[0].shape == out[1].shape)
        _require(ok, "shape", f"encode(x, labels_onehot) should return (mu, logvar), each of "
                 f"shape (batch, latent_dim); for a batch of {batch} it gave {_describe(out)}.")
        latent_sizes.add(out[0].shape[1])
    _require(len(latent_sizes) == 1, "shape", "encode returned a different latent size for a "
             "batch of 1 than for a batch of 3: mu and logvar should be (batch, latent_dim).")
    mu, _ = _call(encode, torch.rand(1, NUM_PIXELS).repeat(2, 1), [3, 8], "encode", 0, False)
    _require(not torch.allclose(mu[0], mu[1]), "encoder_no_label",
             "The encoder ignores the label: the same image with labels 3 and 8 gives the same "
             "mu. Feed encoder_fc1 the image and the label side by side: "
             "combined = torch.cat([x, labels_onehot], dim=1).")
    return latent_sizes.pop()


def _probe_decoder(model: nn.Module, latent_dim: int) -> None:
    """Decoder: (batch, 784) pixel probabilities that depend on the label."""
    decode = _method(model, "decode", "decode(z, labels_onehot) returning pixel probabilities")
    for batch in (1, 3):
        out = _call(decode, torch.randn(batch, latent_dim), [2] * batch, "decode", latent_dim,
                    False)
        _require(isinstance(out, torch.Tensor) and tuple(out.shape) == (batch, NUM_PIXELS),
                 "shape", f"decode(z, labels_onehot) should return images of shape (batch, 784); "
                 f"for a batch of {batch} it gave {_describe(out)}.")
    z = (3 * torch.randn(1, latent_dim)).repeat(2, 1)
    out = _call(decode, z, [0, 7], "decode", latent_dim, False)
    _require(not torch.allclose(out[0], out[1]), "decoder_no_label",
             "The decoder ignores the label: the same z with labels 0 and 7 gives the same image. "
             "Feed decoder_fc1 z and the label side by side: "
             "combined = torch.cat([z, labels_onehot], dim=1).")
    _require(out.min() >= 0 and out.max() <= 1, "no_sigmoid",
             f"decode returned values in [{out.min():.2f}, {out.max():.2f}], not pixel "
             "probabilities: end the decoder with torch.sigmoid(self.decoder_fc3(h)).")


def _probe_forward(model: nn.Module, latent_dim: int) -> None:
    """forward: (reconstruction, mu, logvar) of the right shapes, decoded from a sample."""
    x, labels = torch.rand(3, NUM_PIXELS), [4, 5, 6]
    out = _call(model, x, labels, "forward", latent_dim, True)
    shapes = [(3, NUM_PIXELS), (3, latent_dim), (3, latent_dim)]
    ok = isinstance(out, tuple) and len(out) == 3 and all(
        isinstance(t, torch.Tensor) and tuple(t.shape) == s for t, s in zip(out, shapes))
    _require(ok, "forward_return", f"forward(x, labels) should return (reconstruction, mu, "
             f"logvar) in that order, shaped (3, 784), (3, {latent_dim}), (3, {latent_dim}) for "
             f"a batch of 3; it gave {_describe(out)}.")
    again = _call(model, x, labels, "forward", latent_dim, True)[0]
    _require(not torch.allclose(out[0], again), "forward_no_sampling",
             "forward gave the same reconstruction twice for the same image: it decodes mu "
             "itself. Decode a sample: z = self.reparameterize(mu, logvar), then "
             "self.decode(z, labels_onehot).")


@_seeded
def _check_model(model_class: Callable[..., nn.Module]) -> None:
    """The probes of check_simple_cvae, in the order a student writes the code."""
    model = _build(model_class)
    with torch.no_grad():
        latent_dim = _probe_encoder(model.eval())
        _probe_decoder(model, latent_dim)
        _probe_forward(model.train(), latent_dim)


def check_simple_cvae(model_class: Callable[..., nn.Module]) -> None:
    """Check a SimpleCVAE class: layer sizes, both label concatenations, sigmoid, forward."""
    _require_callable(model_class, "class", "check_simple_cvae(SimpleCVAE)")
    _check_model(model_class)
    name = getattr(model_class, "__name__", "your model")
    print(f"check_simple_cvae: OK ({name} encodes and decodes with the label)")


# --- check_reparameterize ------------------------------------------------------------------

def _check_noise_layout(z: torch.Tensor, mu: torch.Tensor, z_again: torch.Tensor) -> None:
    """Fresh noise for every entry and every call."""
    _require(not torch.allclose(z, mu), "no_noise",
             "reparameterize returned mu unchanged: add noise, z = mu + std * epsilon with "
             "epsilon = torch.randn_like(std).")
    _require(not torch.equal(z, z_again), "same_noise_every_call",
             "Two calls with the same mu and logvar gave the same z: draw epsilon afresh inside "
             "reparameterize with torch.randn_like(std) (and don't call torch.manual_seed there).")
    _require(z.std(dim=0).min() > 0.1, "noise_shared_batch",
             "Every image in the batch got the same noise: draw epsilon with "
             "torch.randn_like(std), one value per entry, not torch.randn(latent_dim).")
    _require(z[:, 0].sub(z[:, 1]).abs().max() > 0.1, "noise_shared_dims",
             "Every latent dimension got the same noise: draw epsilon with torch.randn_like(std), "
             "one value per entry, not torch.randn(batch, 1).")


def _check_spread(z: torch.Tensor, shift: float, std: float) -> None:
    """Samples centred on mu, spread by exp(0.5 * logvar), with normal tails."""
    mean, spread = z.mean().item(), z.std().item()
    _require(abs(mean) > 0.1, "mu_missing",
             f"With mu = {shift:g} your z is centred on {mean:.2f}: add mu, "
             "z = mu + std * epsilon.")
    _require((z < shift).float().mean() > 0.01, "uniform_noise",
             "z never falls below mu: the noise is never negative. torch.rand / rand_like draw "
             "uniform numbers in [0, 1); use standard normal noise, torch.randn_like(std).")
    _require(abs(mean - shift) < 0.1, "reparam_formula",
             f"With mu = {shift:g} your z is centred on {mean:.2f}: z = mu + std * epsilon with "
             "std = torch.exp(0.5 * logvar) and epsilon = torch.randn_like(std).")
    _require(abs(spread - std ** 2) > 0.1, "std_exp_logvar",
             f"With logvar = log(4) your z has std {spread:.2f}, expected {std:g}: exp(logvar) is "
             "the variance; the standard deviation is torch.exp(0.5 * logvar).")
    _require(abs(spread - math.log(std ** 2)) > 0.05, "std_logvar",
             f"With logvar = log(4) = 1.39 your z has std {spread:.2f}, expected {std:g}: you "
             "scaled the noise by logvar itself. logvar is the log of the variance; the "
             "standard deviation is torch.exp(0.5 * logvar).")
    _require(abs(spread - std) < 0.05, "noise_scale",
             f"With logvar = log(4) (variance 4) your z has std {spread:.2f}, expected {std:g}: "
             "scale epsilon once by std = torch.exp(0.5 * logvar).")
    tails = ((z - shift).abs() > 2 * std).float().mean().item()
    _require(0.035 < tails < 0.056, "not_normal",
             f"{tails:.1%} of your samples lie beyond 2 std (a normal gives 4.6%): the noise must "
             "be standard normal, torch.randn_like(std).")


def _check_gradient(z: torch.Tensor, mu: torch.Tensor, logvar: torch.Tensor) -> None:
    """Gradients of z reach both mu and logvar."""
    if z.requires_grad:
        z.sum().backward()
    reach = [p.grad is not None and p.grad.abs().sum() > 0 for p in (mu, logvar)]
    _require(any(reach), "no_gradient",
             "Your z has the right distribution but no gradient flows back to mu and logvar, so "
             "the encoder could not learn. torch.normal(mu, std) and Normal(mu, std).sample() "
             "draw samples without a gradient (it is zero or missing); write "
             "z = mu + std * epsilon with epsilon = torch.randn_like(std), or use .rsample().")
    _require(reach[0], "no_gradient_mu",
             "No gradient flows from z back to mu: don't detach mu (or take it from .data); "
             "z = mu + std * epsilon.")
    _require(reach[1], "no_gradient_logvar",
             "No gradient flows from z back to logvar, so the encoder could not learn its "
             "variance: the noise part was drawn with torch.normal / .sample() or detached. "
             "Write std * epsilon with std = torch.exp(0.5 * logvar) and "
             "epsilon = torch.randn_like(std).")


@_seeded
def _check_sampler(reparameterize: Callable[[torch.Tensor, torch.Tensor], torch.Tensor]) -> None:
    """The probes of check_reparameterize: mu = 3, std = 2 for 20,000 x 4 entries."""
    shift, std = 3.0, 2.0
    mu = torch.full((20000, 4), shift, requires_grad=True)
    logvar = torch.full((20000, 4), math.log(std ** 2), requires_grad=True)
    z = reparameterize(mu, logvar)
    _require(isinstance(z, torch.Tensor) and z.shape == mu.shape, "shape",
             f"reparameterize(mu, logvar) should return z shaped like mu, {tuple(mu.shape)}; "
             f"it gave {_describe(z)}.")
    _check_noise_layout(z.detach(), mu.detach(), reparameterize(mu, logvar).detach())
    _check_spread(z.detach(), shift, std)
    _check_gradient(z, mu, logvar)


def check_reparameterize(reparameterize: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
                         ) -> None:
    """Check z = mu + exp(0.5 * logvar) * eps: fresh N(0, 1) eps per entry, gradients flow."""
    _require_callable(reparameterize, "function", "check_reparameterize(reparameterize)")
    _check_sampler(reparameterize)
    print("check_reparameterize: OK (z = mu + std * eps, eps ~ N(0, I) per entry, "
          "differentiable)")


# --- check_cvae_loss -----------------------------------------------------------------------

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

LOSS_ADVICE = {
    "loss_per_image": "Your loss is the per-image average (the batch's sum divided by the batch "
    "size). That is a common convention, but here cvae_loss returns the batch's sum and the "
    "training loop divides by the number of images itself: drop the division.",
    "bce_mean": "Your reconstruction term is averaged over every pixel of every image "
    "(reduction='mean', the default of F.binary_cross_entropy), which shrinks it about "
    "784 x batch times next to the summed KL. Use reduction='sum'.",
    "bce_per_image": "Your reconstruction term is divided by the batch size while the KL is "
    "summed over the batch: sum both over pixels and images (reduction='sum', no division).",
    "no_bce": "Changing the reconstruction does not change your loss: the reconstruction term is "
    "missing. Add F.binary_cross_entropy(reconstruction, original, reduction='sum').",
    "bce_sign": "Your reconstruction term has the wrong sign: the loss falls as the "
    "reconstruction gets worse. Binary cross-entropy is -sum(x*log(r) + (1-x)*log(1-r)), "
    "with the leading minus.",
    "bce_swapped": "The arguments of your binary cross-entropy are swapped: the prediction "
    "(reconstruction) comes first, the target (original) second.",
    "bce_logits": "F.binary_cross_entropy_with_logits expects logits (values before the "
    "sigmoid), but your decoder already ends with a sigmoid: use "
    "F.binary_cross_entropy(reconstruction, original, reduction='sum').",
    "mse": "Your reconstruction term is a squared error; this exercise treats pixels as ink "
    "probabilities and uses binary cross-entropy: "
    "F.binary_cross_entropy(reconstruction, original, reduction='sum').",
    "no_kl": "Changing mu and logvar does not change your loss: it has no KL term. Add "
    "kl_loss = -0.5 * torch.sum(1 + logvar - mu.pow(2) - logvar.exp()).",
    "kl_sign": "Your KL has the wrong sign: it falls as mu moves away from 0, so training would "
    "push the encoder away from the prior. The KL is never negative: "
    "-0.5 * torch.sum(1 + logvar - mu.pow(2) - logvar.exp()).",
    "kl_half": "Your KL is twice the right value: the formula has 0.5 in front, "
    "-0.5 * torch.sum(1 + logvar - mu.pow(2) - logvar.exp()).",
    "kl_mean": "Your KL is averaged over its entries (torch.mean) while the reconstruction is "
    "summed, which shrinks it latent_dim x batch times. Use torch.sum.",
    "kl_per_image": "Your KL is divided by the batch size while the reconstruction is summed "
    "over the batch: sum the KL over images too (torch.sum over the whole tensor).",
    "kl_first_image": "Your KL counts only the first image of the batch: sum over all images "
    "and latent dimensions, torch.sum(1 + logvar - mu.pow(2) - logvar.exp()).",
    "kl_no_mu2": "Your KL does not change when mu moves away from 0: the - mu^2 term is "
    "missing. Write 1 + logvar - mu.pow(2) - logvar.exp().",
    "kl_logvar2": "Your KL has logvar^2 where the formula has exp(logvar), the variance: write "
    "1 + logvar - mu.pow(2) - logvar.exp().",
    "kl_std": "Your KL has exp(0.5 * logvar), the standard deviation, where the formula has "
    "exp(logvar), the variance: write 1 + logvar - mu.pow(2) - logvar.exp().",
}


def _close(got: list[float], expected: list[float]) -> bool:
    """Every value within a relative 1e-4 of its expected value (absolute below 1)."""
    return all(abs(g - e) <= 1e-4 * max(1.0, abs(e)) for g, e in zip(got, expected))


def _loss_value(cvae_loss: Callable[..., torch.Tensor], recon: torch.Tensor, x: torch.Tensor,
                mu: torch.Tensor, logvar: torch.Tensor) -> float:
    """The student's loss as a float, after checking it is a single number."""
    value = cvae_loss(recon, x, mu, logvar)
    _require(isinstance(value, torch.Tensor) and value.numel() == 1, "not_scalar",
             f"cvae_loss returned {_describe(value)}; it should return one number (a tensor "
             "with a single value): recon_loss + kl_loss, each summed over all entries.")
    return value.item()


def _match(formulas: dict[str, Callable], got: list[float], inputs: list[tuple]) -> str | None:
    """The key of the first formula whose changes between ``inputs`` equal ``got``."""
    for key, formula in formulas.items():
        values = [formula(*args).item() for args in inputs]
        if _close(got, [v - values[-1] for v in values[:-1]]):
            return key
    return None


def _diagnose_kl(got: list[float], cases: list[tuple[torch.Tensor, torch.Tensor]]) -> str:
    """Advice for a KL term that matches no known formula, probe by probe."""
    expected = [KL_FORMULAS["correct"](*case).item() for case in cases[:-1]]
    ratios = [g / e for g, e in zip(got, expected)]
    if max(ratios) - min(ratios) < 1e-3 * abs(ratios[0]):
        return (f"Your KL is {ratios[0]:.3g} times the right value for every mu and logvar: "
                "check the factor in front, -0.5 * torch.sum(1 + logvar - mu.pow(2) - "
                "logvar.exp()).")
    return (f"Your KL does not match -0.5 * torch.sum(1 + logvar - mu.pow(2) - logvar.exp()). "
            f"With logvar = 0 and mu != 0 it is {got[0]:.3f} (expected {expected[0]:.3f}); with "
            f"mu = 0 and logvar != 0 it is {got[1]:.3f} (expected {expected[1]:.3f}).")


def _check_offset(at_prior: float, expected: float) -> None:
    """With mu = 0 and logvar = 0 the KL is 0, so the loss is the summed BCE alone."""
    offset = at_prior - expected
    _require(not _close([at_prior], [expected + 0.5 * LOSS_BATCH * LOSS_LATENT]), "kl_one",
             f"Your KL is {offset:.2f} when mu = 0 and logvar = 0, where the encoder matches the "
             "prior and the KL is 0: the '1 +' is missing, "
             "-0.5 * torch.sum(1 + logvar - mu.pow(2) - logvar.exp()).")
    _require(_close([at_prior], [expected]), "offset",
             f"When mu = 0 and logvar = 0 (KL = 0) your loss is {at_prior:.3f}, not the summed "
             f"BCE {expected:.3f}: remove the extra constant {offset:+.3f}.")


@_seeded
def _check_loss(cvae_loss: Callable[..., torch.Tensor]) -> None:
    """The probes of check_cvae_loss: isolate the reconstruction term, then the KL term."""
    x = torch.rand(LOSS_BATCH, NUM_PIXELS).round()
    blurry = torch.rand(LOSS_BATCH, NUM_PIXELS).clamp(0.05, 0.95)
    sharp = torch.where(x > 0.5, 0.875, 0.125)  # exact in float32, as is 1 - sharp
    zeros = torch.zeros(LOSS_BATCH, LOSS_LATENT)
    means, logvars = torch.randn(LOSS_BATCH, LOSS_LATENT), torch.randn(LOSS_BATCH, LOSS_LATENT)

    def loss(recon: torch.Tensor, mu: torch.Tensor, logvar: torch.Tensor) -> float:
        return _loss_value(cvae_loss, recon, x, mu, logvar)

    at_prior = loss(sharp, zeros, zeros)
    recon_key = _match(RECON_FORMULAS, [loss(blurry, zeros, zeros) - at_prior],
                       [(blurry, x), (sharp, x)]) or "recon_formula"
    cases = [(means, zeros), (zeros, 0.5 * logvars), (means, 0.5 * logvars), (zeros, zeros)]
    kl_got = [loss(sharp, *case) - at_prior for case in cases[:-1]]
    kl_key = _match(KL_FORMULAS, kl_got, cases) or "kl_formula"
    if (recon_key, kl_key) == ("bce_per_image", "kl_per_image"):
        recon_key = kl_key = "loss_per_image"
    _require(recon_key == "correct", recon_key, LOSS_ADVICE.get(
        recon_key, "Your reconstruction term does not match the summed binary cross-entropy, "
        "F.binary_cross_entropy(reconstruction, original, reduction='sum')."))
    _require(kl_key == "correct", kl_key, LOSS_ADVICE.get(kl_key) or _diagnose_kl(kl_got, cases))
    _check_offset(at_prior, _bce(sharp, x).item())


def check_cvae_loss(cvae_loss: Callable[..., torch.Tensor]) -> None:
    """Check loss(reconstruction, original, mu, logvar) = BCE(sum) + KL(sum), naming slips."""
    _require_callable(cvae_loss, "function", "check_cvae_loss(cvae_loss)")
    _check_loss(cvae_loss)
    print("check_cvae_loss: OK (binary cross-entropy summed + KL summed)")

