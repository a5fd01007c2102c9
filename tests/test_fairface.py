"""FairFace on a byte-faithful miniature replica: label parsing into attributes and
groups, splits (val serves as test), missing files and bad values, the cache, and
landmarks detected on a real face."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

import benchmark.data.fairface as fairface_mod
from benchmark.catalogue import DATASETS
from benchmark.data.fairface import FairFace
from benchmark.data.landmarks import TEMPLATE_EYES
from benchmark.errors import BenchError
from tests.test_data_cache import same

HEADER = "file,age,gender,race,service_test"
# The release's spellings (spaces in three races, underscore in Latino_Hispanic).
RACES = ["White", "Black", "Latino_Hispanic", "East Asian", "Southeast Asian", "Indian",
         "Middle Eastern"]  # fmt: skip
AGES = ["0-2", "3-9", "10-19", "20-29", "30-39", "40-49", "50-59", "60-69", "more than 70"]
VAL_OFFSET = 5  # val rows continue the pattern, so they differ from train's first rows
SAMPLES = Path(__file__).resolve().parents[2] / "shared" / "data" / "celebamask_hq_samples"


def row_values(k: int) -> tuple[str, str, str, str]:
    """(age, gender, race, service_test) of pattern row ``k``: every gender × race pair
    within 14 rows, every age bin within 9."""
    gender = "Male" if k % 2 == 0 else "Female"
    return AGES[k % 9], gender, RACES[k % 7], "True" if k % 3 == 0 else "False"


def colour(k: int) -> tuple[int, int, int]:
    """RGB fill of pattern row ``k``'s image (flat colours survive JPEG almost exactly)."""
    return (20 + 37 * k % 200, 20 + 91 * k % 200, 20 + 53 * k % 200)


def build_replica(root: Path, n_train: int = 6, n_val: int = 4) -> None:
    """``fairface/`` with ``n_train`` and ``n_val`` flat 224×224 JPEGs and both CSVs.

    Row ``k`` of train (``k + VAL_OFFSET`` for val) has :func:`row_values` and the fill
    :func:`colour`; images are named ``train/1.jpg …`` as in the release.
    """
    for split, n, offset in (("train", n_train, 0), ("val", n_val, VAL_OFFSET)):
        (root / split).mkdir(parents=True, exist_ok=True)
        lines = [HEADER]
        for i in range(n):
            k = i + offset
            rgb = np.empty((224, 224, 3), np.uint8)
            rgb[:] = colour(k)
            cv2.imwrite(str(root / split / f"{i + 1}.jpg"), rgb[:, :, ::-1])
            lines.append(",".join([f"{split}/{i + 1}.jpg", *row_values(k)]))
        (root / f"fairface_label_{split}.csv").write_text("\n".join(lines) + "\n")


