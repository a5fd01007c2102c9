"""The generic image folder on a miniature replica: attributes (-1/1, 0/1, empty), text
groups, the split column, CelebAMask-HQ-style masks through the crop, landmarks through
the crop and resize, one-line errors for bad content, and the cache."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

import benchmark.data.folder as folder_mod
from benchmark.catalogue import DATASETS
from benchmark.data.folder import ImageFolder
from benchmark.data.regions import REGION_ID
from benchmark.errors import BenchError
from tests.test_data_cache import same


def same_with_nan(a, b) -> None:
    """``same``, with unknown (NaN) landmarks equal to each other."""
    same(replace(a, landmarks=None), replace(b, landmarks=None))
    assert torch.equal(a.landmarks.nan_to_num(-1e9), b.landmarks.nan_to_num(-1e9))


# (path, width, height, Male (-1/1), Smiling (0/1), skin_tone, split)
ROWS = [
    ("a/img1.jpg", 80, 60, "1", "0", "light", "train"),
    ("a/img2.jpg", 64, 64, "-1", "1", "dark", "train"),
    ("b/c/img3.jpg", 50, 50, "", "1", "medium", "val"),
    ("img4.jpg", 40, 40, "1", "", "", "test"),
    ("img5.jpg", 48, 48, "-1", "0", "light", "valid"),
]
LANDMARKS = (
    "path,x1,y1,x2,y2,x3,y3,x4,y4,x5,y5\n"
    "a/img1.jpg,30,20,50,20,40,30,32,45,48,45\n"
    "zzz.jpg,1,2,3,4,5,6,7,8,9,10\n"  # not in labels.csv: ignored
    "img4.jpg,20,16,,,20,24,14,30,26,30\n"  # right eye unknown
)


def region_png(path: Path, rows: slice, cols: slice, shape=(60, 80)) -> None:
    mask = np.zeros(shape, np.uint8)
    mask[rows, cols] = 255
    path.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(path), mask)


def build_replica(root: Path, split: bool = True) -> None:
    """Images (nested folders), ``labels.csv``, ``landmarks.csv`` and masks for img1."""
    for k, (path, w, h, *_) in enumerate(ROWS):
        (root / path).parent.mkdir(parents=True, exist_ok=True)
        cv2.imwrite(str(root / path), np.full((h, w, 3), 40 + 30 * k, np.uint8))
    cols = ["path", "Male", "Smiling", "skin_tone"] + (["split"] if split else [])
    lines = [",".join(cols)] + [",".join(r[:1] + r[3:] if split else r[:1] + r[3:6]) for r in ROWS]
    (root / "labels.csv").write_text("\n".join(lines) + "\n")
    (root / "landmarks.csv").write_text(LANDMARKS)
    m = root / "masks" / "a"
    all_rows = slice(None)
    region_png(m / "img1_skin.png", all_rows, all_rows)
    region_png(m / "img1_nose.png", slice(0, 30), slice(14, 50))  # under the hair at 14–19
    region_png(m / "img1_hair.png", all_rows, slice(0, 20))
    region_png(m / "img1_l_lip.png", slice(40, 50), slice(30, 50))


def test_attributes_groups_and_splits(tmp_path):
    build_replica(tmp_path)
    data = DATASETS.get("image_folder")(root=tmp_path, size=30)
    assert ImageFolder.attribute_names is None and data.provides == frozenset()
    train = data.load("train", seed=0)
    assert data.attribute_names == ("Male", "Smiling") and data.group_names == ("skin_tone",)
    assert data.group_values == {"skin_tone": ("dark", "light", "medium")}
    assert train.images.shape == (2, 3, 30, 30)
    assert train.attributes.tolist() == [[1, 0], [0, 1]]
    assert train.groups["skin_tone"].tolist() == [1, 0]
    valid, val, test = (data.load(s, seed=0) for s in ("valid", "val", "test"))
    assert torch.equal(valid.images, val.images) and len(valid) == 2
    assert valid.attributes.tolist() == [[-1, 1], [0, 0]]  # empty Male: unknown
    assert valid.groups["skin_tone"].tolist() == [2, 1]
    assert test.attributes.tolist() == [[1, -1]] and test.groups["skin_tone"].tolist() == [-1]
    assert abs(float(test.images.float().mean()) - (40 + 30 * 3)) < 3  # img4
    assert train.label_maps is None and train.landmarks is None
    with pytest.raises(BenchError, match="split must be one of"):
        data.load("holdout", seed=0)


def test_without_a_split_column_every_split_is_every_row(tmp_path):
    build_replica(tmp_path, split=False)
    data = ImageFolder(root=tmp_path, size=16, limit=4)
    a, b = data.load("train", seed=0), data.load("holdout", seed=0)
    assert len(a) == 4 and torch.equal(a.images, b.images)
    assert a.attributes.tolist() == [[1, 0], [0, 1], [-1, 1], [1, -1]]


def test_masks_merge_through_the_crop_later_label_wins_skin_never_overrides(tmp_path):
    build_replica(tmp_path)
    data = ImageFolder(root=tmp_path, size=30, masks="masks")
    assert data.provides == {"label_maps"}
    faces = data.load("train", seed=0)
    # img1 is 80×60: the centre 60×60 (columns 10–69) kept, then halved.
    want = np.full((30, 30), REGION_ID["skin"], np.uint8)
    want[0:15, 2:20] = REGION_ID["nose"]  # nose columns 14–49 → 4–39 → 2–19
    want[:, 0:5] = REGION_ID["hair"]  # hair (13) wins over nose (2) at columns 14–19
    want[20:25, 10:20] = REGION_ID["l_lip"]
    assert faces.label_maps.dtype == torch.uint8
    assert np.array_equal(faces.label_maps[0].numpy(), want)
    assert faces.label_maps[1].sum() == 0  # img2 has no PNG: background


def test_landmarks_from_csv_follow_the_crop_and_resize(tmp_path):
    build_replica(tmp_path)
    data = ImageFolder(root=tmp_path, size=30, landmarks="landmarks.csv")
    assert data.provides == {"landmarks"}
    train, test = data.load("train", seed=0), data.load("test", seed=0)
    # img1: 80×60 → 10 px off the left, ×0.5; pixel centres at integers.
    want = [[9.75, 9.75], [19.75, 9.75], [14.75, 14.75], [10.75, 22.25], [18.75, 22.25]]
    assert train.landmarks[0].flatten().tolist() == pytest.approx(np.ravel(want))
    assert torch.isnan(train.landmarks[1]).all()  # img2 is not in landmarks.csv
    # img4: 40×40, no crop, ×0.75.
    s = 30 / 40
    lm = test.landmarks[0]
    assert lm[0].tolist() == pytest.approx([20.5 * s - 0.5, 16.5 * s - 0.5])
    assert torch.isnan(lm[1]).all() and lm[4].tolist() == pytest.approx([19.375, 22.375])
    detected = ImageFolder(root=tmp_path, size=30, landmarks="detect").load("test", seed=0)
    assert detected.landmarks.shape == (1, 5, 2)
    assert detected.extras["landmark_quality"].dtype == torch.int8


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda t: t.replace("path,", "file,", 1), r"labels\.csv line 1: expected a header"),
        (lambda t: t.replace("img2.jpg,-1", "img2.jpg,2"), r"line 3: column 'Male': expected -1"),
        (lambda t: t.replace("img1.jpg,1,0", "img1.jpg,1,-1"), r"line 6: .*'Smiling'.* -1/1"),
        (lambda t: t.replace("img2.jpg,-1", "img2.jpg,yes"), r"line 3: .*expected a number"),
        (lambda t: t.replace(",val\n", ",holdout\n"), r"line 4: column 'split': expected one"),
        (lambda t: t.replace("img4.jpg,1,", "img4.jpg,"), r"line 5: expected 5 values"),
        (lambda t: t.replace("img3", "img9"), r"line 4: expected the image .*img9\.jpg, which"),
    ],
)
def test_bad_content_is_one_line_naming_file_and_line(tmp_path, edit, message):
    build_replica(tmp_path)
    labels = tmp_path / "labels.csv"
    labels.write_text(edit(labels.read_text()))
    with pytest.raises(BenchError, match=message):
        ImageFolder(root=tmp_path, size=16).load("valid", seed=0)


def test_missing_root_and_bad_landmark_file(tmp_path):
    data = DATASETS.get("image_folder")(root=tmp_path / "absent", masks="masks")
    assert len(data.missing()) == 3  # root, labels.csv, masks
    with pytest.raises(BenchError, match=r"image folder: expected .*absent \(your own data"):
        data.load("test", seed=0)
    build_replica(tmp_path)
    (tmp_path / "landmarks.csv").write_text("path,x,y\na/img1.jpg,1,2\n")
    with pytest.raises(BenchError, match=r"landmarks\.csv line 1: expected the header path,x1"):
        ImageFolder(root=tmp_path, size=16, landmarks="landmarks.csv").load("train", 0)


def test_cache_round_trip_decodes_nothing_the_second_time(tmp_path, monkeypatch):
    build_replica(tmp_path)
    opts = {"root": tmp_path, "size": 30, "masks": "masks", "landmarks": "landmarks.csv"}
    direct = ImageFolder(**opts).load("train", seed=0)
    same_with_nan(direct, ImageFolder(**opts).load("train", 0, cache_dir=tmp_path / "cache"))

    def fail(*args, **kwargs):
        raise AssertionError("decoded an image although the cache holds it")

    monkeypatch.setattr("benchmark.data.files.read_image", fail)  # read_images decodes with it
    monkeypatch.setattr(folder_mod, "merge_region_pngs", fail)
    again = ImageFolder(**opts)
    second = again.load("train", seed=0, cache_dir=tmp_path / "cache")
    same_with_nan(direct, second)
    assert torch.equal(direct.groups["skin_tone"], second.groups["skin_tone"])
    assert again.group_values == {"skin_tone": ("dark", "light", "medium")}
    assert again.attribute_names == ("Male", "Smiling")
    with pytest.raises(AssertionError, match="decoded"):  # another split: its own entry
        again.load("test", seed=0, cache_dir=tmp_path / "cache")
