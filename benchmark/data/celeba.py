"""CelebA (Liu et al., "Deep Learning Face Attributes in the Wild", ICCV 2015).

torchvision's layout (DATASETS.md): ``img_align_celeba/000001.jpg …`` (178×218),
``list_attr_celeba.txt``, ``list_eval_partition.txt`` (0 train, 1 valid, 2 test) and
``list_landmarks_align_celeba.txt`` (5 points). Images are centre-cropped to 178×178
(the face sits in the aligned square) and resized; landmarks follow the same transform.
CelebAMask-HQ's images come from CelebA: a training split drops them through
CelebAMask-HQ's mapping file, so the benchmark never tests on a training face.
"""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar

import numpy as np
import torch

from benchmark.data.base import FaceArrays
from benchmark.data.cache import cache_key, cached
from benchmark.data.files import CELEBA_ATTRIBUTES, read_attribute_file, read_images, read_mapping
from benchmark.errors import BenchError

SOURCE = "https://mmlab.ie.cuhk.edu.hk/projects/CelebA.html"
HQ_SOURCE = "https://github.com/switchablenorms/CelebAMask-HQ"  # ships the mapping file
IMAGES = "img_align_celeba"
ATTRIBUTES = "list_attr_celeba.txt"
PARTITION = "list_eval_partition.txt"
LANDMARKS = "list_landmarks_align_celeba.txt"
HQ_MAPPING = "CelebA-HQ-to-CelebA-mapping.txt"
SPLITS = {"train": 0, "valid": 1, "val": 1, "test": 2}
WIDTH, HEIGHT = 178, 218  # aligned images
TRANSFORM = "centre-square-area-v1"  # part of the cache key: change it with the transform


def _source(path: Path) -> str:
    return HQ_SOURCE if path.name == HQ_MAPPING else SOURCE


def _read_partition(path: Path) -> dict[str, int]:
    if not path.is_file():
        raise FileNotFoundError(path)
    return {f: int(p) for f, p in (line.split() for line in path.read_text().splitlines() if line)}


def _read_landmarks(path: Path) -> dict[str, np.ndarray]:
    """File name → (5, 2) pixel (x, y): eyes, nose tip, mouth corners."""
    if not path.is_file():
        raise FileNotFoundError(path)
    out = {}
    for line in path.read_text().splitlines()[2:]:  # count, header
        parts = line.split()
        if len(parts) == 11:
            out[parts[0]] = np.asarray(parts[1:], dtype=np.float32).reshape(5, 2)
    return out


class CelebA:
    """CelebA's official partition, attributes and aligned landmarks.

    Args:
        root: the ``celeba`` folder.
        size: image side in pixels (centre square crop, then resize).
        exclude_hq: a CelebAMask-HQ folder; its images are removed from the train split.
        limit: keep only the first ``limit`` images of a split (None: all).
    """

    #: For suite validation before any file is read (the files list the same names).
    attribute_names: ClassVar[tuple[str, ...]] = CELEBA_ATTRIBUTES
    provides = frozenset({"landmarks"})

    def __init__(
        self,
        root: str | Path,
        size: int = 224,
        exclude_hq: str | Path | None = None,
        limit: int | None = None,
    ):
        if size < 8 or (limit is not None and limit < 1):
            raise ValueError(f"need size >= 8 and limit >= 1, got size={size}, limit={limit}")
        self.root, self.size, self.limit = Path(root).expanduser(), int(size), limit
        self.exclude_hq = Path(exclude_hq).expanduser() if exclude_hq is not None else None
        #: Counts of the last load: listed in the split, removed as CelebAMask-HQ, kept.
        self.counts: dict[str, int] = {}

    def missing(self) -> list[str]:
        """One line per expected file or folder that is absent (empty when ready)."""
        paths = [self.root / n for n in (IMAGES, ATTRIBUTES, PARTITION, LANDMARKS)]
        if self.exclude_hq is not None:
            paths.append(self.exclude_hq / HQ_MAPPING)
        return [
            f"CelebA: expected {p} (download from {_source(p)})" for p in paths if not p.exists()
        ]

    def load(self, split: str, seed: int, cache_dir: Path | None = None) -> FaceArrays:
        """The official ``split`` ("train", "valid" or "test"); ``seed`` does not change it.

        With ``cache_dir`` the decoded images are cached (``benchmark.data.cache``).
        """
        if split not in SPLITS:
            raise BenchError(f"CelebA: split must be one of {sorted(SPLITS)}, got {split!r}")
        if problems := self.missing():
            raise BenchError(problems[0])
        spec = {"root": str(self.root.resolve()), "size": self.size, "limit": self.limit,
                "exclude_hq": str(self.exclude_hq) if self.exclude_hq else None,
                "split": split, "transform": TRANSFORM}  # fmt: skip
        index_files = [self.root / n for n in (ATTRIBUTES, PARTITION, LANDMARKS)]
        if self.exclude_hq is not None:
            index_files.append(self.exclude_hq / HQ_MAPPING)
        key = "celeba-" + cache_key("celeba", spec, index_files)
        faces, self.counts = cached(cache_dir, key, lambda: self._read(split))
        return faces

    def _read(self, split: str) -> tuple[FaceArrays, dict[str, int]]:
        try:
            names, files, values = read_attribute_file(self.root / ATTRIBUTES)
            partition = _read_partition(self.root / PARTITION)
            points = _read_landmarks(self.root / LANDMARKS)
            keep = [i for i, f in enumerate(files) if partition.get(f) == SPLITS[split]]
            listed = len(keep)
            if split == "train" and self.exclude_hq is not None:
                # orig_idx is 0-based: CelebA file orig_idx + 1.
                hq = {
                    f"{i + 1:06d}.jpg" for i in read_mapping(self.exclude_hq / HQ_MAPPING).values()
                }
                keep = [i for i in keep if files[i] not in hq]
            counts = {"listed": listed, "removed_hq": listed - len(keep)}
            keep = keep[: self.limit] if self.limit is not None else keep
            counts["kept"] = len(keep)
            images = read_images([self.root / IMAGES / files[i] for i in keep], self.size, True)
        except FileNotFoundError as exc:
            path = Path(str(exc))
            raise BenchError(f"CelebA: expected {path} (download from {_source(path)})") from None
        side = min(WIDTH, HEIGHT)
        top, left = (HEIGHT - side) // 2, (WIDTH - side) // 2  # as read_image crops
        scale = self.size / side
        absent = np.full((5, 2), np.nan, np.float32)
        lm = np.stack([points.get(files[i], absent) for i in keep] or [absent])[: len(keep)]
        # Pixel centres at integers: shift by the crop, scale about the pixel corners.
        lm = (lm - [left, top] + 0.5) * scale - 0.5
        faces = FaceArrays(
            images=torch.from_numpy(images),
            attributes=torch.from_numpy(values[keep]),
            attribute_names=names,
            landmarks=torch.from_numpy(lm.astype(np.float32)).reshape(-1, 5, 2),
            extras={
                "index": torch.tensor([int(files[i][:-4]) - 1 for i in keep], dtype=torch.long)
            },
        )
        return faces, counts
