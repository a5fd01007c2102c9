"""Identity folders and verification pair files shared by LFW and RFW.

LFW (Huang et al., "Labeled Faces in the Wild", 2007) and RFW (Wang et al., "Racial
Faces in-the-Wild", ICCV 2019) store images as ``<identity>/<identity>_000N.jpg`` and
list verification pairs one per line: same-person ``"id n1 n2"``, different-person
``"id1 n1 id2 n2"`` (tabs or spaces). LFW's ``pairs.txt`` starts with a
``"folds pairs-per-fold"`` line (``"10 300"``); each fold is that many same-person pairs
followed by as many different-person pairs.
"""

from __future__ import annotations

import importlib.util
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from benchmark.data.base import FaceArrays
from benchmark.data.files import read_images
from benchmark.errors import BenchError

PAIR_FORMS = "'name n1 n2' (same person) or 'name1 n1 name2 n2' (different people)"


@dataclass(frozen=True)
class Pair:
    """One line of a pair file: two (identity, image number) and whether they match."""

    first: tuple[str, int]
    second: tuple[str, int]
    same: bool
    line: int  # 1-based, for error messages


def image_name(identity: str, number: int) -> str:
    """The file name of image ``number`` of ``identity``: ``<identity>_000N.jpg``."""
    return f"{identity}_{number:04d}.jpg"


def read_pairs(path: Path, header: bool = False) -> tuple[list[Pair], tuple[int, int] | None]:
    """The pairs of ``path`` and, with ``header``, its (folds, pairs per fold) line.

    Raises:
        FileNotFoundError: ``path`` is absent.
        BenchError: a line is neither pair form, or the header does not fit the pairs.
    """
    if not path.is_file():
        raise FileNotFoundError(path)
    lines = path.read_text().splitlines()
    folds = None
    if header:
        head = lines[0].split() if lines else []
        if len(head) != 2 or not all(h.isdigit() for h in head):
            got = lines[0] if lines else ""
            raise BenchError(f"{path} line 1: expected 'folds pairs-per-fold' (e.g. '10 300'), "
                             f"got {got!r}")  # fmt: skip
        folds = (int(head[0]), int(head[1]))
    pairs = []
    for number, text in enumerate(lines[1:] if header else lines, start=2 if header else 1):
        parts = text.split()
        if not parts:
            continue  # trailing blank lines
        ok = len(parts) in (3, 4) and parts[1].isdigit() and parts[-1].isdigit()
        if not ok:
            raise BenchError(f"{path} line {number}: expected {PAIR_FORMS}, got {text!r}")
        if len(parts) == 3:
            pairs.append(Pair((parts[0], int(parts[1])), (parts[0], int(parts[2])), True, number))
        else:
            pairs.append(Pair((parts[0], int(parts[1])), (parts[2], int(parts[3])), False, number))
    if folds is not None and len(pairs) != 2 * folds[0] * folds[1]:
        raise BenchError(f"{path}: line 1 announces {folds[0]} folds of {folds[1]} same and "
                         f"{folds[1]} different pairs ({2 * folds[0] * folds[1]}), "
                         f"found {len(pairs)}")  # fmt: skip
    return pairs, folds


def list_identity_images(folder: Path) -> list[tuple[str, int, Path]]:
    """(identity, image number, path) of every ``<identity>/<identity>_000N.jpg``, sorted.

    Raises:
        BenchError: a JPEG in an identity folder does not follow the naming convention
            (pair files could not refer to it).
    """
    out = []
    for sub in sorted(p for p in folder.iterdir() if p.is_dir()):
        pattern = re.compile(re.escape(sub.name) + r"_(\d{4,})\.jpg")
        for path in sorted(sub.glob("*.jpg")):
            match = pattern.fullmatch(path.name)
            if match is None:
                raise BenchError(f"{path}: expected a name like {image_name(sub.name, 1)}")
            out.append((sub.name, int(match.group(1)), path))
    return out


def detector_file() -> Path:
    """The landmark detector's source, whose stamp keys cached detections."""
    spec = importlib.util.find_spec("benchmark.data.landmarks")
    return Path(spec.origin) if spec is not None and spec.origin else Path("")


def read_faces(
    items: Sequence[tuple[str, int, Path]],
    identities: Sequence[str],
    size: int,
    landmarks: bool,
    attributes: np.ndarray | None = None,
    attribute_names: tuple[str, ...] = (),
) -> FaceArrays:
    """Decode ``items`` (centre square, resized) into faces with identity extras.

    Args:
        items: (identity, image number, path) per image.
        identities: the sorted identity names ``extras["identity"]`` indexes.
        size: image side in pixels.
        landmarks: detect five landmarks; their quality goes to
            ``extras["landmark_quality"]``.
        attributes: int8 (N, K) values (None: no attributes).
        attribute_names: the K names.
    """
    images = read_images([path for _, _, path in items], size, crop_square=True)
    position = {name: i for i, name in enumerate(identities)}
    extras = {
        "identity": torch.tensor([position[i] for i, _, _ in items], dtype=torch.long),
        "image_number": torch.tensor([n for _, n, _ in items], dtype=torch.long),
    }
    points = None
    if landmarks:
        from benchmark.data.landmarks import detect_landmarks  # cv2 cascades: load on use

        if len(items):
            found, quality = detect_landmarks(images)
        else:
            found, quality = np.zeros((0, 5, 2), np.float32), np.zeros(0, np.int8)
        points = torch.from_numpy(np.asarray(found, np.float32))
        extras["landmark_quality"] = torch.from_numpy(np.asarray(quality, np.int8))
    if attributes is None:
        attributes = np.zeros((len(items), 0), np.int8)
    return FaceArrays(
        images=torch.from_numpy(images),
        attributes=torch.from_numpy(attributes),
        attribute_names=attribute_names,
        landmarks=points,
        extras=extras,
    )


def pair_indices(
    pairs: Sequence[Pair], faces: FaceArrays, identities: Sequence[str]
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Sample indices of ``pairs`` in ``faces``; pairs with an absent image are dropped.

    Args:
        pairs: from :func:`read_pairs`.
        faces: faces with ``extras["identity"]`` (into ``identities``) and
            ``extras["image_number"]``, e.g. a loader's output or a subset of it.
        identities: the loader's sorted identity names.

    Returns:
        long (P, 2) sample indices, bool (P,) same person, and long (P,) position of
        each kept pair in ``pairs``.
    """
    rows: dict[tuple[str, int], int] = {}
    ids, numbers = faces.extras["identity"].tolist(), faces.extras["image_number"].tolist()
    for row, (i, n) in enumerate(zip(ids, numbers, strict=True)):
        rows.setdefault((identities[i], n), row)  # a subset may repeat a face
    index, same, kept = [], [], []
    for k, pair in enumerate(pairs):
        a, b = rows.get(pair.first), rows.get(pair.second)
        if a is not None and b is not None:
            index.append((a, b))
            same.append(pair.same)
            kept.append(k)
    return (
        torch.tensor(index, dtype=torch.long).reshape(-1, 2),
        torch.tensor(same, dtype=torch.bool),
        torch.tensor(kept, dtype=torch.long),
    )
