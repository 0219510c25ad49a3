"""Probes the checks of 07_challenge_thickness run on a student's code: which dims it
concatenated on, and which linear layer got the wrong number of inputs.

Introduced in 07_challenge_thickness (see ``cvae_lib.checks``).
"""

from __future__ import annotations

from typing import Callable

import torch
from torch import nn
from torch.overrides import TorchFunctionMode

CONCATS = (torch.cat, torch.concat, torch.concatenate)


class _ConcatSpy(TorchFunctionMode):
    """Records the dim (made non-negative) of every concatenation made inside it."""

    def __init__(self) -> None:
        super().__init__()
        self.dims: list[int] = []

    def __torch_function__(self, func, types, args=(), kwargs=None):  # noqa: ANN001, ANN204
        kwargs = kwargs or {}
        if func in CONCATS and args:
            dim = kwargs.get("dim", kwargs.get("axis", args[1] if len(args) > 1 else 0))
            tensors = list(args[0])
            self.dims.append(dim % tensors[0].dim() if tensors and tensors[0].dim() else dim)
        return func(*args, **kwargs)


def concat_dims(fn: Callable, *args: object) -> tuple[object, list[int]]:
    """``fn(*args)`` and the dims it concatenated on; the result is None when a dim=0
    concatenation made it raise."""
    spy = _ConcatSpy()
    try:
        with spy:
            return fn(*args), spy.dims
    except RuntimeError:
        if 0 not in spy.dims:
            raise
        return None, spy.dims


def wrong_input_size(model: nn.Module, run: Callable[[], object]) -> tuple[str, int, int] | None:
    """The first ``nn.Linear`` that ``run()`` feeds a wrong number of features, as
    (layer name, features it expects, features it got), or None if every layer fits."""
    fed: list[tuple[str, int, int]] = []
    hooks = [module.register_forward_pre_hook(
        lambda layer, args, name=name: fed.append((name, layer.in_features, args[0].shape[-1])))
        for name, module in model.named_modules() if isinstance(module, nn.Linear)]
    try:
        run()
    except RuntimeError:
        wrong = next((layer for layer in fed if layer[1] != layer[2]), None)
        if wrong is None:
            raise
        return wrong
    finally:
        for hook in hooks:
            hook.remove()
    return None
