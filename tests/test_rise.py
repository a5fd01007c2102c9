"""RISE against its formula computed by hand; IG and Occlusion against captum directly."""

from __future__ import annotations

import math

import pytest
import torch
from captum.attr import IntegratedGradients as CaptumIG
from captum.attr import Occlusion as CaptumOcclusion

from benchmark.catalogue import EXPLAINERS
from benchmark.models.archs import small_cnn
from explainers.integrated_gradients import IntegratedGradients
from explainers.occlusion import Occlusion
from explainers.rise import RISE, rise_masks
from tests.conftest import PATCH

N, S, P = 300, 8, 0.5  # N not a multiple of masks_per_forward: the last chunk is partial


@pytest.fixture
def batch():
    g = torch.Generator().manual_seed(1)
    return torch.rand(5, 3, 32, 32, generator=g), torch.tensor([1, 1, 0, 1, 0])


def _direct(model, x, y, masks, norm):
    """Σ_k softmax(model(x ⊙ m_k))[y] · m_k / norm, one mask at a time."""
    sal = torch.zeros(len(x), *masks.shape[1:])
    with torch.no_grad():
        for m in masks:
            prob = torch.softmax(model(x * m), dim=1)
            sal += prob[torch.arange(len(x)), y][:, None, None] * m
    return sal / norm


def test_masks_shape_range_and_density():
    masks = rise_masks(2000, S, P, (48, 40), torch.Generator().manual_seed(0))
    assert masks.shape == (2000, 48, 40) and masks.dtype == torch.float32
    assert masks.min() >= 0.0 and masks.max() <= 1.0
    assert abs(masks.mean().item() - P) < 0.02
    # Smooth, not binary: bilinear upsampling leaves intermediate values.
    assert ((masks > 0.01) & (masks < 0.99)).float().mean() > 0.2


def test_masks_reproduce_from_the_seed():
    e = RISE(torch.nn.Identity(), n_masks=N, seed=3)
    again = rise_masks(N, S, P, (32, 32), torch.Generator().manual_seed(3))
    assert torch.equal(e.masks(32, 32), again)
    assert e.masks(32, 32) is e.masks(32, 32)  # cached per image size
    assert not torch.equal(again, rise_masks(N, S, P, 32, torch.Generator().manual_seed(4)))


def test_paper_normalisation_equals_direct_formula(patch_model, batch):
    x, y = batch
    e = RISE(patch_model, n_masks=N, masks_per_forward=64, normalize="paper", seed=0)
    masks = rise_masks(N, S, P, 32, torch.Generator().manual_seed(0))
    expected = _direct(patch_model, x, y, masks, N * P)
    assert torch.allclose(e.explain(x, y), expected, atol=1e-5)


def test_coverage_normalisation_equals_direct_formula(patch_model, batch):
    x, y = batch
    e = RISE(patch_model, n_masks=N, masks_per_forward=64, normalize="coverage", seed=0)
    masks = rise_masks(N, S, P, 32, torch.Generator().manual_seed(0))
    expected = _direct(patch_model, x, y, masks, masks.sum(0))
    assert torch.allclose(e.explain(x, y), expected, atol=1e-5)


@pytest.mark.parametrize("per_forward", [64, 100, 300])
def test_one_batched_forward_per_mask_chunk(patch_model, batch, per_forward):
    x, y = batch
    sizes: list[int] = []
    handle = patch_model.register_forward_hook(lambda m, i, o: sizes.append(len(i[0])))
    try:
        RISE(patch_model, n_masks=N, masks_per_forward=per_forward, batch_size=8).explain(x, y)
    finally:
        handle.remove()
    assert len(sizes) == math.ceil(N / per_forward)
    assert sum(sizes) == len(x) * N and sizes[0] == len(x) * min(per_forward, N)


def test_default_map_peaks_inside_the_patch(patch_model, batch):
    x, _ = batch
    maps = RISE(patch_model, seed=0).explain(x, torch.ones(5, dtype=torch.long))
    for m in maps:
        r, c = divmod(int(m.argmax()), m.shape[1])
        assert PATCH[0].start <= r < PATCH[0].stop and PATCH[1].start <= c < PATCH[1].stop


def test_registered_under_aliases():
    assert EXPLAINERS.get("RISE") is RISE
    assert EXPLAINERS.get("ig") is IntegratedGradients
    assert EXPLAINERS.get("integrated-gradients") is IntegratedGradients
    assert EXPLAINERS.get("occ") is Occlusion


# -- captum-backed explainers: guard the mapping of our parameters onto captum's -------
@pytest.fixture
def cnn():
    torch.manual_seed(0)
    return small_cnn().eval()


@pytest.mark.parametrize("baseline", ["black", "mean"])
def test_integrated_gradients_equals_captum(cnn, batch, baseline):
    x, y = batch
    ours = IntegratedGradients(cnn, n_steps=16, baseline=baseline).explain(x, y)
    ref = torch.zeros_like(x) if baseline == "black" else x.mean((2, 3), keepdim=True).expand_as(x)
    theirs = CaptumIG(cnn).attribute(x, baselines=ref, target=y, n_steps=16).sum(1)
    assert torch.allclose(ours, theirs, atol=1e-5)


def test_integrated_gradients_completeness(cnn, batch):
    """Signed attributions sum to f(x) − f(black), up to the Riemann error."""
    x, y = batch
    maps = IntegratedGradients(cnn, n_steps=128).explain(x, y)
    with torch.no_grad():
        gap = (
            cnn(x).gather(1, y[:, None])[:, 0]
            - cnn(torch.zeros_like(x)).gather(1, y[:, None])[:, 0]
        )
    assert torch.allclose(maps.sum((1, 2)), gap, atol=0.05 * gap.abs().max().item())


@pytest.mark.parametrize("kw, window, stride", [({}, 4, 2), ({"window": 6, "stride": 3}, 6, 3)])
def test_occlusion_equals_captum(cnn, batch, kw, window, stride):
    x, y = batch
    ours = Occlusion(cnn, **kw).explain(x, y)
    theirs = CaptumOcclusion(cnn).attribute(
        x,
        sliding_window_shapes=(3, window, window),
        strides=(3, stride, stride),
        target=y,
        perturbations_per_eval=16,  # captum's result does not depend on it; speed only
    )
    assert torch.allclose(ours, theirs.sum(1), atol=1e-5)
