"""The inpainting game (issue 13): nonmates that differ from the mate in one face part,
a trained synthetic-identity embedding, and the pointing game, with known answers."""

from __future__ import annotations

import io
import json

import duckdb
import pytest
import torch
import torch.nn.functional as F
import yaml
from rich.console import Console

from benchmark.catalogue import METRICS
from benchmark.data.regions import PART_REGIONS, REGION_ID, REGION_NAMES
from benchmark.data.synthetic import SyntheticFaces
from benchmark.data.synthetic.identity import FAR, PART_KEYS, identity_views, swap_part
from benchmark.data.synthetic.params import SHAPE_KEYS, FaceParams
from benchmark.errors import BenchError
from benchmark.runner import run_suite
from benchmark.suite import load_suite
from metrics import MetricContext

#: Share of |mate − nonmate| within the part's regions grown by 2 px, measured on 64
#: faces at 64 px: brows 0.94, eyes 1.00, nose 0.79 (its shading and the folds beside
#: it follow the nose), mouth 0.96.
INSIDE = {"brows": 0.9, "eyes": 0.95, "nose": 0.7, "mouth": 0.9}


@pytest.fixture(scope="module")
def faces():
    return SyntheticFaces(n=32, size=64).load("test", 0)


@pytest.mark.parametrize("part", sorted(PART_KEYS))
def test_a_nonmate_differs_from_its_mate_in_one_part_only(faces, part):
    data = SyntheticFaces(n=32, size=64)
    mates, nonmates = data.mates(faces, 1), data.mates(faces, 1, part)
    again = data.mates(faces, 1)
    assert torch.equal(mates.images, again.images)  # the same re-takes, seed for seed
    diff = (mates.images.float() - nonmates.images.float()).abs().sum(1)
    ids = torch.tensor([REGION_ID[r] for r in PART_REGIONS[part]])
    region = torch.isin(mates.label_maps.long(), ids) | torch.isin(nonmates.label_maps.long(), ids)
    grown = F.max_pool2d(region[:, None].float(), 5, 1, 2)[:, 0] > 0
    assert float(diff[grown].sum() / diff.sum()) >= INSIDE[part]
    assert (diff.flatten(1).amax(1) > 0).all()  # every nonmate is visibly another person
    a = FaceParams.from_dict(mates.extras, "param.").shape
    b = FaceParams.from_dict(nonmates.extras, "param.").shape
    cols = [SHAPE_KEYS.index(k) for k in PART_KEYS[part]]
    others = [i for i in range(len(SHAPE_KEYS)) if i not in cols]
    assert ((a[:, cols] - b[:, cols]).abs() >= FAR - 1e-6).all()  # moved ≥ 2.5 σ
    assert torch.equal(a[:, others], b[:, others])


def test_mates_are_new_photographs_of_the_same_people(faces):
    mates = SyntheticFaces(n=32, size=64).mates(faces, 1)
    p, q = (FaceParams.from_dict(f.extras, "param.") for f in (faces, mates))
    assert torch.equal(p.shape, q.shape) and torch.equal(p.hair_rgb, q.hair_rgb)
    for changed in ("pose", "light", "background", "cloth_rgb"):
        assert not torch.equal(getattr(p, changed), getattr(q, changed)), changed
    with pytest.raises(ValueError, match="unknown face part 'ears'; expected one of"):
        swap_part(p, "ears")


def test_identity_views_label_people_and_their_part_swapped_siblings(faces):
    params = FaceParams.from_dict(faces.extras, "param.")[:5]
    every, labels = identity_views(params, views=3, n_siblings=2, seed=0)
    assert len(every) == 45 and labels.tolist() == list(range(15)) * 3
    part_cols = [SHAPE_KEYS.index(k) for keys in PART_KEYS.values() for k in keys]
    rest = [i for i in range(len(SHAPE_KEYS)) if i not in part_cols]
    for k in range(15):  # each identity's three views share its whole face
        views = every.shape[labels == k]
        assert torch.equal(views[0], views[1]) and torch.equal(views[0], views[2])
    sib = every.shape[5:10]  # the first siblings: the people's faces, other parts
    assert torch.equal(sib[:, rest], params.shape[:, rest])
    assert (sib[:, part_cols].abs() == FAR).all()


