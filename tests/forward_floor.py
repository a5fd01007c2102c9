"""Forward-pass floors for the explainer benchmarks (``tests/test_bench_explainers.py``).

A perturbation explainer spends its time building perturbed images, sending them through
the model and reducing the outputs. Its *floor* is the forward passes alone: plain
``model(x)`` calls under ``torch.no_grad()`` with exactly the images-per-forward sequence
the explainer sent, on pre-built random images. ``explainer time / floor`` is then the
price of everything the explainer does besides the forwards it cannot avoid.

The model's *best batched throughput* (images per second at its fastest batch size) gives
a second floor, ``images / best rate``: what the same images would cost if the explainer
also chose the best batch size.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import torch
from torch import nn


@contextmanager
def forward_log(model: nn.Module) -> Iterator[list[tuple[int, bool]]]:
    """(images, grad enabled) of every forward of ``model`` inside the block."""
    log: list[tuple[int, bool]] = []
    handle = model.register_forward_hook(
        lambda m, i, o: log.append((len(i[0]), torch.is_grad_enabled()))
    )
    try:
        yield log
    finally:
        handle.remove()


def timed(fn: Callable[..., Any], *args: Any, **kwargs: Any) -> tuple[float, Any]:
    """(seconds, result) of one call of ``fn``."""
    start = time.perf_counter()
    out = fn(*args, **kwargs)
    return time.perf_counter() - start, out


class ForwardFloor:
    """Plain no-grad forwards of ``model`` on pre-built random images of one shape.

    The images are drawn (and grown) outside the timed region. A forward of n images
    gets a fresh copy of the first n, made just before it and not timed, so that its
    input is in cache like an explainer's freshly built perturbations; only the forward
    calls are timed.
    """

    def __init__(self, model: nn.Module, image_shape: Sequence[int], seed: int = 0):
        self.model = model
        self.image_shape = tuple(image_shape)
        self.seed = seed
        self.device = next(iter(model.parameters())).device
        self.x = torch.empty(0, *self.image_shape, device=self.device)

    def images(self, n: int) -> torch.Tensor:
        if len(self.x) < n:
            g = torch.Generator().manual_seed(self.seed)
            self.x = torch.rand(n, *self.image_shape, generator=g).to(self.device)
        return self.x[:n]

    def once(self, sizes: Sequence[int]) -> float:
        """Seconds of the forward calls alone, one per entry of ``sizes``, in that order."""
        src = self.images(max(sizes, default=0))
        total = 0.0
        with torch.no_grad():
            for n in sizes:
                chunk = src[:n].clone()
                self._sync()
                start = time.perf_counter()
                self.model(chunk)
                self._sync()
                total += time.perf_counter() - start
        return total

    def _sync(self) -> None:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)


def throughput(
    model: nn.Module,
    image_shape: Sequence[int],
    batch_sizes: Sequence[int] = (8, 16, 32, 64, 128, 256, 512, 1024),
    images: int = 1024,
    repeats: int = 3,
) -> dict[int, float]:
    """Images per second of plain no-grad forwards at each batch size.

    Each size pushes ``images`` images (rounded up to whole forwards); best of
    ``repeats``, after one warm-up forward per size.
    """
    floor = ForwardFloor(model, image_shape)
    rates: dict[int, float] = {}
    for b in batch_sizes:
        sizes = [b] * max(1, -(-images // b))
        floor.once([b])
        best = min(floor.once(sizes) for _ in range(repeats))
        rates[b] = sum(sizes) / best
    return rates
