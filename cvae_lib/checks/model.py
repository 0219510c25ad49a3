"""``check_simple_cvae``: probe a student's CVAE class, whatever conventions it follows.

Introduced in 06_recode_from_scratch (see ``cvae_lib.checks``). When the model fails, the
probes of ``checks.probes`` say why: a dim=0 concatenation, or the layer fed the wrong size.
"""

from __future__ import annotations

import inspect
from typing import Callable

import torch
import torch.nn.functional as F
from torch import nn

from cvae_lib.checks.base import (NUM_CLASSES, NUM_PIXELS, CheckFailure, describe, require,
                                  require_callable, seeded)
from cvae_lib.checks.probes import _watch

def _build(model_class: Callable[..., nn.Module]) -> nn.Module:
    """An instance made with the constructor's defaults (latent_dim=3 if it has none)."""
    try:
        params = inspect.signature(model_class).parameters.values()
    except (TypeError, ValueError):
        params = []
    required = {p.name for p in params if p.default is p.empty
                and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)}
    name = getattr(model_class, "__name__", "SimpleCVAE")
    require(required <= {"latent_dim"}, "constructor",
            f"The check builds your model as {name}() (or {name}(latent_dim=3)), but its "
            f"constructor also needs {', '.join(sorted(required - {'latent_dim'}))}: give it a "
            "default, as in def __init__(self, latent_dim=16, num_classes=10).")
    model = model_class(latent_dim=3) if required else model_class()
    require(isinstance(model, nn.Module), "constructor",
            f"{name}() gave {describe(model)}, not a model: SimpleCVAE should subclass nn.Module.")
    return model


def _method(model: nn.Module, name: str, signature: str) -> Callable:
    """The model's method ``name``, or a failure saying the exercise's layout needs it."""
    method = getattr(model, name, None)
    require(callable(method), "missing_method",
            f"{type(model).__name__} has no {name} method: the exercise's layout has "
            f"{signature}, used by forward and by the sampling code later on.")
    return method


def _call(model: nn.Module, fn: Callable, first: torch.Tensor, labels: list[int], where: str,
          latent_dim: int) -> object:
    """``fn(first, labels)`` with one-hot rows or integer labels, whichever ``fn`` takes (forward
    is tried with integers first); a failure is named from what the model did."""
    ints, rows = torch.tensor(labels), F.one_hot(torch.tensor(labels), NUM_CLASSES).float()
    runs = []
    for label_input in (ints, rows) if where == "forward" else (rows, ints):
        runs.append(_watch(lambda: fn(first, label_input), model))
        if runs[-1].error is None:
            return runs[-1].result
    first_name = "z" if where == "decode" else "x"
    if any(0 in run.dims for run in runs):
        raise CheckFailure(
            "cat_dim0", f"In {where} you concatenated along dim=0, the batch dimension, which "
            f"stacks the label rows under the rows of {first_name}. The label belongs beside the "
            f"features, on dim=1: torch.cat([{first_name}, labels_onehot], dim=1).")
    misfit = next((run.misfit() for run in runs if run.misfit()), None)
    if misfit:
        raise _wrong_size(where, *misfit, latent_dim)
    err = runs[0].error
    hint = (" forward should turn the integer labels into one-hot rows, "
            "F.one_hot(labels, 10).float(), and pass them to encode and decode."
            if where == "forward" else "")
    raise CheckFailure("crash", f"{where} raised {type(err).__name__}: "
                       f"{(str(err).splitlines() or [''])[0]}.{hint}")


