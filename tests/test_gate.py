"""CI gates on explanation quality (issue 6): identical reruns, a degraded explainer
caught alone, no false alarm across seeds, and the statistics by hand."""

from __future__ import annotations

import io
import json
import math
from pathlib import Path

import duckdb
import numpy as np
import pytest
import torch
from rich.console import Console
from typer.testing import CliRunner

from benchmark.baseline import dumps, load
from benchmark.cli import app
from benchmark.compare import Row, Side, bootstrap_se, compare, load_side
from benchmark.runner import run_suite
from explainers.gradcam import GradCAM

QUICKSTART = Path(__file__).parents[1] / "suites" / "quickstart.yaml"
# The quickstart, scaled down: its scenarios and metrics, fewer faces and explainers.
SCALED = """
include: {quickstart}
{seeds}
device: cpu
db: {db}
cache_dir: {cache}
dataset:
  train: {{name: synthetic_faces, params: {{n: 1200, size: 32}}}}
  test: {{name: synthetic_faces, params: {{n: 400, size: 32}}}}
model: {{arch: small_cnn, params: {{width: 8}}, train: {{epochs: 2, batch_size: 64}}}}
explainers:
  - gradcam
  - {{name: integrated_gradients, params: {{n_steps: 8}}}}
  - occlusion
explain: {{batch_size: 32, max_images: 32}}
figures: {{enabled: false}}
"""


def scaled(tmp: Path, name: str, seeds: str = "seed: 0", db: str = "r") -> Path:
    path = tmp / f"{name}.yaml"
    path.write_text(SCALED.format(quickstart=QUICKSTART, seeds=seeds, db=tmp / f"{db}.duckdb",
                                  cache=tmp / f"cache-{name}"))  # fmt: skip
    return path


def run(path: Path) -> str:
    return run_suite(path, console=Console(file=io.StringIO()), leaderboard=False)


def table(db: Path, sql: str) -> list[tuple]:
    with duckdb.connect(str(db), read_only=True) as con:
        return con.execute(sql).fetchall()


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """The scaled quickstart run once, and its baseline file."""
    tmp = tmp_path_factory.mktemp("gate")
    path = scaled(tmp, "a", db="a")
    ref = run(path)
    out = tmp / "quickstart.baseline.json"
    result = CliRunner().invoke(
        app, ["baseline", "save", str(path), "--run", ref, "--out", str(out)]
    )
    assert result.exit_code == 0, result.output
    return tmp, path, ref, out


def test_same_seed_twice_is_identical_to_the_bit_and_check_passes(reference):
    tmp, _, ref, baseline = reference
    again = scaled(tmp, "b", db="b")  # another DB and model cache: everything recomputed
    assert run(again) == ref  # same suite, same code: the same run id
    sql = ("SELECT scenario, explainer, metric, value FROM scores ORDER BY ALL",
           "SELECT scenario, explainer, metric, values FROM image_scores ORDER BY ALL",
           "SELECT scenario, explainer, metric, values FROM per_image ORDER BY ALL")  # fmt: skip
    for q in sql:
        a, b = table(tmp / "a.duckdb", q), table(tmp / "b.duckdb", q)
        # repr of a float round-trips exactly (and NaN equals NaN): the last bit.
        assert repr(a) == repr(b) and len(a) > 0
    result = CliRunner().invoke(app, ["check", str(again), "--baseline", str(baseline)])
    assert result.exit_code == 0, result.output
    assert "check passed" in result.output
    rows = json.loads(baseline.read_text())["rows"]
    assert len(rows) == len(table(tmp / "a.duckdb", sql[0])) and rows[0]["seeds"]
    text = baseline.read_text()
    assert sum('"scenario":' in line for line in text.splitlines()) == len(rows)  # a line each


def _shuffled(self, xb, yb, **extra):
    """Grad-CAM's maps with their pixels shuffled: a regression of the explainer."""
    maps = _ORIGINAL(self, xb, yb, **extra)
    flat = maps.flatten(1)
    perm = torch.randperm(flat.shape[1], generator=torch.Generator().manual_seed(0))
    return flat[:, perm.to(flat.device)].view_as(maps)


_ORIGINAL = GradCAM.attribute


def test_a_degraded_explainer_fails_the_check_with_only_its_rows_worse(reference, monkeypatch):
    tmp, _, _, baseline = reference
    monkeypatch.setattr(GradCAM, "attribute", _shuffled)
    degraded = scaled(tmp, "c", db="c")
    result = CliRunner().invoke(app, ["check", str(degraded), "--baseline", str(baseline)])
    assert result.exit_code == 1, result.output
    with duckdb.connect(str(tmp / "c.duckdb"), read_only=True) as con:
        side = load_side(con, table(tmp / "c.duckdb", "SELECT run_id FROM runs")[0][0])
    verdicts = compare(load(baseline), side)
    worse = [v.key for v in verdicts if v.verdict == "worse"]
    assert worse and {explainer for _, explainer, _ in worse} == {"gradcam"}
    # Shuffled maps lose every Win % comparison with the other explainers' maps.
    assert ("lipstick", "gradcam", "win_percent") in worse
    assert "worse" in result.output and "gradcam" in result.output


