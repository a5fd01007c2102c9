"""FairFace (Kärkkäinen & Joo, "FairFace: Face Attribute Dataset for Balanced Race,
Gender, and Age for Bias Measurement and Mitigation", WACV 2021).

The released layout (DATASETS.md): ``train/1.jpg …`` and ``val/1.jpg …`` (224×224
aligned crops, padding 0.25 or 1.25), with ``fairface_label_train.csv`` and
``fairface_label_val.csv`` (header ``file,age,gender,race,service_test``). FairFace
ships no landmarks and no region masks: landmarks are detected
(:mod:`benchmark.data.landmarks`) and their quality is kept per image.
"""

from __future__ import annotations

import csv
from pathlib import Path
from typing import ClassVar

import numpy as np
import torch

from benchmark.data import landmarks as lm
from benchmark.data.base import FaceArrays
from benchmark.data.cache import cache_key, cached
from benchmark.data.files import read_images
from benchmark.errors import BenchError

SOURCE = "https://github.com/joojs/fairface"
#: Split → (image folder, label file). FairFace has no test split: "test" is val.
SPLITS = {
    "train": ("train", "fairface_label_train.csv"),
    "val": ("val", "fairface_label_val.csv"),
    "valid": ("val", "fairface_label_val.csv"),
    "test": ("val", "fairface_label_val.csv"),
}
HEADER = ("file", "age", "gender", "race", "service_test")
GENDERS = ("Female", "Male")
RACES = (
    "White", "Black", "Latino_Hispanic", "East_Asian", "Southeast_Asian", "Indian",
    "Middle_Eastern",
)  # fmt: skip
#: The races as the label files spell them.
RACE_SPELLINGS = tuple(r.replace("_", " ") if r != "Latino_Hispanic" else r for r in RACES)
AGES = ("0-2", "3-9", "10-19", "20-29", "30-39", "40-49", "50-59", "60-69", "more than 70")
YOUNG_BINS = 4  # the bins below 30, as CelebA's "Young" (the first four)
SERVICE_TEST = ("False", "True")
TRANSFORM = "resize-area-v1"  # part of the cache key: change it with the transform


def _check(value: str, known: tuple[str, ...], what: str, path: Path, line: int) -> int:
    """Index of ``value`` in ``known``; races compare with spaces read as underscores."""
    name = value.replace(" ", "_") if known is RACES else value
    if name not in known:
        shown = RACE_SPELLINGS if known is RACES else known
        raise BenchError(
            f"FairFace: {path} line {line}: unknown {what} {value!r}; expected one of "
            + ", ".join(repr(k) for k in shown)
        )
    return known.index(name)


def read_labels(path: Path) -> tuple[list[str], np.ndarray]:
    """(image paths relative to the root, int64 (N, 4) gender, age, race, service_test).

    Gender and service_test are 0/1, age an index into :data:`AGES`, race into
    :data:`RACES` (the file's spaces, as in "East Asian", read as underscores).
    """
    if not path.is_file():
        raise FileNotFoundError(path)
    with path.open(newline="", encoding="utf-8") as f:
        rows = list(csv.reader(f))
    if not rows or tuple(c.strip() for c in rows[0]) != HEADER:
        got = ",".join(rows[0]) if rows else "an empty file"
        raise BenchError(f"FairFace: {path} line 1: expected header {','.join(HEADER)}, got {got}")
    files, values = [], []
    for line, row in enumerate(rows[1:], start=2):
        if not row:
            continue
        if len(row) != len(HEADER):
            raise BenchError(f"FairFace: {path} line {line}: expected 5 values: {','.join(row)}")
        file, age, gender, race, service = (c.strip() for c in row)
        values.append(
            [
                _check(gender, GENDERS, "gender", path, line),
                _check(age, AGES, "age", path, line),
                _check(race, RACES, "race", path, line),
                _check(service, SERVICE_TEST, "service_test", path, line),
            ]
        )
        files.append(file)
    return files, np.asarray(values, np.int64).reshape(-1, 4)


