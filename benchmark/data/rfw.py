"""RFW (Wang et al., "Racial Faces in-the-Wild: Reducing Racial Bias by Information
Maximization Adaptation Network", ICCV 2019): a face-verification test set of four races.

Layout (DATASETS.md): ``test/data/{African,Asian,Caucasian,Indian}/<identity>/
<identity>_000N.jpg`` and ``test/txts/{race}/{race}_pairs.txt`` (same-person lines
``"id n1 n2"``, different-person lines ``"id1 n1 id2 n2"``). RFW labels race only; its
attributes use FairFace's binary race vocabulary (Kärkkäinen & Joo 2021) so that a model
trained on FairFace can be tested on RFW.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import ClassVar

import numpy as np
import torch

from benchmark.data.base import FaceArrays
from benchmark.data.cache import cache_key, cached
from benchmark.data.pairs import (
    detector_file,
    list_identity_images,
    pair_indices,
    read_faces,
    read_pairs,
)
from benchmark.errors import BenchError

SOURCE = "http://whdeng.cn/RFW/testing.html"
RACES: tuple[str, ...] = ("African", "Asian", "Caucasian", "Indian")
ATTRIBUTES: tuple[str, ...] = (
    "Male", "Young", "White", "Black", "Latino_Hispanic", "East_Asian", "Southeast_Asian",
    "Indian", "Middle_Eastern", "Asian",
)  # fmt: skip
TRANSFORM = "centre-square-area-v1"  # part of the cache key: change it with the transform


def _race_row(race: str) -> np.ndarray:
    """The attribute values RFW implies for ``race`` (1 yes, 0 no, -1 unknown)."""
    row = np.zeros(len(ATTRIBUTES), np.int8)
    row[[ATTRIBUTES.index("Male"), ATTRIBUTES.index("Young")]] = -1  # RFW has no labels
    column = {"African": "Black", "Asian": "Asian", "Caucasian": "White", "Indian": "Indian"}
    row[ATTRIBUTES.index(column[race])] = 1
    if race == "Asian":  # RFW's Asian covers both of FairFace's Asian races
        row[[ATTRIBUTES.index("East_Asian"), ATTRIBUTES.index("Southeast_Asian")]] = -1
    return row


class RFW:
    """RFW's four race subsets, with identities, race groups and verification pairs.

    RFW has one split: every ``split`` name returns all images.

    Args:
        root: the ``RFW`` folder (holding ``test/``).
        size: image side in pixels (centre square crop, then resize).
        limit: keep only the first ``limit`` images (races, identities, files sorted).
        races: the race subsets to read (default all four).
        landmarks: detect five landmarks (``benchmark.data.landmarks``); their quality
            goes to ``extras["landmark_quality"]``.
    """

    attribute_names: ClassVar[tuple[str, ...]] = ATTRIBUTES
    group_names: ClassVar[tuple[str, ...]] = ("race",)
    #: ``groups["race"]`` indexes these, whatever ``races`` selects.
    group_values: ClassVar[dict[str, tuple[str, ...]]] = {"race": RACES}
    provides: frozenset[str] = frozenset({"landmarks"})

    def __init__(
        self,
        root: str | Path,
        size: int = 224,
        limit: int | None = None,
        races: Sequence[str] = RACES,
        landmarks: bool = True,
    ):
        if size < 8 or (limit is not None and limit < 1):
            raise ValueError(f"need size >= 8 and limit >= 1, got size={size}, limit={limit}")
        if isinstance(races, str):
            races = [races]
        unknown = [r for r in races if r not in RACES]
        if unknown or not races:
            raise ValueError(f"races must be a non-empty subset of {list(RACES)}, got {races}")
        self.root, self.size, self.limit = Path(root).expanduser(), int(size), limit
        self.races = tuple(r for r in RACES if r in races)
        self.landmarks = bool(landmarks)
        self.provides = frozenset({"landmarks"}) if self.landmarks else frozenset()
        #: Sorted identity names of the last load; ``extras["identity"]`` indexes them.
        self.identities: tuple[str, ...] | None = None

    def _folder(self, race: str) -> Path:
        return self.root / "test" / "data" / race

    def _pairs_file(self, race: str) -> Path:
        return self.root / "test" / "txts" / race / f"{race}_pairs.txt"

    def missing(self) -> list[str]:
        """One line per expected file or folder that is absent (empty when ready)."""
        paths = [p for r in self.races for p in (self._folder(r), self._pairs_file(r))]
        return [f"RFW: expected {p} (download from {SOURCE})" for p in paths if not p.exists()]

    def load(self, split: str, seed: int, cache_dir: Path | None = None) -> FaceArrays:
        """All images of the selected races (``split`` and ``seed`` do not change them).

        ``groups["race"]`` indexes :attr:`group_values`; ``extras`` hold ``identity``
        (into :attr:`identities`) and ``image_number``. With ``cache_dir`` the decoded
        images (and detected landmarks) are cached.
        """
        if problems := self.missing():
            raise BenchError(problems[0])
        spec = {"root": str(self.root.resolve()), "size": self.size, "limit": self.limit,
                "races": list(self.races), "landmarks": self.landmarks,
                "transform": TRANSFORM}  # fmt: skip
        files = [self._pairs_file(r) for r in self.races]
        if self.landmarks:
            files.append(detector_file())  # an edited detector re-detects
        key = "rfw-" + cache_key("rfw", spec, files)
        faces, info = cached(cache_dir, key, self._read)
        self.identities = tuple(info["identities"])
        return faces

    def _read(self) -> tuple[FaceArrays, dict[str, list[str]]]:
        items, race_of = [], []
        for race in self.races:
            found = list_identity_images(self._folder(race))
            items += found
            race_of += [RACES.index(race)] * len(found)
        if self.limit is not None:
            items, race_of = items[: self.limit], race_of[: self.limit]
        identities = sorted({identity for identity, _, _ in items})
        race = np.asarray(race_of, np.int64)
        rows = np.stack([_race_row(r) for r in RACES])
        faces = read_faces(items, identities, self.size, self.landmarks, rows[race], ATTRIBUTES)
        faces.groups["race"] = torch.from_numpy(race)
        return faces, {"identities": identities}

    def pairs(self, faces: FaceArrays) -> tuple[torch.Tensor, torch.Tensor]:
        """RFW's verification pairs among ``faces`` (this loader's output or a subset).

        Returns:
            long (P, 2) sample indices into ``faces`` and bool (P,) same person, in the
            order of the selected races' pair files; pairs with an image absent from
            ``faces`` are dropped.
        """
        if self.identities is None:
            raise RuntimeError("RFW.pairs needs the identities of a load(); call load() first")
        listed = []
        for race in self.races:
            try:
                listed += read_pairs(self._pairs_file(race))[0]
            except FileNotFoundError as exc:
                raise BenchError(f"RFW: expected {exc} (download from {SOURCE})") from None
        index, same, _ = pair_indices(listed, faces, self.identities)
        return index, same
