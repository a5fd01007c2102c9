"""Deletion and insertion AUC (RISE §4.1) with hand-computed curves."""

from __future__ import annotations

import math

import pytest
import torch

from metrics import MetricContext
from metrics.deletion import DeletionAUC, InsertionAUC, pixel_order_masks, trapezoid_auc
from tests.test_confidence_metrics import MeanModel, sigmoid

CTX = MetricContext(("bg",))


def test_pixel_order_masks_follow_saliency_with_stable_ties():
    a = torch.tensor([[[0.1, 0.9, 0.5, 0.5]]])
    masks = pixel_order_masks(a, steps=4)[0, :, 0]
    assert masks.int().tolist() == [
        [0, 0, 0, 0], [0, 1, 0, 0], [0, 1, 1, 0], [0, 1, 1, 1], [1, 1, 1, 1],
    ]  # fmt: skip


def test_trapezoid_by_hand():
    assert trapezoid_auc(torch.tensor([[1.0, 0.5, 0.0]])).item() == pytest.approx(0.5)
    assert trapezoid_auc(torch.tensor([[0.2, 0.2]])).item() == pytest.approx(0.2)


def test_deletion_by_hand():
    # One 1×2 image, pixels 1.0 and 0.5 in every channel; the map marks pixel 0 first.
    x = torch.tensor([1.0, 0.5]).view(1, 1, 1, 2).expand(1, 3, 1, 2).clone()
    y = torch.tensor([1])
    good, bad = torch.tensor([[[1.0, 0.0]]]), torch.tensor([[[0.0, 1.0]]])
    # Means along the curve: good 0.75 → 0.25 → 0; bad 0.75 → 0.5 → 0; p = σ(4·mean).
    want_good = (sigmoid(3) / 2 + sigmoid(1) + 0.5 / 2) / 2
    want_bad = (sigmoid(3) / 2 + sigmoid(2) + 0.5 / 2) / 2
    for maps, want in ((good, want_good), (bad, want_bad)):
        m = DeletionAUC(CTX, steps=2)
        m.update(x_batch=x, y_batch=y, a_batch=maps, model=MeanModel())
        assert m.compute().scores["deletion_auc"] == pytest.approx(want, abs=1e-6)
    assert want_good < want_bad  # the faithful map deletes faster: lower is better


def test_insertion_by_hand_from_black():
    x = torch.tensor([1.0, 0.5]).view(1, 1, 1, 2).expand(1, 3, 1, 2).clone()
    m = InsertionAUC(CTX, steps=2, baseline="black")
    m.update(x_batch=x, y_batch=torch.tensor([1]), a_batch=torch.tensor([[[1.0, 0.0]]]),
             model=MeanModel())  # fmt: skip
    # Means 0 → 0.5 → 0.75.
    want = (0.5 / 2 + sigmoid(2) + sigmoid(3) / 2) / 2
    assert m.compute().scores["insertion_auc"] == pytest.approx(want, abs=1e-6)
    assert InsertionAUC(CTX).baseline == "blur" and DeletionAUC(CTX).baseline == "black"
    assert InsertionAUC.direction == "higher" and DeletionAUC.direction == "lower"


def test_every_step_of_a_batch_goes_through_capped_forwards(patch_model):
    x = torch.rand(6, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    a = torch.rand(6, 32, 32, generator=torch.Generator().manual_seed(1))
    sizes = []
    handle = patch_model.register_forward_hook(lambda m, i, o: sizes.append(len(i[0])))
    m = DeletionAUC(CTX, steps=99)
    m.update(x_batch=x, y_batch=torch.ones(6, dtype=torch.long), a_batch=a, model=patch_model)
    handle.remove()
    assert sum(sizes) == 6 * 100 and max(sizes) <= 256
    assert len(sizes) == math.ceil(600 / 256)
    with pytest.raises(ValueError, match="steps"):
        DeletionAUC(CTX, steps=0)
