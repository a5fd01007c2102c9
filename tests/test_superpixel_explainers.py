"""LIME and KernelSHAP on SLIC superpixels: generic checks, exact answers, captum, batching."""

from __future__ import annotations

import pytest
import torch
from captum.attr import KernelShap as CaptumKernelShap
from captum.attr import Lime as CaptumLime

from explainers.gradients import derived_seed, seeded_global_rng
from explainers.superpixels import LIME, KernelSHAP, slic_segments
from tests.conftest import PATCH, count_forwards

# SLIC on the uniform-noise test images: with the default compactness 10 the noise
# fragments every superpixel and SLIC's connectivity step merges them all into one.
# compactness=1000 makes the segmentation an (almost) regular grid, ~4×4 px at 64
# segments. skimage's grid is not aligned with PATCH, so a few superpixels straddle its
# border; the ones wholly inside hold the most patch pixels and win (checked below).
SP = dict(n_samples=64, n_segments=64, compactness=1000.0)
CASES = [
    (LIME, {}),
    (LIME, {"positive_only": True}),
    (KernelSHAP, {}),
]
IDS = ["lime", "lime_positive_only", "kernel_shap"]


@pytest.fixture
def batch():
    g = torch.Generator().manual_seed(1)
    return torch.rand(5, 3, 32, 32, generator=g), torch.tensor([1, 1, 0, 1, 0])


def make(cls, model, **kw):
    return cls(model, **{"batch_size": 3, "seed": 0, **SP, **kw})


def logit(model, x, y):
    return model(x).gather(1, y[:, None])[:, 0]


def exact_shapley(model, x, y, seg):
    """PatchModel is affine in its input (every ReLU input ≥ 0.1 > 0), so a superpixel's
    Shapley value with a black baseline is f_y(x ⊙ 1_k) − f_y(black), one forward each."""
    k = int(seg.max()) + 1
    keep = (seg[None] == torch.arange(k)[:, None, None]).float()[:, None]  # (K, 1, H, W)
    with torch.no_grad():
        f = logit(model, x[None] * keep, y.expand(k))
        f0 = logit(model, torch.zeros_like(x[None]), y[None])
    return (f - f0)[seg]


# -- generic checks ------------------------------------------------------------------------
def test_names():
    assert LIME.name == "lime" and KernelSHAP.name == "kernel_shap"
    assert not LIME.needs_grad and not KernelSHAP.needs_grad


@pytest.mark.parametrize(("cls", "kw"), CASES, ids=IDS)
def test_maps_shape_device_finite(cls, kw, patch_model, batch):
    x, y = batch
    maps = make(cls, patch_model, **kw).explain(x, y)
    assert maps.shape == (5, 32, 32) and maps.dtype == torch.float32
    assert maps.device == x.device and torch.isfinite(maps).all()


@pytest.mark.parametrize(("cls", "kw"), CASES, ids=IDS)
def test_deterministic_for_a_seed(cls, kw, patch_model, batch):
    x, y = batch
    a = make(cls, patch_model, **kw).explain(x, y)
    assert torch.equal(a, make(cls, patch_model, **kw).explain(x, y))


@pytest.mark.parametrize(("cls", "kw"), CASES, ids=IDS)
def test_map_peaks_inside_the_patch(cls, kw, patch_model, batch):
    x, _ = batch
    maps = make(cls, patch_model, **kw).explain(x, torch.ones(5, dtype=torch.long))
    inside = torch.zeros(32, 32, dtype=torch.bool)
    inside[PATCH] = True
    for m in maps:
        # The top superpixel's pixels all share the max; argmax takes the first in raster
        # order, which for these settings lies inside the patch. The robust statement
        # (holds even if the top superpixel straddled the border): the max is attained
        # by a superpixel overlapping the patch.
        assert inside.flatten()[m.argmax()]
        assert m[inside].max() == m.max()


@pytest.mark.parametrize(("cls", "kw"), CASES, ids=IDS)
def test_hooks_are_removed(cls, kw, patch_model, batch):
    x, y = batch
    make(cls, patch_model, **kw).explain(x, y)
    for module in patch_model.modules():
        assert not module._forward_hooks and not module._backward_hooks
        assert not module._forward_pre_hooks


# -- segmentation ----------------------------------------------------------------------------
def test_slic_segments_are_contiguous_ids(batch):
    x, _ = batch
    seg = slic_segments(x[0], n_segments=64, compactness=1000.0)
    assert seg.shape == (32, 32) and seg.dtype == torch.long and seg.device == x.device
    assert torch.equal(seg.unique(), torch.arange(int(seg.max()) + 1))
    assert 40 <= int(seg.max()) + 1 <= 80


