"""LFW (Huang et al., "Labeled Faces in the Wild: A Database for Studying Face
Recognition in Unconstrained Environments", 2007): identities and verification pairs.

Layout (DATASETS.md): ``lfw/<Name>/<Name>_0001.jpg …`` (250×250) and ``pairs.txt``
beside ``lfw/``: a ``"10 300"`` line, then 10 folds of 300 same-person lines
(``"Name n1 n2"``) followed by 300 different-person lines (``"Name1 n1 Name2 n2"``),
tab or space separated. LFW has no attribute labels.
"""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar

import torch

from benchmark.data.base import FaceArrays
from benchmark.data.cache import cache_key, cached
from benchmark.data.pairs import (
    Pair,
    detector_file,
    image_name,
    list_identity_images,
    pair_indices,
    read_faces,
    read_pairs,
)
from benchmark.errors import BenchError

SOURCE = "https://vis-www.cs.umass.edu/lfw/"
PAIRS = "pairs.txt"
TRANSFORM = "centre-square-area-v1"  # part of the cache key: change it with the transform


class LFW:
    """LFW's images with identities, and its 10-fold verification pairs.

    LFW has one split here: every ``split`` name returns the same images.

    Args:
        root: the folder holding ``lfw/`` and ``pairs.txt``.
        size: image side in pixels (resized from 250×250).
        limit: keep only the first ``limit`` images (identities and files sorted).
        pairs_only: read only the images that ``pairs.txt`` names (the usual protocol;
            about 7,700 of the 13,233 images).
        landmarks: detect five landmarks (``benchmark.data.landmarks``); their quality
            goes to ``extras["landmark_quality"]``.
        images: the image folder's name under ``root`` (e.g. ``lfw-deepfunneled``).
    """

    attribute_names: ClassVar[tuple[str, ...]] = ()
    group_names: ClassVar[tuple[str, ...]] = ()
    group_values: ClassVar[dict[str, tuple[str, ...]]] = {}
    provides: frozenset[str] = frozenset({"landmarks"})

    def __init__(
        self,
        root: str | Path,
        size: int = 224,
        limit: int | None = None,
        pairs_only: bool = False,
        landmarks: bool = True,
        images: str = "lfw",
    ):
        if size < 8 or (limit is not None and limit < 1):
            raise ValueError(f"need size >= 8 and limit >= 1, got size={size}, limit={limit}")
        self.root, self.size, self.limit = Path(root).expanduser(), int(size), limit
        self.pairs_only, self.landmarks = bool(pairs_only), bool(landmarks)
        self.images = self.root / images
        self.provides = frozenset({"landmarks"}) if self.landmarks else frozenset()
        #: Sorted identity names of the last load; ``extras["identity"]`` indexes them.
        self.identities: tuple[str, ...] | None = None

    def missing(self) -> list[str]:
        """One line per expected file or folder that is absent (empty when ready)."""
        paths = [self.images, self.root / PAIRS]
        return [f"LFW: expected {p} (download from {SOURCE})" for p in paths if not p.exists()]

    def load(self, split: str, seed: int, cache_dir: Path | None = None) -> FaceArrays:
        """All images, or those in pairs.txt (``split`` and ``seed`` change nothing).

        ``extras`` hold ``identity`` (into :attr:`identities`) and ``image_number``.
        With ``cache_dir`` the decoded images (and detected landmarks) are cached.
        """
        if problems := self.missing():
            raise BenchError(problems[0])
        spec = {"root": str(self.root.resolve()), "images": self.images.name,
                "size": self.size, "limit": self.limit, "pairs_only": self.pairs_only,
                "landmarks": self.landmarks, "transform": TRANSFORM}  # fmt: skip
        files = [self.root / PAIRS] + ([detector_file()] if self.landmarks else [])
        key = "lfw-" + cache_key("lfw", spec, files)
        faces, info = cached(cache_dir, key, self._read)
        self.identities = tuple(info["identities"])
        return faces

    def _read(self) -> tuple[FaceArrays, dict[str, list[str]]]:
        if self.pairs_only:
            named: dict[tuple[str, int], int] = {}
            for pair in self._read_pairs()[0]:
                named.setdefault(pair.first, pair.line)
                named.setdefault(pair.second, pair.line)
            items = []
            for (identity, number), line in sorted(named.items()):
                path = self.images / identity / image_name(identity, number)
                if not path.is_file():
                    raise BenchError(f"LFW: {self.root / PAIRS} line {line} names {path}, "
                                     f"which is missing (download from {SOURCE})")  # fmt: skip
                items.append((identity, number, path))
        else:
            items = list_identity_images(self.images)
        items = items[: self.limit] if self.limit is not None else items
        identities = sorted({identity for identity, _, _ in items})
        faces = read_faces(items, identities, self.size, self.landmarks)
        return faces, {"identities": identities}

    def _read_pairs(self) -> tuple[list[Pair], tuple[int, int]]:
        try:
            pairs, folds = read_pairs(self.root / PAIRS, header=True)
        except FileNotFoundError as exc:
            raise BenchError(f"LFW: expected {exc} (download from {SOURCE})") from None
        assert folds is not None  # read_pairs checks the header line
        return pairs, folds

    def pairs(self, faces: FaceArrays) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """LFW's verification pairs among ``faces`` (this loader's output or a subset).

        Returns:
            long (P, 2) sample indices into ``faces``, bool (P,) same person and long
            (P,) fold (0–9), in pairs.txt's order; pairs with an image absent from
            ``faces`` are dropped.
        """
        if self.identities is None:
            raise RuntimeError("LFW.pairs needs the identities of a load(); call load() first")
        listed, (_, per_fold) = self._read_pairs()
        index, same, kept = pair_indices(listed, faces, self.identities)
        return index, same, kept // (2 * per_fold)
