"""Every registered explainer: shape, device, finiteness, determinism, and a known answer."""

from __future__ import annotations

import pytest
import torch

from benchmark.catalogue import EXPLAINERS
from explainers.base import Explainer, to_map
from tests.conftest import PATCH, REAL_EXPLAINERS, build, explain

NAMES = REAL_EXPLAINERS
# SLIC's defaults suit faces; on these 32×32 noise images they merge everything into one
# superpixel, so the superpixel methods get a finer, grid-like segmentation here.
TEST_PARAMS = {
    "lime": {"n_segments": 64, "compactness": 1000.0, "n_samples": 64},
    "kernel_shap": {"n_segments": 64, "compactness": 1000.0, "n_samples": 64},
}


def make(name: str, model) -> Explainer:
    return build(EXPLAINERS.get(name), model, batch_size=3, seed=0, **TEST_PARAMS.get(name, {}))


@pytest.fixture
def batch():
    g = torch.Generator().manual_seed(1)
    return torch.rand(5, 3, 32, 32, generator=g), torch.tensor([1, 1, 0, 1, 0])


@pytest.mark.parametrize("name", NAMES)
def test_maps_shape_device_finite(name, patch_model, batch):
    x, y = batch
    maps = explain(make(name, patch_model), x, y)
    assert maps.shape == (5, 32, 32) and maps.dtype == torch.float32
    assert maps.device == x.device and torch.isfinite(maps).all()


@pytest.mark.parametrize("name", NAMES)
def test_deterministic_for_a_seed(name, patch_model, batch):
    x, y = batch
    assert torch.equal(
        explain(make(name, patch_model), x, y), explain(make(name, patch_model), x, y)
    )


@pytest.mark.parametrize("name", NAMES)
def test_map_peaks_inside_the_patch_the_logit_reads(name, patch_model, batch):
    x, _ = batch
    maps = explain(make(name, patch_model), x, torch.ones(5, dtype=torch.long))
    for m in maps:
        r, c = divmod(int(m.argmax()), m.shape[1])
        assert PATCH[0].start <= r < PATCH[0].stop and PATCH[1].start <= c < PATCH[1].stop


@pytest.mark.parametrize("name", NAMES)
def test_hooks_are_removed(name, patch_model, batch):
    x, y = batch
    explain(make(name, patch_model), x, y)
    for module in patch_model.modules():
        assert not module._forward_hooks and not module._backward_hooks
        assert not module._forward_pre_hooks


def test_base_batches_and_resizes():
    calls = []

    class Quarter(Explainer):
        def attribute(self, x_batch, y_batch):
            calls.append(len(x_batch))
            return x_batch[:, :, ::4, ::4]  # (B,3,8,8): summed over channels, upsampled

    x = torch.ones(7, 3, 32, 32)
    maps = Quarter(torch.nn.Identity(), batch_size=3).explain(x, torch.zeros(7))
    assert calls == [3, 3, 1] and maps.shape == (7, 32, 32)
    assert torch.allclose(maps, torch.full_like(maps, 3.0))


def test_to_map_rejects_bad_shapes():
    with pytest.raises(ValueError, match=r"\(B,H,W\)"):
        to_map(torch.zeros(2, 3), (4, 4))


def test_gradcam_matches_hand_formula(patch_model, batch):
    """Grad-CAM = ReLU(Σ_k mean(∂y/∂A^k) · A^k), computed here directly with autograd."""
    x, y = batch
    feats = patch_model.features(x).detach().requires_grad_(True)
    s = patch_model.head(feats.mean(dim=(2, 3)) * 16.0)
    logit = torch.cat([-s, s], 1).gather(1, y[:, None]).sum()
    (grad,) = torch.autograd.grad(logit, feats)
    expected = torch.relu((grad.mean(dim=(2, 3), keepdim=True) * feats).sum(1))
    maps = make("gradcam", patch_model).explain(x, y)
    assert torch.allclose(maps, expected, atol=1e-6)
