"""LIME and KernelSHAP on SLIC superpixels: generic checks, exact answers, captum, batching."""

from __future__ import annotations

import math

import pytest
import torch
from captum.attr import KernelShap as CaptumKernelShap
from captum.attr import Lime as CaptumLime
from captum.attr._core.lime import get_exp_kernel_similarity_function

from explainers.superpixels import (
    LIME,
    KernelSHAP,
    WeightedLinearSurrogate,
    slic_segments,
    weighted_linear_fit,
)
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


# -- sampling distributions --------------------------------------------------------------------
def test_lime_samples_are_fair_coins(patch_model):
    z = LIME(patch_model, n_samples=20000).sample(8, torch.Generator().manual_seed(0)).float()
    assert z.shape == (20000, 8)
    assert (z.mean(0) - 0.5).abs().max() < 0.015  # σ = 0.0035
    assert (torch.corrcoef(z.T) - torch.eye(8)).abs().max() < 0.03  # independent


def test_kernel_shap_samples_follow_the_shapley_kernel(patch_model):
    n, m = 30000, 6
    z = KernelSHAP(patch_model, n_samples=n).sample(m, torch.Generator().manual_seed(0))
    assert z[0].all() and not z[1].any()  # the full and the empty coalition first
    sizes = z[2:].sum(1)
    assert sizes.min() >= 1 and sizes.max() <= m - 1
    p = torch.tensor([(m - 1) / (s * (m - s)) for s in range(1, m)])
    freq = torch.bincount(sizes, minlength=m)[1:].double() / (n - 2)
    assert (freq - p / p.sum()).abs().max() < 0.01  # σ ≤ 0.003
    # Given its size, a coalition is a uniform subset: every player equally often.
    for s in range(1, m):
        rows = z[2:][sizes == s].double()
        assert (rows.mean(0) - s / m).abs().max() < 0.04


def test_samples_of_an_image_do_not_depend_on_the_others(patch_model, batch):
    """Image b draws from its own generator: padding to a larger K_max changes nothing."""
    x, _ = batch
    e = make(KernelSHAP, patch_model)
    seg = e.segments(x[:2])
    coarse = slic_segments(x[1], n_segments=9, compactness=1000.0)
    z_fine, z_mixed = e.draw(seg), e.draw(torch.stack([seg[0], coarse]))
    assert torch.equal(z_fine[0], z_mixed[0])
    k = int(coarse.max()) + 1
    assert not z_mixed[1, :, k:].any() and z_mixed[1, :, :k].any()


# -- the fit, the similarity kernel, and captum on the same samples ----------------------------
@pytest.mark.parametrize("alpha", [0.0, 1.0])
def test_batched_fit_equals_sklearn_per_problem(alpha):
    """Problems with 4, 7 and 5 features padded to 7: each fit equals sklearn's own."""
    sklearn = pytest.importorskip("sklearn.linear_model")
    g = torch.Generator().manual_seed(0)
    ks, n = [4, 7, 5], 40
    z = torch.zeros(3, n, 7)
    for b, k in enumerate(ks):
        z[b, :, :k] = (torch.rand(n, k, generator=g) < 0.5).float()
    y, w = torch.randn(3, n, generator=g), torch.rand(3, n, generator=g) + 0.1
    beta, bias = weighted_linear_fit(z, y, w, alpha)
    for b, k in enumerate(ks):
        ref = sklearn.Ridge(alpha=alpha) if alpha else sklearn.LinearRegression()
        ref.fit(z[b, :, :k].double().numpy(), y[b].double().numpy(), sample_weight=w[b].numpy())
        assert torch.allclose(beta[b, :k], torch.from_numpy(ref.coef_), atol=1e-8)
        assert torch.allclose(bias[b], torch.tensor(ref.intercept_, dtype=bias.dtype), atol=1e-8)
        assert not beta[b, k:].any()  # padding


def test_lime_similarity_is_captums_default_kernel(patch_model, batch):
    x, _ = batch
    e = make(LIME, patch_model)
    seg = e.segments(x[:2])
    z = e.draw(seg)
    z[0, 0] = 0.0  # the empty sample too: cosine similarity with a black image is 0
    w = e.sample_weights(x[:2], seg, z)
    kernel = get_exp_kernel_similarity_function()  # captum's: cosine distance, width 1
    for b in range(2):
        for i in range(0, 64, 9):
            perturbed = x[b] * z[b, i][seg[b]]
            assert math.isclose(float(w[b, i]), kernel(x[b], perturbed, None), rel_tol=1e-6)
    assert w.min() < 0.9  # the kernel is not flat on these samples


def _replay(samples):
    """A captum perturb_func that yields the given (n, K) binary samples, in order."""

    def perturb(original_inp, **kwargs):
        for row in samples:
            yield row[None].long()

    return perturb


def _captum_on_our_samples(e, method, x, y):
    """captum's attribution of each image, its perturbations replaced by ours."""
    seg = e.segments(x)
    z = e.draw(seg)
    out = []
    for b in range(len(x)):
        k = int(seg[b].max()) + 1
        method.perturb_func = _replay(z[b, :, :k])
        a = method.attribute(
            x[b : b + 1], baselines=0.0, target=int(y[b]), feature_mask=seg[b][None, None],
            n_samples=e.n_samples,
        )  # fmt: skip
        out.append(a[0, 0])
    return torch.stack(out)


