"""RFW on a byte-faithful miniature replica: race attributes in FairFace's vocabulary,
race groups, identities, pairs from the tab-separated pair files, missing files, cache."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

import benchmark.data.landmarks as landmarks_mod
from benchmark.catalogue import DATASETS
from benchmark.data.rfw import RFW
from benchmark.errors import BenchError
from tests.test_data_cache import same

# Identities (Freebase ids, as RFW names them) and their image counts, per race.
IDS = {
    "African": {"m.0a1b2c": 3, "m.0d3e4f": 2},
    "Asian": {"m.01x9zz": 2, "m.0g5h6j": 1},
    "Caucasian": {"m.0k7l8m": 2, "m.0n9p0q": 1},
    "Indian": {"m.0r1s2t": 1, "m.0u3v4w": 2},
}
# Per race: same-person (id, n1, n2) and different-person (id1, n1, id2, n2) lines; the
# last same line names an image that does not exist, so pairs() drops it.
SAME = {
    "African": [("m.0a1b2c", 1, 3), ("m.0d3e4f", 1, 2), ("m.0a1b2c", 2, 9)],
    "Asian": [("m.01x9zz", 1, 2)],
    "Caucasian": [("m.0k7l8m", 2, 1)],
    "Indian": [("m.0u3v4w", 1, 2)],
}
DIFF = {
    "African": [("m.0a1b2c", 2, "m.0d3e4f", 1)],
    "Asian": [("m.01x9zz", 2, "m.0g5h6j", 1)],
    "Caucasian": [("m.0k7l8m", 1, "m.0n9p0q", 1)],
    "Indian": [("m.0r1s2t", 1, "m.0u3v4w", 2)],
}
# Attribute rows by race: Male, Young, White, Black, Latino_Hispanic, East_Asian,
# Southeast_Asian, Indian, Middle_Eastern, Asian (1 yes, 0 no, -1 unknown).
ROWS = {
    "African": [-1, -1, 0, 1, 0, 0, 0, 0, 0, 0],
    "Asian": [-1, -1, 0, 0, 0, -1, -1, 0, 0, 1],
    "Caucasian": [-1, -1, 1, 0, 0, 0, 0, 0, 0, 0],
    "Indian": [-1, -1, 0, 0, 0, 0, 0, 1, 0, 0],
}


def build_replica(root: Path) -> dict[tuple[str, int], int]:
    """An ``RFW`` folder: JPEGs in ``test/data/<race>/<id>/<id>_000N.jpg`` and
    tab-separated ``test/txts/<race>/<race>_pairs.txt``. Returns each image's grey level."""
    grey, level = {}, 20
    for race, ids in IDS.items():
        for identity, count in ids.items():
            folder = root / "test" / "data" / race / identity
            folder.mkdir(parents=True)
            for n in range(1, count + 1):
                img = np.full((96, 96, 3), level, np.uint8)
                cv2.imwrite(str(folder / f"{identity}_{n:04d}.jpg"), img)
                grey[identity, n], level = level, level + 12
        txt = root / "test" / "txts" / race
        txt.mkdir(parents=True)
        lines = [f"{i}\t{a}\t{b}" for i, a, b in SAME[race]]
        lines += [f"{i}\t{a}\t{j}\t{b}" for i, a, j, b in DIFF[race]]
        (txt / f"{race}_pairs.txt").write_text("\n".join(lines) + "\n")
    return grey


def test_races_attributes_groups_and_identities(tmp_path):
    build_replica(tmp_path / "RFW")
    data = DATASETS.get("rfw")(root=tmp_path / "RFW", size=32, landmarks=False)
    faces = data.load("test", seed=0)
    order = [(r, i, n) for r, ids in IDS.items() for i in sorted(ids) for n in range(1, ids[i] + 1)]
    assert len(faces) == len(order) == 14 and faces.images.shape == (14, 3, 32, 32)
    assert faces.attribute_names == RFW.attribute_names and faces.landmarks is None
    assert faces.attributes.tolist() == [ROWS[r] for r, _, _ in order]
    assert faces.attributes.dtype == torch.int8
    assert faces.groups["race"].tolist() == [RFW.group_values["race"].index(r) for r, _, _ in order]
    assert data.identities == tuple(sorted(i for ids in IDS.values() for i in ids))
    assert [data.identities[k] for k in faces.extras["identity"]] == [i for _, i, _ in order]
    assert faces.extras["image_number"].tolist() == [n for _, _, n in order]
    # One split: every split name gives the same images.
    assert torch.equal(data.load("train", seed=1).images, faces.images)
    assert data.provides == frozenset() and RFW.provides == {"landmarks"}


