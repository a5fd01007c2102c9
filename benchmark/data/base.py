"""The container every dataset loader returns, so the runner is dataset-agnostic."""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import torch

from benchmark.data.regions import REGION_NAMES


@dataclass
class FaceArrays:
    """Images and their annotations, as tensors indexed by sample.

    Attributes:
        images: uint8 (N, 3, H, W), RGB, pixel space.
        attributes: int8 (N, K); 1 present, 0 absent, -1 unknown.
        attribute_names: the K attribute names (CelebA spelling).
        label_maps: uint8 (N, H, W) region ids into ``regions``, or None.
        landmarks: float32 (N, 5, 2) pixel (x, y) of left eye, right eye, nose tip,
            left and right mouth corner, or None.
        boxes: float32 (N, 4) face box (x0, y0, x1, y1) in pixels, or None.
        groups: categorical columns (e.g. ``skin_tone``), int64 (N,) each.
        extras: any other per-sample tensors (first dim N), kept aligned by ``subset``
            (dense landmarks, render parameters).
        regions: names of the label ids in ``label_maps``.
    """

    images: torch.Tensor
    attributes: torch.Tensor
    attribute_names: tuple[str, ...]
    label_maps: torch.Tensor | None = None
    landmarks: torch.Tensor | None = None
    boxes: torch.Tensor | None = None
    groups: dict[str, torch.Tensor] = field(default_factory=dict)
    extras: dict[str, torch.Tensor] = field(default_factory=dict)
    regions: tuple[str, ...] = REGION_NAMES

    def __len__(self) -> int:
        return int(self.images.shape[0])

    @property
    def size(self) -> tuple[int, int]:
        return int(self.images.shape[-2]), int(self.images.shape[-1])

    def correspondence_points(self) -> torch.Tensor | None:
        """Landmarks for a face correspondence: dense (``extras["dense_landmarks"]``)
        where the dataset has them, else the 5 sparse ones, else None."""
        dense = self.extras.get("dense_landmarks")
        return dense if dense is not None else self.landmarks

    def attribute(self, name: str) -> torch.Tensor:
        """Column ``name`` of the attributes (or of the groups), shape (N,)."""
        if name in self.groups:
            return self.groups[name]
        return self.attributes[:, self.attribute_names.index(name)]

    def subset(self, index: torch.Tensor) -> FaceArrays:
        """The samples at ``index`` (a LongTensor), every annotation kept aligned."""

        def pick(t: torch.Tensor | None) -> torch.Tensor | None:
            return None if t is None else t[index]

        return replace(
            self,
            images=self.images[index],
            attributes=self.attributes[index],
            label_maps=pick(self.label_maps),
            landmarks=pick(self.landmarks),
            boxes=pick(self.boxes),
            groups={k: v[index] for k, v in self.groups.items()},
            extras={k: v[index] for k, v in self.extras.items()},
        )
