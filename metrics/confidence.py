"""Confidence metrics: Average Drop, % Increase in Confidence and Win % (METHODS §3).

The ``positive`` variant follows Grad-CAM++ (Chattopadhyay et al., WACV 2018, §5.1):
the explanation image keeps what the map marks, E = H ⊙ X. The ``negative`` variant
follows Canonical Saliency Maps (John et al. 2022): it darkens what the map marks,
E = (1 − H) ⊙ X, with H mass-matched to a fixed fraction ``alpha`` of the image so a
method's score does not depend on which other methods share the run.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import ClassVar, Literal

import torch

from explainers.base import class_scores
from metrics.base import Direction, Metric, MetricContext, MetricResult
from metrics.regions import minmax

Variant = Literal["negative", "positive"]
ConfidenceKind = Literal["softmax", "logit"]

_BISECT_STEPS = 40


def mass_matched(h: torch.Tensor, alpha: float, steps: int = _BISECT_STEPS) -> torch.Tensor:
    """H = min(1, c·H') with c per map such that ΣH = alpha·H·W (Canonical Saliency Maps).

    Args:
        h: min-max normalised maps H' in [0, 1], shape (B, H, W).
        alpha: target mass as a fraction of the pixels, in (0, 1].
        steps: bisection iterations (fixed, so the whole batch runs in lock-step).

    Returns:
        H with the same shape. An all-zero H' stays zero; where fewer than alpha·H·W
        pixels are non-zero the budget cannot be met and H = 1[H' > 0] (the largest mass).
    """
    flat = h.flatten(1)
    target = alpha * flat.shape[1]
    total = flat.sum(1)
    positive = flat > 0
    # Σ min(1, c·H') ≤ c·ΣH', so c ≥ target/ΣH'; at c = 1/min(H' > 0) every non-zero
    # pixel saturates, the largest reachable mass. Bisect in log space: the bracket can
    # span many decades when a map is one peak over a near-zero floor.
    min_pos = torch.where(positive, flat, torch.full_like(flat, float("inf"))).amin(1)
    live = total > 0
    lo = torch.where(live, target / total.clamp_min(1e-30), torch.ones_like(total)).log()
    hi = torch.where(live, 1.0 / min_pos.clamp_min(1e-30), torch.ones_like(total)).log()
    hi = torch.maximum(hi, lo)
    for _ in range(steps):
        mid = 0.5 * (lo + hi)
        mass = (mid.exp()[:, None] * flat).clamp_max(1.0).sum(1)
        below = mass < target
        lo = torch.where(below, mid, lo)
        hi = torch.where(below, hi, mid)
    c = torch.where(live, hi.exp(), torch.zeros_like(hi))
    return (c[:, None] * flat).clamp_max(1.0).view_as(h)


def explanation_images(
    x_batch: torch.Tensor,
    a_batch: torch.Tensor,
    variant: Variant = "negative",
    alpha: float = 0.25,
) -> torch.Tensor:
    """Explanation images E in pixel space (METHODS §3).

    Args:
        x_batch: images (B, 3, H, W) in [0, 1].
        a_batch: saliency maps (B, H, W).
        variant: "positive" (E = H ⊙ X, H = minmax(S), Grad-CAM++) or "negative"
            (E = (1 − H) ⊙ X, H mass-matched, Canonical Saliency Maps).
        alpha: mass budget of the negative variant.
    """
    h = minmax(a_batch.to(x_batch.device, x_batch.dtype))
    if variant == "positive":
        return h[:, None] * x_batch
    if variant == "negative":
        return (1.0 - mass_matched(h, alpha))[:, None] * x_batch
    raise ValueError(f"variant must be 'negative' or 'positive', got {variant!r}")


def confidence(
    model: torch.nn.Module,
    images: torch.Tensor,
    y: torch.Tensor,
    kind: ConfidenceKind = "softmax",
) -> torch.Tensor:
    """Softmax probability (or raw logit) of class ``y`` per image, from one forward."""
    with torch.no_grad():
        logits = model(images)
    out = class_scores(model, logits) if kind == "softmax" else logits
    return out.gather(1, y.to(out.device).long().view(-1, 1)).squeeze(1)


def win_percent(conf: Mapping[str, torch.Tensor], higher_wins: bool) -> dict[str, float]:
    """Win % per method: 100/N Σ 1[method wins image n]; k methods tied share 1/k each.

    Args:
        conf: each method's per-image explanation confidence O_n, all of length N.
        higher_wins: True for the positive variant, False for the negative one.
    """
    names = list(conf)
    if not names:
        return {}
    o = torch.stack([conf[k].flatten().float() for k in names])
    best = o.amax(0) if higher_wins else o.amin(0)
    won = (o == best).float()
    share = won / won.sum(0, keepdim=True)
    pct = 100.0 * share.sum(1) / o.shape[1]
    return {k: float(v) for k, v in zip(names, pct, strict=True)}


class _ConfidenceMetric(Metric):
    """Shared state: per-image Y (original) and O (explanation) confidences.

    Args:
        context: the scenario (unused beyond storage).
        variant: "negative" (default, darken the map's pixels) or "positive" (keep them).
        alpha: mass budget of the negative variant, in (0, 1].
        confidence: "softmax" (default) or "logit".
    """

    needs = frozenset({"model"})
    _direction_by_variant: ClassVar[dict[str, Direction]] = {}

    def __init__(
        self,
        context: MetricContext,
        *,
        variant: Variant = "negative",
        alpha: float = 0.25,
        confidence: ConfidenceKind = "softmax",
    ):
        if variant not in ("negative", "positive"):
            raise ValueError(f"variant must be 'negative' or 'positive', got {variant!r}")
        if not 0.0 < float(alpha) <= 1.0:
            raise ValueError(f"alpha must be in (0, 1], got {alpha!r}")
        if confidence not in ("softmax", "logit"):
            raise ValueError(f"confidence must be 'softmax' or 'logit', got {confidence!r}")
        self.variant: Variant = variant
        self.alpha = float(alpha)
        self.kind: ConfidenceKind = confidence
        self.direction = self._direction_by_variant[variant]  # type: ignore[misc]
        self.explanation_confidence: torch.Tensor | None = None
        super().__init__(context)

    def reset(self) -> None:
        self._y: list[torch.Tensor] = []
        self._o: list[torch.Tensor] = []

    def update(self, *, x_batch, y_batch, a_batch, model=None, cache=None, **_) -> None:
        if model is None:
            raise ValueError(f"{self.name} needs the model")
        key = ("confidence", self.variant, self.alpha, self.kind)
        if cache is not None and key in cache:
            y, o = cache[key]  # another confidence metric already ran these forwards
        else:
            e = explanation_images(x_batch, a_batch, self.variant, self.alpha)
            # One forward for originals and explanation images together.
            both = torch.cat([y_batch, y_batch])
            conf = confidence(model, torch.cat([x_batch, e]), both, self.kind)
            y, o = conf[: x_batch.shape[0]], conf[x_batch.shape[0] :]
            if cache is not None:
                cache[key] = (y, o)
        self._y.append(y)
        self._o.append(o)

    def _confidences(self) -> tuple[torch.Tensor, torch.Tensor]:
        if not self._y:
            raise ValueError("no batch seen")
        return torch.cat(self._y), torch.cat(self._o)

    @property
    def settings(self) -> dict[str, object]:
        """The options a stored score depends on."""
        return {"variant": self.variant, "alpha": self.alpha, "confidence": self.kind}

    def _result(self, per_image: torch.Tensor, o: torch.Tensor, **extra) -> MetricResult:
        self.explanation_confidence = o
        valid = ~per_image.isnan()
        n = int(valid.sum())
        scores = {self.name: float(per_image[valid].mean())} if n else {}
        return MetricResult(scores, n, details=self.settings | extra, per_image=per_image)


class AverageDrop(_ConfidenceMetric):
    """Average Drop % = 100/N Σ max(0, (Y − O)/Y) (Grad-CAM++ §5.1; METHODS §3).

    Negative variant: higher is better; positive variant: lower is better. With
    ``confidence="logit"`` images whose Y ≤ 0 have no meaningful relative drop and are
    left out (NaN in ``per_image``, counted in ``details["n_excluded"]``).
    """

    name = "average_drop"
    tolerance = 2.0  # percentage points
    direction = "higher"
    _direction_by_variant: ClassVar[dict[str, Direction]] = {
        "negative": "higher",
        "positive": "lower",
    }

    def compute(self) -> MetricResult:
        y, o = self._confidences()
        drop = 100.0 * ((y - o) / y).clamp_min(0.0)
        drop = torch.where(y > 0, drop, torch.full_like(drop, float("nan")))
        return self._result(drop, o, n_excluded=int((y <= 0).sum()))


class IncreaseInConfidence(_ConfidenceMetric):
    """% Increase in Confidence = 100/N Σ 1[O > Y] (Grad-CAM++ §5.1; METHODS §3).

    Negative variant: lower is better; positive variant: higher is better.
    """

    name = "increase_in_confidence"
    tolerance = 5.0  # percent of images
    direction = "lower"
    _direction_by_variant: ClassVar[dict[str, Direction]] = {
        "negative": "lower",
        "positive": "higher",
    }

    def compute(self) -> MetricResult:
        y, o = self._confidences()
        return self._result(100.0 * (o > y).to(y.dtype), o)


class WinPercent(_ConfidenceMetric):
    """Win % = 100/N Σ 1[the explainer wins image n] (Grad-CAM++ §5.1; METHODS §3).

    The winner of an image is the explainer whose explanation image keeps the highest
    confidence (positive variant) or gives the lowest (negative variant); k explainers
    tied share the point. Comparative: scores exist once every explainer of the
    scenario has run, and over them they sum to 100.
    """

    name = "win_percent"
    tolerance = 5.0  # percent of images
    direction = "higher"
    comparative = True
    _direction_by_variant: ClassVar[dict[str, Direction]] = {
        "negative": "higher",
        "positive": "higher",
    }

    def compute(self) -> MetricResult:
        _, o = self._confidences()
        result = self._result(o, o)
        result.scores = {}  # only meaningful against the other explainers: see compare
        return result

    def compare(self, per_image: Mapping[str, torch.Tensor]) -> dict[str, float]:
        lengths = {k: v.numel() for k, v in per_image.items()}
        if len(set(lengths.values())) > 1:
            raise ValueError(f"explainers saw different image counts: {lengths}")
        return win_percent(per_image, higher_wins=self.variant == "positive")