def test_three_seeds_unchanged_explainers_raise_no_false_alarm(tmp_path):
    first = run(scaled(tmp_path, "s012", "seeds: [0, 1, 2]"))
    second = run(scaled(tmp_path, "s345", "seeds: [3, 4, 5]"))
    with duckdb.connect(str(tmp_path / "r.duckdb"), read_only=True) as con:
        assert con.execute("SELECT count(DISTINCT group_id), count(*) FROM runs").fetchone() == (
            2,
            6,
        )
        a, b = load_side(con, first), load_side(con, second)
    assert a.seeds == [0, 1, 2] and b.seeds == [3, 4, 5]
    verdicts = compare(a, b) + compare(b, a)
    assert [v.key for v in verdicts if v.verdict == "worse"] == []
    # The seeds do differ: the scores are not identical, the gate tolerates it.
    assert any(v.diff != 0 for v in verdicts)


# --- the statistics, by hand -------------------------------------------------------------


def test_bootstrap_se_of_one_seed_is_the_standard_error_of_its_images():
    values = np.random.default_rng(0).normal(size=400)
    row = Row("higher", {0: values.mean()}, {0: values})
    se = bootstrap_se(row, 4000, np.random.default_rng(1))
    assert se == pytest.approx(values.std() / math.sqrt(400), rel=0.05)
    # Dataset-level scores over k seeds: the spread of the seed means, √(k/(k−1)) corrected.
    seeds = Row("lower", {0: 1.0, 1: 2.0, 2: 6.0})
    expected = np.std([1.0, 2.0, 6.0], ddof=1) / math.sqrt(3)
    assert bootstrap_se(seeds, 20000, np.random.default_rng(2)) == pytest.approx(expected, rel=0.05)


def side(values: dict, se: float = 0.0, seeds=(0,)) -> Side:
    rows = {key: Row(d, dict.fromkeys(seeds, v), value=v, se=se) for key, (d, v) in values.items()}
    return Side("x", list(seeds), rows, {"m_hi": 0.5, "m_lo": 0.5})


def test_verdicts_follow_direction_interval_and_tolerance():
    k_hi, k_lo = ("s", "e", "m_hi"), ("s", "e", "m_lo")
    a = side({k_hi: ("higher", 10.0), k_lo: ("lower", 10.0)}, se=0.1)
    # Higher-better falls 1.0 (CI ±0.277 at 95 % with se 0.1 + 0.1): worse; the
    # lower-better falls 1.0: better.
    b = side({k_hi: ("higher", 9.0), k_lo: ("lower", 9.0)}, se=0.1)
    got = {v.key: v for v in compare(a, b, correction="none")}
    assert got[k_hi].verdict == "worse" and got[k_lo].verdict == "better"
    assert got[k_hi].diff == -1.0
    assert got[k_hi].high == pytest.approx(-1.0 + 1.959964 * math.hypot(0.1, 0.1), rel=1e-5)
    # Within tolerance (0.5), or inside the noise: unchanged.
    small = side({k_hi: ("higher", 9.6), k_lo: ("lower", 10.4)}, se=0.1)
    assert {v.verdict for v in compare(a, small, correction="none")} == {"unchanged"}
    noisy = side({k_hi: ("higher", 9.0), k_lo: ("lower", 11.0)}, se=1.0)
    assert {v.verdict for v in compare(a, noisy, correction="none")} == {"unchanged"}
    # A row that disappeared is reported, and fails a check.
    gone = compare(a, side({k_hi: ("higher", 10.0)}))
    assert {v.key: v.verdict for v in gone}[k_lo] == "missing"


def test_three_seeds_widen_the_interval_with_student_t():
    key = ("s", "e", "m_hi")
    a = side({key: ("higher", 10.0)}, se=0.2, seeds=(0, 1, 2))
    b = side({key: ("higher", 9.3)}, se=0.2, seeds=(3, 4, 5))
    (v,) = compare(a, b, tolerance={"m_hi": 0.0}, correction="none")
    # Welch df = (2·0.04)² / (2·0.04²/2) = 4; t(0.975, 4) = 2.776 (not z = 1.96).
    assert v.high - v.diff == pytest.approx(2.776445 * math.hypot(0.2, 0.2), rel=1e-5)
    # −0.7 + 0.785 > 0: unchanged; the normal interval (−0.7 + 0.554 < 0) would say worse.
    assert v.verdict == "unchanged"


def test_baseline_round_trip_is_exact_and_one_line_per_row(tmp_path):
    key = ("sc", "gradcam", "bbox_ap")
    s = Side("run", [0, 1], {key: Row("higher", {0: 0.1, 1: 0.2}, value=0.15000000000000002,
                                      se=1 / 3)}, {"bbox_ap": 0.02}, "quickstart")  # fmt: skip
    text = dumps(s, "abc")
    path = tmp_path / "b.json"
    path.write_text(text)
    back = load(path)
    assert back.rows[key].value == 0.15000000000000002 and back.rows[key].se == 1 / 3
    assert back.seeds == [0, 1] and back.tolerance == {"bbox_ap": 0.02}
    (line,) = [line for line in text.splitlines() if '"scenario"' in line]
    assert json.loads(line.strip().rstrip(","))["metric"] == "bbox_ap"
    path.write_text("{}")
    result = CliRunner().invoke(app, ["compare", str(path), str(path)])
    assert result.exit_code == 2 and "format: expected" in result.output
