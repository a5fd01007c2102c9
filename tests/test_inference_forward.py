"""The fast forward of perturbation methods (explainers/inference.py): folded batch norm
in channels-last layout, the model's own outputs, and the model itself wherever a copy
could change what is observed."""

from __future__ import annotations

import torch
from torch import nn

from explainers.inference import inference_forward
from explainers.occlusion import Occlusion
from explainers.rise import RISE


def bn_net(seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    net = nn.Sequential(
        nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(),
        nn.Conv2d(8, 8, 3, padding=1, bias=False), nn.BatchNorm2d(8), nn.ReLU(),
        nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(8, 2),
    )  # fmt: skip
    for m in net.modules():  # statistics away from the identity, so folding matters
        if isinstance(m, nn.BatchNorm2d):
            m.running_mean.uniform_(-0.5, 0.5)
            m.running_var.uniform_(0.5, 2.0)
            m.weight.data.uniform_(0.5, 1.5)
    return net.eval()


class Branchy(nn.Module):
    """Data-dependent control flow: torch.fx cannot trace it, the copy keeps the layout."""

    def __init__(self):
        super().__init__()
        self.body = bn_net()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.body(x)
        return out if out.sum() > -1e9 else -out


def test_folded_copy_matches_and_has_no_batch_norm():
    model = bn_net()
    x = torch.rand(5, 3, 16, 16)
    fast = inference_forward(model)
    assert fast is not model
    assert not any(isinstance(m, nn.BatchNorm2d) for m in fast.fast.modules())
    with torch.no_grad():
        torch.testing.assert_close(fast(x), model(x), atol=1e-5, rtol=1e-5)
    assert fast.checked
    assert inference_forward(model) is fast  # cached while the weights stay


def test_untraceable_model_keeps_its_layers():
    model = Branchy().eval()
    x = torch.rand(3, 3, 16, 16)
    fast = inference_forward(model)
    assert any(isinstance(m, nn.BatchNorm2d) for m in fast.fast.modules())
    with torch.no_grad():
        torch.testing.assert_close(fast(x), model(x), atol=1e-5, rtol=1e-5)


def test_model_itself_where_a_copy_could_differ():
    model = bn_net()
    handle = model[0].register_forward_hook(lambda *a: None)
    assert inference_forward(model) is model  # the hook would not fire in a copy
    handle.remove()
    assert inference_forward(model) is not model
    assert inference_forward(model.train()) is model
    fn = lambda t: t.mean((2, 3))  # noqa: E731
    assert inference_forward(fn) is fn
    scripted = torch.jit.script(bn_net())
    assert inference_forward(scripted) is scripted


def test_rebuilt_after_an_in_place_weight_change():
    model = bn_net()
    x = torch.rand(2, 3, 16, 16)
    before = inference_forward(model)
    with torch.no_grad():
        model[0].weight.mul_(-3.0)  # as model randomisation does, in place
        after = inference_forward(model)
        assert after is not before
        torch.testing.assert_close(after(x), model(x), atol=1e-5, rtol=1e-5)


def test_a_wrong_fold_falls_back_to_the_model():
    model = bn_net()
    fast = inference_forward(model)
    with torch.no_grad():
        next(fast.fast.parameters()).add_(1.0)  # a copy that no longer computes the model
        x = torch.rand(3, 3, 16, 16)
        torch.testing.assert_close(fast(x), model(x))
    assert fast.fallback


def test_the_cache_does_not_keep_models_alive():
    import gc
    import weakref

    model = bn_net()
    inference_forward(model)
    ref = weakref.ref(model)
    del model
    gc.collect()
    assert ref() is None


def test_explainer_maps_do_not_depend_on_the_fast_path():
    """The same maps with the fast copy and with the model (a hook turns the copy off)."""
    model = bn_net()
    x, y = torch.rand(3, 3, 16, 16), torch.tensor([0, 1, 0])
    for make in (lambda: Occlusion(model, window=4), lambda: RISE(model, n_masks=64, s=4)):
        fast = make().explain(x, y)
        handle = model.register_forward_hook(lambda *a: None)
        plain = make().explain(x, y)
        handle.remove()
        torch.testing.assert_close(fast, plain, atol=1e-5, rtol=1e-4)
        assert fast.abs().amax() > 0