def _wrong_size(where: str, layer: str, expected: int, got: int, latent_dim: int,
                ) -> CheckFailure:
    """Advice for ``layer``, built for ``expected`` inputs, that received ``got``."""
    takes = f"{layer} takes {expected} inputs"
    if where == "decode":
        if got == latent_dim + NUM_CLASSES:
            return CheckFailure("decoder_size", f"{takes}, but it receives z and the one-hot label "
                                f"side by side: latent_dim + 10 = {got}. Make it "
                                "nn.Linear(latent_dim + 10, 128).")
        if got == latent_dim:
            return CheckFailure("decoder_no_label", f"{takes} but gets only z ({latent_dim} "
                                "numbers): concatenate the label first, "
                                "combined = torch.cat([z, labels_onehot], dim=1).")
        return CheckFailure("layer_sizes", f"{takes} but receives {got}: the decoder goes "
                            "latent_dim + 10 -> 128 -> 256 -> 784.")
    if got == NUM_PIXELS + NUM_CLASSES:
        return CheckFailure("encoder_size", f"{takes}, but it receives the image and the one-hot "
                            "label side by side: 784 + 10 = 794. Make it nn.Linear(784 + 10, 256).")
    if got == NUM_PIXELS:
        return CheckFailure("encoder_no_label", f"{takes} but gets only the 784 pixels: "
                            "concatenate the label first, "
                            "combined = torch.cat([x, labels_onehot], dim=1).")
    if where == "forward" and NUM_PIXELS < got < NUM_PIXELS + NUM_CLASSES:
        return CheckFailure(
            "one_hot_width", f"forward made one-hot rows {got - NUM_PIXELS} wide, not 10, for "
            "labels [4, 5, 6]: F.one_hot(labels) without num_classes is only as wide as the "
            "largest label in the batch + 1. Write F.one_hot(labels, num_classes=10).float().")
    return CheckFailure("layer_sizes", f"{takes} but receives {got}: the encoder goes "
                        "794 -> 256 -> 128 -> latent_dim (once for mu, once for logvar).")


def _probe_encoder(model: nn.Module) -> int:
    """Encoder: (mu, logvar) shaped (batch, latent_dim) that depend on the label; latent_dim."""
    encode = _method(model, "encode", "encode(x, labels_onehot) returning (mu, logvar)")
    latent_sizes = set()
    for batch in (1, 3):
        out = _call(model, encode, torch.rand(batch, NUM_PIXELS), [1] * batch, "encode", 0)
        ok = (isinstance(out, tuple) and len(out) == 2 and all(
            isinstance(t, torch.Tensor) and t.dim() == 2 and len(t) == batch for t in out)
            and out[0].shape == out[1].shape)
        require(ok, "shape", f"encode(x, labels_onehot) should return (mu, logvar), each of "
                f"shape (batch, latent_dim); for a batch of {batch} it gave {describe(out)}.")
        latent_sizes.add(out[0].shape[1])
    require(len(latent_sizes) == 1, "shape", "encode returned a different latent size for a "
            "batch of 1 than for a batch of 3: mu and logvar should be (batch, latent_dim).")
    mu, _ = _call(model, encode, torch.rand(1, NUM_PIXELS).repeat(2, 1), [3, 8], "encode", 0)
    require(not torch.allclose(mu[0], mu[1]), "encoder_no_label",
            "The encoder ignores the label: the same image with labels 3 and 8 gives the same "
            "mu. Feed encoder_fc1 the image and the label side by side: "
            "combined = torch.cat([x, labels_onehot], dim=1).")
    return latent_sizes.pop()


def _probe_decoder(model: nn.Module, latent_dim: int) -> None:
    """Decoder: (batch, 784) pixel probabilities that depend on the label, from a sigmoid."""
    decode = _method(model, "decode", "decode(z, labels_onehot) returning pixel probabilities")
    for batch in (1, 3):
        out = _call(model, decode, torch.randn(batch, latent_dim), [2] * batch, "decode",
                    latent_dim)
        require(isinstance(out, torch.Tensor) and tuple(out.shape) == (batch, NUM_PIXELS),
                "shape", f"decode(z, labels_onehot) should return images of shape (batch, 784); "
                f"for a batch of {batch} it gave {describe(out)}.")
    z = (3 * torch.randn(1, latent_dim)).repeat(2, 1)
    out = _call(model, decode, z, [0, 7], "decode", latent_dim)
    require(not torch.allclose(out[0], out[1]), "decoder_no_label",
            "The decoder ignores the label: the same z with labels 0 and 7 gives the same image. "
            "Feed decoder_fc1 z and the label side by side: "
            "combined = torch.cat([z, labels_onehot], dim=1).")
    low, high = out.min().item(), out.max().item()
    require(0 < low and high < 1, "no_sigmoid",
            f"decode returned values in [{low:.2f}, {high:.2f}], not pixel probabilities "
            "strictly between 0 and 1: end the decoder with torch.sigmoid(self.decoder_fc3(h))."
            + (" Exact 0s or 1s, as a clamp or hardtanh gives, would make the BCE take log(0)."
               if low == 0 or high == 1 else ""))
    _check_sigmoid(model, lambda: _call(model, decode, z, [0, 7], "decode", latent_dim))


