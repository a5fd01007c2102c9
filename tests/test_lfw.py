"""LFW on a byte-faithful miniature replica: 250×250 JPEGs in ``lfw/<Name>/``, a
``pairs.txt`` with its "10\\t300" line and 6,000 tab-separated pairs; identities, pairs
with folds, the pairs-only protocol, missing files and the cache."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from benchmark.catalogue import DATASETS
from benchmark.data.lfw import LFW
from benchmark.data.pairs import read_pairs
from benchmark.errors import BenchError
from tests.test_data_cache import same

COUNTS = {"Aaron_Peirsol": 4, "Abel_Pacheco": 2, "George_W_Bush": 3, "Zico": 1, "Zoe_Ball": 1}
# Pair templates; fold f's k-th same line is SAME[(f + k) % 3], likewise DIFF. Zoe_Ball
# appears in no pair and Aaron_Peirsol's image 3 in none.
SAME = [("Aaron_Peirsol", 1, 2), ("Abel_Pacheco", 1, 2), ("George_W_Bush", 2, 3)]
DIFF = [("Aaron_Peirsol", 4, "Zico", 1), ("Abel_Pacheco", 2, "George_W_Bush", 1),
        ("George_W_Bush", 3, "Zico", 1)]  # fmt: skip


def build_replica(root: Path) -> list[tuple[tuple[str, int], tuple[str, int], bool, int]]:
    """``root/lfw/<Name>/<Name>_000N.jpg`` (250×250) and ``root/pairs.txt``.

    Returns the 6,000 pairs as (first, second, same, fold) in file order.
    """
    level = 30
    for name, count in COUNTS.items():
        (root / "lfw" / name).mkdir(parents=True)
        for n in range(1, count + 1):
            img = np.full((250, 250, 3), level, np.uint8)
            cv2.imwrite(str(root / "lfw" / name / f"{name}_{n:04d}.jpg"), img)
            level += 15
    lines, pairs = ["10\t300"], []
    for fold in range(10):
        for k in range(300):
            name, a, b = SAME[(fold + k) % 3]
            lines.append(f"{name}\t{a}\t{b}")
            pairs.append(((name, a), (name, b), True, fold))
        for k in range(300):
            n1, a, n2, b = DIFF[(fold + k) % 3]
            lines.append(f"{n1}\t{a}\t{n2}\t{b}")
            pairs.append(((n1, a), (n2, b), False, fold))
    (root / "pairs.txt").write_text("\n".join(lines) + "\n")
    return pairs


def keys(faces, data) -> list[tuple[str, int]]:
    ids, numbers = faces.extras["identity"].tolist(), faces.extras["image_number"].tolist()
    return [(data.identities[i], n) for i, n in zip(ids, numbers, strict=True)]


def test_all_images_identities_and_pairs_with_folds(tmp_path):
    listed = build_replica(tmp_path)
    data = DATASETS.get("lfw")(root=tmp_path, size=32, landmarks=False)
    faces = data.load("test", seed=0)
    assert faces.images.shape == (11, 3, 32, 32) and faces.attributes.shape == (11, 0)
    assert faces.attribute_names == () and data.identities == tuple(sorted(COUNTS))
    order = [(name, n) for name in sorted(COUNTS) for n in range(1, COUNTS[name] + 1)]
    assert keys(faces, data) == order
    # Grey levels rise by 15 per image in build order (which is sorted order here).
    means = faces.images.float().mean(dim=(1, 2, 3))
    assert torch.allclose(means, 30 + 15 * torch.arange(11.0), atol=3)
    index, same_person, fold = data.pairs(faces)
    assert index.shape == (6000, 2) and fold.dtype == torch.long
    assert same_person.tolist() == [s for _, _, s, _ in listed]
    assert fold.tolist() == [f for _, _, _, f in listed]
    assert same_person[:300].all() and not same_person[300:600].any()
    got = [(order[a], order[b]) for a, b in index.tolist()]
    assert got == [(first, second) for first, second, _, _ in listed]
    assert index[0].tolist() == [0, 1] and index[300].tolist() == [3, 9]  # hand-checked
    assert torch.equal(data.load("train", seed=3).images, faces.images)  # one split


def test_pairs_only_loads_the_named_images_and_subsets_drop_pairs(tmp_path):
    build_replica(tmp_path)
    data = LFW(root=tmp_path, size=32, pairs_only=True, landmarks=False)
    faces = data.load("test", seed=0)
    named = sorted({p for s in SAME for p in ((s[0], s[1]), (s[0], s[2]))}
                   | {p for d in DIFF for p in ((d[0], d[1]), (d[2], d[3]))})  # fmt: skip
    assert keys(faces, data) == named and len(faces) == 9  # no Zoe_Ball, no Aaron's 3
    assert "Zoe_Ball" not in data.identities
    bush = [r for r, (name, _) in enumerate(keys(faces, data)) if name != "George_W_Bush"]
    sub = faces.subset(torch.tensor(bush))
    index, same_person, fold = data.pairs(sub)
    # Left: fold f's lines with SAME[0], SAME[1] and DIFF[0]; Bush's pairs are dropped.
    assert len(index) == 10 * (200 + 100) and fold.bincount().tolist() == [300] * 10
    assert same_person.sum() == 2000
    first = [keys(sub, data)[a] for a in index[:, 0].tolist()]
    assert "George_W_Bush" not in {name for name, _ in first}


def test_missing_files_and_bad_pair_files(tmp_path):
    data = DATASETS.get("lfw")(root=tmp_path / "absent", size=32)
    assert len(data.missing()) == 2
    with pytest.raises(BenchError, match=r"LFW: expected .*lfw .*umass\.edu"):
        data.load("test", seed=0)
    build_replica(tmp_path)
    pairs = tmp_path / "pairs.txt"
    text = pairs.read_text()
    (tmp_path / "lfw" / "Zico" / "Zico_0001.jpg").unlink()
    with pytest.raises(BenchError, match=r"pairs\.txt line 302 names .*Zico_0001\.jpg"):
        LFW(root=tmp_path, size=16, pairs_only=True).load("test", 0)
    pairs.write_text("6000\n" + text.split("\n", 1)[1])
    with pytest.raises(BenchError, match=r"line 1: expected 'folds pairs-per-fold'"):
        LFW(root=tmp_path, size=16, pairs_only=True).load("test", 0)
    pairs.write_text(text.rsplit("\n", 2)[0] + "\n")  # one pair short
    with pytest.raises(BenchError, match=r"announces 10 folds of 300 .* found 5999"):
        LFW(root=tmp_path, size=16, pairs_only=True).load("test", 0)


def test_pair_lines_with_spaces_or_tabs(tmp_path):
    path = tmp_path / "p.txt"
    path.write_text("1 1\nAbel_Pacheco 1  4\nAbel_Pacheco\t1\tAkhmed_Zakayev 3\n\n")
    pairs, folds = read_pairs(path, header=True)
    assert folds == (1, 1) and [p.line for p in pairs] == [2, 3]
    assert (pairs[0].first, pairs[0].second, pairs[0].same) == (
        ("Abel_Pacheco", 1), ("Abel_Pacheco", 4), True)  # fmt: skip
    assert (pairs[1].first, pairs[1].second, pairs[1].same) == (
        ("Abel_Pacheco", 1), ("Akhmed_Zakayev", 3), False)  # fmt: skip
    path.write_text("Abel_Pacheco 1 4 5 6\n")
    with pytest.raises(BenchError, match=r"p\.txt line 1: expected"):
        read_pairs(path)


def test_landmarks_and_cache_round_trip(tmp_path, monkeypatch):
    build_replica(tmp_path)
    data = LFW(root=tmp_path, size=32, pairs_only=True, limit=5)
    direct = data.load("test", seed=0)
    assert data.provides == {"landmarks"} and direct.landmarks.shape == (5, 5, 2)
    assert direct.extras["landmark_quality"].shape == (5,)
    same(direct, data.load("test", seed=0, cache_dir=tmp_path / "cache"))

    def fail(*args, **kwargs):
        raise AssertionError("decoded an image although the cache holds it")

    monkeypatch.setattr("benchmark.data.files.read_image", fail)  # read_images decodes with it
    again = LFW(root=tmp_path, size=32, pairs_only=True, limit=5)
    second = again.load("test", seed=0, cache_dir=tmp_path / "cache")
    same(direct, second)
    assert again.identities == data.identities
    pairs, pairs_direct = again.pairs(second), data.pairs(direct)
    assert all(torch.equal(x, y) for x, y in zip(pairs, pairs_direct, strict=True))
    with pytest.raises(AssertionError, match="decoded"):  # all images: another entry
        LFW(root=tmp_path, size=32, limit=5).load("test", 0, tmp_path / "cache")