def context(*regions: str) -> MetricContext:
    return MetricContext(REGION_NAMES, ("part",), (tuple(REGION_ID[r] for r in regions),))


def test_pointing_game_by_hand():
    s = torch.zeros(4, 8, 8, dtype=torch.long)
    s[:, 2:4, 2:4] = REGION_ID["nose"]  # a 2×2 nose in each image
    s[3] = 0  # image 3 has none: left out
    a = torch.zeros(4, 8, 8)
    a[0, 2, 3] = 1.0  # peak on the nose: a hit
    a[1, 5, 5] = 1.0  # two pixels off the nose's corner: a miss (a hit with dilate 2)
    a[2] = 1.0  # flat map: the nose's area share, 4 / 64
    metric = METRICS.get("pointing_game")(context("nose"))
    metric.update(a_batch=a, s_batch=s)
    result = metric.compute()
    assert result.n == 3 and result.details["n_excluded"] == 1
    assert result.scores["pointing_game"] == pytest.approx((1 + 0 + 4 / 64) / 3)
    grown = METRICS.get("pointing_game")(context("nose"), dilate=2)
    grown.update(a_batch=a, s_batch=s)
    assert grown.compute().per_image[:3].tolist() == pytest.approx([1.0, 1.0, 36 / 64])
    with pytest.raises(ValueError, match="dilate must be an int"):
        METRICS.get("pointing_game")(context("nose"), dilate=1.5)


PIXELS = {
    "name": "pixels", "device": "cpu", "task": "verification",
    "dataset": {"test": {"name": "synthetic_faces", "params": {"n": 24, "size": 64}}},
    "model": {"factory": "tests.model_zoo:pixel_embedding", "train": False,
              "input": {"crop": "landmarks", "padding": 0.1}},
    "scenarios": [{"name": p, "target": "inpainting", "attributes": [p]}
                  for p in sorted(PART_KEYS)],
    "explainers": ["saliency"],
    "metrics": ["ranking_position", {"name": "pointing_game", "params": {"dilate": 1}},
                "deletion_auc"],
    "explain": {"batch_size": 16, "max_images": 8}, "figures": {"enabled": False},
}  # fmt: skip


def run(tmp_path, spec: dict) -> list[tuple]:
    path = tmp_path / "s.yaml"
    path.write_text(yaml.safe_dump({**spec, "db": str(tmp_path / "r.duckdb")}))
    run_suite(path, console=Console(file=io.StringIO()), leaderboard=False)
    with duckdb.connect(str(tmp_path / "r.duckdb"), read_only=True) as con:
        return con.execute("SELECT scenario, metric, value FROM scores").fetchall()


def test_the_gradient_of_a_pixel_embedding_points_at_the_changed_part(tmp_path):
    """Known answer: with pixels as the embedding, the contrastive score's gradient on
    the (aligned) probe is mate − nonmate, non-zero only where the part changed."""
    got = {(s, m): v for s, m, v in run(tmp_path, PIXELS)}
    for part in PART_KEYS:  # the peak lands on the part (8 probes; nose 7 of 8)
        assert got[(part, "pointing_game")] >= 0.6, part
    for part in ("brows", "eyes", "mouth"):  # and the part's mean attribution is highest
        assert got[(part, "ranking_position")] == 1.0, part
    with duckdb.connect(str(tmp_path / "r.duckdb"), read_only=True) as con:
        rows = con.execute("SELECT scenario, target, attributes, bias_regions, accuracy, "
                           "test_cells FROM scenarios ORDER BY scenario").fetchall()  # fmt: skip
    for scenario, target, attrs, regions, accuracy, cells in rows:
        assert target == "inpainting" and json.loads(attrs) == [scenario]
        assert json.loads(regions) == [list(PART_REGIONS[scenario])]
        assert accuracy >= 0.9 and json.loads(cells) == {"triplets": 24}