def _check_sigmoid(model: nn.Module, run: Callable[[], torch.Tensor]) -> None:
    """The output is the sigmoid of the last linear layer, for pre-activations from -15 to 15."""
    fed = _watch(run, model).fed
    if not fed or fed[-1][1].out_features != NUM_PIXELS:
        return
    name, last, _ = fed[-1]
    grid = torch.linspace(-15, 15, NUM_PIXELS)
    left = [sum(layer is last for _, layer, _ in fed)]  # its last call gives the output

    def replace(layer: nn.Module, args: tuple, out: torch.Tensor) -> torch.Tensor | None:
        left[0] -= 1
        return None if left[0] else grid.expand(out.shape).clone()

    hook = last.register_forward_hook(replace)
    try:
        out = run()[0]
    finally:
        hook.remove()
    gap = (out - torch.sigmoid(grid)).abs()
    worst = int(gap.argmax())
    pre, got, want = grid[worst].item(), out[worst].item(), torch.sigmoid(grid)[worst].item()
    require(gap[worst] <= 1e-4, "no_sigmoid",
            f"decode's output is not the sigmoid of its last layer ({name}): where {name} gives "
            f"{pre:.2f}, your output is {got:.3f} and the sigmoid {want:.3f}. "
            "End the decoder with torch.sigmoid(self.decoder_fc3(h)).")


def _probe_forward(model: nn.Module, latent_dim: int) -> None:
    """forward: (reconstruction, mu, logvar) of the right shapes, decoded from a sample."""
    x, labels = torch.rand(3, NUM_PIXELS), [4, 5, 6]
    out = _call(model, model, x, labels, "forward", latent_dim)
    shapes = [(3, NUM_PIXELS), (3, latent_dim), (3, latent_dim)]
    ok = isinstance(out, tuple) and len(out) == 3 and all(
        isinstance(t, torch.Tensor) and tuple(t.shape) == s for t, s in zip(out, shapes))
    require(ok, "forward_return", f"forward(x, labels) should return (reconstruction, mu, "
            f"logvar) in that order, shaped (3, 784), (3, {latent_dim}), (3, {latent_dim}) for "
            f"a batch of 3; it gave {describe(out)}.")
    again = _call(model, model, x, labels, "forward", latent_dim)[0]
    require(not torch.allclose(out[0], again), "forward_no_sampling",
            "forward gave the same reconstruction twice for the same image: it decodes mu "
            "itself. Decode a sample: z = self.reparameterize(mu, logvar), then "
            "self.decode(z, labels_onehot).")


@seeded
def _check_model(model_class: Callable[..., nn.Module]) -> None:
    """The probes of check_simple_cvae, in the order a student writes the code."""
    model = _build(model_class)
    with torch.no_grad():
        latent_dim = _probe_encoder(model.eval())
        _probe_decoder(model, latent_dim)
        _probe_forward(model.train(), latent_dim)


def check_simple_cvae(model_class: Callable[..., nn.Module]) -> None:
    """Check a SimpleCVAE class: layer sizes, both label concatenations, sigmoid, forward."""
    require_callable(model_class, "class", "check_simple_cvae(SimpleCVAE)")
    _check_model(model_class)
    name = getattr(model_class, "__name__", "your model")
    print(f"check_simple_cvae: OK ({name} encodes and decodes with the label)")
