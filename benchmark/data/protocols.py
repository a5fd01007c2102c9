"""Region protocols (METHODS.md §1): ordered region names plus a way to get each image's
region masks, so region rankings work with or without ground-truth masks.

A protocol turns a batch's annotations into ``s_batch``: label maps (B, H, W) when the
regions partition the image, per-region masks (B, R, H, W) when they may overlap.
Metrics accept both. Protocols are registered in ``REGION_PROTOCOLS``; a suite picks
one with ``region_protocol``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import ClassVar

import torch

from benchmark.data.landmark11 import ATTRIBUTE_PATCHES, LANDMARK11, landmark11_masks
from benchmark.data.regions import ATTRIBUTE_REGIONS, REGION_NAMES


class RegionProtocol:
    """Template: names, default attribute → regions, what the data must provide.

    Attributes:
        regions: region names, in id order.
        attribute_regions: default ``bias_regions`` per attribute.
        needs: the annotation the masks come from ("label_maps" or "landmarks").
        partition: True when every pixel has exactly one region (label maps).
    """

    regions: ClassVar[tuple[str, ...]] = ()
    attribute_regions: ClassVar[Mapping[str, tuple[str, ...]]] = {}
    needs: ClassVar[str] = "label_maps"
    partition: ClassVar[bool] = True

    def s_batch(
        self,
        label_maps: torch.Tensor | None,
        landmarks: torch.Tensor | None,
        size: tuple[int, int],
    ) -> torch.Tensor | None:
        """The batch's regions for the metrics, on the annotations' device; None when the
        data lacks what the protocol needs."""
        raise NotImplementedError


class CelebAMaskRegions(RegionProtocol):
    """The 19 CelebAMask-HQ labels (Lee et al. 2020), from the dataset's label maps."""

    regions = REGION_NAMES
    attribute_regions = ATTRIBUTE_REGIONS

    def s_batch(self, label_maps, landmarks, size):
        return label_maps


class Landmark11Regions(RegionProtocol):
    """XAIface's 11 patches from 5 landmarks (seed 002, §3.1.1); they may overlap."""

    regions = LANDMARK11
    attribute_regions = ATTRIBUTE_PATCHES
    needs = "landmarks"
    partition = False

    def s_batch(self, label_maps, landmarks, size):
        return None if landmarks is None else landmark11_masks(landmarks, size)
