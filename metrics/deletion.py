"""Deletion and insertion AUC (Petsiuk, Das & Saenko, "RISE", BMVC 2018, §4.1).

Deletion removes pixels from the image, most salient first, and tracks the explained
class's probability: a faithful map makes it fall fast (low area under the curve).
Insertion starts from a destroyed image (blurred by default, as in the paper) and puts
pixels back in the same order: a faithful map makes the probability rise fast (high
area). Every step of every image of a batch goes through the model in batched forwards.
"""

from __future__ import annotations

from typing import ClassVar, Literal

import torch
from torchvision.transforms.v2.functional import gaussian_blur

from explainers.base import class_scores, images_per_forward
from explainers.inference import inference_forward
from metrics.base import Direction, Metric, MetricContext, MetricResult

Baseline = Literal["black", "blur"]


def pixel_order_masks(a_batch: torch.Tensor, steps: int) -> torch.Tensor:
    """(B, steps + 1, H, W) bool: at step k the round(k/steps · H·W) most salient pixels.

    Ties keep raster order (stable sort), so the order is deterministic.
    """
    b, h, w = a_batch.shape
    order = torch.argsort(a_batch.flatten(1), dim=1, descending=True, stable=True)
    rank = torch.empty_like(order)
    rank.scatter_(1, order, torch.arange(h * w, device=a_batch.device).expand(b, -1))
    counts = torch.round(torch.linspace(0, h * w, steps + 1, device=a_batch.device)).long()
    return (rank[:, None, :] < counts[None, :, None]).view(b, steps + 1, h, w)


def curve(
    model,
    x_batch: torch.Tensor,
    y_batch: torch.Tensor,
    a_batch: torch.Tensor,
    start: torch.Tensor,
    end: torch.Tensor,
    steps: int,
) -> torch.Tensor:
    """(B, steps + 1) probability of class y as salient pixels move from ``start`` to ``end``.

    The image at step k shows ``end`` where the k-th mask is set and ``start`` elsewhere.
    """
    b, c, h, w = x_batch.shape
    masks = pixel_order_masks(a_batch.to(x_batch.device), steps)[:, :, None]  # (B,K+1,1,H,W)
    images = torch.where(masks, end[:, None], start[:, None]).view(-1, c, h, w)
    targets = y_batch.long().repeat_interleave(steps + 1)
    cap = images_per_forward(x_batch.device, None, model, (c, h, w))
    probs = []
    forward = inference_forward(model)
    with torch.no_grad():
        for i in range(0, len(images), cap):
            logits = forward(images[i : i + cap]).float()
            probs.append(class_scores(model, logits).gather(1, targets[i : i + cap, None])[:, 0])
    return torch.cat(probs).view(b, steps + 1)


def trapezoid_auc(values: torch.Tensor) -> torch.Tensor:
    """Area under (k/K, values_k), k = 0..K, per row: the trapezoid rule on [0, 1]."""
    k = values.shape[1] - 1
    return (values[:, 1:] + values[:, :-1]).sum(1) / (2 * k)


class _PixelCurve(Metric):
    """Shared state of deletion and insertion.

    Args:
        context: the scenario.
        steps: points of the curve after the start (default 16).
        baseline: what a removed pixel becomes (deletion: "black" by default) or what
            insertion starts from (insertion: "blur" by default), "black" or "blur".
        blur_sigma: σ of the blur as a fraction of the image side (the paper's
            kernel 11, σ 5 at 224 px).
    """

    needs = frozenset({"model"})
    tolerance = 0.02  # AUC on a 0–1 scale, for deletion and insertion alike
    default_baseline: ClassVar[Baseline] = "black"

    def __init__(
        self,
        context: MetricContext,
        *,
        steps: int = 16,
        baseline: Baseline | None = None,
        blur_sigma: float = 5 / 224,
    ):
        if int(steps) < 1:
            raise ValueError(f"steps must be at least 1, got {steps!r}")
        baseline = baseline or self.default_baseline
        if baseline not in ("black", "blur"):
            raise ValueError(f"baseline must be 'black' or 'blur', got {baseline!r}")
        self.steps, self.baseline, self.blur_sigma = int(steps), baseline, float(blur_sigma)
        super().__init__(context)

    def reset(self) -> None:
        self._auc: list[torch.Tensor] = []

    def destroyed(self, x_batch: torch.Tensor) -> torch.Tensor:
        if self.baseline == "black":
            return torch.zeros_like(x_batch)
        sigma = max(self.blur_sigma * x_batch.shape[-1], 0.5)
        kernel = 2 * round(2 * sigma) + 1
        return gaussian_blur(x_batch, [kernel, kernel], [sigma, sigma])

    def ends(self, x_batch: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The curve's first and last image: pixels move from one to the other."""
        raise NotImplementedError

    def update(self, *, x_batch, y_batch, a_batch, model=None, **_) -> None:
        if model is None:
            raise ValueError(f"{self.name} needs the model")
        start, end = self.ends(x_batch)
        c = curve(model, x_batch, y_batch, a_batch, start, end, self.steps)
        self._auc.append(trapezoid_auc(c))

    def compute(self) -> MetricResult:
        if not self._auc:
            raise ValueError("no batch seen")
        auc = torch.cat(self._auc)
        details = {"steps": self.steps, "baseline": self.baseline}
        return MetricResult({self.name: float(auc.mean())}, len(auc), details=details,
                            per_image=auc)  # fmt: skip


class DeletionAUC(_PixelCurve):
    """Area under the probability curve as the most salient pixels are removed (↓)."""

    name = "deletion_auc"
    direction: ClassVar[Direction] = "lower"
    default_baseline = "black"

    def ends(self, x_batch: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return x_batch, self.destroyed(x_batch)


class InsertionAUC(_PixelCurve):
    """Area under the probability curve as the most salient pixels are put back (↑)."""

    name = "insertion_auc"
    direction: ClassVar[Direction] = "higher"
    default_baseline = "blur"

    def ends(self, x_batch: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.destroyed(x_batch), x_batch
