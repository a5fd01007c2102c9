"""Forward sizes from the model's activation bytes per image (explainers.forward_size),
measured on the meta device: known counts, no hook of the model fires, fallbacks."""

from __future__ import annotations

import torch
from torch import nn

from benchmark.models.archs import resnet18, small_cnn
from explainers.base import images_per_forward
from explainers.forward_size import CPU_BUDGET, activation_bytes

CPU = torch.device("cpu")


def test_activation_bytes_of_a_known_stack():
    """Conv 3→4 (4·8·8 floats), ReLU (same), flatten (256), linear (2): 4·(256·3 + 2)."""
    model = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.ReLU(), nn.Flatten(), nn.Linear(256, 2))
    assert activation_bytes(model, (3, 8, 8)) == 4 * (256 * 3 + 2)


def test_small_models_keep_256_and_resnet_scale_gets_fewer():
    assert images_per_forward(CPU, None, small_cnn(), (3, 64, 64)) == 256
    per = activation_bytes(resnet18(), (3, 112, 112))
    assert 7.0e6 < per < 8.2e6  # 7.6 MB of activations per 112 px image
    assert images_per_forward(CPU, None, resnet18(), (3, 112, 112)) == CPU_BUDGET // per
    assert images_per_forward(CPU, 100, resnet18(), (3, 112, 112)) == 100  # asked for


def test_the_probe_runs_no_hook_and_no_real_forward():
    model = small_cnn().eval()
    seen = []
    model.register_forward_hook(lambda *a: seen.append(1))
    activation_bytes(model, (3, 48, 48))
    assert seen == [] and next(model.parameters()).device.type == "cpu"


def test_models_the_meta_device_cannot_run_keep_the_default():
    class NumPyInside(nn.Module):
        def forward(self, x):
            return torch.from_numpy(x.numpy().mean((2, 3)))

    assert images_per_forward(CPU, None, NumPyInside(), (3, 8, 8)) == 256
    assert images_per_forward(CPU, None, lambda x: x, (3, 8, 8)) == 256  # a plain callable


def test_smoothgrad_minplus_and_lime_forwards_are_sized_from_the_model():
    """ResNet-18 at 112 px gets the activation-sized count, not the fixed 256, in the
    forwards of SmoothGrad, MinPlus and LIME alike."""
    from explainers.gradients import SmoothGrad
    from explainers.minplus import MinPlus
    from explainers.superpixels import LIME
    from tests.forward_floor import forward_log

    torch.manual_seed(0)
    model = resnet18().eval()
    cap = images_per_forward(torch.device("cpu"), None, model, (3, 112, 112))
    assert 8 <= cap < 64
    x, y = torch.rand(1, 3, 112, 112), torch.tensor([1])
    for explainer in (SmoothGrad(model, nt_samples=cap + 5), MinPlus(model, t_max=1),
                      LIME(model, n_samples=cap + 5, n_segments=16)):  # fmt: skip
        with forward_log(model) as log:
            explainer.explain(x, y)
        sizes = [n for n, _ in log]
        assert max(sizes) == cap, (explainer.name, sizes)
