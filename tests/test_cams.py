"""Grad-CAM++, Score-CAM, HiRes-CAM, Layer-CAM: agreement with pytorch-grad-cam, the
generic explainer checks, and Score-CAM's batched forwards."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from benchmark.models.archs import small_cnn
from explainers.cams import GradCAMPlusPlus, HiResCAM, LayerCAM, ScoreCAM

pgc = pytest.importorskip("pytorch_grad_cam")
from pytorch_grad_cam.utils.image import scale_cam_image  # noqa: E402
from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget  # noqa: E402

CLASSES = [GradCAMPlusPlus, ScoreCAM, HiResCAM, LayerCAM]
REFERENCE = {
    GradCAMPlusPlus: pgc.GradCAMPlusPlus,
    ScoreCAM: pgc.ScoreCAM,
    HiResCAM: pgc.HiResCAM,
    LayerCAM: pgc.LayerCAM,
}
IDS = [cls.name for cls in CLASSES]


@pytest.fixture
def batch():
    g = torch.Generator().manual_seed(1)
    return torch.rand(5, 3, 32, 32, generator=g), torch.tensor([1, 1, 0, 1, 0])


def trained_like_cnn() -> torch.nn.Module:
    """small_cnn with seeded random weights and non-trivial batch-norm statistics."""
    torch.manual_seed(0)
    model = small_cnn(n_classes=3, width=8)
    for m in model.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.uniform_(-0.2, 0.2)
            m.running_var.uniform_(0.5, 1.5)
    return model.eval()


def reference_raw_cams(cls, model, layer, x, y) -> tuple[np.ndarray, np.ndarray]:
    """pytorch-grad-cam's un-normalised CAM at the layer's resolution, and its public map.

    ``cam(x, targets)`` min-max scales each map and resizes it with cv2, which would make
    the comparison depend on cv2's resize. The raw CAM is the value BaseCAM.forward and
    compute_cam_per_layer hold just before ``scale_cam_image``: the same steps run here
    (capture, backward of the summed target logits, ``get_cam_image``, ReLU). The public
    map is returned too, to check that these steps reproduce the library's output.
    """
    targets = [ClassifierOutputTarget(int(c)) for c in y]
    cam = cls(model=model, target_layers=[layer])
    if cls is pgc.ScoreCAM:
        cam.batch_size = 64  # its own per-image batching; the result does not depend on it
    try:
        public = cam(input_tensor=x, targets=targets)
        outputs = cam.activations_and_grads(x)
        grads = None
        if cam.uses_gradients:
            model.zero_grad()
            sum(t(o) for t, o in zip(targets, outputs, strict=True)).backward()
            grads = cam.activations_and_grads.gradients[0].numpy()
        acts = cam.activations_and_grads.activations[0].numpy()
        raw = np.maximum(cam.get_cam_image(x, layer, targets, acts, grads, False), 0)
    finally:
        cam.activations_and_grads.release()
    model.zero_grad(set_to_none=True)
    return raw, public


@pytest.mark.parametrize("cls", CLASSES, ids=IDS)
@pytest.mark.parametrize("model_name", ["small_cnn", "patch_model"])
def test_matches_pytorch_grad_cam(cls, model_name, patch_model, batch):
    model = trained_like_cnn() if model_name == "small_cnn" else patch_model
    x, y = batch
    if model_name == "small_cnn":
        y = torch.tensor([0, 1, 2, 1, 0])
    layer = model.target_layer
    raw, public = reference_raw_cams(REFERENCE[cls], model, layer, x, y)
    # Our attribute() at the layer's resolution, before the base's upsampling.
    ours = cls(model, batch_size=5).attribute(x, y).detach().numpy()
    assert ours.shape == raw.shape
    # Exact comparison of the raw maps, relative to each map's range.
    scale = np.maximum(raw.max(axis=(1, 2), keepdims=True), 1e-12)
    assert np.abs(ours - raw).max() / scale.max() < 1e-4
    assert np.allclose(ours / scale, raw / scale, atol=1e-4)
    # The steps above are the library's: its public output is the raw map min-max scaled
    # and cv2-resized per layer, then min-max scaled again by aggregate_multi_layers.
    size = tuple(x.shape[-2:][::-1])
    assert np.allclose(public, scale_cam_image(scale_cam_image(raw, size)), atol=1e-5)
    # Also after the library's own per-map min-max scaling at the layer's resolution.
    assert np.allclose(scale_cam_image(ours), scale_cam_image(raw), atol=1e-4)
    for m in model.modules():
        assert not m._forward_hooks and not m._backward_hooks


def make(cls, model):
    return cls(model, batch_size=3, seed=0)


# The generic checks (shape, determinism, peak in the patch, hooks removed) run for every
# registered explainer in tests/test_explainers.py.


@pytest.mark.parametrize("cls", [GradCAMPlusPlus, HiResCAM, LayerCAM], ids=lambda c: c.name)
def test_gradient_cams_leave_parameter_grads_alone_and_work_frozen(cls, batch):
    model = trained_like_cnn()
    x, _ = batch
    y = torch.tensor([0, 1, 2, 1, 0])
    before = cls(model).explain(x, y)
    assert all(p.grad is None for p in model.parameters())
    model.requires_grad_(False)
    assert torch.equal(cls(model).explain(x, y), before)


def test_layer_path_selects_the_layer(batch):
    model = trained_like_cnn()
    x, y = batch
    y = y.clamp_max(2)
    by_path = LayerCAM(model, layer="backbone.3").explain(x, y)
    assert torch.equal(by_path, LayerCAM(model).explain(x, y))
    assert not torch.equal(LayerCAM(model, layer="backbone.1").explain(x, y), by_path)


@pytest.mark.parametrize(
    ("model_name", "b", "cap"),
    [("patch_model", 5, 6), ("patch_model", 5, 20), ("small_cnn", 3, 40), ("small_cnn", 2, 1000)],
)
def test_scorecam_batches_masked_images_up_to_the_cap(model_name, b, cap, patch_model, batch):
    model = trained_like_cnn() if model_name == "small_cnn" else patch_model
    x = batch[0][:b]
    y = torch.arange(b) % 2
    sizes: list[int] = []
    handle = model.register_forward_hook(lambda mod, inp, out: sizes.append(len(inp[0])))
    try:
        explainer = ScoreCAM(model, batch_size=b, max_images_per_forward=cap)
        maps = explainer.explain(x, y)
    finally:
        handle.remove()
    k = _channels(model, x)
    assert maps.shape == (b, 32, 32)
    # One activation forward of the B images, then ceil(B·K / cap) masked forwards.
    assert sizes[0] == b
    assert len(sizes) == 1 + math.ceil(b * k / cap)
    assert sum(sizes[1:]) == b * k and max(sizes[1:]) <= cap


def _channels(model, x) -> int:
    out: list[torch.Tensor] = []
    handle = model.target_layer.register_forward_hook(lambda m, i, o: out.append(o))
    try:
        with torch.no_grad():
            model(x[:1])
    finally:
        handle.remove()
    return out[0].shape[1]


def test_scorecam_cap_does_not_change_the_map(patch_model, batch):
    x, y = batch
    a = ScoreCAM(patch_model, max_images_per_forward=3).explain(x, y)
    b = ScoreCAM(patch_model, max_images_per_forward=1000).explain(x, y)
    assert torch.allclose(a, b, atol=1e-6)