# -- exact answers and captum cross-checks ---------------------------------------------------
@pytest.mark.parametrize(("cls", "kw"), [(KernelSHAP, {}), (LIME, {"alpha": 0.0})])
def test_additive_model_gives_exact_shapley_values(cls, kw, patch_model, batch):
    """A linear surrogate fits an additive game exactly, whatever the sample weights: both
    KernelSHAP and unpenalised LIME return each superpixel's exact contribution."""
    x, y = batch
    e = make(cls, patch_model, n_samples=96, n_segments=25, **kw)  # samples > superpixels
    maps = e.explain(x, y)
    for i in range(len(x)):
        expected = exact_shapley(patch_model, x[i], y[i], e.segments(x[i : i + 1])[0])
        assert torch.allclose(maps[i], expected, atol=1e-4)


def _captum_map(method, x, y, seg, n_samples, seed=0):
    """captum's own call on one image, with the RNG seeded as the explainer seeds it."""
    with seeded_global_rng(derived_seed(torch.Generator().manual_seed(seed)), x.device):
        a = method.attribute(
            x[None], baselines=0.0, target=int(y), feature_mask=seg[None, None], n_samples=n_samples
        )
    return a[0, 0]


def test_lime_equals_captum_lime_with_sklearn_ridge(patch_model, batch):
    """Same samples (same seed), sklearn's Ridge(α=1) instead of our torch surrogate."""
    pytest.importorskip("sklearn")
    from captum._utils.models.linear_model import SkLearnRidge

    x, y = batch
    e = make(LIME, patch_model, batch_size=1)
    maps = e.explain(x[:2], y[:2])
    for i in range(2):
        seg = e.segments(x[i : i + 1])[0]
        method = CaptumLime(patch_model, interpretable_model=SkLearnRidge(alpha=1.0))
        expected = _captum_map(method, x[i], y[i], seg, SP["n_samples"])
        assert torch.allclose(maps[i], expected, rtol=1e-3, atol=1e-4)


def test_kernel_shap_equals_captum_default(patch_model, batch):
    """Same samples, captum's default sklearn LinearRegression instead of ours."""
    pytest.importorskip("sklearn")
    x, y = batch
    e = make(KernelSHAP, patch_model, batch_size=1, n_samples=96, n_segments=25)
    maps = e.explain(x[:2], y[:2])
    for i in range(2):
        seg = e.segments(x[i : i + 1])[0]
        expected = _captum_map(CaptumKernelShap(patch_model), x[i], y[i], seg, 96)
        assert torch.allclose(maps[i], expected, rtol=1e-3, atol=1e-4)


def test_positive_only_clamps_lime(patch_model, batch):
    x, y = batch
    signed = make(LIME, patch_model).explain(x, y)
    assert (signed < 0).any()  # class 0 rows: the patch lowers the logit
    assert torch.equal(make(LIME, patch_model, positive_only=True).explain(x, y), signed.clamp(0))


def test_seed_matters_and_caller_rng_is_untouched(patch_model, batch):
    x, y = batch
    torch.manual_seed(123)
    expected_next = torch.rand(4)
    torch.manual_seed(123)
    a = make(LIME, patch_model).explain(x, y)
    assert torch.equal(torch.rand(4), expected_next)
    assert not torch.equal(a, make(LIME, patch_model, seed=1).explain(x, y))


def test_kernel_shap_on_a_single_superpixel(patch_model, batch):
    """Default SLIC settings on noise give one superpixel: its value is f(x) − f(black)."""
    x, y = batch
    maps = KernelSHAP(patch_model, n_samples=16).explain(x[:2], y[:2])
    with torch.no_grad():
        delta = logit(patch_model, x[:2], y[:2]) - logit(
            patch_model, torch.zeros_like(x[:2]), y[:2]
        )
    assert torch.allclose(maps, delta[:, None, None].expand_as(maps), atol=1e-6)


# -- batching ----------------------------------------------------------------------------------


@pytest.mark.parametrize("cls", [LIME, KernelSHAP], ids=["lime", "kernel_shap"])
@pytest.mark.parametrize("cap", [24, None])
def test_forwards_respect_the_cap(cls, cap, patch_model, batch):
    """One image at a time (captum fits one surrogate per image), its n_samples
    perturbations min(n_samples, cap) per forward, and no other forward."""
    x, y = batch
    n = SP["n_samples"]
    sizes = count_forwards(patch_model, make(cls, patch_model, max_images_per_forward=cap), x, y)
    k = min(n, cap or 256)
    per_image = [k] * (n // k) + ([n % k] if n % k else [])
    assert sizes == per_image * len(x) and max(sizes) <= (cap or 256)
