"""The metric template: metadata on the class, ``update`` per batch, ``compute`` at the end.

Batches follow Quantus' naming: ``x_batch`` images (pixel space), ``y_batch`` explained
classes, ``a_batch`` saliency maps (B, H, W), ``s_batch`` region label maps (B, H, W),
``b_batch`` face boxes (B, 4) as pixel (x0, y0, x1, y1).
State stays on the device; ``compute`` returns plain Python numbers for storage.

A *comparative* metric (Win %) scores an explainer against the others of a scenario:
``compute`` returns only its per-image values, and :meth:`Metric.compare` turns every
explainer's values into scores once all are known.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar, Literal

import torch

Direction = Literal["higher", "lower"]
#: ``explain_fn(model, x_batch, y_batch, seed_offset=0) -> a_batch``: the scored
#: explainer, rebuilt on another model (sanity checks that randomise the model) or with
#: its seed moved by ``seed_offset`` (stability).
ExplainFn = Callable[..., torch.Tensor]


@dataclass(frozen=True)
class MetricContext:
    """What a scenario tells its metrics.

    Attributes:
        region_names: names of the label ids in ``s_batch``.
        bias_attributes: the scenario's bias attributes (may be empty).
        bias_regions: per bias attribute, the region ids linked to it.
        n_classes: number of model outputs.
        reliance: the model's true reliance per togglable attribute, from counterfactual
            renders (METHODS §9); empty where the dataset cannot render them.
        attribute_regions: the region ids of each attribute in ``reliance``.
    """

    region_names: tuple[str, ...]
    bias_attributes: tuple[str, ...] = ()
    bias_regions: tuple[tuple[int, ...], ...] = ()
    n_classes: int = 2
    reliance: Mapping[str, float] = field(default_factory=dict)
    attribute_regions: Mapping[str, tuple[int, ...]] = field(default_factory=dict)


@dataclass(frozen=True)
class RegionScore:
    """One region of a FaceX summary.

    Attributes:
        region: the region's name.
        ior: mean IoR over the images where it is present.
        rank: 1 = most attributed; None when not ranked.
        n_present: images where the region has pixels.
        top_share: share of the images in which the region has the highest IoR (tied
            regions split an image).
    """

    region: str
    ior: float
    rank: int | None
    n_present: int
    top_share: float | None = None


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
            "model", "weights" (its parameters, so not a black box), "reliance"
            (counterfactual ground truth in the context),
            "explainer" (``explain_fn`` in :meth:`update`).
        comparative: scored against the other explainers of a scenario (see
            :meth:`compare`).
        tolerance: the smallest change of the score, in its own units, that
            ``bench check`` counts as a regression (a suite may override it).
    """

    name: ClassVar[str] = ""
    direction: ClassVar[Direction] = "higher"
    needs: ClassVar[frozenset[str]] = frozenset()
    comparative: ClassVar[bool] = False
    tolerance: ClassVar[float] = 0.0

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
        cache: dict[Any, Any] | None = None,
        explain_fn: ExplainFn | None = None,
    ) -> None:
        """Accumulate one batch.

        ``cache`` is scratch space shared by the metrics of one batch, so that work
        several metrics need (explanation-image confidences) runs once. ``explain_fn``
        re-explains a batch on any model with the scored explainer's class and settings.
        """
        raise NotImplementedError

    def compute(self) -> MetricResult:
        """The score over everything seen since :meth:`reset`."""
        raise NotImplementedError

    def compare(self, per_image: Mapping[str, torch.Tensor]) -> dict[str, float]:
        """Scores of a comparative metric from every explainer's per-image values."""
        raise NotImplementedError(f"{type(self).__name__} is not comparative")
