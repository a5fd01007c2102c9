"""The preprocessing cache: a round trip equals the decoded load, later loads decode
nothing, and another size or edited index files get their own entry."""

from __future__ import annotations

import os

import cv2
import numpy as np
import pytest
import torch

from benchmark.data.celeba import CelebA
from benchmark.data.celebamask_hq import CelebAMaskHQ
from tests.test_celeba import build_hq_mapping
from tests.test_celeba import build_replica as build_celeba
from tests.test_celebamask_hq import build_replica as build_hq


def same(a, b) -> None:
    for field in ("images", "attributes", "label_maps", "landmarks", "boxes"):
        x, y = getattr(a, field), getattr(b, field)
        assert (x is None and y is None) or torch.equal(x, y), field
    assert a.attribute_names == b.attribute_names and a.regions == b.regions
    assert a.extras.keys() == b.extras.keys()
    assert all(torch.equal(a.extras[k], b.extras[k]) for k in a.extras)


def no_decoding(monkeypatch) -> None:
    def fail(*args, **kwargs):
        raise AssertionError("decoded an image although the cache holds it")

    monkeypatch.setattr("benchmark.data.files.read_image", fail)  # read_images decodes with it


def test_celeba_round_trip_and_no_second_decode(tmp_path, monkeypatch):
    build_celeba(tmp_path / "celeba")
    build_hq_mapping(tmp_path / "hq")
    data = CelebA(root=tmp_path / "celeba", size=32, exclude_hq=tmp_path / "hq")
    direct = data.load("train", seed=0)
    first = data.load("train", seed=0, cache_dir=tmp_path / "cache")
    same(direct, first)
    no_decoding(monkeypatch)
    again = CelebA(root=tmp_path / "celeba", size=32, exclude_hq=tmp_path / "hq")
    second = again.load("train", seed=0, cache_dir=tmp_path / "cache")
    same(direct, second)
    assert again.counts == {"listed": 3, "removed_hq": 1, "kept": 2}  # stored with it
    assert (
        isinstance(second.images.numpy().base, memoryview) or second.images.numpy().base is not None
    )
    with pytest.raises(AssertionError, match="decoded"):  # another size: a new entry
        CelebA(root=tmp_path / "celeba", size=48).load("train", 0, tmp_path / "cache")


def test_celebamask_hq_round_trip_and_edited_files_invalidate(tmp_path, monkeypatch):
    root = tmp_path / "CelebAMask-HQ"
    build_hq(root)
    data = CelebAMaskHQ(root=root, size=32)
    direct = data.load("test", seed=0)
    same(direct, data.load("test", seed=0, cache_dir=tmp_path / "cache"))
    entries = sorted(p.name for p in (tmp_path / "cache").iterdir())
    assert len(entries) == 1 and entries[0].startswith("celebamask_hq-")
    no_decoding(monkeypatch)
    same(direct, data.load("test", seed=0, cache_dir=tmp_path / "cache"))
    attr = root / "CelebAMask-HQ-attribute-anno.txt"
    os.utime(attr, ns=(attr.stat().st_atime_ns, attr.stat().st_mtime_ns + 10**9))
    with pytest.raises(AssertionError, match="decoded"):
        data.load("test", seed=0, cache_dir=tmp_path / "cache")


def test_parallel_decoding_equals_one_by_one_and_fails_on_the_first_bad_file(tmp_path, monkeypatch):
    from benchmark.data.files import read_image, read_images

    rng = np.random.default_rng(1)
    paths = []
    for i in range(9):
        path = tmp_path / f"{i}.png"  # lossless: decoding is exact
        cv2.imwrite(str(path), rng.integers(0, 256, (20 + i, 30, 3), dtype=np.uint8))
        paths.append(path)
    monkeypatch.setenv("BENCH_DECODE_WORKERS", "4")
    together = read_images(paths, 16, crop_square=True)
    assert together.shape == (9, 3, 16, 16)
    for i, path in enumerate(paths):
        assert np.array_equal(together[i], read_image(path, 16, crop_square=True))
    broken = [*paths[:3], tmp_path / "absent-1.png", *paths[3:], tmp_path / "absent-2.png"]
    with pytest.raises(FileNotFoundError, match="absent-1"):
        read_images(broken, 16)
