"""Gradient explainers: generic checks, cross-checks against captum and autograd, batching."""

from __future__ import annotations

import pytest
import torch
from captum.attr import DeepLift as CaptumDeepLift
from captum.attr import GuidedBackprop as CaptumGuidedBackprop
from captum.attr import Saliency as CaptumSaliency

from benchmark.models.archs import small_cnn
from explainers.gradcam import GradCAM
from explainers.gradients import DeepLift, InputXGradient, Saliency, SmoothGrad
from explainers.guided import GuidedBackprop, GuidedGradCAM
from tests.conftest import PATCH, count_forwards

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")  # captum's hook notices

CLASSES = [Saliency, SmoothGrad, InputXGradient, DeepLift, GuidedBackprop, GuidedGradCAM]
NAMES = {
    Saliency: "saliency",
    SmoothGrad: "smoothgrad",
    InputXGradient: "input_x_gradient",
    DeepLift: "deeplift",
    GuidedBackprop: "guided_backprop",
    GuidedGradCAM: "guided_gradcam",
}


@pytest.fixture
def batch():
    g = torch.Generator().manual_seed(1)
    return torch.rand(5, 3, 32, 32, generator=g), torch.tensor([1, 1, 0, 1, 0])


def make(cls, model, **kw):
    return cls(model, batch_size=3, seed=0, **kw)


def in_patch(m: torch.Tensor) -> bool:
    r, c = divmod(int(m.argmax()), m.shape[1])
    return PATCH[0].start <= r < PATCH[0].stop and PATCH[1].start <= c < PATCH[1].stop


def logit(model, x, y):
    return model(x).gather(1, y[:, None])[:, 0]


# -- generic checks (as tests/test_explainers.py) --------------------------------------------
@pytest.mark.parametrize("cls", CLASSES, ids=lambda c: c.name)
def test_names(cls):
    assert cls.name == NAMES[cls]


@pytest.mark.parametrize("cls", CLASSES, ids=lambda c: c.name)
def test_maps_shape_device_finite(cls, patch_model, batch):
    x, y = batch
    maps = make(cls, patch_model).explain(x, y)
    assert maps.shape == (5, 32, 32) and maps.dtype == torch.float32
    assert maps.device == x.device and torch.isfinite(maps).all()


@pytest.mark.parametrize("cls", CLASSES, ids=lambda c: c.name)
def test_deterministic_for_a_seed(cls, patch_model, batch):
    x, y = batch
    assert torch.equal(make(cls, patch_model).explain(x, y), make(cls, patch_model).explain(x, y))


@pytest.mark.parametrize("cls", CLASSES, ids=lambda c: c.name)
def test_map_peaks_inside_the_patch(cls, patch_model, batch):
    x, _ = batch
    maps = make(cls, patch_model).explain(x, torch.ones(5, dtype=torch.long))
    assert all(in_patch(m) for m in maps)


@pytest.mark.parametrize("cls", CLASSES, ids=lambda c: c.name)
def test_hooks_are_removed(cls, patch_model, batch):
    x, y = batch
    make(cls, patch_model).explain(x, y)
    for module in patch_model.modules():
        assert not module._forward_hooks and not module._backward_hooks
        assert not module._forward_pre_hooks and not module._backward_pre_hooks


# -- cross-checks ------------------------------------------------------------------------------
def test_saliency_equals_captum(patch_model, batch):
    x, y = batch
    expected = CaptumSaliency(patch_model).attribute(x, target=y).abs().sum(1)
    assert torch.allclose(make(Saliency, patch_model).explain(x, y), expected)


def test_signed_saliency_is_the_autograd_gradient(patch_model, batch):
    x, y = batch
    xg = x.clone().requires_grad_(True)
    (grad,) = torch.autograd.grad(logit(patch_model, xg, y).sum(), xg)
    maps = make(Saliency, patch_model, abs=False).explain(x, y)
    assert torch.allclose(maps, grad.sum(1), atol=1e-6)


def test_input_x_gradient_equals_autograd(patch_model, batch):
    x, y = batch
    xg = x.clone().requires_grad_(True)
    (grad,) = torch.autograd.grad(logit(patch_model, xg, y).sum(), xg)
    maps = make(InputXGradient, patch_model).explain(x, y)
    assert torch.allclose(maps, (x * grad).sum(1), atol=1e-6)


def test_smoothgrad_without_noise_is_saliency(patch_model, batch):
    x, y = batch
    sg = make(SmoothGrad, patch_model, nt_samples=1, stdevs=0.0).explain(x, y)
    assert torch.allclose(sg, make(Saliency, patch_model).explain(x, y), atol=1e-6)


