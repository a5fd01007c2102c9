"""A generic image folder for users' own data (DATASETS.md, "Generic folder").

``root/`` holds the images and a CSV (``labels.csv``) with the header
``path,<columns…>``, ``path`` relative to ``root``. Numeric columns are binary
attributes, -1/1 or 0/1 (stored 0/1; empty = unknown, -1); text columns are groups
(categories sorted into ``group_values``; empty = -1); an optional ``split`` column
(train, valid or val, test) assigns rows to splits. Optional: region masks in
CelebAMask-HQ's convention (Lee et al., "MaskGAN", CVPR 2020; for ``a/img1.jpg`` the
binary PNGs ``masks/a/img1_<region>.png``, merged as METHODS.md §1 says) and five
landmarks, from a CSV ``path,x1,y1,…,x5,y5`` in the original image's pixels (CelebA's
order: left eye, right eye, nose tip, left and right mouth corner) or detected.
Images are centre-cropped to a square and resized; masks and landmarks follow.
"""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from benchmark.data.base import FaceArrays
from benchmark.data.cache import cache_key, cached
from benchmark.data.files import fill_parallel, read_images
from benchmark.data.masks import merge_region_pngs
from benchmark.data.pairs import detector_file
from benchmark.data.regions import REGION_NAMES
from benchmark.errors import BenchError

SPLITS = {"train": "train", "valid": "valid", "val": "valid", "test": "test"}
LANDMARK_COLUMNS = ("path", *(f"{a}{i}" for i in range(1, 6) for a in "xy"))
TRANSFORM = "centre-square-area-nearest-v1+rows"  # part of the cache key: change it with it
_NUMBERS = {"-1": -1, "0": 0, "1": 1}


def _read_csv(path: Path) -> tuple[list[str], list[tuple[int, list[str]]]]:
    """(header, [(line number, values)]) with blank lines skipped; BOMs tolerated."""
    if not path.is_file():
        raise BenchError(f"image folder: expected {path}, which is missing")
    with path.open(newline="", encoding="utf-8-sig") as f:
        reader = csv.reader(f)
        header = [h.strip() for h in next(reader, [])]
        rows = [(reader.line_num, [v.strip() for v in r]) for r in reader if any(r)]
    for line, values in rows:
        if len(values) != len(header):
            raise BenchError(f"{path} line {line}: expected {len(header)} values "
                             f"({','.join(header)}), got {len(values)}")  # fmt: skip
    return header, rows


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def _column(path: Path, name: str, lines: list[int], values: list[str]):
    """One CSV column as ("attribute", int8 values) or ("group", int64 codes, categories)."""
    filled = [(line, v) for line, v in zip(lines, values, strict=True) if v]
    numeric = [_is_number(v) for _, v in filled]
    if filled and any(numeric) != all(numeric):
        first = filled[0]
        line, value = next(x for x, n in zip(filled, numeric, strict=True) if n != numeric[0])
        kind = "a number" if numeric[0] else "text"
        raise BenchError(f"{path} line {line}: column {name!r}: expected {kind} like line "
                         f"{first[0]} ({first[1]!r}), got {value!r}")  # fmt: skip
    if filled and not numeric[0]:
        categories = tuple(sorted({v for _, v in filled}))
        code = {c: i for i, c in enumerate(categories)}
        codes = np.asarray([code[v] if v else -1 for v in values], np.int64)
        return ("group", codes, categories)
    out = np.full(len(values), -1, np.int8)
    seen: dict[int, int] = {}
    for row, (line, v) in enumerate(zip(lines, values, strict=True)):
        if not v:
            continue
        number = _NUMBERS.get(v.removesuffix(".0"))
        if number is None:
            raise BenchError(f"{path} line {line}: column {name!r}: expected -1, 0 or 1 "
                             f"(empty: unknown; write categories as text), got {v!r}")  # fmt: skip
        seen.setdefault(number, line)
        if -1 in seen and 0 in seen:
            raise BenchError(f"{path} line {line}: column {name!r}: expected -1/1 or 0/1, "
                             f"got -1 (line {seen[-1]}) and 0 (line {seen[0]})")  # fmt: skip
        out[row] = int(number == 1)
    return ("attribute", out)


def _read_landmarks(path: Path) -> dict[str, np.ndarray]:
    """Image path → (5, 2) (x, y) in the original image's pixels (empty value: NaN)."""
    header, rows = _read_csv(path)
    if tuple(header) != LANDMARK_COLUMNS:
        raise BenchError(f"{path} line 1: expected the header {','.join(LANDMARK_COLUMNS)}, "
                         f"got {','.join(header)!r}")  # fmt: skip
    out: dict[str, np.ndarray] = {}
    for line, values in rows:
        bad = [v for v in values[1:] if v and not _is_number(v)]
        if bad:
            raise BenchError(f"{path} line {line}: expected pixel coordinates, got {bad[0]!r}")
        if values[0] in out:
            raise BenchError(f"{path} line {line}: {values[0]!r} is listed twice")
        points = [float(v) if v else np.nan for v in values[1:]]
        out[values[0]] = np.asarray(points, np.float32).reshape(5, 2)
    return out


