"""Watch a student's code run: the dims it concatenates on, the features each layer is fed
(06's ``check_simple_cvae``, 07_challenge_thickness), not PyTorch's error wording."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

import torch
from torch import nn
from torch.overrides import TorchFunctionMode

CONCATS = (torch.cat, torch.concat, torch.concatenate)
ROW_STACKS = (torch.vstack, torch.row_stack)  # concatenations along dim 0 by another name


@dataclass
class _Run:
    """What one call of the student's code did: its result or error, and what it fed where."""

    result: object = None
    error: Exception | None = None
    steps: int = 0  # torch calls made: how far it got
    dims: list[int] = field(default_factory=list)  # of each concatenation, made non-negative
    fed: list[tuple[str, nn.Linear, int]] = field(default_factory=list)  # layer, features in

    def misfit(self) -> tuple[str, int, int] | None:
        """The first linear layer fed a wrong number of features: (name, expected, got)."""
        return next(((name, layer.in_features, got) for name, layer, got in self.fed
                     if got != layer.in_features), None)


class _TorchSpy(TorchFunctionMode):
    """Counts the torch calls made inside it, and records the dim of each concatenation."""

    def __init__(self, record: _Run) -> None:
        super().__init__()
        self.record = record

    def __torch_function__(self, func, types, args=(), kwargs=None):  # noqa: ANN001, ANN204
        kwargs = kwargs or {}
        self.record.steps += 1
        if func in CONCATS:
            dim = kwargs.get("dim", kwargs.get("axis", args[1] if len(args) > 1 else 0))
            self.record.dims.append(dim % max(1, args[0][0].dim()))
        elif func in ROW_STACKS:
            self.record.dims.append(0)
        return func(*args, **kwargs)


def watch(run: Callable[[], object], model: nn.Module | None = None) -> _Run:
    """Call ``run()``, recording its concatenations and what ``model``'s linear layers are fed;
    an error is kept in the record, except a TODO (NotImplementedError)."""
    record = _Run()
    layers = [(name, m) for name, m in (model.named_modules() if model is not None else [])
              if isinstance(m, nn.Linear)]
    hooks = [layer.register_forward_pre_hook(
        lambda layer, args, name=name: record.fed.append((name, layer, args[0].shape[-1])))
        for name, layer in layers]
    try:
        with _TorchSpy(record):
            record.result = run()
    except NotImplementedError:  # a TODO left in the code is the student's to see
        raise
    except (RuntimeError, TypeError, IndexError, ValueError) as err:
        record.error = err
    finally:
        for hook in hooks:
            hook.remove()
    return record


def concat_dims(fn: Callable, *args: object) -> tuple[object, list[int]]:
    """``fn(*args)`` and the dims it concatenated on (the result is None if a dim=0
    concatenation made it fail)."""
    record = watch(lambda: fn(*args))
    if record.error is not None and 0 not in record.dims:
        raise record.error
    return record.result, record.dims


def wrong_input_size(model: nn.Module, run: Callable[[], object]) -> tuple[str, int, int] | None:
    """The first ``nn.Linear`` of ``model`` that ``run()`` feeds a wrong number of features,
    as (layer name, features it expects, features it got), or None if every layer fits."""
    record = watch(run, model)
    if record.error is not None and record.misfit() is None:
        raise record.error
    return record.misfit()
