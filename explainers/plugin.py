"""Plain functions as explainers: ``fn(model, x_batch, target, **params) -> maps``.

A plugin author may write an explainer as one function instead of an ``Explainer``
subclass. :func:`as_explainer` wraps it in the template, so it gets the same batching,
device placement, resizing and hook cleanup as every built-in method, and its keyword
parameters are settable from a suite like any other.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable
from typing import Any

import torch

from explainers.base import Explainer, ModelLike

ExplainFn = Callable[..., torch.Tensor]

#: Positional arguments a function explainer receives before its own parameters.
RUNTIME_ARGS = ("model", "x_batch", "target")


def is_function_explainer(obj: Any) -> bool:
    """A function or callable object; classes (``Explainer`` subclasses or duck-typed
    ones taking the model first) are constructed as they are."""
    return callable(obj) and not isinstance(obj, type)


def function_params(fn: ExplainFn, extra: tuple[str, ...] = ()) -> list[str] | None:
    """Keyword parameters ``fn`` accepts after the runtime arguments (then ``extra``);
    None if it accepts any."""
    params = list(inspect.signature(fn).parameters.values())[len(RUNTIME_ARGS) :]
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params):
        return None
    return [p.name for p in params if p.kind is not inspect.Parameter.VAR_POSITIONAL] + [*extra]


class FunctionExplainer(Explainer):
    """The ``Explainer`` template around a function (see the module docstring).

    Args:
        model: passed to the function as its first argument.
        fn: ``fn(model, x_batch, target, **params)`` returning (B,H,W) or (B,C,H,W).
        needs_grad: run the function with autograd enabled (default True).
        **params: the function's own keyword parameters, plus the base's
            ``batch_size``, ``seed`` and ``device``.
    """

    def __init__(self, model: ModelLike, *, fn: ExplainFn, needs_grad: bool = True, **params):
        base = {k: params.pop(k) for k in ("batch_size", "seed", "device") if k in params}
        super().__init__(model, **base)
        self.fn = fn
        self.params = params
        self.needs_grad = needs_grad  # type: ignore[misc]
        self.name = getattr(fn, "__name__", type(fn).__name__)  # type: ignore[misc]

    def attribute(self, x_batch: torch.Tensor, y_batch: torch.Tensor) -> torch.Tensor:
        # Seed the global RNG too: a plain function has no generator of its own.
        with torch.random.fork_rng(devices=[] if self.device.type == "cpu" else [self.device]):
            torch.manual_seed(self.seed)
            return self.fn(self.model, x_batch, y_batch, **self.params)


def as_explainer(obj: Any) -> Callable[..., Explainer]:
    """A class as is; a function wrapped so that calling it builds a FunctionExplainer."""
    if not is_function_explainer(obj):
        return obj

    @functools.wraps(obj, assigned=("__module__", "__name__", "__qualname__", "__doc__"))
    def build(model: ModelLike, **params: Any) -> Explainer:
        return FunctionExplainer(model, fn=obj, **params)

    return build