def _original_size(path: Path) -> tuple[int, int]:
    """(width, height) as decoded: from the header, EXIF rotation applied as OpenCV does."""
    with Image.open(path) as im:
        w, h = im.size
        if im.getexif().get(0x0112, 1) in (5, 6, 7, 8):  # rotated by 90°: sides swap
            w, h = h, w
    return w, h


class ImageFolder:
    """Your own face images with a CSV of attributes; optional masks and landmarks.

    Attributes and groups are known once :meth:`load` has read the CSV
    (:attr:`attribute_names` is None before: suite validation then skips its check).

    Args:
        root: the folder holding the images and the CSV.
        size: image side in pixels (centre square crop, then resize).
        limit: keep only the first ``limit`` rows of a split.
        csv: the labels CSV, relative to ``root``.
        masks: folder of per-region PNGs relative to ``root`` (None: no label maps).
        landmarks: a landmarks CSV relative to ``root``, ``"detect"`` to detect them
            (``benchmark.data.landmarks``; quality in ``extras["landmark_quality"]``),
            or None.
        pairs: a verification pairs CSV relative to ``root``, header
            ``first,second,same`` (image paths as in ``csv``; same is 1 or 0), for
            ``task: verification``; None: no pairs.
    """

    attribute_names: tuple[str, ...] | None = None  # known once loaded
    group_names: tuple[str, ...] | None = None
    group_values: dict[str, tuple[str, ...]] | None = None

    def __init__(
        self,
        root: str | Path,
        size: int = 224,
        limit: int | None = None,
        csv: str = "labels.csv",
        masks: str | None = None,
        landmarks: str | None = None,
        pairs: str | None = None,
    ):
        if size < 8 or (limit is not None and limit < 1):
            raise ValueError(f"need size >= 8 and limit >= 1, got size={size}, limit={limit}")
        self.root, self.size, self.limit = Path(root).expanduser(), int(size), limit
        self.csv = self.root / csv
        self.masks = self.root / masks if masks else None
        self.detect = landmarks == "detect"
        self.landmarks = self.root / landmarks if landmarks and not self.detect else None
        self.pairs_csv = self.root / pairs if pairs else None
        self._paths: list[str] | None = None  # the CSV paths of the last load's rows
        provides = {"label_maps"} if masks else set()
        self.provides = frozenset(provides | ({"landmarks"} if landmarks else set()))

    def missing(self) -> list[str]:
        """One line per expected file or folder that is absent (empty when ready)."""
        paths = [self.root, self.csv, self.masks, self.landmarks, self.pairs_csv]
        return [
            f"image folder: expected {p} (your own data: see DATASETS.md, 'Generic folder')"
            for p in paths
            if p is not None and not p.exists()
        ]

    def load(self, split: str, seed: int, cache_dir: Path | None = None) -> FaceArrays:
        """The rows of ``split`` (every row when the CSV has no ``split`` column).

        ``seed`` changes nothing. With ``cache_dir`` the decoded images, merged masks and
        landmarks are cached.
        """
        if problems := self.missing():
            raise BenchError(problems[0])
        spec = {"root": str(self.root.resolve()), "csv": str(self.csv), "size": self.size,
                "limit": self.limit, "masks": str(self.masks), "split": split,
                "landmarks": "detect" if self.detect else str(self.landmarks),
                "transform": TRANSFORM}  # fmt: skip
        files = [self.csv] + [p for p in (self.landmarks, self.pairs_csv) if p is not None]
        files += [detector_file()] if self.detect else []
        key = "folder-" + cache_key("image_folder", spec, files)
        faces, info = cached(cache_dir, key, lambda: self._read(split))
        self.attribute_names = faces.attribute_names
        self.group_names = tuple(info["group_names"])
        self.group_values = {k: tuple(v) for k, v in info["group_values"].items()}
        self._paths = list(info["paths"])
        return faces

    def pairs(self, faces: FaceArrays) -> tuple[torch.Tensor, torch.Tensor]:
        """The pairs CSV's pairs among ``faces`` (this loader's output or a subset):
        long (P, 2) sample indices and bool (P,) same person; pairs with an image
        absent from ``faces`` are dropped."""
        if self.pairs_csv is None:
            raise BenchError("image folder: task verification needs params.pairs, a CSV "
                             "'first,second,same' of image paths")  # fmt: skip
        if self._paths is None:
            raise RuntimeError("ImageFolder.pairs needs the paths of a load(); call load() first")
        header, rows = _read_csv(self.pairs_csv)
        if header[:3] != ["first", "second", "same"]:
            raise BenchError(f"{self.pairs_csv} line 1: expected a header 'first,second,same', "
                             f"got {','.join(header)!r}")  # fmt: skip
        where = {}
        for i, row in enumerate(faces.extras["row"].tolist()):
            where.setdefault(self._paths[row], i)
        index, same = [], []
        for line, (first, second, flag, *_) in rows:
            if flag not in ("0", "1"):
                raise BenchError(f"{self.pairs_csv} line {line}: column 'same': expected 0 "
                                 f"or 1, got {flag!r}")  # fmt: skip
            if first in where and second in where:
                index.append((where[first], where[second]))
                same.append(flag == "1")
        return (torch.tensor(index, dtype=torch.long).reshape(-1, 2),
                torch.tensor(same, dtype=torch.bool))  # fmt: skip

    def _read(self, split: str) -> tuple[FaceArrays, dict]:
        header, rows = _read_csv(self.csv)
        if not header or header[0] != "path" or len(set(header)) != len(header):
            raise BenchError(f"{self.csv} line 1: expected a header 'path,<columns…>' with "
                             f"distinct names, got {','.join(header)!r}")  # fmt: skip
        lines = [line for line, _ in rows]
        names, columns, groups, values = [], [], {}, {}
        for j, name in enumerate(header[1:], start=1):
            if name == "split":
                continue
            column = _column(self.csv, name, lines, [r[j] for _, r in rows])
            if column[0] == "attribute":
                names.append(name)
                columns.append(column[1])
            else:
                groups[name], values[name] = column[1], column[2]
        keep = list(range(len(rows)))
        if "split" in header:
            if split not in SPLITS:
                raise BenchError(f"image folder: split must be one of {sorted(SPLITS)}, "
                                 f"got {split!r}")  # fmt: skip
            j = header.index("split")
            for line, r in rows:
                if r[j] not in SPLITS:
                    raise BenchError(f"{self.csv} line {line}: column 'split': expected one "
                                     f"of {', '.join(SPLITS)}, got {r[j]!r}")  # fmt: skip
            keep = [i for i in keep if SPLITS[rows[i][1][j]] == SPLITS[split]]
        keep = keep[: self.limit] if self.limit is not None else keep
        paths = [rows[i][1][0] for i in keep]
        for i in keep:
            line, rel = rows[i]
            path = self.root / rel[0]
            if not rel[0] or not path.is_file():
                raise BenchError(f"{self.csv} line {line}: expected the image {path}, "
                                 "which is missing")  # fmt: skip
        images = read_images([self.root / p for p in paths], self.size, crop_square=True)
        attributes = np.stack(columns, axis=1) if columns else np.zeros((len(rows), 0), np.int8)
        faces = FaceArrays(
            images=torch.from_numpy(images),
            attributes=torch.from_numpy(np.ascontiguousarray(attributes[keep])),
            attribute_names=tuple(names),
            groups={k: torch.from_numpy(v[keep]) for k, v in groups.items()},
            extras={"row": torch.arange(len(keep), dtype=torch.long)},
        )
        if self.masks is not None:
            faces.label_maps = torch.from_numpy(self._masks(paths))
        if self.landmarks is not None:
            faces.landmarks = torch.from_numpy(self._landmarks(paths))
        elif self.detect:
            from benchmark.data.landmarks import detect_landmarks  # cv2 cascades: on use

            points, quality = detect_landmarks(images)
            faces.landmarks = torch.from_numpy(np.asarray(points, np.float32))
            faces.extras["landmark_quality"] = torch.from_numpy(np.asarray(quality, np.int8))
        info = {
            "group_names": list(groups),
            "group_values": {k: list(v) for k, v in values.items()},
            "paths": paths,
        }
        return faces, info

    def _masks(self, paths: list[str]) -> np.ndarray:
        """Merged label maps of ``paths``: ``masks/a/img1_<region>.png`` for ``a/img1.jpg``."""
        assert self.masks is not None
        masks = self.masks
        out = np.zeros((len(paths), self.size, self.size), np.uint8)

        def merge(rel: str) -> np.ndarray:
            stem = masks / Path(rel).with_suffix("")
            by_label = {
                label: stem.with_name(f"{stem.name}_{region}.png")
                for label, region in enumerate(REGION_NAMES[1:], start=1)
            }
            return merge_region_pngs(by_label, self.size, crop_square=True)

        fill_parallel(out, paths, merge)
        return out

    def _landmarks(self, paths: list[str]) -> np.ndarray:
        """Listed landmarks through the crop and resize; unlisted images get NaN."""
        assert self.landmarks is not None
        table = _read_landmarks(self.landmarks)
        out = np.full((len(paths), 5, 2), np.nan, np.float32)
        for row, rel in enumerate(paths):
            if rel not in table:
                continue
            w, h = _original_size(self.root / rel)
            side = min(w, h)
            # As read_image crops; pixel centres at integers, scaled about pixel corners.
            shift = np.array([(w - side) // 2, (h - side) // 2], np.float32)
            out[row] = (table[rel] - shift + 0.5) * (self.size / side) - 0.5
        return out
