"""Bounding-box AP against scikit-learn, by hand, and on hand-made boxes and label maps."""

from __future__ import annotations

import math

import pytest
import torch

from metrics import MetricContext
from metrics.bbox import BoxAP, average_precision, box_mask, union_box_from_masks
from metrics.regions import minmax

NAMES = ("bg", "r1", "r2", "r3", "r4", "r5")


def sk_ap(scores: torch.Tensor, positives: torch.Tensor) -> float:
    metrics = pytest.importorskip("sklearn.metrics", reason="scikit-learn not installed")
    return float(
        metrics.average_precision_score(positives.flatten().numpy(), scores.flatten().numpy())
    )


def test_ap_by_hand_with_a_tie():
    scores = torch.tensor([[0.9, 0.5, 0.5, 0.1]])
    positives = torch.tensor([[True, False, True, False]])
    # τ = 0.9: P = 1, R = 1/2. τ = 0.5 (two pixels enter together): P = 2/3, R = 1.
    assert average_precision(scores, positives).item() == pytest.approx(0.5 + 0.5 * 2 / 3)


def test_ap_matches_sklearn_with_heavy_ties_and_constant_maps():
    g = torch.Generator().manual_seed(0)
    raw = torch.rand(4, 16, 16, generator=g)
    maps = torch.cat(
        [
            raw[:2],
            (raw[2:] * 5).floor() / 4,  # five levels: many ties
            torch.full((1, 16, 16), 0.3),  # constant: one threshold, AP = prevalence
        ]
    )
    boxes = torch.tensor([[2, 3, 9, 12], [0, 0, 15, 4], [5, 5, 5, 5], [4, 1, 14, 7], [3, 3, 8, 8]])
    pos = box_mask(boxes, 16, 16)
    ours = average_precision(maps.flatten(1), pos.flatten(1))
    for i in range(len(maps)):
        assert ours[i].item() == pytest.approx(sk_ap(maps[i], pos[i]), abs=1e-6)
    assert ours[4].item() == pytest.approx(36 / 256)
    # AP depends only on the ordering, so min-max normalisation (METHODS §4) changes nothing.
    normed = average_precision(minmax(maps).flatten(1), pos.flatten(1))
    assert torch.allclose(normed, ours, atol=1e-6)


def test_no_positive_pixel_gives_nan():
    ap = average_precision(torch.rand(2, 5), torch.tensor([[False] * 5, [True] * 5]))
    assert math.isnan(ap[0].item()) and ap[1].item() == pytest.approx(1.0)


def test_box_mask_is_inclusive():
    m = box_mask(torch.tensor([[1, 0, 2, 1]]), 3, 4)
    assert m[0].int().tolist() == [[0, 1, 1, 0], [0, 1, 1, 0], [0, 0, 0, 0]]


def label_maps() -> torch.Tensor:
    s = torch.zeros(2, 6, 8, dtype=torch.long)
    s[0, 1, 2] = 3
    s[0, 3:5, 5:7] = 5
    s[0, 0, 0] = 1  # not a bias region
    s[1, 2, 2] = 2  # image 1 has no bias region
    return s


def test_union_box_from_label_map():
    boxes, present = union_box_from_masks(label_maps(), (3, 5))
    assert boxes[0].tolist() == [2, 1, 6, 4]
    assert present.tolist() == [True, False]


def ctx() -> MetricContext:
    return MetricContext(NAMES, ("A", "B"), ((3,), (5,)))


def test_bias_reference_skips_images_without_a_box():
    g = torch.Generator().manual_seed(1)
    a = torch.rand(2, 6, 8, generator=g)
    m = BoxAP(ctx())
    assert m.needs == {"masks", "bias_regions"} and m.direction == "higher"
    m.update(a_batch=a, s_batch=label_maps())
    res = m.compute()
    expect = sk_ap(a[0], box_mask(torch.tensor([[2, 1, 6, 4]]), 6, 8)[0])
    assert res.n == 1 and res.details["n_excluded"] == 1
    assert res.scores["bbox_ap"] == pytest.approx(expect, abs=1e-6)
    assert math.isnan(res.per_image[1].item())


def test_face_reference_and_batched_equals_one_by_one():
    g = torch.Generator().manual_seed(2)
    a = (torch.rand(5, 12, 12, generator=g) * 4).round()
    b = torch.tensor([[1, 1, 6, 6], [0, 2, 11, 9], [3, 3, 3, 3], [5, 0, 11, 11], [2, 4, 8, 10]])
    whole, single = BoxAP(ctx(), reference="face"), BoxAP(ctx(), reference="face")
    assert whole.needs == {"boxes"}
    whole.update(a_batch=a, b_batch=b)
    for i in range(5):
        single.update(a_batch=a[i : i + 1], b_batch=b[i : i + 1])
    r_whole, r_single = whole.compute(), single.compute()
    assert torch.allclose(r_whole.per_image, r_single.per_image)
    pos = box_mask(b, 12, 12)
    expect = [sk_ap(a[i], pos[i]) for i in range(5)]
    assert r_whole.per_image.tolist() == pytest.approx(expect, abs=1e-6)
    assert r_whole.n == 5 and r_whole.scores["bbox_ap"] == pytest.approx(sum(expect) / 5)


def test_validation_and_missing_inputs():
    with pytest.raises(ValueError, match="reference"):
        BoxAP(ctx(), reference="eyes")
    empty = BoxAP(MetricContext(NAMES))  # the runner's parameter check uses no bias regions
    with pytest.raises(ValueError, match="bias regions"):
        empty.update(a_batch=torch.rand(1, 6, 8), s_batch=label_maps()[:1])
    with pytest.raises(ValueError, match="b_batch"):
        BoxAP(ctx(), reference="face").update(a_batch=torch.rand(1, 6, 8))
