"""``check_simple_cvae``: probe a student's CVAE class, whatever its conventions (see
06_recode_from_scratch); ``probes.watch`` tells why a call failed."""

from __future__ import annotations

import inspect
from typing import Callable

import torch
import torch.nn.functional as F
from torch import nn

from cvae_lib.checks.base import NUM_CLASSES, NUM_PIXELS, checking, describe, require
from cvae_lib.checks.probes import watch


def _build(model_class: Callable[..., nn.Module]) -> nn.Module:
    """The model built as model_class(), or model_class(latent_dim=3) if it needs latent_dim."""
    params = inspect.signature(model_class).parameters.values()
    needed = [p.name for p in params if p.default is p.empty and p.kind is not p.VAR_POSITIONAL
              and p.kind is not p.VAR_KEYWORD]
    name = getattr(model_class, "__name__", "SimpleCVAE")
    require(set(needed) <= {"latent_dim"}, "constructor", name=name,
            problem=f"it also needs {', '.join(sorted(set(needed) - {'latent_dim'}))}")
    model = model_class(latent_dim=3) if needed else model_class()
    require(isinstance(model, nn.Module), "constructor", name=name,
            problem=f"it gave {describe(model)}")
    return model


def _call(model: nn.Module, where: str, first: torch.Tensor, labels: list[int]) -> object:
    """``model.<where>(first, labels)`` with one-hot rows or integer labels, whichever it takes
    (forward tries integers first); if both fail, name the mistake from what the code did."""
    fn = model if where == "forward" else getattr(model, where, None)
    require(callable(fn), "missing_method", cls=type(model).__name__, method=where)
    ints = torch.tensor(labels)
    rows = F.one_hot(ints, NUM_CLASSES).float()
    runs = []
    for label_input in (ints, rows) if where == "forward" else (rows, ints):
        runs.append(watch(lambda: fn(first, label_input), model))
        if runs[-1].error is None:
            return runs[-1].result
    require(all(0 not in run.dims for run in runs), "cat_dim0", where=where,
            first="z" if where == "decode" else "x")
    misfit = next((run.misfit() for run in runs if run.misfit()), None)
    if misfit:
        _wrong_size(where, *misfit, latent_dim=first.shape[1])
    err = max(runs, key=lambda run: run.steps).error  # from the label format that got further
    require(False, "crash", where=where, error=f"{type(err).__name__}: {err}".splitlines()[0])


def _wrong_size(where: str, layer: str, expected: int, got: int, latent_dim: int) -> None:
    """Name the mistake of ``layer``, built for ``expected`` inputs, that received ``got``."""
    sizes = {"layer": layer, "expected": expected, "got": got}
    if where == "decode":
        require(got != latent_dim + NUM_CLASSES, "decoder_size", **sizes)
        require(got != latent_dim, "decoder_no_label", finding=f"{layer} gets only z")
    else:
        require(got != NUM_PIXELS + NUM_CLASSES, "encoder_size", **sizes)
        require(got != NUM_PIXELS, "encoder_no_label", finding=f"{layer} gets only the pixels")
        require(where != "forward" or not NUM_PIXELS < got < NUM_PIXELS + NUM_CLASSES,
                "one_hot_width")
    require(False, "layer_sizes", **sizes)


def _probe_encoder(model: nn.Module) -> int:
    """encode gives (mu, logvar), each (batch, latent_dim), that depend on the label."""
    out = _call(model, "encode", torch.rand(1, NUM_PIXELS).repeat(2, 1), [3, 8])
    require(isinstance(out, tuple) and len(out) == 2 and all(
        isinstance(t, torch.Tensor) and t.dim() == 2 and len(t) == 2 for t in out)
        and out[0].shape == out[1].shape, "shape", call="encode(x, labels_onehot)",
        want="(mu, logvar), each (batch, latent_dim)", got=describe(out))
    mu = out[0]
    require(not torch.allclose(mu[0], mu[1]), "encoder_no_label",
            finding="One image with labels 3 and 8 gives one mu")
    return mu.shape[1]


def _probe_decoder(model: nn.Module, latent_dim: int) -> None:
    """decode gives (batch, 784) images that depend on the label, through a sigmoid."""
    z = torch.randn(1, latent_dim).repeat(2, 1)
    out = _call(model, "decode", z, [0, 7])
    require(isinstance(out, torch.Tensor) and out.shape == (2, NUM_PIXELS), "shape",
            call="decode(z, labels_onehot)", want="images (batch, 784)", got=describe(out))
    require(not torch.allclose(out[0], out[1]), "decoder_no_label",
            finding="One z with labels 0 and 7 gives one image")
    # The sigmoid: make the last layer give -15 to 15, and compare decode's output with it.
    last = [(name, m) for name, m in model.named_modules()
            if isinstance(m, nn.Linear) and m.out_features == NUM_PIXELS]
    if last:
        grid = torch.linspace(-15, 15, NUM_PIXELS)
        hook = last[-1][1].register_forward_hook(lambda *_: grid.expand(2, -1).clone())
        try:
            out = _call(model, "decode", z, [0, 7])
        finally:
            hook.remove()
        require(torch.allclose(out, torch.sigmoid(grid), rtol=0, atol=1e-4), "no_sigmoid",
                layer=f"self.{last[-1][0]}")


def _probe_forward(model: nn.Module, latent_dim: int) -> None:
    """forward gives (reconstruction, mu, logvar) of the right shapes, decoded from a sample."""
    x, labels = torch.rand(3, NUM_PIXELS), [4, 5, 6]
    out = _call(model, "forward", x, labels)
    shapes = [(3, NUM_PIXELS), (3, latent_dim), (3, latent_dim)]
    require(isinstance(out, tuple) and len(out) == 3 and all(
        isinstance(t, torch.Tensor) and t.shape == s for t, s in zip(out, shapes)),
        "forward_return", want=", ".join(map(str, shapes)), got=describe(out))
    require(not torch.allclose(out[0], _call(model, "forward", x, labels)[0]),
            "forward_no_sampling")


def check_simple_cvae(model_class: Callable[..., nn.Module]) -> None:
    """Check a SimpleCVAE class: layer sizes, both label concatenations, sigmoid, forward,
    probed in the order a student writes the code."""
    with checking(model_class, "class", "check_simple_cvae(SimpleCVAE)"), torch.no_grad():
        model = _build(model_class)
        latent_dim = _probe_encoder(model.eval())
        _probe_decoder(model, latent_dim)
        _probe_forward(model.train(), latent_dim)
    print("check_simple_cvae: OK (encodes and decodes with the label)")
