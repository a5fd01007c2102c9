"""Agreement with the ground truth the papers lack (METHODS §9).

On synthetic faces the model's true reliance on each togglable attribute is measured
from counterfactual renders, reliance_a = mean |M(X) − M(X with a toggled)|, and handed
to the metric in ``MetricContext.reliance``. An explainer agrees with the truth when its
FaceX region ranking orders the attributes as their reliance does (Spearman) and its
most attributed attribute is the truly most relied-on one.
"""

from __future__ import annotations

import math

import torch
from scipy.stats import spearmanr

from metrics.base import Metric, MetricResult
from metrics.regions import RegionIoR


def attribute_scores(
    ior: torch.Tensor, present: torch.Tensor, regions: dict[str, tuple[int, ...]]
) -> dict[str, float]:
    """An attribute's IoR: the best of its regions' IoR_r (its best-placed region, as in
    FaceX's ranking position); attributes with no region present are left out."""
    out = {}
    for attr, group in regions.items():
        values = [float(ior[r]) for r in group if bool(present[r])]
        if values:
            out[attr] = max(values)
    return out


class GroundTruthAgreement(Metric):
    """Spearman ρ between the explainer's attribute ranking and the true reliance ranking.

    Scores: ``gt_agreement`` (ρ over the attributes both rank, higher is better) and
    ``gt_agreement.top_hit`` (1 when the explainer's most attributed attribute is among
    the truly most relied-on ones, else 0). An attribute's explainer score is the soft
    IoR (FaceX, METHODS §2) of its best region; ranking attributes rather than all 19
    regions keeps the comparison to what the counterfactuals can speak about.
    """

    name = "gt_agreement"
    tolerance = 0.1  # Spearman ρ
    direction = "higher"
    needs = frozenset({"masks", "reliance"})

    def reset(self) -> None:
        self._ior = RegionIoR(len(self.context.region_names))

    def update(self, *, a_batch, s_batch=None, **_) -> None:
        if s_batch is None:
            raise ValueError(f"{self.name} needs region masks (s_batch)")
        self._ior.update(a_batch, s_batch)

    def compute(self) -> MetricResult:
        ior, count = self._ior.result()
        if not self.context.reliance:
            raise ValueError(f"{self.name} needs ground-truth reliance in the context")
        ior, present = ior.cpu(), count.cpu() > 0
        explained = attribute_scores(ior, present, dict(self.context.attribute_regions))
        attrs = [a for a in self.context.reliance if a in explained]
        truth = [float(self.context.reliance[a]) for a in attrs]
        mine = [explained[a] for a in attrs]
        scores: dict[str, float] = {}
        details: dict = {"attributes": attrs, "explainer_ior": explained}
        if len(attrs) >= 2 and len(set(truth)) > 1 and len(set(mine)) > 1:
            rho = float(spearmanr(truth, mine).statistic)
            if not math.isnan(rho):
                scores[self.name] = rho
        if attrs:
            top_truth = max(truth)
            best = {a for a, t in zip(attrs, truth, strict=True) if t == top_truth}
            top_mine = max(attrs, key=lambda a: explained[a])
            scores[f"{self.name}.top_hit"] = float(top_mine in best)
            details |= {"truth_top": sorted(best), "explainer_top": top_mine}
        return MetricResult(scores, self._ior.n, details=details)
