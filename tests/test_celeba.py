"""CelebA on a byte-faithful miniature replica: official partition, attributes,
landmarks through the crop, de-duplication against CelebAMask-HQ, missing files."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from benchmark.catalogue import DATASETS
from benchmark.data.celeba import CelebA
from benchmark.errors import BenchError
from tests.test_celebamask_hq import NAMES

FILES = [f"{i:06d}.jpg" for i in range(1, 7)]
PARTS = [0, 0, 0, 1, 2, 2]  # 000001–000003 train, 000004 valid, 000005–000006 test


def write_celeba(
    root: Path, files: list[str], parts: list[int], values: np.ndarray, images: list[np.ndarray]
) -> None:
    """A ``celeba/`` folder in torchvision's layout: the JPEGs (BGR 218×178) and the
    attribute (-1/1 ``values``, one row per file), partition and landmark files."""
    (root / "img_align_celeba").mkdir(parents=True)
    for f, img in zip(files, images, strict=True):
        cv2.imwrite(str(root / "img_align_celeba" / f), img)
    rows = [f + "".join(f" {v:>2}" for v in row) for f, row in zip(files, values, strict=True)]
    (root / "list_attr_celeba.txt").write_text(
        f"{len(files)}\n{' '.join(NAMES)} \n" + "\n".join(rows) + "\n"
    )
    (root / "list_eval_partition.txt").write_text(
        "".join(f"{f} {p}\n" for f, p in zip(files, parts, strict=True))
    )
    lm_header = ("lefteye_x lefteye_y righteye_x righteye_y nose_x nose_y "
                 "leftmouth_x leftmouth_y rightmouth_x rightmouth_y")  # fmt: skip
    lines = [f"{f}    69  109   106  113    77  142    73  152   108  154" for f in files]
    (root / "list_landmarks_align_celeba.txt").write_text(
        f"{len(files)}\n{lm_header}\n" + "\n".join(lines) + "\n"
    )


def build_replica(root: Path) -> None:
    images = []
    for k in range(len(FILES)):
        img = np.full((218, 178, 3), 40 + 10 * k, np.uint8)
        img[20:40, 0:20] = 255  # top-left corner of the aligned square: white
        images.append(img)
    # Value j of image k is 1 when k + j is odd.
    values = np.array([[1 if (k + j) % 2 else -1 for j in range(40)] for k in range(len(FILES))])
    write_celeba(root, FILES, PARTS, values, images)


def build_hq_mapping(root: Path) -> None:
    root.mkdir(parents=True)
    (root / "CelebA-HQ-to-CelebA-mapping.txt").write_text(
        "idx orig_idx orig_file\n0 1 000002.jpg\n1 4 000005.jpg\n"
    )


def test_official_partition_attributes_and_landmarks(tmp_path):
    build_replica(tmp_path / "celeba")
    data = DATASETS.get("celeba")(root=tmp_path / "celeba", size=89)
    train, valid, test = (data.load(s, seed=0) for s in ("train", "valid", "test"))
    assert (len(train), len(valid), len(test)) == (3, 1, 2)
    assert train.extras["index"].tolist() == [0, 1, 2] and test.extras["index"].tolist() == [4, 5]
    assert train.attribute_names == tuple(NAMES) and train.images.shape == (3, 3, 89, 89)
    # Value j of image k is 1 when k + j is odd; -1 becomes 0.
    male = NAMES.index("Male")
    assert test.attribute("Male").tolist() == [int((k + male) % 2) for k in (4, 5)]
    # Landmarks: 20 px cropped off the top, then ×0.5 (178 → 89), pixel centres kept.
    left_eye = train.landmarks[0, 0].tolist()
    assert left_eye == pytest.approx([(69 + 0.5) * 0.5 - 0.5, (109 - 20 + 0.5) * 0.5 - 0.5])
    # The image went through the same crop: the white corner is now at the top left.
    img = train.images[0].numpy()
    assert img[:, 2:8, 2:8].min() > 200 and img[:, 30:, 30:].max() < 100


def test_train_split_drops_celebamask_hq_faces_and_counts_them(tmp_path):
    build_replica(tmp_path / "celeba")
    build_hq_mapping(tmp_path / "CelebAMask-HQ")
    data = CelebA(root=tmp_path / "celeba", size=32, exclude_hq=tmp_path / "CelebAMask-HQ")
    train = data.load("train", seed=0)
    assert train.extras["index"].tolist() == [0, 2]  # 000002.jpg is CelebA-HQ image 0
    assert data.counts == {"listed": 3, "removed_hq": 1, "kept": 2}
    test = data.load("test", seed=0)  # only training subsets are de-duplicated
    assert test.extras["index"].tolist() == [4, 5] and data.counts["removed_hq"] == 0


def test_missing_files_and_bad_split(tmp_path):
    data = CelebA(root=tmp_path / "celeba", size=32)
    assert len(data.missing()) == 4
    with pytest.raises(BenchError, match=r"CelebA: expected .*img_align_celeba .*cuhk"):
        data.load("train", seed=0)
    build_replica(tmp_path / "celeba")
    with pytest.raises(BenchError, match="split must be one of"):
        data.load("holdout", seed=0)
    (tmp_path / "celeba" / "img_align_celeba" / "000002.jpg").unlink()
    with pytest.raises(BenchError, match=r"000002\.jpg"):
        data.load("train", seed=0)
    hq = CelebA(root=tmp_path / "celeba", size=32, exclude_hq=tmp_path / "nohq")
    assert any("CelebA-HQ-to-CelebA-mapping.txt" in m for m in hq.missing())


def test_suite_validation_knows_celeba_attributes_before_reading_files(tmp_path):
    from typer.testing import CliRunner

    from benchmark.cli import app

    suite = tmp_path / "s.yaml"
    suite.write_text(
        "name: c\nseed: 0\n"
        f"dataset:\n  train: {{name: celeba, params: {{root: {tmp_path}, size: 64}}}}\n"
        f"  test: {{name: celeba, params: {{root: {tmp_path}, size: 64}}}}\n"
        "model: {arch: small_cnn}\n"
        "scenarios: [{name: s, target: Male, attributes: [Wearing_Lipstik], rho: 0.9}]\n"
        "explainers: [gradcam]\nmetrics: [ranking_position]\n"
    )
    result = CliRunner().invoke(app, ["validate", str(suite)])
    assert result.exit_code == 2 and "Wearing_Lipstick" in result.output
