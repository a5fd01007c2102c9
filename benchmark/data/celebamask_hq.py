"""CelebAMask-HQ (Lee et al., "MaskGAN", CVPR 2020): images, region masks, attributes.

Layout (DATASETS.md): ``CelebA-HQ-img/{i}.jpg`` (1024²), one binary PNG per present
region in ``CelebAMask-HQ-mask-anno/{i // 2000}/{i:05d}_{region}.png`` (512²),
``CelebAMask-HQ-attribute-anno.txt`` (count, 40 names, then ``"0.jpg  1 -1 …"``) and
``CelebA-HQ-to-CelebA-mapping.txt`` (``idx orig_idx orig_file``). The region PNGs are
merged into one label map with METHODS.md §1's rule: later labels win, except that
skin never overrides another region.
"""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar

import numpy as np
import torch

from benchmark.data.base import FaceArrays
from benchmark.data.cache import cache_key, cached
from benchmark.data.files import (
    CELEBA_ATTRIBUTES,
    fill_parallel,
    read_attribute_file,
    read_images,
    read_mapping,
)
from benchmark.data.masks import merge_region_pngs
from benchmark.data.regions import REGION_NAMES
from benchmark.errors import BenchError

SOURCE = "https://github.com/switchablenorms/CelebAMask-HQ"
IMAGES = "CelebA-HQ-img"
MASKS = "CelebAMask-HQ-mask-anno"
ATTRIBUTES = "CelebAMask-HQ-attribute-anno.txt"
MAPPING = "CelebA-HQ-to-CelebA-mapping.txt"
PER_FOLDER = 2000  # mask files per numbered folder
TRANSFORM = "area-nearest-v1"  # part of the cache key: change it with the transform


def _missing(path: Path) -> BenchError:
    return BenchError(f"CelebAMask-HQ: expected {path}, which is missing (download from {SOURCE})")


def merge_masks(folder: Path, index: int, size: int | None = None) -> np.ndarray:
    """The uint8 label map of image ``index`` from its per-region PNGs (METHODS §1).

    Args:
        folder: the ``CelebAMask-HQ-mask-anno`` folder.
        index: CelebA-HQ image index.
        size: side of the returned map (nearest neighbour); None keeps the PNGs' size.
    """
    sub = folder / str(index // PER_FOLDER)
    paths = {
        label: sub / f"{index:05d}_{region}.png"
        for label, region in enumerate(REGION_NAMES[1:], start=1)
    }
    return merge_region_pngs(paths, size, empty_shape=(512, 512))


class CelebAMaskHQ:
    """CelebAMask-HQ as a test (or train) set with ground-truth region masks.

    Args:
        root: the ``CelebAMask-HQ`` folder.
        size: image side in pixels (images and label maps are resized).
        limit: read only the first ``limit`` images (None: all listed).
        landmarks: ``"masks"`` places 5 landmarks from the label maps
            (``benchmark.data.mask_landmarks``), for a model's face crop, canonical
            saliency and the landmark11 protocol; None: no landmarks.
    """

    #: For suite validation before any file is read (the files list the same names).
    attribute_names: ClassVar[tuple[str, ...]] = CELEBA_ATTRIBUTES
    provides = frozenset({"label_maps"})

    def __init__(
        self,
        root: str | Path,
        size: int = 224,
        limit: int | None = None,
        landmarks: str | None = None,
    ):
        if size < 8 or (limit is not None and limit < 1):
            raise ValueError(f"need size >= 8 and limit >= 1, got size={size}, limit={limit}")
        if landmarks not in (None, "masks"):
            raise ValueError(f"landmarks: expected 'masks' or none, got {landmarks!r}")
        self.root, self.size, self.limit = Path(root).expanduser(), int(size), limit
        self.landmarks = landmarks
        if landmarks:
            self.provides = frozenset({"label_maps", "landmarks"})

    def index_files(self) -> list[Path]:
        """The files whose size and mtime identify this copy of the dataset."""
        return [self.root / ATTRIBUTES, self.root / MAPPING]

    def missing(self) -> list[str]:
        """One line per expected file or folder that is absent (empty when ready)."""
        paths = [self.root / IMAGES, self.root / MASKS, self.root / ATTRIBUTES]
        return [
            f"CelebAMask-HQ: expected {p} (download from {SOURCE})" for p in paths if not p.exists()
        ]

    def load(self, split: str, seed: int, cache_dir: Path | None = None) -> FaceArrays:
        """Every listed image (the whole set is the benchmark's test set; ``split`` and
        ``seed`` do not change it). ``extras["celeba_index"]`` holds each image's 0-based
        CelebA index (-1 without the mapping file) for de-duplication against CelebA.
        With ``cache_dir`` the decoded images and merged masks are cached."""
        if problems := self.missing():
            raise BenchError(problems[0])
        spec = {"root": str(self.root.resolve()), "size": self.size, "limit": self.limit,
                "transform": TRANSFORM}  # fmt: skip
        key = "celebamask_hq-" + cache_key("celebamask_hq", spec, self.index_files())
        faces = cached(cache_dir, key, lambda: (self._read(), {}))[0]
        if self.landmarks == "masks":  # from the (cached) maps: a few ms per thousand
            from benchmark.data.mask_landmarks import landmarks_from_label_maps

            assert faces.label_maps is not None
            faces.landmarks = landmarks_from_label_maps(faces.label_maps)
        return faces

    def _read(self) -> FaceArrays:
        try:
            names, files, values = read_attribute_file(self.root / ATTRIBUTES)
            if self.limit is not None:
                files, values = files[: self.limit], values[: self.limit]
            index = [int(Path(f).stem) for f in files]
            images = read_images([self.root / IMAGES / f for f in files], self.size)
        except FileNotFoundError as exc:
            raise _missing(Path(str(exc))) from None
        masks = np.empty((len(index), self.size, self.size), np.uint8)
        fill_parallel(masks, index, lambda i: merge_masks(self.root / MASKS, i, self.size))
        mapping = read_mapping(self.root / MAPPING) if (self.root / MAPPING).is_file() else {}
        celeba = torch.tensor([mapping.get(i, -1) for i in index], dtype=torch.long)
        return FaceArrays(
            images=torch.from_numpy(images),
            attributes=torch.from_numpy(values),
            attribute_names=names,
            label_maps=torch.from_numpy(masks),
            extras={"celeba_index": celeba, "index": torch.tensor(index, dtype=torch.long)},
        )
