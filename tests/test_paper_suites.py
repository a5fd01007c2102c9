"""The paper suites (suites/*.yaml): they validate, refuse to run without their data
(one clear line, nothing written), and run end to end, scaled down, on generated
byte-faithful replicas of CelebA + CelebAMask-HQ, FairFace + RFW and FairFace."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import duckdb
import numpy as np
import pytest
import torch
import yaml
from typer.testing import CliRunner

import benchmark.data.landmarks as landmarks_mod
from benchmark.catalogue import MODELS
from benchmark.cli import app
from benchmark.data.fairface import FairFace
from benchmark.data.landmark11 import LANDMARK11
from benchmark.data.regions import REGION_ID, REGION_NAMES
from benchmark.models.train import CheckpointCache
from benchmark.runner import plan
from tests import test_fairface, test_rfw
from tests.test_celeba import write_celeba
from tests.test_celebamask_hq import NAMES, write_region_pngs

SUITES = Path(__file__).resolve().parents[1] / "suites"
PAPER = ["celeba_bias", "celeba_multi_bias", "celeba_default", "fairface_race_rfw",
         "fairface_census_race"]  # fmt: skip
SOURCES = {"celeba": "mmlab.ie.cuhk.edu.hk", "fairface": "github.com/joojs/fairface"}
N_CELEBA, N_HQ, N_MAPPED = 240, 96, 10


def rows(db: Path, sql: str) -> list[tuple]:
    with duckdb.connect(str(db), read_only=True) as con:
        return con.execute(sql).fetchall()


# --- replicas ------------------------------------------------------------------------


def build_celeba(root: Path, seed: int = 0) -> list[str]:
    """``celeba/`` with N_CELEBA 178×218 JPEGs (the last 20 valid/test), random -1/1
    attributes, partition and landmarks. Returns the train file names."""
    rng = np.random.default_rng(seed)
    files = [f"{i:06d}.jpg" for i in range(1, N_CELEBA + 1)]
    parts = [0] * (N_CELEBA - 20) + [1] * 10 + [2] * 10
    values = rng.choice([-1, 1], size=(N_CELEBA, 40))
    images = [rng.integers(0, 256, (218, 178, 3), dtype=np.uint8) for _ in files]
    write_celeba(root, files, parts, values, images)
    return [f for f, p in zip(files, parts, strict=True) if p == 0]


def build_hq(root: Path, train_files: list[str], seed: int = 1) -> None:
    """``CelebAMask-HQ/`` with N_HQ 64×64 JPEGs, 32×32 region PNGs following the
    attributes, the attribute file and a mapping whose first N_MAPPED rows name CelebA
    train files (the rest name faces beyond the replica)."""
    rng = np.random.default_rng(seed)
    (root / "CelebA-HQ-img").mkdir(parents=True)
    values = rng.choice([-1, 1], size=(N_HQ, 40))
    has = {n: values[:, NAMES.index(n)] > 0 for n in NAMES}
    for i in range(N_HQ):
        img = rng.integers(0, 256, (64, 64, 3), dtype=np.uint8)
        cv2.imwrite(str(root / "CelebA-HQ-img" / f"{i}.jpg"), img)
        lab = np.zeros((32, 32), np.uint8)
        lab[0:8] = REGION_ID["hair"]
        lab[6:28, 6:26] = REGION_ID["skin"]
        lab[14:20, 14:18] = REGION_ID["nose"]
        lab[22:23, 10:22], lab[24:25, 10:22] = REGION_ID["u_lip"], REGION_ID["l_lip"]
        if has["Smiling"][i]:
            lab[23:24, 10:22] = REGION_ID["mouth"]
        if has["Eyeglasses"][i]:
            lab[10:14, 8:24] = REGION_ID["eye_g"]
        if has["Wearing_Earrings"][i]:
            lab[16:20, 2:5] = REGION_ID["ear_r"]
        if has["Wearing_Necklace"][i]:
            lab[29:31, 8:24] = REGION_ID["neck_l"]
        write_region_pngs(root / "CelebAMask-HQ-mask-anno", i, lab)
    lines = [f"{i}.jpg  " + " ".join(str(v) for v in values[i]) for i in range(N_HQ)]
    (root / "CelebAMask-HQ-attribute-anno.txt").write_text(
        f"{N_HQ}\n" + " ".join(NAMES) + "\n" + "\n".join(lines) + "\n"
    )
    mapped = [int(f[:-4]) - 1 for f in train_files[5 : 5 + N_MAPPED]]  # 0-based orig_idx
    orig = mapped + [150_000 + i for i in range(N_HQ - N_MAPPED)]
    mapping = ["idx orig_idx orig_file"] + [f"{i} {o} {o + 1:06d}.jpg" for i, o in enumerate(orig)]
    (root / "CelebA-HQ-to-CelebA-mapping.txt").write_text("\n".join(mapping) + "\n")


def scaled_suite(tmp_path: Path, base: str, **over) -> Path:
    """A suite file in tmp_path that includes ``suites/<base>.yaml`` and overrides what
    scaling needs: CPU, 32 px images, a small CNN for one epoch, gradcam only, 4 px
    patches. Dataset folders stay the suite's own, under ``$BENCH_DATA``."""
    data = {
        "include": str(SUITES / f"{base}.yaml"),
        "device": "cpu",
        "dataset": {"train": {"params": {"size": 32}}, "test": {"params": {"size": 32}}},
        "db": str(tmp_path / "out" / "r.duckdb"),
        "cache_dir": str(tmp_path / "cache"),
        "model": {"arch": "small_cnn", "params": {"width": 8},
                  "train": {"epochs": 1, "batch_size": 64}},
        "explainers": ["gradcam"],
        "explain": {"batch_size": 32, "max_images": 32},
        "figures": {"patch_size": 4},
        **over,
    }  # fmt: skip
    path = tmp_path / f"{base}_small.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


