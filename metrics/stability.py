"""Explainer stability: do an explainer's maps survive a change of its own seed?

Mery & Morris (MinPlus, CVPRW 2022, Fig. 4 and §4) show five runs of LIME, RISEgauss
and RISE on one face, "very different" from run to run, against MinPlus, which draws
nothing at random. This measures that claim: each image is re-explained with ``runs``
other seeds of the explainer's own randomness (masks, noise, samples), everything else
unchanged, and the score is the mean Spearman rank correlation over all pairs of the
``runs + 1`` maps (the scored one included). A deterministic explainer scores 1; maps
of pure noise score about 0. Written here because Quantus has no seed-to-seed check
(its robustness metrics perturb the input, not the explainer's seed).
"""

from __future__ import annotations

import itertools

import torch

from metrics.base import ExplainFn, Metric, MetricContext, MetricResult
from metrics.sanity import spearman

#: Seeds of the re-runs are the scored seed plus multiples of this prime, far from the
#: small offsets explainers add to their seed for their own streams.
SEED_STRIDE = 7919


class ExplainerStability(Metric):
    """Mean pairwise Spearman ρ between an explainer's maps under different seeds.

    Args:
        context: the scenario (unused: stability needs no regions).
        runs: re-explanations per image with other seeds (≥ 1).
    """

    name = "explainer_stability"
    direction = "higher"
    needs = frozenset({"model", "explainer"})
    tolerance = 0.02

    def __init__(self, context: MetricContext, runs: int = 2):
        if int(runs) < 1:
            raise ValueError(f"{self.name}: runs must be at least 1, got {runs}")
        self.runs = int(runs)
        super().__init__(context)

    def reset(self) -> None:
        self._rho: list[torch.Tensor] = []

    def update(
        self,
        *,
        x_batch: torch.Tensor,
        y_batch: torch.Tensor,
        a_batch: torch.Tensor,
        model: torch.nn.Module | None = None,
        explain_fn: ExplainFn | None = None,
        **_,
    ) -> None:
        if model is None or explain_fn is None:
            raise ValueError(f"{self.name} needs the model and the explainer")
        maps = [a_batch] + [
            explain_fn(model, x_batch, y_batch, seed_offset=SEED_STRIDE * k)
            for k in range(1, self.runs + 1)
        ]
        pairs = [spearman(a, b) for a, b in itertools.combinations(maps, 2)]
        self._rho.append(torch.stack(pairs, 1).nanmean(1))  # (B,), NaN: constant maps

    def compute(self) -> MetricResult:
        if not self._rho:
            raise ValueError("no batch seen")
        rho = torch.cat(self._rho)
        known = rho[~rho.isnan()]
        scores = {self.name: float(known.mean())} if len(known) else {}
        details = {"runs": self.runs, "seed_stride": SEED_STRIDE,
                   "n_constant": int(rho.isnan().sum())}  # fmt: skip
        return MetricResult(scores, len(rho), details=details, per_image=rho)
