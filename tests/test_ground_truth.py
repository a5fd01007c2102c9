"""Ground truth from counterfactual renders (METHODS §9): reliance and explainer agreement."""

from __future__ import annotations

from typing import ClassVar

import pytest
import torch
from torch import nn

from benchmark.data.base import FaceArrays
from benchmark.reliance import measured_attributes, true_reliance
from metrics import MetricContext
from metrics.ground_truth import GroundTruthAgreement

# 1×4 images: pixel 0 background, 1 hair, 2 hat, 3 lips.
MASK = torch.tensor([[[0, 1, 2, 3]]])
REGIONS = {"Blond_Hair": (1,), "Wearing_Hat": (2,), "Wearing_Lipstick": (3,)}


def agreement(reliance: dict[str, float], saliency: list[float]) -> dict[str, float]:
    ctx = MetricContext(("bg", "hair", "hat", "lips"), reliance=reliance, attribute_regions=REGIONS)
    metric = GroundTruthAgreement(ctx)
    metric.update(a_batch=torch.tensor([[saliency]]), s_batch=MASK)
    return metric.compute().scores


def test_agreement_by_hand():
    truth = {"Blond_Hair": 0.1, "Wearing_Hat": 0.5, "Wearing_Lipstick": 0.3}
    # Same order as the truth (hat > lips > hair): ρ = 1, top region right.
    assert agreement(truth, [0.0, 1.0, 4.0, 2.0]) == {
        "gt_agreement": 1.0,
        "gt_agreement.top_hit": 1.0,
    }
    # lips > hat > hair: ranks (1, 2, 3) against truth (1, 3, 2): ρ = 1 − 6·2/(3·8) = 0.5.
    got = agreement(truth, [0.0, 1.0, 2.0, 4.0])
    assert got == pytest.approx({"gt_agreement": 0.5, "gt_agreement.top_hit": 0.0})
    # Reversed: ρ = −1.
    assert agreement(truth, [0.0, 4.0, 1.0, 2.0])["gt_agreement"] == pytest.approx(-1.0)


def test_agreement_ties_in_truth_share_the_top():
    truth = {"Blond_Hair": 0.1, "Wearing_Hat": 0.5, "Wearing_Lipstick": 0.5}
    assert agreement(truth, [0.0, 1.0, 2.0, 4.0])["gt_agreement.top_hit"] == 1.0
    # Constant truth: ρ is undefined and not reported; the top hit still is.
    flat = dict.fromkeys(REGIONS, 0.2)
    assert set(agreement(flat, [0.0, 1.0, 2.0, 4.0])) == {"gt_agreement.top_hit"}


class PixelFaces:
    """A fake dataset: attribute a shows as pixel value v at its own column (hand-checkable)."""

    togglable: ClassVar = {"Wearing_Hat": (0, 1), "skin_tone": (0, 1, 2, 3), "Young": (0, 1)}
    column: ClassVar = {"Wearing_Hat": 0, "skin_tone": 1, "Young": 2}

    def counterfactual(self, faces: FaceArrays, attribute: str, value: int) -> torch.Tensor:
        images = faces.images.clone()
        images[:, :, 0, self.column[attribute]] = 40 * value
        return images


class ReadPixels(nn.Module):
    """Logits (0, hat pixel/255 + 2·tone pixel/255): reliance is computable by hand."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        s = x[:, 0, 0, 0] + 2 * x[:, 0, 0, 1]
        return torch.stack([torch.zeros_like(s), s], 1)


def test_true_reliance_by_hand():
    hat = torch.tensor([0, 1], dtype=torch.int8)
    tone = torch.tensor([0, 2])
    images = torch.zeros(2, 3, 1, 3, dtype=torch.uint8)
    images[:, :, 0, 0] = (40 * hat)[:, None].to(torch.uint8)
    images[:, :, 0, 1] = (40 * tone)[:, None].to(torch.uint8)
    faces = FaceArrays(images, hat[:, None], ("Wearing_Hat",), groups={"skin_tone": tone})
    y = torch.tensor([1, 0])
    model = ReadPixels()
    attrs = measured_attributes(PixelFaces(), exclude=["Male"])
    assert attrs == ["Wearing_Hat", "skin_tone"]  # Young has no face region

    def p1(s: float) -> float:
        return float(torch.sigmoid(torch.tensor(s)))

    u = 40 / 255
    got = true_reliance(PixelFaces(), faces, model, y, attrs)
    # Hat: image 0 (class 1) gains a hat pixel; image 1 (class 0) loses it.
    hat_want = (abs(p1(0) - p1(u)) + abs((1 - p1(u + 4 * u)) - (1 - p1(4 * u)))) / 2
    # Skin tone: each image is set to its 3 other tones, the absolute changes averaged.
    tone0 = sum(abs(p1(0) - p1(2 * v * u)) for v in (1, 2, 3)) / 3
    tone1 = sum(abs((1 - p1(u + 4 * u)) - (1 - p1(u + 2 * v * u))) for v in (0, 1, 3)) / 3
    assert got == pytest.approx({"Wearing_Hat": hat_want, "skin_tone": (tone0 + tone1) / 2})


def test_synthetic_hat_detector_relies_on_the_hat_most():
    """On real synthetic renders, a model that reads the top rows relies on the hat."""
    from benchmark.data.synthetic import SyntheticFaces

    data = SyntheticFaces(n=40, size=32)
    faces = data.load("test", seed=1)

    class TopRows(nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            s = 8.0 * (x[:, 2, :6].mean(dim=(1, 2)) - 0.5)  # blue of the top six rows
            return torch.stack([-s, s], 1)

    y = faces.attribute("Male").long()
    attrs = measured_attributes(data, exclude=["Male"])
    got = true_reliance(data, faces, TopRows(), y, attrs)
    assert set(got) == {
        "Blond_Hair", "Eyeglasses", "Smiling", "Wearing_Earrings", "Wearing_Lipstick",
        "Wearing_Necklace", "Wearing_Hat", "skin_tone",
    }  # fmt: skip
    assert max(got, key=got.get) == "Wearing_Hat"
    # Attributes far from the top rows change nothing there.
    assert got["Smiling"] == 0.0 and got["Wearing_Necklace"] == 0.0


def test_counterfactual_of_the_current_value_is_the_same_image():
    from benchmark.data.synthetic import SyntheticFaces

    data = SyntheticFaces(n=6, size=32)
    faces = data.load("test", seed=2)
    hat = faces.attribute("Wearing_Hat")
    same = torch.nonzero(hat == 1).flatten()
    assert 0 < len(same) < len(hat)
    sub = faces.subset(same)
    assert torch.equal(data.counterfactual(sub, "Wearing_Hat", 1), sub.images)
    flipped = data.counterfactual(faces, "Wearing_Hat", 1)
    assert not torch.equal(flipped[hat == 0], faces.images[hat == 0])
    with pytest.raises(ValueError, match="cannot toggle"):
        data.counterfactual(faces, "Wearing_Tie", 1)
