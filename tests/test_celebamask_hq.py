"""CelebAMask-HQ on a byte-faithful miniature replica, and the four real samples through
the CelebAMask-HQ mask convention (skipped where ../shared/data is absent)."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from benchmark.catalogue import DATASETS
from benchmark.data.celebamask_hq import CelebAMaskHQ, merge_masks
from benchmark.data.files import CELEBA_ATTRIBUTES, read_attribute_file, read_mapping
from benchmark.data.regions import REGION_ID, REGION_NAMES
from benchmark.errors import BenchError

SAMPLES = Path(__file__).parents[2] / "shared" / "data" / "celebamask_hq_samples"
NAMES = list(CELEBA_ATTRIBUTES)


def write_region_pngs(folder: Path, index: int, labels: np.ndarray) -> None:
    """Split a label map into the dataset's per-region binary PNGs (255 = region)."""
    sub = folder / str(index // 2000)
    sub.mkdir(parents=True, exist_ok=True)
    for label in np.unique(labels):
        if label == 0:
            continue
        png = np.where(labels == label, 255, 0).astype(np.uint8)
        cv2.imwrite(str(sub / f"{index:05d}_{REGION_NAMES[label]}.png"), png)


def build_replica(root: Path, indices=(0, 1, 2001)) -> dict[int, np.ndarray]:
    """A CelebAMask-HQ folder: images, masks (2001 lands in folder 1), attribute and
    mapping files with the real headers and separators. Returns the label maps."""
    rng = np.random.default_rng(0)
    (root / "CelebA-HQ-img").mkdir(parents=True)
    labels = {}
    for i in indices:
        img = rng.integers(0, 256, (64, 64, 3), dtype=np.uint8)
        cv2.imwrite(str(root / "CelebA-HQ-img" / f"{i}.jpg"), img)
        lab = np.zeros((32, 32), dtype=np.uint8)
        lab[4:28, 6:26] = REGION_ID["skin"]
        lab[12:20, 14:18] = REGION_ID["nose"]
        lab[22:25, 10:22] = REGION_ID["u_lip"] if i != 1 else REGION_ID["mouth"]
        lab[0:6, :] = REGION_ID["hat"] if i == 2001 else REGION_ID["hair"]
        write_region_pngs(root / "CelebAMask-HQ-mask-anno", i, lab)
        labels[i] = lab
    rows = [
        f"{i}.jpg  " + " ".join(("1" if (i + k) % 3 == 0 else "-1") for k in range(40))
        for i in indices
    ]
    (root / "CelebAMask-HQ-attribute-anno.txt").write_text(
        f"{len(indices)}\n" + " ".join(NAMES) + "\n" + "\n".join(rows) + "\n"
    )
    mapping = ["idx orig_idx orig_file"] + [f"{i} {1000 + i} {1001 + i}.jpg" for i in indices]
    (root / "CelebA-HQ-to-CelebA-mapping.txt").write_text("\n".join(mapping) + "\n")
    return labels


def test_replica_loads_images_attributes_masks_and_the_celeba_index(tmp_path):
    labels = build_replica(tmp_path / "CelebAMask-HQ")
    data = DATASETS.get("celebamask_hq")(root=tmp_path / "CelebAMask-HQ", size=32)
    faces = data.load("test", seed=0)
    assert faces.images.shape == (3, 3, 32, 32) and faces.label_maps.shape == (3, 32, 32)
    assert faces.attribute_names == tuple(NAMES)
    # -1/1 → 0/1: value k of image i is 1 when (i + k) % 3 == 0.
    male = NAMES.index("Male")
    assert faces.attribute("Male").tolist() == [int((i + male) % 3 == 0) for i in (0, 1, 2001)]
    for row, i in enumerate((0, 1, 2001)):
        assert np.array_equal(faces.label_maps[row].numpy(), labels[i])
    assert faces.extras["celeba_index"].tolist() == [1000, 1001, 3001]
    assert faces.extras["index"].tolist() == [0, 1, 2001]


def test_overlaps_later_label_wins_but_skin_never_overrides(tmp_path):
    folder = tmp_path / "masks"
    (folder / "0").mkdir(parents=True)
    full = np.full((8, 8), 255, np.uint8)
    top = np.zeros((8, 8), np.uint8)
    top[:4] = 255
    cv2.imwrite(str(folder / "0" / "00007_nose.png"), top)  # nose on the top half
    cv2.imwrite(str(folder / "0" / "00007_skin.png"), full)  # skin everywhere
    left = np.zeros((8, 8), np.uint8)
    left[:, :2] = 255
    cv2.imwrite(str(folder / "0" / "00007_hair.png"), left)  # hair (13) over nose (2)
    got = merge_masks(folder, 7)
    want = np.full((8, 8), REGION_ID["skin"], np.uint8)
    want[:4] = REGION_ID["nose"]
    want[:, :2] = REGION_ID["hair"]
    assert np.array_equal(got, want)
    assert merge_masks(folder, 8).sum() == 0  # no file at all: background


def test_missing_files_name_the_path_and_the_source(tmp_path):
    data = CelebAMaskHQ(root=tmp_path / "nowhere", size=32)
    assert len(data.missing()) == 3
    with pytest.raises(BenchError, match=r"expected .*CelebA-HQ-img .*switchablenorms"):
        data.load("test", seed=0)
    root = tmp_path / "CelebAMask-HQ"
    build_replica(root)
    (root / "CelebA-HQ-img" / "1.jpg").unlink()
    with pytest.raises(BenchError, match=r"1\.jpg"):
        CelebAMaskHQ(root=root, size=32).load("test", seed=0)


def test_attribute_file_parsing_and_count_check(tmp_path):
    path = tmp_path / "attr.txt"
    path.write_text("2\nA B\n0.jpg  1 -1\n1.jpg -1  1\n")
    names, files, values = read_attribute_file(path)
    assert names == ("A", "B") and files == ["0.jpg", "1.jpg"]
    assert values.tolist() == [[1, 0], [0, 1]] and values.dtype == np.int8
    path.write_text("3\nA B\n0.jpg  1 -1\n")
    with pytest.raises(BenchError, match="announces 3"):
        read_attribute_file(path)
    mapping = tmp_path / "map.txt"
    mapping.write_text("idx orig_idx orig_file\n0 119613 119614.jpg\n1 99094 99095.jpg\n")
    assert read_mapping(mapping) == {0: 119613, 1: 99094}


@pytest.mark.skipif(not SAMPLES.is_dir(), reason="../shared/data/celebamask_hq_samples absent")
def test_real_samples_round_trip_through_the_mask_convention(tmp_path):
    """The four real label maps, written as the dataset's per-region PNGs, merge back."""
    folder = tmp_path / "CelebAMask-HQ-mask-anno"
    for i in range(4):
        labels = cv2.imread(str(SAMPLES / f"{i}.png"), cv2.IMREAD_GRAYSCALE)
        assert labels.shape == (512, 512) and labels.max() <= 18
        write_region_pngs(folder, i, labels)
        merged = merge_masks(folder, i)
        assert np.array_equal(merged, labels)
        small = merge_masks(folder, i, size=128)
        assert small.shape == (128, 128)
        assert set(np.unique(small)) <= set(np.unique(labels))
        # Real faces: skin is the largest face region; hair and background are present.
        counts = np.bincount(labels.ravel(), minlength=19)
        assert counts[REGION_ID["skin"]] > counts[REGION_ID["nose"]] > 0


def test_a_suite_on_absent_data_exits_2_before_writing_anything(tmp_path):
    from typer.testing import CliRunner

    from benchmark.cli import app

    suite = tmp_path / "s.yaml"
    suite.write_text(
        "name: hq\nseed: 0\n"
        "dataset:\n  train: {name: synthetic_faces, params: {n: 100, size: 32}}\n"
        f"  test: {{name: celebamask_hq, params: {{root: {tmp_path / 'absent'}, size: 32}}}}\n"
        "model: {arch: small_cnn}\n"
        "scenarios: [{name: s, target: Male, attributes: [Wearing_Lipstick], rho: 0.9}]\n"
        "explainers: [gradcam]\nmetrics: [ranking_position]\n"
        f"db: {tmp_path / 'out' / 'r.duckdb'}\n"
    )
    result = CliRunner().invoke(app, ["run", str(suite)])
    assert result.exit_code == 2
    assert "dataset.test: CelebAMask-HQ: expected" in result.output
    assert "CelebA-HQ-img" in result.output and "switchablenorms" in result.output
    assert not (tmp_path / "out").exists()
