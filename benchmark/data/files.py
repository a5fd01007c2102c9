"""Readers of the CelebA family's files: the text tables and the JPEG images.

CelebA and CelebAMask-HQ share their attribute format (DATASETS.md): a count line, a
names line, then one file name and its -1/1 values per line, separated by runs of
spaces. Missing files raise :class:`FileNotFoundError` naming the path; loaders turn it
into their one-line message with the dataset's source.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TypeVar

import cv2
import numpy as np

from benchmark.errors import BenchError

T = TypeVar("T")

#: The 40 attributes of CelebA and CelebAMask-HQ, in their files' order.
CELEBA_ATTRIBUTES: tuple[str, ...] = tuple(
    [
        "5_o_Clock_Shadow",
        "Arched_Eyebrows",
        "Attractive",
        "Bags_Under_Eyes",
        "Bald",
        "Bangs",
        "Big_Lips",
        "Big_Nose",
        "Black_Hair",
        "Blond_Hair",
        "Blurry",
        "Brown_Hair",
        "Bushy_Eyebrows",
        "Chubby",
        "Double_Chin",
        "Eyeglasses",
        "Goatee",
        "Gray_Hair",
        "Heavy_Makeup",
        "High_Cheekbones",
        "Male",
        "Mouth_Slightly_Open",
        "Mustache",
        "Narrow_Eyes",
        "No_Beard",
        "Oval_Face",
        "Pale_Skin",
        "Pointy_Nose",
        "Receding_Hairline",
        "Rosy_Cheeks",
        "Sideburns",
        "Smiling",
        "Straight_Hair",
        "Wavy_Hair",
        "Wearing_Earrings",
        "Wearing_Hat",
        "Wearing_Lipstick",
        "Wearing_Necklace",
        "Wearing_Necktie",
        "Young",
    ]
)


def read_attribute_file(path: Path) -> tuple[tuple[str, ...], list[str], np.ndarray]:
    """(attribute names, file names, int8 (N, 40) values with 1 present, 0 absent).

    The CelebA format: a count line, a names line, then one file name and its -1/1
    values per line, separated by runs of spaces.
    """
    if not path.is_file():
        raise FileNotFoundError(path)
    lines = path.read_text().splitlines()
    count, names = int(lines[0].split()[0]), tuple(lines[1].split())
    files, rows = [], []
    for line in lines[2 : 2 + count]:
        parts = line.split()
        if len(parts) != len(names) + 1:
            raise BenchError(f"{path}: expected a file name and {len(names)} values: {line!r}")
        files.append(parts[0])
        rows.append([int(v) for v in parts[1:]])
    if len(files) != count:
        raise BenchError(f"{path}: line 1 announces {count} images, found {len(files)}")
    values = np.asarray(rows, dtype=np.int8).reshape(-1, len(names))
    return names, files, (values > 0).astype(np.int8)


def read_mapping(path: Path) -> dict[int, int]:
    """CelebA-HQ index → CelebA index (``orig_idx``, 0-based: file ``orig_idx + 1``)."""
    if not path.is_file():
        raise FileNotFoundError(path)
    out = {}
    for line in path.read_text().splitlines()[1:]:
        parts = line.split()
        if len(parts) >= 2:
            out[int(parts[0])] = int(parts[1])
    return out


def read_image(path: Path, size: int, crop_square: bool = False) -> np.ndarray:
    """RGB uint8 (3, size, size); area interpolation when shrinking.

    With ``crop_square`` the centre square of a non-square image is kept first, so the
    aspect ratio is not distorted (CelebA's aligned 178×218 images).
    """
    img = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if img is None:
        raise FileNotFoundError(path) if not path.exists() else BenchError(f"{path}: not an image")
    if crop_square and img.shape[0] != img.shape[1]:
        side = min(img.shape[:2])
        top, left = (img.shape[0] - side) // 2, (img.shape[1] - side) // 2
        img = img[top : top + side, left : left + side]
    if img.shape[:2] != (size, size):
        shrink = img.shape[0] > size
        mode = cv2.INTER_AREA if shrink else cv2.INTER_LINEAR
        img = cv2.resize(img, (size, size), interpolation=mode)
    return np.ascontiguousarray(img[:, :, ::-1].transpose(2, 0, 1))


def decode_workers() -> int:
    """Threads for decoding: every core, up to 16 (``BENCH_DECODE_WORKERS`` overrides)."""
    return int(os.environ.get("BENCH_DECODE_WORKERS") or min(16, os.cpu_count() or 1))


def fill_parallel(out: np.ndarray, items: Sequence[T], read: Callable[[T], np.ndarray]) -> None:
    """``out[i] = read(items[i])`` for every item, in decode threads.

    Threads, because OpenCV releases the GIL while it decodes and resizes; the output is
    preallocated so a whole split never exists twice in memory. The first failing item
    (in order) raises, as a plain loop would.
    """

    def one(i: int) -> None:
        out[i] = read(items[i])

    workers = min(decode_workers(), max(1, len(items)))
    if workers == 1:
        for i in range(len(items)):
            one(i)
        return
    with ThreadPoolExecutor(workers, thread_name_prefix="bench-decode") as pool:
        for _ in pool.map(one, range(len(items))):
            pass


def read_images(paths: Sequence[Path], size: int, crop_square: bool = False) -> np.ndarray:
    """uint8 (N, 3, size, size) RGB: :func:`read_image` of every path, in parallel."""
    out = np.empty((len(paths), 3, size, size), np.uint8)
    fill_parallel(out, paths, lambda p: read_image(p, size, crop_square))
    return out
