"""The model's true reliance on each attribute, from counterfactual renders (METHODS §9).

reliance_a = mean over the explained images of |M(X) − M(X with a toggled)|, M the
softmax probability of the explained class. A binary attribute is flipped; a
categorical one (skin tone) is set to each other value in turn and the absolute changes
are averaged. Only attributes linked to face regions are measured, since the point is to
score explainers' region rankings against them.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, Protocol

import torch

from benchmark.data.base import FaceArrays
from benchmark.data.regions import ATTRIBUTE_REGIONS
from benchmark.models.train import to_pixels
from metrics.confidence import confidence


class Counterfactuals(Protocol):
    """A dataset that can re-render its faces with one attribute changed."""

    togglable: dict[str, tuple[int, ...]]

    def counterfactual(self, faces: FaceArrays, attribute: str, value: int) -> torch.Tensor: ...


def supports_counterfactuals(dataset: Any) -> bool:
    return callable(getattr(dataset, "counterfactual", None)) and hasattr(dataset, "togglable")


def measured_attributes(dataset: Counterfactuals, exclude: Sequence[str]) -> list[str]:
    """Togglable attributes that have face regions, the target(s) left out."""
    return [a for a in dataset.togglable if a in ATTRIBUTE_REGIONS and a not in exclude]


def _confidences(model, images: torch.Tensor, y: torch.Tensor, batch: int) -> torch.Tensor:
    dev = y.device
    parts = [
        confidence(model, to_pixels(images[i : i + batch], dev), y[i : i + batch])
        for i in range(0, len(images), batch)
    ]
    return torch.cat(parts) if parts else torch.zeros(0, device=dev)


def true_reliance(
    dataset: Counterfactuals,
    faces: FaceArrays,
    model: torch.nn.Module,
    y: torch.Tensor,
    attributes: Sequence[str],
    batch: int = 256,
    prepare: Callable[[torch.Tensor, torch.Tensor], torch.Tensor] | None = None,
) -> dict[str, float]:
    """reliance per attribute over ``faces`` explained for classes ``y``.

    Args:
        dataset: the dataset ``faces`` come from.
        faces: the explained images.
        model: the classifier (on ``y``'s device).
        y: explained class per image.
        attributes: what to toggle (see :func:`measured_attributes`).
        batch: images per forward.
        prepare: ``prepare(renders, index)`` turns the counterfactual renders of
            ``faces[index]`` into what the model reads (the crop the faces went through).
    """
    base = _confidences(model, faces.images, y, batch)
    out = {}
    for attr in attributes:
        current = faces.attribute(attr).to(y.device).long()
        total = torch.zeros_like(base)
        changes = torch.zeros_like(base)
        for value in dataset.togglable[attr]:
            # Only faces that do not already have ``value`` change: render just those.
            idx = torch.nonzero(current != value).flatten()
            if len(idx) == 0:
                continue
            images = dataset.counterfactual(faces.subset(idx.cpu()), attr, value)
            if prepare is not None:
                images = prepare(images, idx)
            conf = _confidences(model, images, y[idx], batch)
            total.index_add_(0, idx, (base[idx] - conf).abs())
            changes.index_add_(0, idx, torch.ones_like(conf))
        per_image = total / changes.clamp_min(1)
        out[attr] = float(per_image.mean()) if len(per_image) else float("nan")
    return out
