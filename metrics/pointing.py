"""Pointing game (Zhang et al., "Top-down Neural Attention by Excitation Backprop",
ECCV 2016, §5.1): a hit when the map's maximum falls on the ground-truth region.

Written by hand because Quantus' ``PointingGame`` works per NumPy image and takes a
binary mask; ours reads the scenario's bias regions from the label maps, on the device.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from metrics.base import Metric, MetricContext, MetricResult
from metrics.regions import region_masks


class PointingGame(Metric):
    """Share of images whose map peaks inside the bias regions (1 = always).

    The region is the first bias attribute's (the inpainting game's changed part),
    dilated by ``dilate`` pixels (the paper: 15 px at 224). A map with several
    maximal pixels scores the share of them inside, so a constant map scores the
    region's area share, as a random guess would. Images without the region are left
    out (``per_image`` NaN).

    Args:
        context: the scenario; ``bias_regions`` gives the region.
        dilate: pixels the region grows by, ≥ 0.
    """

    name = "pointing_game"
    tolerance = 0.05  # a twentieth of the images changing their hit
    direction = "higher"
    needs = frozenset({"masks", "bias_regions"})

    def __init__(self, context: MetricContext, *, dilate: int = 0):
        if isinstance(dilate, bool) or not isinstance(dilate, int) or dilate < 0:
            raise ValueError(f"dilate must be an int of pixels >= 0, got {dilate!r}")
        self.radius = dilate
        super().__init__(context)

    def reset(self) -> None:
        self._hits: list[torch.Tensor] = []

    def update(self, *, a_batch, s_batch=None, **_) -> None:
        if s_batch is None:
            raise ValueError(f"{self.name} needs region masks (s_batch)")
        if not self.context.bias_regions:
            raise ValueError(f"{self.name} needs a scenario with bias regions")
        inside = region_masks(s_batch, self.context.bias_regions[0]).to(a_batch.device)
        if self.radius:
            k = 2 * self.radius + 1
            inside = F.max_pool2d(inside[:, None].float(), k, 1, self.radius)[:, 0] > 0
        flat = a_batch.flatten(1).float()
        peak = flat == flat.amax(1, keepdim=True)
        inside = inside.flatten(1)
        share = (peak & inside).sum(1) / peak.sum(1)
        present = inside.any(1)
        self._hits.append(torch.where(present, share, torch.full_like(share, float("nan"))))

    def compute(self) -> MetricResult:
        if not self._hits:
            raise ValueError("no batch seen")
        hits = torch.cat(self._hits)
        valid = ~hits.isnan()
        n = int(valid.sum())
        scores = {self.name: float(hits[valid].mean())} if n else {}
        details = {"dilate": self.radius, "n_excluded": int((~valid).sum())}
        return MetricResult(scores, n, details=details, per_image=hits)