def test_lime_equals_captum_lime_with_sklearn_ridge_on_the_same_samples(patch_model, batch):
    """captum builds the perturbed images, weighs them with its kernel and fits sklearn's
    Ridge(α=1) with sample weights: the same maps as ours."""
    pytest.importorskip("sklearn")
    from captum._utils.models.linear_model import SkLearnRidge

    x, y = batch
    e = make(LIME, patch_model)
    maps = e.explain(x[:3], y[:3])
    expected = _captum_on_our_samples(
        e, CaptumLime(patch_model, interpretable_model=SkLearnRidge(alpha=1.0)), x[:3], y[:3]
    )
    assert torch.allclose(maps, expected, rtol=1e-4, atol=1e-6)
    assert maps.abs().max() > 0.01


def test_kernel_shap_equals_captum_default_on_the_same_samples(patch_model, batch):
    """captum's KernelShap (its endpoint weights 10⁶, sklearn's LinearRegression) on our
    coalitions, for a non-additive game (the squared logit) so that the fit is compared,
    not only an exact answer both would reach on any samples."""
    pytest.importorskip("sklearn")
    x, y = batch

    def model(t):
        return patch_model(t) ** 2

    e = make(KernelSHAP, model, n_samples=96, n_segments=25)
    maps = e.explain(x[:3], y[:3])
    expected = _captum_on_our_samples(e, CaptumKernelShap(model), x[:3], y[:3])
    assert torch.allclose(maps, expected, rtol=1e-3, atol=1e-5)
    additive = [exact_shapley(model, x[i], y[i], e.segments(x[i : i + 1])[0]) for i in range(3)]
    assert not torch.allclose(maps, torch.stack(additive), atol=1e-3)  # the game is not additive


def test_surrogate_inside_captum_lime_equals_sklearn_ridge(patch_model, batch):
    """Our fit as captum's interpretable model, against sklearn's, same captum samples."""
    pytest.importorskip("sklearn")
    from captum._utils.models.linear_model import SkLearnRidge

    x, y = batch
    seg = slic_segments(x[0], **{k: SP[k] for k in ("n_segments", "compactness")})
    maps = []
    for surrogate in (WeightedLinearSurrogate(alpha=1.0), SkLearnRidge(alpha=1.0)):
        torch.manual_seed(0)
        a = CaptumLime(patch_model, interpretable_model=surrogate).attribute(
            x[:1], baselines=0.0, target=int(y[0]), feature_mask=seg[None, None], n_samples=64
        )
        maps.append(a)
    assert torch.allclose(maps[0], maps[1], rtol=1e-4, atol=1e-6)


# -- exact answers -----------------------------------------------------------------------------
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


def stripes(n: int, side: int = 32) -> torch.Tensor:
    """(n, side, side) segmentations that differ per image: bands of b + 3 rows (even b)
    or columns (odd b), so K_b ranges from 5 to 11."""
    ids = torch.arange(side)
    segs = [(ids[:, None] if b % 2 == 0 else ids[None, :]) // (b + 3) for b in range(n)]
    return torch.stack([s.expand(side, side) for s in segs])


@pytest.mark.parametrize(("cls", "kw"), [(KernelSHAP, {}), (LIME, {"alpha": 0.0})])
def test_exact_values_with_a_different_segmentation_per_image(cls, kw, patch_model, batch):
    """Each image's perturbations paint its own superpixels, padding included, also when a
    forward straddles two images (cap 100, 64 samples each)."""
    x, y = batch
    e = make(cls, patch_model, batch_size=5, max_images_per_forward=100, **kw)
    segs = stripes(len(x))
    e.segments = lambda xb: segs[: len(xb)]
    maps = e.explain(x, y)
    for i in range(len(x)):
        assert torch.allclose(maps[i], exact_shapley(patch_model, x[i], y[i], segs[i]), atol=1e-4)


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
@pytest.mark.parametrize(
    ("kw", "expected"),
    [
        ({"max_images_per_forward": 100}, [100, 100, 100, 20]),
        ({"perturbations_per_eval": 100}, [100, 100, 100, 20]),  # the deprecated alias
        ({}, [256, 64]),  # the CPU default cap
    ],
    ids=["cap100", "alias100", "default"],
)
def test_forwards_share_images_up_to_the_cap(cls, kw, expected, patch_model, batch):
    """All 5 × 64 perturbations of the batch in full forwards across images, nothing else."""
    x, y = batch
    sizes = count_forwards(patch_model, make(cls, patch_model, batch_size=5, **kw), x, y)
    assert sizes == expected


@pytest.mark.parametrize("cls", [LIME, KernelSHAP], ids=["lime", "kernel_shap"])
def test_maps_do_not_depend_on_the_forward_cap_or_later_images(cls, patch_model, batch):
    """An image's map depends on its position in its batch, not on how the perturbations
    are split into forwards or which images follow it."""
    x, y = batch
    a = make(cls, patch_model, batch_size=5).explain(x, y)
    b = make(cls, patch_model, batch_size=5, max_images_per_forward=7).explain(x, y)
    c = make(cls, patch_model, batch_size=5).explain(x[:2], y[:2])
    assert torch.allclose(a, b, atol=1e-5) and torch.allclose(a[:2], c, atol=1e-5)