# --- validation and missing data -------------------------------------------------------


@pytest.mark.parametrize("bench_data", [None, "tmp"])
@pytest.mark.parametrize("suite", sorted(SUITES.glob("*.yaml")), ids=lambda p: p.stem)
def test_every_suite_validates(suite, bench_data, tmp_path, monkeypatch):
    if bench_data is None:
        monkeypatch.delenv("BENCH_DATA", raising=False)
    else:
        monkeypatch.setenv("BENCH_DATA", str(tmp_path))
    result = CliRunner().invoke(app, ["validate", str(suite)])
    assert result.exit_code == 0, result.output
    assert f"{suite}: OK" in result.output


@pytest.mark.parametrize("name", PAPER)
def test_paper_suite_without_data_exits_2_and_writes_nothing(name, tmp_path, monkeypatch):
    data = tmp_path / "data"
    data.mkdir()
    monkeypatch.setenv("BENCH_DATA", str(data))
    monkeypatch.delenv("BENCH_CACHE", raising=False)
    monkeypatch.chdir(tmp_path)
    db = tmp_path / "out" / "r.duckdb"
    result = CliRunner().invoke(app, ["run", str(SUITES / f"{name}.yaml"), "--db", str(db)])
    assert result.exit_code == 2
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error:")
    source = SOURCES["celeba" if name.startswith("celeba") else "fairface"]
    folder = "celeba" if name.startswith("celeba") else "fairface"
    assert f"expected {data / folder}/" in lines[0] and source in lines[0]
    assert not db.exists() and not db.parent.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["data"]  # no bench_results, .bench
    assert list(data.iterdir()) == []


def test_datasets_check_of_celeba_bias_without_data_exits_2(tmp_path, monkeypatch):
    monkeypatch.setenv("BENCH_DATA", str(tmp_path))
    result = CliRunner().invoke(app, ["datasets", "check", str(SUITES / "celeba_bias.yaml")])
    assert result.exit_code == 2 and "missing item(s)" in result.output