def test_an_embedding_trains_on_synthetic_identities_and_is_cached(tmp_path):
    spec = {
        **PIXELS,
        "dataset": {"train": {"name": "synthetic_faces", "params": {"n": 40, "size": 32}},
                    "test": {"name": "synthetic_faces", "params": {"n": 16, "size": 32}}},
        "model": {"arch": "small_embedding", "params": {"dim": 16, "width": 4},
                  "input": {"crop": "landmarks", "padding": 0.1},
                  "train": {"epochs": 2, "batch_size": 32, "lr": 3e-3,
                            "identity": {"views": 2, "siblings": 1}}},
        "scenarios": [{"name": "brows", "target": "inpainting", "attributes": ["brows"]},
                      {"name": "mated", "target": "mated"}],
        "explainers": ["gradcam"], "metrics": ["deletion_auc"],
        "cache_dir": str(tmp_path / "cache"),
    }  # fmt: skip
    assert len(run(tmp_path, spec)) == 2
    with duckdb.connect(str(tmp_path / "r.duckdb"), read_only=True) as con:
        first = con.execute("SELECT model_hash, cached, train_seconds FROM scenarios").fetchall()
        timings = json.loads(con.execute("SELECT timings FROM runs").fetchone()[0])
    assert len({h for h, *_ in first}) == 1  # one embedding for every scenario
    assert not first[0][1] and timings["train/embedding"] > 0
    assert len(list((tmp_path / "cache" / "models").glob("*.pt"))) == 1
    spec["explainers"] = ["saliency"]  # another run of the same embedding: from the cache
    run(tmp_path, spec)
    with duckdb.connect(str(tmp_path / "r.duckdb"), read_only=True) as con:
        again = con.execute("SELECT model_hash, cached FROM scenarios ORDER BY rowid DESC "
                            "LIMIT 1").fetchone()  # fmt: skip
    assert again == (first[0][0], True)


@pytest.mark.parametrize(
    ("over", "message"),
    [
        ({"scenarios": [{"name": "s", "target": "inpainting", "attributes": ["ears"]}]},
         "scenarios[0].attributes: expected one face part the nonmate differs in, one of "
         "brows, eyes, nose, mouth"),
        ({"scenarios": [{"name": "s", "target": "mated"}]},
         "metrics[0]: ranking_position needs bias_regions"),
        ({"dataset": {"test": {"name": "lfw", "params": {"root": "x"}}}},
         "expected a dataset that renders mates (synthetic_faces) for the inpainting game"),
        ({"model": {"arch": "small_embedding", "train": {"milestones": [0.5]}},
          "dataset": {"train": {"name": "synthetic_faces"}, "test": {"name": "synthetic_faces"}}},
         "model.train.milestones: expected no milestones"),
    ],
)  # fmt: skip
def test_inpainting_suites_refuse_what_has_no_meaning(tmp_path, over, message):
    path = tmp_path / "v.yaml"
    path.write_text(yaml.safe_dump({**PIXELS, **over}))
    with pytest.raises(BenchError) as info:
        load_suite(path)
    assert message in str(info.value)


def test_only_verification_trains_on_identities(tmp_path):
    from tests.test_verification import VERIFY

    spec = {**VERIFY, "task": "classification",
            "dataset": {"train": {"name": "synthetic_faces"}, "test": {"name": "synthetic_faces"}},
            "model": {"arch": "small_cnn", "train": {"identity": {"views": 2}}},
            "scenarios": [{"name": "s", "target": "Male"}]}  # fmt: skip
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump(spec))
    with pytest.raises(BenchError, match=r"model\.train\.identity: expected no identity recipe"):
        load_suite(path)