def test_smoothgrad_seed_matters_and_caller_rng_is_untouched(batch):
    """small_cnn, not PatchModel: PatchModel is linear, its gradient ignores the noise."""
    x, y = batch
    torch.manual_seed(0)
    model = small_cnn().eval()
    torch.manual_seed(123)
    expected_next = torch.rand(4)
    torch.manual_seed(123)
    a = SmoothGrad(model, nt_samples=4, seed=0).explain(x, y)
    assert torch.equal(torch.rand(4), expected_next)
    assert torch.equal(a, SmoothGrad(model, nt_samples=4, seed=0).explain(x, y))
    assert not torch.equal(a, SmoothGrad(model, nt_samples=4, seed=1).explain(x, y))


def test_smoothgrad_averages_noisy_gradients(batch):
    """On a small CNN (not linear, unlike PatchModel): SmoothGrad tends to Saliency as
    σ → 0 and departs from it for large σ."""
    x, y = batch
    torch.manual_seed(0)
    model = small_cnn().eval()
    sal = Saliency(model).explain(x, y)
    tiny = SmoothGrad(model, nt_samples=8, stdevs=1e-6).explain(x, y)
    assert torch.allclose(tiny, sal, rtol=1e-3, atol=1e-6)
    big = SmoothGrad(model, nt_samples=8, stdevs=0.5).explain(x, y)
    assert not torch.allclose(big, sal, rtol=0.05)


@pytest.mark.parametrize("model_name", ["patch", "small_cnn"])
def test_deeplift_sums_to_the_logit_difference(model_name, patch_model, batch):
    """Summation-to-delta: Σ attributions = f_y(x) − f_y(black), and equals captum's."""
    x, y = batch
    torch.manual_seed(0)
    model = patch_model if model_name == "patch" else small_cnn().eval()
    maps = make(DeepLift, model).explain(x, y)
    with torch.no_grad():
        delta = logit(model, x, y) - logit(model, torch.zeros_like(x), y)
    assert torch.allclose(maps.sum((1, 2)), delta, atol=1e-4)
    expected = CaptumDeepLift(model).attribute(x, baselines=0.0, target=y).sum(1)
    assert torch.allclose(maps, expected, atol=1e-6)


def test_guided_backprop_by_hand(patch_model, batch):
    """PatchModel: every ReLU input is > 0 (positive conv weights, bias 0.1, x ≥ 0), so
    guided backprop is the plain gradient where the gradient reaching the ReLU is
    positive (class 1) and zero where it is negative (class 0)."""
    x, y = batch
    maps = make(GuidedBackprop, patch_model).explain(x, y)
    sal = make(Saliency, patch_model).explain(x, y)
    expected = torch.where((y == 1)[:, None, None], sal, torch.zeros_like(sal))
    assert torch.allclose(maps, expected, atol=1e-6)
    captum = CaptumGuidedBackprop(patch_model).attribute(x, target=y).abs().sum(1)
    assert torch.allclose(maps, captum)


@pytest.mark.parametrize("model_name", ["patch", "small_cnn"])
def test_guided_gradcam_is_guided_backprop_times_gradcam(model_name, patch_model, batch):
    """Σ_c |gb_c|·cam = cam·Σ_c |gb_c|; small_cnn's CAM layer is 8×8, upsampled bilinearly."""
    x, y = batch
    torch.manual_seed(0)
    model = patch_model if model_name == "patch" else small_cnn().eval()
    ggc = make(GuidedGradCAM, model).explain(x, y)
    expected = make(GuidedBackprop, model).explain(x, y) * make(GradCAM, model).explain(x, y)
    assert torch.allclose(ggc, expected, atol=1e-6)


# -- batching ----------------------------------------------------------------------------------


@pytest.mark.parametrize("cap", [16, 40, None])
def test_smoothgrad_forwards_respect_the_cap(cap, patch_model, batch):
    x, y = batch
    nt = 25
    e = make(SmoothGrad, patch_model, nt_samples=nt, max_images_per_forward=cap)
    sizes = count_forwards(patch_model, e, x, y)
    limit = cap or 256
    expected = []
    for b in (3, 2):  # batch_size=3 over 5 images
        k = min(nt, limit // b)  # noisy copies per image per forward
        expected += [b * k] * (nt // k) + ([b * (nt % k)] if nt % k else [])
    assert sizes == expected and max(sizes) <= limit
