"""Shared fixtures: a toy model whose logit depends on one known patch, tmp caches."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from benchmark.allocator import tune_glibc_malloc
from benchmark.catalogue import EXPLAINERS

tune_glibc_malloc()  # as the `bench` CLI does: timings match what users see

#: The explainers of models: the generic checks (maps peak where the model reads) do not
#: apply to the reference rows (random, oracle), tested in tests/test_reference_explainers.py.
REAL_EXPLAINERS = [
    n for n in EXPLAINERS.names() if not getattr(EXPLAINERS.get(n), "reference", False)
]

PATCH = (slice(8, 16), slice(20, 28))  # rows, cols of the only pixels the toy model reads
# Five landmarks (eyes, nose tip, mouth corners) of a 32×32 toy face, pixel (x, y): the
# canonical face of the toy images, which carry them jittered by under a pixel.
TOY_POINTS = ((10.0, 12.0), (22.0, 12.0), (16.0, 17.0), (11.0, 23.0), (21.0, 23.0))


def toy_landmarks(n: int, seed: int = 3) -> torch.Tensor:
    """(n, 5, 2) landmarks of n toy images: TOY_POINTS plus a seeded jitter."""
    g = torch.Generator().manual_seed(seed)
    return torch.tensor(TOY_POINTS) + 0.7 * torch.randn(n, 5, 2, generator=g)


def build(cls, model: nn.Module, **params):
    """An explainer of class ``cls``; methods that need a canonical face get the toy one."""
    from explainers.base import build_explainer
    from explainers.canonical import CanonicalFace

    toy = CanonicalFace(torch.tensor(TOY_POINTS), (32, 32))
    return build_explainer(cls, model, canonical=params.pop("canonical", toy), **params)


class PatchMask(nn.Module):
    """Zeroes features outside PATCH, so the logit depends on that patch alone."""

    def __init__(self, size: int):
        super().__init__()
        mask = torch.zeros(1, 1, size, size)
        mask[..., PATCH[0], PATCH[1]] = 1.0
        self.register_buffer("mask", mask)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.mask


class PatchModel(nn.Module):
    """Pixel-space classifier: class 1 logit = weighted patch mean, class 0 = its negative."""

    def __init__(self, size: int = 32):
        super().__init__()
        torch.manual_seed(0)
        self.features = nn.Sequential(nn.Conv2d(3, 4, 1), nn.ReLU(), PatchMask(size))
        with torch.no_grad():
            self.features[0].weight.uniform_(0.5, 1.0)
            self.features[0].bias.fill_(0.1)
        self.head = nn.Linear(4, 1)
        with torch.no_grad():
            # Logits of order 1: a saturated softmax hides the patch from every
            # perturbation method (their scores barely move), which is not what we test.
            self.head.weight.fill_(0.25)
            self.head.bias.zero_()

    @property
    def target_layer(self) -> nn.Module:
        return self.features[2]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        s = self.head(self.features(x).mean(dim=(2, 3)) * 16.0)
        return torch.cat([-s, s], dim=1)


@pytest.fixture
def patch_model() -> PatchModel:
    return PatchModel().eval()


@pytest.fixture(autouse=True)
def _isolated_cache(tmp_path, monkeypatch):
    """No test reads or writes the user's cache or the working directory's DB."""
    monkeypatch.setenv("BENCH_CACHE", str(tmp_path / "cache"))
    torch.set_num_threads(2)


def explain(explainer, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Maps of toy images: with their landmarks, model-level methods fitted first."""
    from explainers.base import fit_and_explain

    return fit_and_explain(explainer, x, y, toy_landmarks(len(x)))


def count_forwards(model: nn.Module, explainer, x: torch.Tensor, y: torch.Tensor) -> list[int]:
    """Images per forward of ``model`` while ``explainer`` explains ``(x, y)``."""
    sizes: list[int] = []
    handle = model.register_forward_hook(lambda m, i, o: sizes.append(len(i[0])))
    try:
        explain(explainer, x, y)
    finally:
        handle.remove()
    return sizes


def check_generic(make, model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """The checks every explainer passes (see tests/test_explainers.py), for one factory:
    (B,H,W) float32 on the input's device, finite, deterministic, peaks inside PATCH for
    class 1 on the patch model, and no hooks left. Returns the maps for ``y``."""
    maps = explain(make(model), x, y)
    assert maps.shape == (len(x), *x.shape[-2:]) and maps.dtype == torch.float32
    assert maps.device == x.device and torch.isfinite(maps).all()
    ones = torch.ones(len(x), dtype=torch.long)
    a, b = explain(make(model), x, ones), explain(make(model), x, ones)
    assert torch.equal(a, b)
    for m in a:
        r, c = divmod(int(m.argmax()), m.shape[1])
        assert PATCH[0].start <= r < PATCH[0].stop and PATCH[1].start <= c < PATCH[1].stop
    for module in model.modules():
        assert not module._forward_hooks and not module._backward_hooks
        assert not module._forward_pre_hooks
    return maps
