"""suites/lfw_dlib_verification.yaml on an LFW-layout folder of the four real faces of
../shared (image 2 of each person: the face mirrored and darkened), with dlib's real
embedding. Skipped where the samples or dlib are absent."""

from __future__ import annotations

import io
from pathlib import Path

import cv2
import duckdb
import pytest
import yaml
from rich.console import Console

from benchmark.runner import run_suite
from tests.model_zoo import needs_dlib_models
from tests.test_celebamask_hq import SAMPLES

pytestmark = pytest.mark.skipif(not SAMPLES.is_dir(), reason="../shared samples absent")
needs_dlib_models()
SUITES = Path(__file__).parents[1] / "suites"


def lfw_of_the_samples(root: Path) -> Path:
    """``root/lfw/Person_i/Person_i_000N.jpg`` and a one-fold ``pairs.txt``: 4 mated
    pairs (each face and its mirror) and 4 nonmated ones (face i and person i+1)."""
    for i in range(4):
        folder = root / "lfw" / f"Person_{i}"
        folder.mkdir(parents=True)
        img = cv2.imread(str(SAMPLES / f"{i}.jpg"))
        cv2.imwrite(str(folder / f"Person_{i}_0001.jpg"), img)
        cv2.imwrite(str(folder / f"Person_{i}_0002.jpg"), (img[:, ::-1] * 0.85).astype("uint8"))
    same = [f"Person_{i}\t1\t2" for i in range(4)]
    diff = [f"Person_{i}\t1\tPerson_{(i + 1) % 4}\t2" for i in range(4)]
    (root / "pairs.txt").write_text("\n".join(["1\t4", *same, *diff]) + "\n")
    return root


def test_lfw_dlib_verification_tells_mates_from_impostors(tmp_path, monkeypatch):
    monkeypatch.setenv("BENCH_DATA", str(tmp_path))
    lfw_of_the_samples(tmp_path / "lfw")
    small = {
        "include": str(SUITES / "lfw_dlib_verification.yaml"),
        "explainers": [{"name": "occlusion", "params": {"window": 48, "stride": 32}}],
        "metrics": ["average_drop"],  # dlib runs ~12 chips/s: keep the forwards few
        "explain": {"batch_size": 8, "max_images": 4},
        "figures": {"enabled": False},
    }
    path = tmp_path / "small.yaml"
    path.write_text(yaml.safe_dump(small))
    db = tmp_path / "r.duckdb"
    run_suite(path, db=db, console=Console(file=io.StringIO()), leaderboard=False)
    with duckdb.connect(str(db), read_only=True) as con:
        rows = con.execute(
            "SELECT scenario, accuracy, accuracy_aligned, accuracy_conflicting, n_explained "
            "FROM scenarios ORDER BY scenario"
        ).fetchall()
        drop = con.execute(
            "SELECT value FROM scores WHERE scenario = 'mated' AND metric = 'average_drop'"
        ).fetchone()[0]
    # dlib separates the four people from their mirrored, darker images perfectly.
    assert rows == [("mated", 1.0, 1.0, 1.0, 4), ("nonmated", 1.0, 1.0, 1.0, 4)]
    assert 0 < drop < 100  # darkening what occlusion marks lowers the similarity
