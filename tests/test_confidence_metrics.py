"""Average Drop, % Increase and Win % on a model whose softmax is computable by hand."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from metrics import MetricContext
from metrics.confidence import (
    AverageDrop,
    IncreaseInConfidence,
    WinPercent,
    confidence,
    explanation_images,
    mass_matched,
    win_percent,
)
from metrics.regions import minmax

CTX = MetricContext(("bg", "skin"))


class MeanModel(nn.Module):
    """Logits (0, 4·mean pixel): p(class 1) = σ(4m), p(class 0) = σ(−4m)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        s = 4.0 * x.mean(dim=(1, 2, 3))
        return torch.stack([torch.zeros_like(s), s], 1)


def sigmoid(v: float) -> float:
    return 1.0 / (1.0 + math.exp(-v))


def hand_batch() -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Three white 4×4 images; maps mark the top row (4 px = α·16) or nothing."""
    x = torch.ones(3, 3, 4, 4)
    top = torch.zeros(4, 4)
    top[0] = 1.0
    a = torch.stack([top, top, torch.zeros(4, 4)])
    return x, torch.tensor([1, 0, 1]), a


def test_average_drop_and_increase_by_hand():
    x, y, a = hand_batch()
    # Negative variant darkens the top row: mean pixel 1 → 0.75.
    # Image 0, class 1: Y = σ(4), O = σ(3): a drop of (σ4 − σ3)/σ4.
    # Image 1, class 0: Y = σ(−4), O = σ(−3) > Y: an increase, its drop clipped at 0.
    # Image 2: all-zero map, E = X, O = Y: neither.
    drop0 = 100 * (sigmoid(4) - sigmoid(3)) / sigmoid(4)
    ad, inc = AverageDrop(CTX), IncreaseInConfidence(CTX)
    for m in (ad, inc):
        m.update(x_batch=x, y_batch=y, a_batch=a, model=MeanModel())
    r_ad, r_inc = ad.compute(), inc.compute()
    assert r_ad.per_image.tolist() == pytest.approx([drop0, 0.0, 0.0], abs=1e-4)
    assert r_ad.scores["average_drop"] == pytest.approx(drop0 / 3, abs=1e-4)
    assert r_inc.per_image.tolist() == [0.0, 100.0, 0.0]
    assert r_inc.scores == {"increase_in_confidence": pytest.approx(100 / 3)}
    assert r_ad.n == r_inc.n == 3
    assert r_ad.details == {
        "variant": "negative",
        "alpha": 0.25,
        "confidence": "softmax",
        "n_excluded": 0,
    }
    o = [sigmoid(3), sigmoid(-3), sigmoid(4)]
    assert ad.explanation_confidence.tolist() == pytest.approx(o, abs=1e-6)


def test_positive_variant_by_hand():
    x, y, a = hand_batch()
    # E = H ⊙ X keeps only the top row: mean 0.25. Image 0: Y = σ4, O = σ1.
    m = AverageDrop(CTX, variant="positive")
    m.update(x_batch=x, y_batch=y, a_batch=a, model=MeanModel())
    expect = 100 * (sigmoid(4) - sigmoid(1)) / sigmoid(4)
    assert m.compute().per_image[0].item() == pytest.approx(expect, abs=1e-4)


def test_logit_confidence_excludes_nonpositive_y():
    x, y, a = hand_batch()
    m = AverageDrop(CTX, confidence="logit")
    m.update(x_batch=x, y_batch=y, a_batch=a, model=MeanModel())
    res = m.compute()
    # Class-0 logit is 0 ≤ 0: left out. Image 0: (4 − 3)/4; image 2: 0.
    assert res.n == 2 and res.details["n_excluded"] == 1
    assert res.scores["average_drop"] == pytest.approx(100 * 0.25 / 2)
    assert math.isnan(res.per_image[1].item())


def test_mass_matching_by_hand():
    h = torch.zeros(2, 4, 4)
    # Map 0: 1 + 4·0.5 + 8·0.25 = 5 > 4 → c = 0.8, nothing saturates.
    h[0].view(-1)[0] = 1.0
    h[0].view(-1)[1:5] = 0.5
    h[0].view(-1)[5:13] = 0.25
    # Map 1: 1 + 12·0.1 = 2.2 < 4 → the peak saturates: 1 + 1.2c = 4 → c = 2.5.
    h[1].view(-1)[0] = 1.0
    h[1].view(-1)[1:13] = 0.1
    out = mass_matched(h, 0.25)
    assert torch.allclose(out[0], 0.8 * h[0], atol=1e-5)
    assert out[1].view(-1)[0] == 1.0
    assert torch.allclose(out[1].view(-1)[1:13], torch.full((12,), 0.25), atol=1e-5)


def test_mass_matching_random_zero_and_infeasible_maps():
    g = torch.Generator().manual_seed(0)
    a = torch.rand(6, 32, 32, generator=g) ** torch.tensor([0.5, 1, 2, 4, 8, 30]).view(6, 1, 1)
    h = mass_matched(minmax(a), 0.25)
    assert h.min() >= 0 and h.max() <= 1
    assert torch.allclose(h.sum((1, 2)), torch.full((6,), 0.25 * 1024), rtol=1e-4)
    assert torch.equal(mass_matched(torch.zeros(1, 8, 8), 0.25), torch.zeros(1, 8, 8))
    sparse = torch.zeros(1, 8, 8)
    sparse[0, 0, :3] = torch.tensor([1.0, 0.5, 0.01])  # 3 px < 16: budget unreachable
    assert torch.equal(mass_matched(sparse, 0.25), (sparse > 0).float())
    x = torch.rand(2, 3, 8, 8, generator=g)
    e = explanation_images(x, torch.zeros(2, 8, 8))
    assert torch.equal(e, x)  # all-zero map: nothing darkened


def test_win_percent_with_ties():
    conf = {
        "A": torch.tensor([0.1, 0.2, 0.3, 0.5]),
        "B": torch.tensor([0.1, 0.3, 0.3, 0.4]),
        "C": torch.tensor([0.2, 0.1, 0.3, 0.6]),
    }
    # Lowest wins: img0 A/B tie, img1 C, img2 3-way tie, img3 B.
    low = win_percent(conf, higher_wins=False)
    assert low == pytest.approx({"A": 25 * (1 / 2 + 1 / 3), "B": 25 * (11 / 6), "C": 25 * 4 / 3})
    # Highest wins: img0 C, img1 B, img2 3-way tie, img3 C.
    high = win_percent(conf, higher_wins=True)
    assert high == pytest.approx({"A": 25 / 3, "B": 25 * 4 / 3, "C": 25 * 7 / 3})
    assert sum(low.values()) == pytest.approx(100) and sum(high.values()) == pytest.approx(100)


def test_direction_and_validation():
    assert AverageDrop(CTX).direction == "higher"
    assert AverageDrop(CTX, variant="positive").direction == "lower"
    assert IncreaseInConfidence(CTX).direction == "lower"
    assert IncreaseInConfidence(CTX, variant="positive").direction == "higher"
    assert AverageDrop.direction == "higher" and IncreaseInConfidence.direction == "lower"
    with pytest.raises(ValueError, match="variant"):
        AverageDrop(CTX, variant="both")
    with pytest.raises(ValueError, match="alpha"):
        AverageDrop(CTX, alpha=0.0)
    with pytest.raises(ValueError, match="confidence"):
        IncreaseInConfidence(CTX, confidence="prob")


def test_one_forward_per_batch_and_batches_accumulate(patch_model):
    g = torch.Generator().manual_seed(1)
    x, a = torch.rand(6, 3, 32, 32, generator=g), torch.rand(6, 32, 32, generator=g)
    y = torch.tensor([0, 1, 1, 0, 1, 0])
    calls = []
    hook = patch_model.register_forward_hook(lambda *_: calls.append(1))
    split, whole = AverageDrop(CTX), AverageDrop(CTX)
    split.update(x_batch=x[:4], y_batch=y[:4], a_batch=a[:4], model=patch_model)
    split.update(x_batch=x[4:], y_batch=y[4:], a_batch=a[4:], model=patch_model)
    assert len(calls) == 2
    hook.remove()
    whole.update(x_batch=x, y_batch=y, a_batch=a, model=patch_model)
    assert torch.allclose(split.compute().per_image, whole.compute().per_image, atol=1e-5)


def test_positive_variant_matches_pytorch_grad_cam(patch_model):
    cam_mult = pytest.importorskip(
        "pytorch_grad_cam.metrics.cam_mult_image", reason="pytorch-grad-cam not installed"
    )
    targets_mod = pytest.importorskip("pytorch_grad_cam.utils.model_targets")
    g = torch.Generator().manual_seed(2)
    x, a = torch.rand(8, 3, 32, 32, generator=g), torch.rand(8, 32, 32, generator=g)
    y = torch.tensor([0, 1, 0, 1, 1, 0, 1, 0])
    targets = [targets_mod.ClassifierOutputSoftmaxTarget(int(c)) for c in y]
    cams = minmax(a).numpy()  # their E = input ⊙ cam, so pass our H = minmax(S)
    gc_drop = torch.from_numpy(cam_mult.DropInConfidence()(x, cams, targets, patch_model))
    gc_inc = torch.from_numpy(cam_mult.IncreaseInConfidence()(x, cams, targets, patch_model))
    ours_drop, ours_inc = (
        AverageDrop(CTX, variant="positive"),
        IncreaseInConfidence(CTX, variant="positive"),
    )
    for m in (ours_drop, ours_inc):
        m.update(x_batch=x, y_batch=y, a_batch=a, model=patch_model)
    big_y = confidence(patch_model, x, y)
    # Unit mapping: their DropInConfidence = max(0, Y − O) per image (absolute, clipped,
    # not relative, not %), so ours = 100 · theirs / Y. Their IncreaseInConfidence =
    # float(O − Y > 0), so ours = 100 · theirs.
    assert torch.allclose(ours_drop.compute().per_image, 100 * gc_drop / big_y, atol=1e-3)
    assert torch.equal(ours_inc.compute().per_image, 100 * gc_inc)
    assert 0 < gc_inc.sum() < 8  # both outcomes occur, so the comparison means something


def test_win_percent_metric_compares_explanation_confidences():
    """Negative variant: the map whose darkening lowers confidence most wins the image."""
    x, y, a = hand_batch()
    # Explainer "top" darkens the top row on images 0, 1 and nothing on image 2; "none"
    # marks nothing anywhere, so it keeps Y = O and loses wherever "top" darkens.
    per_image = {}
    for name, maps in (("top", a), ("none", torch.zeros_like(a))):
        metric = WinPercent(CTX)
        metric.update(x_batch=x, y_batch=y, a_batch=maps, model=MeanModel())
        result = metric.compute()
        assert result.scores == {} and result.n == 3  # meaningless alone
        per_image[name] = result.per_image
    # Image 0 (class 1): darkening lowers p(1), "top" wins. Image 1 (class 0): darkening
    # lowers the mean, so p(0) rises: "none" wins. Image 2: both maps empty, a tie.
    win = WinPercent(CTX).compare(per_image)
    assert win == pytest.approx({"top": 100 * 1.5 / 3, "none": 100 * 1.5 / 3})
    positive = WinPercent(CTX, variant="positive").compare(per_image)
    assert positive == pytest.approx({"top": 100 * 1.5 / 3, "none": 100 * 1.5 / 3})
    assert WinPercent.comparative and WinPercent(CTX, variant="positive").direction == "higher"
    with pytest.raises(ValueError, match="different image counts"):
        WinPercent(CTX).compare({"a": torch.ones(2), "b": torch.ones(3)})


def test_confidence_metrics_share_one_forward_through_the_cache(patch_model):
    g = torch.Generator().manual_seed(2)
    x, a = torch.rand(4, 3, 32, 32, generator=g), torch.rand(4, 32, 32, generator=g)
    y = torch.tensor([0, 1, 1, 0])
    calls = []
    hook = patch_model.register_forward_hook(lambda *_: calls.append(1))
    cache: dict = {}
    shared = [AverageDrop(CTX), IncreaseInConfidence(CTX), WinPercent(CTX)]
    for metric in shared:
        metric.update(x_batch=x, y_batch=y, a_batch=a, model=patch_model, cache=cache)
    other = AverageDrop(CTX, variant="positive")  # different images: its own forward
    other.update(x_batch=x, y_batch=y, a_batch=a, model=patch_model, cache=cache)
    hook.remove()
    assert len(calls) == 2
    alone = AverageDrop(CTX)
    alone.update(x_batch=x, y_batch=y, a_batch=a, model=patch_model)
    assert torch.equal(alone.compute().per_image, shared[0].compute().per_image)