def test_pairs_point_at_the_right_images_and_drop_absent_ones(tmp_path):
    grey = build_replica(tmp_path / "RFW")
    data = RFW(root=tmp_path / "RFW", size=32, landmarks=False)
    faces = data.load("test", seed=0)
    index, same_person = data.pairs(faces)
    want = []
    for race in IDS:  # in file order; ("m.0a1b2c", 2, 9) has no image 9
        want += [((i, a), (i, b), True) for i, a, b in SAME[race] if b != 9]
        want += [((i, a), (j, b), False) for i, a, j, b in DIFF[race]]
    assert index.shape == (len(want), 2) and index.dtype == torch.long
    assert same_person.tolist() == [s for _, _, s in want]
    for (a, b), (first, second, _) in zip(index.tolist(), want, strict=True):
        for row, key in ((a, first), (b, second)):
            assert data.identities[faces.extras["identity"][row]] == key[0]
            assert faces.extras["image_number"][row] == key[1]
            assert abs(float(faces.images[row].float().mean()) - grey[key]) < 3  # the JPEG
    # A subset keeps only the pairs whose two images it holds, indexed into the subset.
    sub = faces.subset(torch.tensor([0, 2, 3, 4]))  # African m.0a1b2c 1, 3 and m.0d3e4f 1, 2
    sub_index, sub_same = data.pairs(sub)
    assert sub_index.tolist() == [[0, 1], [2, 3]] and sub_same.tolist() == [True, True]


def test_a_race_subset_keeps_the_four_race_group_ids(tmp_path):
    build_replica(tmp_path / "RFW")
    data = RFW(root=tmp_path / "RFW", size=16, races=["Indian", "Asian"], landmarks=False)
    faces = data.load("test", seed=0)
    assert data.races == ("Asian", "Indian") and len(faces) == 6
    assert faces.groups["race"].tolist() == [1, 1, 1, 3, 3, 3]
    assert faces.attributes.tolist() == [ROWS["Asian"]] * 3 + [ROWS["Indian"]] * 3
    index, same_person = data.pairs(faces)
    assert same_person.tolist() == [True, False, True, False]
    assert index.tolist() == [[0, 1], [1, 2], [4, 5], [3, 5]]
    limited = RFW(root=tmp_path / "RFW", size=16, limit=4, landmarks=False)
    assert len(limited.load("test", 0)) == 4 and limited.identities == ("m.0a1b2c", "m.0d3e4f")
    with pytest.raises(ValueError, match="races"):
        RFW(root=tmp_path, races=["Latino"])


def test_missing_files_bad_pair_lines_and_bad_names(tmp_path):
    data = DATASETS.get("rfw")(root=tmp_path / "absent", size=32)
    assert len(data.missing()) == 8  # four image folders, four pair files
    with pytest.raises(BenchError, match=r"RFW: expected .*African .*whdeng\.cn"):
        data.load("test", seed=0)
    root = tmp_path / "RFW"
    build_replica(root)
    data = RFW(root=root, size=16, landmarks=False)
    faces = data.load("test", seed=0)
    (root / "test/txts/Asian/Asian_pairs.txt").write_text("m.01x9zz\t1\t2\nm.01x9zz\tone\t2\n")
    with pytest.raises(BenchError, match=r"Asian_pairs\.txt line 2: expected 'name n1 n2'"):
        data.pairs(faces)
    (root / "test/data/Indian/m.0r1s2t/m.0r1s2t_1.jpg").write_bytes(b"")
    with pytest.raises(BenchError, match=r"m\.0r1s2t_1\.jpg: expected a name like"):
        data.load("test", seed=0)


def test_landmarks_and_cache_round_trip(tmp_path, monkeypatch):
    build_replica(tmp_path / "RFW")
    data = RFW(root=tmp_path / "RFW", size=32, races=["African"])
    direct = data.load("test", seed=0)
    assert direct.landmarks.shape == (5, 5, 2) and direct.landmarks.dtype == torch.float32
    quality = direct.extras["landmark_quality"]
    assert quality.dtype == torch.int8 and set(quality.tolist()) <= {0, 1, 2}
    first = data.load("test", seed=0, cache_dir=tmp_path / "cache")
    same(direct, first)
    assert torch.equal(direct.groups["race"], first.groups["race"])

    def fail(*args, **kwargs):
        raise AssertionError("decoded an image although the cache holds it")

    monkeypatch.setattr("benchmark.data.files.read_image", fail)  # read_images decodes with it
    monkeypatch.setattr(landmarks_mod, "detect_landmarks", fail)
    again = RFW(root=tmp_path / "RFW", size=32, races=["African"])
    second = again.load("test", seed=0, cache_dir=tmp_path / "cache")
    same(direct, second)
    assert again.identities == data.identities  # stored with the entry
    assert [t.tolist() for t in again.pairs(second)] == [t.tolist() for t in data.pairs(direct)]
    with pytest.raises(AssertionError, match="decoded"):  # no landmarks: another entry
        RFW(root=tmp_path / "RFW", size=32, races=["African"], landmarks=False).load(
            "test", 0, tmp_path / "cache"
        )