# --- CelebA → CelebAMask-HQ (FaceX Table 1) ----------------------------------------------

CELEBA_BIAS = yaml.safe_load((SUITES / "celeba_bias.yaml").read_text())
KEEP = ["gender_lipstick", "age_smiling"]
METRICS = {"ranking_position", "average_drop", "increase_in_confidence", "win_percent", "bbox_ap"}
NEVER_DRAWN = {"l_eye", "r_eye", "l_brow", "r_brow", "l_ear", "r_ear", "hat", "neck", "cloth"}


@pytest.fixture(scope="module")
def celeba_run(tmp_path_factory) -> tuple[Path, str, Path]:
    """The scaled-down celeba_bias suite run once: (folder, CLI output, DB)."""
    tmp = tmp_path_factory.mktemp("celeba_bias")
    build_hq(tmp / "CelebAMask-HQ", build_celeba(tmp / "celeba"))
    scenarios = [s for s in CELEBA_BIAS["scenarios"] if s["name"] in KEEP]
    path = scaled_suite(tmp, "celeba_bias", scenarios=scenarios)
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("BENCH_DATA", str(tmp))
        mp.chdir(tmp)
        result = CliRunner().invoke(app, ["run", str(path)])
    assert result.exit_code == 0, result.output
    return tmp, result.output, tmp / "out" / "r.duckdb"


def test_celeba_bias_scaled_down_runs_on_replicas(celeba_run):
    tmp, _, db = celeba_run
    ((status, counts, suite_json),) = rows(db, "SELECT status, data_counts, suite_json FROM runs")
    assert status == "done"
    # Ten CelebAMask-HQ faces are CelebA train files: hygiene drops them.
    assert json.loads(counts)["train"] == {"listed": 220, "removed_hq": N_MAPPED, "kept": 210}
    suite = json.loads(suite_json)  # the include kept the real suite's keys
    params = suite["dataset"]["train"]["params"]  # mappings merge: exclude_hq survives
    assert params == {"root": f"{tmp}/celeba", "size": 32, "exclude_hq": f"{tmp}/CelebAMask-HQ"}
    assert suite["region_protocol"] == "celebamask" and suite["explain"]["target"] == "label"
    assert {m["name"] for m in suite["metrics"]} == METRICS
    scenarios = rows(db, "SELECT scenario FROM scenarios ORDER BY scenario")
    assert scenarios == [(sc,) for sc in sorted(KEEP)]
    for sc in KEEP:
        got = dict(rows(db, f"SELECT metric, value FROM scores WHERE scenario = '{sc}'"))
        assert set(got) == METRICS and all(v is not None for v in got.values())
        assert got["win_percent"] == 100  # one explainer wins every image
        regions = rows(
            db,
            "SELECT region, rank, n_present FROM region_scores WHERE scenario = "
            f"'{sc}' AND metric = 'ranking_position' AND explainer = 'gradcam' ORDER BY rank",
        )
        assert sorted(r for r, _, _ in regions) == sorted(REGION_NAMES)  # all 19
        present = [(r, k) for r, k, n in regions if n > 0]
        assert [k for _, k in present] == list(range(1, len(present) + 1))
        assert {r for r, _, n in regions if n == 0} >= NEVER_DRAWN
        assert all(k is None for r, k, _ in regions if r in NEVER_DRAWN)
        drawn_always = {"background", "skin", "nose", "u_lip", "l_lip", "hair"}
        assert all(n == 32 for r, _, n in regions if r in drawn_always)
    # age_smiling explains 8 faces per (Young, Smiling) cell: 16 smile (mouth present).
    ((mouth,),) = rows(
        db,
        "SELECT n_present FROM region_scores WHERE scenario = 'age_smiling' "
        "AND metric = 'ranking_position' AND region = 'mouth'",
    )
    assert mouth == 16