def test_labels_become_attributes_and_groups(tmp_path):
    build_replica(tmp_path / "fairface")
    data = DATASETS.get("fairface")(root=tmp_path / "fairface", size=64)
    train = data.load("train", seed=0)
    assert len(train) == 6 and train.images.shape == (6, 3, 64, 64)
    assert train.attribute_names == (
        "Male", "Young", "White", "Black", "Latino_Hispanic", "East_Asian",
        "Southeast_Asian", "Indian", "Middle_Eastern", "Asian",
    )  # fmt: skip
    # Rows: 0-2 Male White · 3-9 Female Black · 10-19 Male Latino_Hispanic ·
    # 20-29 Female East Asian · 30-39 Male Southeast Asian · 40-49 Female Indian.
    expected = [
        # M  Y  Wh Bl La EA SA In ME As
        [1, 1, 1, 0, 0, 0, 0, 0, 0, 0],
        [0, 1, 0, 1, 0, 0, 0, 0, 0, 0],
        [1, 1, 0, 0, 1, 0, 0, 0, 0, 0],
        [0, 1, 0, 0, 0, 1, 0, 0, 0, 1],
        [1, 0, 0, 0, 0, 0, 1, 0, 0, 1],
        [0, 0, 0, 0, 0, 0, 0, 1, 0, 0],
    ]
    assert train.attributes.dtype == torch.int8 and train.attributes.tolist() == expected
    assert train.groups["race"].dtype == torch.int64
    assert train.attribute("race").tolist() == [0, 1, 2, 3, 4, 5]
    assert train.attribute("age").tolist() == [0, 1, 2, 3, 4, 5]
    assert FairFace.group_values["race"][3] == "East_Asian"
    assert FairFace.group_values["age"][-1] == "more than 70"
    assert train.extras["service_test"].tolist() == [1, 0, 0, 1, 0, 0]
    assert train.extras["index"].tolist() == [0, 1, 2, 3, 4, 5]
    # Images in row order, RGB kept: image 2 is the flat colour of row 2.
    mean = train.images[2].float().mean(dim=(1, 2))
    assert mean.tolist() == pytest.approx(colour(2), abs=2)
    # Flat images: no face, so every image gets the template (quality 0).
    assert train.extras["landmark_quality"].tolist() == [0] * 6
    eyes = torch.from_numpy(TEMPLATE_EYES * 64 - 0.5)
    assert torch.allclose(train.landmarks[:, :2], eyes.expand(6, 2, 2), atol=1e-4)
    assert data.counts == {"listed": 6, "kept": 6, "landmarks_detected": 0,
                           "landmarks_face_only": 0, "landmarks_template": 6}  # fmt: skip


def test_splits_limit_and_no_landmarks(tmp_path):
    build_replica(tmp_path / "fairface", n_train=5, n_val=3)
    data = FairFace(root=tmp_path / "fairface", size=32, landmarks=False)
    assert data.provides == frozenset() and FairFace.provides == frozenset({"landmarks"})
    val = data.load("val", seed=0)
    # FairFace has no test split: "test" and "valid" are val.
    assert len(val) == 3 and len(data.load("train", seed=0)) == 5
    same(val, data.load("test", seed=1))
    same(val, data.load("valid", seed=0))
    assert val.landmarks is None and "landmark_quality" not in val.extras
    assert data.counts == {"listed": 3, "kept": 3}
    # Val row 0 is pattern row 5: 40-49, Female, Indian.
    assert val.attributes[0].tolist() == [0, 0, 0, 0, 0, 0, 0, 1, 0, 0]
    limited = FairFace(root=tmp_path / "fairface", size=32, landmarks=False, limit=2)
    assert len(limited.load("train", seed=0)) == 2 and limited.counts == {"listed": 5, "kept": 2}
    with pytest.raises(BenchError, match="split must be one of"):
        data.load("holdout", seed=0)
    with pytest.raises(ValueError, match="limit"):
        FairFace(root=tmp_path, limit=0)


def test_a_larger_replica_has_both_genders_and_all_races(tmp_path):
    build_replica(tmp_path / "fairface", n_train=200, n_val=1)
    labels = fairface_mod.read_labels(tmp_path / "fairface" / "fairface_label_train.csv")[1]
    gender, age, race, _ = labels.T
    assert len(gender) == 200 and gender.sum() == 100
    assert set(race.tolist()) == set(range(7)) and set(age.tolist()) == set(range(9))
    assert len({(g, r) for g, r in zip(gender, race, strict=True)}) == 14


def test_missing_folder_and_missing_image(tmp_path):
    data = DATASETS.get("FairFace")(root=tmp_path / "fairface", size=32)
    problems = data.missing()
    assert len(problems) == 4
    assert all("joojs/fairface" in p and p.startswith("FairFace: expected") for p in problems)
    assert any(p.split()[2].endswith("fairface_label_val.csv") for p in problems)
    with pytest.raises(BenchError, match=r"FairFace: expected .*fairface.train \(download from"):
        data.load("train", seed=0)
    build_replica(tmp_path / "fairface")
    assert data.missing() == []
    (tmp_path / "fairface" / "val" / "2.jpg").unlink()
    with pytest.raises(BenchError, match=r"expected .*val.2\.jpg \(download"):
        data.load("test", seed=0)


