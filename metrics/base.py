"""The metric template: metadata on the class, ``update`` per batch, ``compute`` at the end.

Batches follow Quantus' naming: ``x_batch`` images (pixel space), ``y_batch`` explained
classes, ``a_batch`` saliency maps (B, H, W), ``s_batch`` region label maps (B, H, W),
``b_batch`` face boxes (B, 4) as pixel (x0, y0, x1, y1).
State stays on the device; ``compute`` returns plain Python numbers for storage.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar, Literal

import torch

Direction = Literal["higher", "lower"]


@dataclass(frozen=True)
class MetricContext:
    """What a scenario tells its metrics.

    Attributes:
        region_names: names of the label ids in ``s_batch``.
        bias_attributes: the scenario's bias attributes (may be empty).
        bias_regions: per bias attribute, the region ids linked to it.
        n_classes: number of model outputs.
    """

    region_names: tuple[str, ...]
    bias_attributes: tuple[str, ...] = ()
    bias_regions: tuple[tuple[int, ...], ...] = ()
    n_classes: int = 2


@dataclass(frozen=True)
class RegionScore:
    """One region of a FaceX summary: mean IoR, rank (1 = most attributed), images present."""

    region: str
    ior: float
    rank: int | None
    n_present: int


@dataclass
class MetricResult:
    """Scores (the first key is the metric's own name), the sample count, and extras.

    ``per_image`` holds the per-image values behind a mean (on the device), for
    comparisons across explainers (Win %) and confidence intervals.
    """

    scores: dict[str, float]
    n: int
    regions: list[RegionScore] = field(default_factory=list)
    details: dict[str, Any] = field(default_factory=dict)
    per_image: torch.Tensor | None = None


class Metric:
    """Base class of every metric.

    Class attributes:
        name: registry name, also the key of the primary score.
        direction: "higher" or "lower" is better.
        needs: inputs beyond maps: "masks" (s_batch), "boxes" (b_batch), "bias_regions",
            "model".
    """

    name: ClassVar[str] = ""
    direction: ClassVar[Direction] = "higher"
    needs: ClassVar[frozenset[str]] = frozenset()

    def __init__(self, context: MetricContext):
        self.context = context
        self.reset()

    def reset(self) -> None:
        """Clear accumulated state."""

    def update(
        self,
        *,
        x_batch: torch.Tensor,
        y_batch: torch.Tensor,
        a_batch: torch.Tensor,
        s_batch: torch.Tensor | None = None,
        b_batch: torch.Tensor | None = None,
        model: torch.nn.Module | None = None,
    ) -> None:
        """Accumulate one batch."""
        raise NotImplementedError

    def compute(self) -> MetricResult:
        """The score over everything seen since :meth:`reset`."""
        raise NotImplementedError
