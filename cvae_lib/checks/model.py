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

from cvae_lib.checks.base import (NUM_CLASSES, NUM_PIXELS, describe, require, require_callable,
                                  seeded)
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
    extra = ", ".join(sorted(required - {"latent_dim"}))
    require(not extra, "constructor", name=name, problem=f"its constructor also needs {extra}")
    model = model_class(latent_dim=3) if required else model_class()
    require(isinstance(model, nn.Module), "constructor", name=name,
            problem=f"that gave {describe(model)}, not an nn.Module")
    return model


def _call(model: nn.Module, where: str, first: torch.Tensor, labels: list[int]) -> object:
    """``model.<where>(first, labels)`` with one-hot rows or integer labels, whichever it takes
    (forward is tried with integers first); a failure is named from what the model did."""
    fn = model if where == "forward" else getattr(model, where, None)
    require(callable(fn), "missing_method", cls=type(model).__name__, method=where)
    ints, rows = torch.tensor(labels), F.one_hot(torch.tensor(labels), NUM_CLASSES).float()
    runs = []
    for label_input in (ints, rows) if where == "forward" else (rows, ints):
        runs.append(_watch(lambda: fn(first, label_input), model))
        if runs[-1].error is None:
            return runs[-1].result
    require(all(0 not in run.dims for run in runs), "cat_dim0", where=where,
            first="z" if where == "decode" else "x")
    misfit = next((run.misfit() for run in runs if run.misfit()), None)
    if misfit:
        _wrong_size(where, *misfit, latent_dim=first.shape[1] if where == "decode" else 0)
    err = max(runs, key=lambda run: run.steps).error  # the labels' format that got further
    hint = (" forward should turn the integer labels into one-hot rows, F.one_hot(labels, 10)"
            ".float(), and pass them to encode and decode." if where == "forward" else "")
    require(False, "crash", where=where, hint=hint,
            error=f"{type(err).__name__}: {(str(err).splitlines() or [''])[0]}")


def _wrong_size(where: str, layer: str, expected: int, got: int, latent_dim: int) -> None:
    """Name the mistake of ``layer``, built for ``expected`` inputs, that received ``got``."""
    sizes = {"layer": layer, "expected": expected, "got": got}
    if where == "decode":
        require(got != latent_dim + NUM_CLASSES, "decoder_size", **sizes)
        require(got != latent_dim, "decoder_no_label",
                finding=f"{layer} takes {expected} inputs but gets only z ({got} numbers)")
    else:
        require(got != NUM_PIXELS + NUM_CLASSES, "encoder_size", **sizes)
        require(got != NUM_PIXELS, "encoder_no_label",
                finding=f"{layer} takes {expected} inputs but gets only the 784 pixels")
        require(where != "forward" or not NUM_PIXELS < got < NUM_PIXELS + NUM_CLASSES,
                "one_hot_width", width=got - NUM_PIXELS)
    require(False, "layer_sizes", **sizes)


def _probe_encoder(model: nn.Module) -> int:
    """Encoder: (mu, logvar) shaped (batch, latent_dim) that depend on the label; latent_dim."""
    latent_sizes = set()
    for batch in (1, 3):
        out = _call(model, "encode", torch.rand(batch, NUM_PIXELS), [1] * batch)
        require(isinstance(out, tuple) and len(out) == 2 and all(
            isinstance(t, torch.Tensor) and t.dim() == 2 and len(t) == batch for t in out)
            and out[0].shape == out[1].shape, "shape", call="encode(x, labels_onehot)",
            want="(mu, logvar), each of shape (batch, latent_dim)",
            got=f"{describe(out)} for a batch of {batch}")
        latent_sizes.add(out[0].shape[1])
    require(len(latent_sizes) == 1, "shape", call="encode", want="(mu, logvar) shaped (batch, "
            "latent_dim)", got="another latent size for a batch of 1 than of 3")
    mu, _ = _call(model, "encode", torch.rand(1, NUM_PIXELS).repeat(2, 1), [3, 8])
    require(not torch.allclose(mu[0], mu[1]), "encoder_no_label",
            finding="the same image with labels 3 and 8 gives the same mu")
    return latent_sizes.pop()


def _probe_decoder(model: nn.Module, latent_dim: int) -> None:
    """Decoder: (batch, 784) pixel probabilities that depend on the label, from a sigmoid."""
    for batch in (1, 3):
        out = _call(model, "decode", torch.randn(batch, latent_dim), [2] * batch)
        require(isinstance(out, torch.Tensor) and tuple(out.shape) == (batch, NUM_PIXELS),
                "shape", call="decode(z, labels_onehot)", want="images of shape (batch, 784)",
                got=f"{describe(out)} for a batch of {batch}")
    z = (3 * torch.randn(1, latent_dim)).repeat(2, 1)
    out = _call(model, "decode", z, [0, 7])
    require(not torch.allclose(out[0], out[1]), "decoder_no_label",
            finding="the same z with labels 0 and 7 gives the same image")
    low, high = out.min().item(), out.max().item()
    require(0 < low and high < 1, "no_sigmoid", finding=f"decode returned values in "
            f"[{low:.2f}, {high:.2f}]" + (": exact 0s or 1s, as a clamp or hardtanh gives, make "
                                           "the BCE take log(0)" if low == 0 or high == 1 else ""))
    _check_sigmoid(model, lambda: _call(model, "decode", z, [0, 7]))


def _check_sigmoid(model: nn.Module, run: Callable[[], torch.Tensor]) -> None:
    """The output is the sigmoid of the last linear layer, for pre-activations from -15 to 15."""
    fed = _watch(run, model).fed
    if not fed or fed[-1][1].out_features != NUM_PIXELS:
        return
    name, last, _ = fed[-1]
    grid = torch.linspace(-15, 15, NUM_PIXELS)
    hook = last.register_forward_hook(lambda layer, args, out: grid.expand(out.shape).clone())
    try:
        out = run()[0]
    finally:
        hook.remove()
    worst = int((out - torch.sigmoid(grid)).abs().argmax())
    require(torch.allclose(out, torch.sigmoid(grid), rtol=0, atol=1e-4), "no_sigmoid",
            finding=f"decode's output is not the sigmoid of its last layer ({name}): where {name} "
            f"gives {grid[worst]:.2f}, your output is {out[worst]:.3f} and the sigmoid "
            f"{torch.sigmoid(grid[worst]):.3f}")


def _probe_forward(model: nn.Module, latent_dim: int) -> None:
    """forward: (reconstruction, mu, logvar) of the right shapes, decoded from a sample."""
    x, labels = torch.rand(3, NUM_PIXELS), [4, 5, 6]
    out = _call(model, "forward", x, labels)
    shapes = [(3, NUM_PIXELS), (3, latent_dim), (3, latent_dim)]
    require(isinstance(out, tuple) and len(out) == 3 and all(
        isinstance(t, torch.Tensor) and tuple(t.shape) == s for t, s in zip(out, shapes)),
        "forward_return", want=", ".join(map(str, shapes)), got=describe(out))
    again = _call(model, "forward", x, labels)[0]
    require(not torch.allclose(out[0], again), "forward_no_sampling")


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