def test_celeba_bias_leaderboard_shows_paper_vs_ours(celeba_run):
    tmp, _, _ = celeba_run
    html = (tmp / "out" / "site" / "index.html").read_text()
    assert "Paper vs ours" in html and CELEBA_BIAS["metadata"]["paper"]["cite"] in html
    paper = CELEBA_BIAS["metadata"]["paper"]["scores"]
    assert paper["gender_lipstick"]["ranking_position"] == 1
    for sc in KEEP:
        want = paper[sc]["ranking_position"]
        cell = f'<td>{sc}</td><td title="ranking_position">Ranking position</td><td>{want}</td>'
        assert cell in html


def test_celeba_bias_run_prints_the_hygiene_counts(celeba_run):
    assert "removed_hq 10" in celeba_run[1]


def test_missing_hq_mapping_names_the_celebamask_hq_source(tmp_path, monkeypatch):
    (tmp_path / "celeba" / "img_align_celeba").mkdir(parents=True)
    for name in ("list_attr_celeba.txt", "list_eval_partition.txt",
                 "list_landmarks_align_celeba.txt"):  # fmt: skip
        (tmp_path / "celeba" / name).write_text("")
    monkeypatch.setenv("BENCH_DATA", str(tmp_path))
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(app, ["run", str(SUITES / "celeba_bias.yaml")])
    assert result.exit_code == 2 and "CelebA-HQ-to-CelebA-mapping.txt" in result.output
    assert "switchablenorms/CelebAMask-HQ" in result.output


# --- FairFace → RFW (FaceX §5.3) -----------------------------------------------------------


def test_fairface_race_rfw_plans_with_its_own_bias_regions(tmp_path, monkeypatch):
    test_fairface.build_replica(tmp_path / "fairface")
    test_rfw.build_replica(tmp_path / "RFW")
    monkeypatch.setenv("BENCH_DATA", str(tmp_path))
    p = plan(SUITES / "fairface_race_rfw.yaml", tmp_path / "r.duckdb", "cpu", False)
    # Race columns default to the skin: the cheek and forehead patches.
    assert p.bias_regions["gender_race"] == (
        ("left_cheek", "right_cheek", "left_forehead", "right_forehead"),
    )


