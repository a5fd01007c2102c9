"""Bounding-box AP: how well a map's pixel ranking picks out a reference box (METHODS §4).

Seed 003, "True Black-Box Explanation in Facial Analysis", §3.4: per image, pixels inside
the reference box are the positives, the normalised map is the score, and AP is the
step-wise area under the pixel precision–recall curve, the same definition as
scikit-learn's ``average_precision_score`` on the flattened pixels.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Literal

import torch

from metrics.base import Metric, MetricContext, MetricResult
from metrics.regions import region_masks

Reference = Literal["bias", "face"]


def box_mask(boxes: torch.Tensor, h: int, w: int) -> torch.Tensor:
    """Boolean masks (B, h, w) of pixel boxes (B, 4) given as (x0, y0, x1, y1).

    Pixel (r, c) is inside when x0 ≤ c ≤ x1 and y0 ≤ r ≤ y1: both corners inclusive,
    so a box from :func:`union_box_from_masks` covers every pixel it was built from.
    """
    boxes = boxes if boxes.is_floating_point() else boxes.float()
    cols = torch.arange(w, device=boxes.device, dtype=boxes.dtype).view(1, 1, w)
    rows = torch.arange(h, device=boxes.device, dtype=boxes.dtype).view(1, h, 1)
    x0, y0, x1, y1 = (boxes[:, i].view(-1, 1, 1) for i in range(4))
    return (cols >= x0) & (cols <= x1) & (rows >= y0) & (rows <= y1)


def union_box_from_masks(
    s_batch: torch.Tensor, region_ids: Iterable[int]
) -> tuple[torch.Tensor, torch.Tensor]:
    """Bounding box of the union of the given regions' pixels, per label map.

    Args:
        s_batch: region label maps (B, H, W) or per-region masks (B, R, H, W).
        region_ids: the label ids whose pixels form the union.

    Returns:
        ``boxes`` (B, 4) long, inclusive pixel (x0, y0, x1, y1), and ``present`` (B,)
        bool; where no pixel of those regions exists the box is all zeros and
        ``present`` is False.
    """
    m = region_masks(s_batch, region_ids)
    rows, cols = m.any(2), m.any(1)  # (B, H), (B, W)
    h, w = rows.shape[1], cols.shape[1]
    # argmax of a bool row gives the first True; on the flipped row, the last one.
    y0 = rows.int().argmax(1)
    y1 = h - 1 - rows.flip(1).int().argmax(1)
    x0 = cols.int().argmax(1)
    x1 = w - 1 - cols.flip(1).int().argmax(1)
    present = rows.any(1)
    boxes = torch.stack([x0, y0, x1, y1], 1).long() * present[:, None]
    return boxes, present


def average_precision(scores: torch.Tensor, positives: torch.Tensor) -> torch.Tensor:
    """Per-row AP = Σ_k (R_k − R_{k−1}) P_k over the distinct score values, descending.

    Identical to scikit-learn's ``average_precision_score`` row by row, ties included:
    all pixels sharing a score enter at the same threshold. Rows without a positive
    give NaN.

    Args:
        scores: (B, P) scores.
        positives: (B, P) bool ground truth.
    """
    s, order = scores.sort(1, descending=True)
    pos = positives.gather(1, order).to(s.dtype if s.is_floating_point() else torch.float32)
    p = s.shape[1]
    tp = pos.cumsum(1)
    idx = torch.arange(p, device=s.device).expand_as(s)
    # A threshold sits at the last index of every run of equal scores.
    is_last = torch.ones_like(s, dtype=torch.bool)
    is_last[:, :-1] = s[:, :-1] != s[:, 1:]
    # Each pixel's run end: reverse cumulative minimum of the run-end indices.
    ends = torch.where(is_last, idx, torch.full_like(idx, p))
    run_end = ends.flip(1).cummin(1).values.flip(1)
    precision_at_end = tp.gather(1, run_end) / (run_end + 1).to(tp.dtype)
    # Σ_k ΔR_k·P_k: each positive adds 1/n_pos of recall at its run's threshold.
    n_pos = pos.sum(1)
    ap = (pos * precision_at_end).sum(1) / n_pos
    return torch.where(n_pos > 0, ap, torch.full_like(ap, float("nan")))


class BoxAP(Metric):
    """Mean per-image AP of the map's pixels against a reference box (seed 003 §3.4).

    ``per_image`` keeps one value per image in order, NaN where there is no box (no bias
    region present, or a box outside the image); those images are not counted in ``n``.

    Args:
        context: the scenario; ``bias_regions`` gives the bias reference.
        reference: "bias" (default): bounding box of the union of all bias attributes'
            regions from ``s_batch``; "face": the face boxes ``b_batch``.
    """

    name = "bbox_ap"
    tolerance = 0.02  # AP on a 0–1 scale
    direction = "higher"
    needs = frozenset({"masks", "bias_regions"})

    def __init__(self, context: MetricContext, *, reference: Reference = "bias"):
        if reference not in ("bias", "face"):
            raise ValueError(f"reference must be 'bias' or 'face', got {reference!r}")
        self.reference: Reference = reference
        if reference == "face":
            self.needs = frozenset({"boxes"})  # type: ignore[misc]
        super().__init__(context)

    def reset(self) -> None:
        self._ap: list[torch.Tensor] = []

    def _boxes(self, s_batch, b_batch) -> tuple[torch.Tensor, torch.Tensor]:
        if self.reference == "face":
            if b_batch is None:
                raise ValueError(f"{self.name} (reference='face') needs face boxes (b_batch)")
            return b_batch, torch.ones(b_batch.shape[0], dtype=torch.bool, device=b_batch.device)
        if s_batch is None:
            raise ValueError(f"{self.name} (reference='bias') needs region masks (s_batch)")
        ids = sorted({r for group in self.context.bias_regions for r in group})
        if not ids:
            raise ValueError(f"{self.name} (reference='bias') needs a scenario with bias regions")
        return union_box_from_masks(s_batch, ids)

    def update(self, *, a_batch, s_batch=None, b_batch=None, **_) -> None:
        boxes, present = self._boxes(s_batch, b_batch)
        b, h, w = a_batch.shape
        inside = (
            box_mask(boxes.to(a_batch.device), h, w) & present.to(a_batch.device)[:, None, None]
        )
        # METHODS §4 min-max normalises S first; AP depends only on the pixel ordering,
        # which min-max preserves, and skipping it keeps float rounding from merging
        # nearly equal scores into false ties.
        scores = a_batch.reshape(b, -1)
        scores = scores if scores.is_floating_point() else scores.float()
        self._ap.append(average_precision(scores, inside.reshape(b, -1)))

    def compute(self) -> MetricResult:
        if not self._ap:
            raise ValueError("no batch seen")
        ap = torch.cat(self._ap)
        valid = ~ap.isnan()
        n = int(valid.sum())
        scores = {self.name: float(ap[valid].mean())} if n else {}
        details = {"reference": self.reference, "n_excluded": int((~valid).sum())}
        return MetricResult(scores, n, details=details, per_image=ap)
