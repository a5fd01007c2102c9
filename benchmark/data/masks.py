"""Merging per-region binary PNGs into one label map (METHODS.md §1).

CelebAMask-HQ (Lee et al., "MaskGAN", CVPR 2020) ships one binary PNG per present
region; the generic image folder reuses that convention. Both merge with the same rule:
labels are painted in id order so a later label wins, except that skin never overrides
another region (the skin masks cover the whole face, the eyes and nose included).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import cv2
import numpy as np

from benchmark.data.regions import REGION_ID
from benchmark.errors import BenchError

SKIN = REGION_ID["skin"]


def merge_region_pngs(
    paths_by_label: Mapping[int, Path],
    size: int | None = None,
    empty_shape: tuple[int, int] = (512, 512),
    crop_square: bool = False,
) -> np.ndarray:
    """The uint8 label map painted from binary region PNGs (255 = region).

    Args:
        paths_by_label: region id → PNG path; absent files mean the region is absent.
        size: side of the returned map (nearest neighbour); None keeps the PNGs' size.
        empty_shape: the map's shape when no PNG exists (all background).
        crop_square: keep the centre square first, as ``files.read_image`` does.
    """
    labels: np.ndarray | None = None
    for label in sorted(paths_by_label):
        path = paths_by_label[label]
        if not path.is_file():
            continue
        mask = cv2.imread(str(path), cv2.IMREAD_GRAYSCALE)
        if mask is None:
            raise BenchError(f"{path}: expected a readable PNG region mask")
        if labels is None:
            labels = np.zeros(mask.shape, dtype=np.uint8)
        elif mask.shape != labels.shape:
            raise BenchError(
                f"{path}: expected {labels.shape[1]}×{labels.shape[0]} like the face's other "
                f"region masks, got {mask.shape[1]}×{mask.shape[0]}"
            )
        on = mask > 127
        if label == SKIN:  # skin never overrides another region, whatever the id order
            on &= labels == 0
        labels[on] = label
    if labels is None:
        labels = np.zeros(empty_shape, dtype=np.uint8)
    if crop_square and labels.shape[0] != labels.shape[1]:
        side = min(labels.shape)
        top, left = (labels.shape[0] - side) // 2, (labels.shape[1] - side) // 2
        labels = labels[top : top + side, left : left + side]
    if size is not None and labels.shape != (size, size):
        labels = cv2.resize(labels, (size, size), interpolation=cv2.INTER_NEAREST)
    return np.ascontiguousarray(labels)