def test_fairface_race_rfw_scaled_down_explains_predictions(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("BENCH_DATA", str(tmp_path))
    # 100 faces per (gender, race): ρ = 0.99 keeps 100 aligned and 1 conflicting per class.
    test_fairface.build_replica(tmp_path / "fairface", n_train=1400, n_val=14)
    test_rfw.build_replica(tmp_path / "RFW")  # 14 faces, 5 African
    (scenario,) = yaml.safe_load((SUITES / "fairface_race_rfw.yaml").read_text())["scenarios"]
    path = scaled_suite(tmp_path, "fairface_race_rfw", scenarios=[scenario])
    detect, seen = landmarks_mod.detect_landmarks, []

    def spy(images):
        seen.append(len(images))
        return detect(images)

    monkeypatch.setattr(landmarks_mod, "detect_landmarks", spy)
    result = CliRunner().invoke(app, ["run", str(path)])
    assert result.exit_code == 0, result.output
    assert sorted(seen) == [14, 1400]  # RFW and FairFace train, detected once each
    db = tmp_path / "out" / "r.duckdb"
    ((status, counts),) = rows(db, "SELECT status, data_counts FROM runs")
    assert status == "done"
    # Flat replica images hold no face: every landmark set is the template.
    train = json.loads(counts)["train"]
    assert (train["landmarks_detected"], train["landmarks_template"]) == (0, 1400)
    ((n_train, cells, test_cells, acc, acc_al, acc_cf, n_explained, n_al),) = rows(
        db,
        "SELECT n_train, train_cells, test_cells, accuracy, accuracy_aligned, "
        "accuracy_conflicting, n_explained, n_aligned FROM scenarios",
    )
    assert n_train == 202 and json.loads(cells) == {
        "Male=0,Black=0": 100, "Male=0,Black=1": 1, "Male=1,Black=0": 1, "Male=1,Black=1": 100,
    }  # fmt: skip
    # No gender labels: balanced over race only (5 African, 5 others), no accuracy.
    assert sum(json.loads(test_cells).values()) == n_explained == 10
    assert (acc, acc_al, acc_cf, n_al) == (None, None, None, None)
    got = dict(rows(db, "SELECT metric, value FROM scores"))
    assert set(got) == METRICS and all(v is not None for v in got.values())
    ranks = rows(db, "SELECT region, rank, n_present FROM region_scores ORDER BY rank")
    assert [r for r, _, _ in sorted(ranks)] == sorted(LANDMARK11)
    assert [k for _, k, _ in ranks] == list(range(1, 12)) and {n for *_, n in ranks} == {10}
    # Rerun: data (landmarks included) come from the cache, stored work is skipped.
    monkeypatch.setattr(landmarks_mod, "detect_landmarks", None)
    result = CliRunner().invoke(app, ["run", str(path), "--no-leaderboard"])
    assert result.exit_code == 0, result.output
    assert rows(db, "SELECT count(*) FROM scores") == [(5,)]
    # Explaining RFW for its (absent) labels is refused.
    label = scaled_suite(
        tmp_path, "fairface_race_rfw", scenarios=[scenario], db=str(tmp_path / "label.duckdb"),
        explain={"target": "label", "batch_size": 32, "max_images": 32},
    )  # fmt: skip
    result = CliRunner().invoke(app, ["run", str(label), "--no-leaderboard"])
    assert result.exit_code == 2
    assert "has no 'Male' labels; expected explain.target: prediction" in result.output


# --- FairFace census race (seed 001) -------------------------------------------------------


def test_fairface_census_race_scaled_down_follows_the_shares(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("BENCH_DATA", str(tmp_path))
    test_fairface.build_replica(tmp_path / "fairface", n_train=1400, n_val=70)  # 200/10 a race
    full = yaml.safe_load((SUITES / "fairface_census_race.yaml").read_text())
    path = scaled_suite(tmp_path, "fairface_census_race")
    result = CliRunner().invoke(app, ["run", str(path)])
    assert result.exit_code == 0, result.output
    db = tmp_path / "out" / "r.duckdb"
    assert rows(db, "SELECT status FROM runs") == [("done",)]
    races = FairFace.group_values["race"]  # the class ids of the cells
    got = {s: (json.loads(c), json.loads(t), h, n) for s, c, t, h, n in rows(
        db, "SELECT scenario, train_cells, test_cells, model_hash, n_explained FROM scenarios"
    )}  # fmt: skip
    for sc in full["scenarios"]:
        shares = {races.index(k): v for k, v in sc["bias"]["proportions"].items()}
        total = sum(shares.values())
        n = min(200 / (v / total) for v in shares.values())  # 200 faces of each race
        want = {f"race={c}": int(n * v / total + 1e-9) for c, v in sorted(shares.items())}
        cells, test_cells, model_hash, n_explained = got[sc["name"]]
        assert cells == want
        assert test_cells == {f"race={c}": 10 for c in range(7)} and n_explained == 7 * 4
        model = MODELS.get("small_cnn")(n_classes=7, width=8)
        assert CheckpointCache(tmp_path / "cache").load(model_hash, model) is not None
        assert model.eval()(torch.zeros(1, 3, 32, 32)).shape == (1, 7)
        scores = dict(rows(db, f"SELECT metric, value FROM scores WHERE scenario = '{sc['name']}'"))
        assert set(scores) == {m if isinstance(m, str) else m["name"] for m in full["metrics"]}
        assert all(v is not None for v in scores.values())
    assert got["census"][0] == {"race=0": 200, "race=1": 43, "race=2": 61, "race=3": 7,
                                "race=4": 7, "race=5": 4, "race=6": 8}  # fmt: skip
    assert set(got["balanced"][0].values()) == {200}