class FairFace:
    """FairFace's train and val splits with gender, age and race labels.

    Binary attributes: ``Male``, ``Young`` (age under 30), one column per race and
    ``Asian`` (East or Southeast Asian); groups ``race`` and ``age`` index
    :attr:`group_values`. FairFace has no test split: ``load("test")`` returns val.

    Args:
        root: the ``fairface`` folder.
        size: image side in pixels (the 224×224 crops are resized).
        landmarks: detect 5 landmarks per image (Haar cascades); their quality goes
            to ``extras["landmark_quality"]`` (2 eyes found, 1 face box, 0 template).
        limit: keep only the first ``limit`` images of a split (None: all).
    """

    attribute_names: ClassVar[tuple[str, ...]] = ("Male", "Young", *RACES, "Asian")
    group_names: ClassVar[tuple[str, ...]] = ("race", "age")
    group_values: ClassVar[dict[str, tuple[str, ...]]] = {"race": RACES, "age": AGES}
    provides = frozenset({"landmarks"})

    def __init__(
        self,
        root: str | Path,
        size: int = 224,
        landmarks: bool = True,
        limit: int | None = None,
    ):
        if size < 8 or (limit is not None and limit < 1):
            raise ValueError(f"need size >= 8 and limit >= 1, got size={size}, limit={limit}")
        self.root, self.size, self.limit = Path(root).expanduser(), int(size), limit
        self.landmarks = bool(landmarks)
        if not self.landmarks:
            self.provides = frozenset()
        #: Counts of the last load: listed in the split, kept, and landmark qualities.
        self.counts: dict[str, int] = {}

    def missing(self) -> list[str]:
        """One line per expected file or folder that is absent (empty when ready)."""
        paths = [self.root / n for pair in dict.fromkeys(SPLITS.values()) for n in pair]
        return [f"FairFace: expected {p} (download from {SOURCE})" for p in paths if not p.exists()]

    def load(self, split: str, seed: int, cache_dir: Path | None = None) -> FaceArrays:
        """The released ``split`` ("train", "val" or "valid"; "test" is val, FairFace
        has none); ``seed`` does not change it.

        With ``cache_dir`` the decoded images and landmarks are cached
        (``benchmark.data.cache``).
        """
        if split not in SPLITS:
            raise BenchError(f"FairFace: split must be one of {sorted(SPLITS)}, got {split!r}")
        if problems := self.missing():
            raise BenchError(problems[0])
        folder, labels = SPLITS[split]
        transform = TRANSFORM + ("+" + lm.VERSION if self.landmarks else "")
        spec = {"root": str(self.root.resolve()), "size": self.size, "limit": self.limit,
                "landmarks": self.landmarks, "split": folder, "transform": transform}  # fmt: skip
        key = "fairface-" + cache_key("fairface", spec, [self.root / labels])
        faces, self.counts = cached(cache_dir, key, lambda: self._read(labels))
        return faces

    def _read(self, labels: str) -> tuple[FaceArrays, dict[str, int]]:
        try:
            files, values = read_labels(self.root / labels)
            counts = {"listed": len(files)}
            keep = len(files) if self.limit is None else min(self.limit, len(files))
            files, values = files[:keep], values[:keep]
            images = read_images([self.root / f for f in files], self.size, crop_square=True)
        except FileNotFoundError as exc:
            raise BenchError(f"FairFace: expected {exc} (download from {SOURCE})") from None
        counts["kept"] = keep
        gender, age, race, service = values.T
        one_hot = (race[:, None] == np.arange(len(RACES))).astype(np.int8)
        asian = np.isin(race, [RACES.index("East_Asian"), RACES.index("Southeast_Asian")])
        attributes = np.column_stack([gender, age < YOUNG_BINS, one_hot, asian]).astype(np.int8)
        extras = {
            "index": torch.arange(keep, dtype=torch.long),  # row in the split's label file
            "service_test": torch.from_numpy(service.astype(np.int8)),
        }
        points = None
        if self.landmarks:
            found, quality = lm.detect_landmarks(images)
            points = torch.from_numpy(found)
            extras["landmark_quality"] = torch.from_numpy(quality)
            counts |= {
                "landmarks_detected": int((quality == 2).sum()),
                "landmarks_face_only": int((quality == 1).sum()),
                "landmarks_template": int((quality == 0).sum()),
            }
        faces = FaceArrays(
            images=torch.from_numpy(images),
            attributes=torch.from_numpy(attributes),
            attribute_names=self.attribute_names,
            landmarks=points,
            groups={"race": torch.from_numpy(race), "age": torch.from_numpy(age)},
            extras=extras,
        )
        return faces, counts