@pytest.mark.parametrize(
    ("old", "new", "match"),
    [
        (",East Asian,", ",Asian,", r"line 5: unknown race 'Asian'.*'East Asian'"),
        (",Female,", ",F,", r"line 3: unknown gender 'F'.*'Female', 'Male'"),
        (",more than 70,", ",70+,", r"line 10: unknown age '70\+'.*'more than 70'"),
        (HEADER, "file,age,gender,race", r"line 1: expected header file,age,gender,race,serv"),
    ],
)
def test_bad_values_name_the_file_and_line(tmp_path, old, new, match):
    build_replica(tmp_path / "fairface", n_train=9)
    csv = tmp_path / "fairface" / "fairface_label_train.csv"
    csv.write_text(csv.read_text().replace(old, new, 1))
    with pytest.raises(BenchError, match=r"fairface_label_train\.csv " + match):
        FairFace(root=tmp_path / "fairface", size=32).load("train", seed=0)


def test_cache_round_trip_and_no_second_decode(tmp_path, monkeypatch):
    build_replica(tmp_path / "fairface")
    data = FairFace(root=tmp_path / "fairface", size=48)
    direct = data.load("train", seed=0)
    same(direct, data.load("train", seed=0, cache_dir=tmp_path / "cache"))

    def fail(*args, **kwargs):
        raise AssertionError("decoded an image although the cache holds it")

    monkeypatch.setattr("benchmark.data.files.read_image", fail)  # read_images decodes with it
    monkeypatch.setattr(fairface_mod.lm, "detect_landmarks", fail)
    again = FairFace(root=tmp_path / "fairface", size=48)
    second = again.load("train", seed=0, cache_dir=tmp_path / "cache")
    same(direct, second)
    assert all(torch.equal(direct.groups[k], second.groups[k]) for k in ("race", "age"))
    assert again.counts == data.counts and again.counts["landmarks_template"] == 6
    with pytest.raises(AssertionError, match="decoded"):  # without landmarks: its own entry
        FairFace(root=tmp_path / "fairface", size=48, landmarks=False).load(
            "train", 0, tmp_path / "cache"
        )


def test_real_face_gets_detected_landmarks(tmp_path):
    if not SAMPLES.is_dir():
        pytest.skip(f"real CelebAMask-HQ samples absent: {SAMPLES}")
    build_replica(tmp_path / "fairface", n_train=2, n_val=1)
    face = cv2.imread(str(SAMPLES / "0.jpg"), cv2.IMREAD_COLOR)
    face = cv2.resize(face, (224, 224), interpolation=cv2.INTER_AREA)
    cv2.imwrite(str(tmp_path / "fairface" / "train" / "1.jpg"), face)
    data = FairFace(root=tmp_path / "fairface", size=112)
    train = data.load("train", seed=0)
    assert train.extras["landmark_quality"].tolist() == [2, 0]
    assert data.counts["landmarks_detected"] == 1 and data.counts["landmarks_template"] == 1
    # Sample 0's eyes are at x ≈ 192 and 321 of 512, y ≈ 246: ×112/512 here.
    left, right = train.landmarks[0, :2].tolist()
    assert left == pytest.approx([42, 53.5], abs=3) and right == pytest.approx([70, 53.5], abs=3)


def test_suite_validation_knows_fairface_attributes_and_groups(tmp_path):
    from typer.testing import CliRunner

    from benchmark.cli import app

    suite = tmp_path / "s.yaml"
    suite.write_text(
        "name: f\nseed: 0\n"
        f"dataset:\n  train: {{name: fairface, params: {{root: {tmp_path}, size: 64}}}}\n"
        f"  test: {{name: fairface, params: {{root: {tmp_path}, size: 64}}}}\n"
        "model: {arch: small_cnn}\n"
        "scenarios: [{name: s, target: Male, attributes: [East_Asain], rho: 0.9}]\n"
        "explainers: [gradcam]\nmetrics: [ranking_position]\n"
    )
    result = CliRunner().invoke(app, ["validate", str(suite)])
    assert result.exit_code == 2 and "East_Asian" in result.output
