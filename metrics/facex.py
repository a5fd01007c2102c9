"""FaceX ranking position (Sarridis et al., "FaceX: Understanding Face Attribute
Classifiers through Summary Model Explanations", ICMR 2024, §3.3 and Tables 1/3)."""

from __future__ import annotations

from collections.abc import Sequence

import torch

from metrics.base import Metric, MetricContext, MetricResult, RegionScore
from metrics.regions import IorMode, RegionIoR, rank_regions, top_share


class RankingPosition(Metric):
    """Position of the bias attribute's best-placed region in the IoR ranking (1 = best).

    IoR_r = Σ_i IoR_{i,r} / N_r over the images where region r is present. With several
    bias attributes, the score is RP1 (the attribute found first) and ``<name>.rp2`` …
    the others in order. Also reports every region's IoR and rank (the FaceX summary),
    and the share of images in which each region has the highest IoR_{i,r}
    (``details["top_on_bias"]`` sums it over each bias attribute's regions).

    Args:
        context: the scenario (region names, bias attributes and their regions).
        ior: "soft" (the paper's formula, default) or "thresholded" (the public code).
        exclude_regions: region names left out of the ranking.
    """

    name = "ranking_position"
    tolerance = 1.0  # one place in the ranking
    direction = "lower"
    needs = frozenset({"masks", "bias_regions"})

    def __init__(
        self,
        context: MetricContext,
        *,
        ior: IorMode = "soft",
        exclude_regions: Sequence[str] = (),
    ):
        if ior not in ("soft", "thresholded"):
            raise ValueError(f"ior must be 'soft' or 'thresholded', got {ior!r}")
        unknown = set(exclude_regions) - set(context.region_names)
        if unknown:
            raise ValueError(f"unknown regions in exclude_regions: {sorted(unknown)}")
        self.mode: IorMode = ior
        self.exclude = frozenset(context.region_names.index(r) for r in exclude_regions)
        super().__init__(context)

    def reset(self) -> None:
        self._ior = RegionIoR(len(self.context.region_names), self.mode)
        self._top: torch.Tensor | None = None

    def update(self, *, a_batch, s_batch=None, **_) -> None:
        if s_batch is None:
            raise ValueError(f"{self.name} needs region masks (s_batch)")
        top = top_share(*self._ior.update(a_batch, s_batch)).sum(0)
        self._top = top if self._top is None else self._top + top

    def region_ior(self) -> tuple[torch.Tensor, torch.Tensor]:
        """IoR_r (R,) and N_r (R,) over everything seen."""
        return self._ior.result()

    def compute(self) -> MetricResult:
        ior, count = self.region_ior()
        valid = count > 0
        for r in self.exclude:
            valid[r] = False
        ranks = rank_regions(ior, valid)
        names = self.context.region_names
        top = (self._top / max(1, self._ior.n)).tolist()
        regions = [
            RegionScore(names[r], float(ior[r]), int(ranks[r]) or None, int(count[r]), top[r])
            for r in range(len(names))
        ]
        positions = {}
        for attr, group in zip(
            self.context.bias_attributes, self.context.bias_regions, strict=True
        ):
            placed = [int(ranks[r]) for r in group if int(ranks[r]) > 0]
            positions[attr] = min(placed) if placed else None
        found = sorted(p for p in positions.values() if p is not None)
        scores: dict[str, float] = {}
        if found:
            scores[self.name] = float(found[0])
            for j, p in enumerate(found[1:], start=2):
                scores[f"{self.name}.rp{j}"] = float(p)
        on_bias = {
            attr: sum(top[r] for r in group)
            for attr, group in zip(
                self.context.bias_attributes, self.context.bias_regions, strict=True
            )
        }
        details = {"positions": positions, "ior": self.mode, "top_on_bias": on_bias}
        return MetricResult(scores, self._ior.n, regions, details)
