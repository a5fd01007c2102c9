"""A tiny end-to-end run: DB rows checked, a rerun adds none, an interrupted run resumes."""

from __future__ import annotations

import importlib.metadata
import io
import json
from pathlib import Path

import duckdb
import pytest
import torch
from rich.console import Console
from typer.testing import CliRunner

from benchmark.cli import app
from benchmark.runner import run_suite
from benchmark.store import TABLES

SUITE = """
name: tiny
seed: 3
device: cpu
dataset:
  train: {{name: synthetic_faces, params: {{n: 900, size: 32}}}}
  test: {{name: synthetic_faces, params: {{n: 320, size: 32}}}}
model:
  arch: small_cnn
  params: {{width: 8}}
  train: {{epochs: 1, batch_size: 64}}
scenarios:
  - {{name: lipstick, target: Male, attributes: [Wearing_Lipstick], rho: 0.9, direction: negative}}
  - {{name: control, target: Male, attributes: [Wearing_Lipstick], rho: 0.5, direction: negative}}
explainers: [gradcam]
metrics: [{{name: ranking_position, params: {{ior: soft}}}}]
explain: {{batch_size: 64}}
db: {db}
"""


@pytest.fixture
def suite(tmp_path) -> Path:
    path = tmp_path / "tiny.yaml"
    path.write_text(SUITE.format(db=tmp_path / "out" / "r.duckdb"))
    return path


def quiet() -> Console:
    return Console(file=io.StringIO(), width=200)


def rows(db: Path, sql: str) -> list[tuple]:
    with duckdb.connect(str(db), read_only=True) as con:
        return con.execute(sql).fetchall()


def counts(db: Path) -> dict[str, int]:
    return {t: rows(db, f"SELECT count(*) FROM {t}")[0][0] for t in TABLES}


# One gradcam over two scenarios: 2 scores, 19 regions each, 8 reliance attributes each
# (the 7 accessories and skin tone), a prototype, a patch grid, a canonical summary and
# a gallery of 4 faces each.
TINY_COUNTS = {
    "runs": 1, "scenarios": 2, "scores": 2, "region_scores": 2 * 19, "per_image": 0,
    "image_scores": 0, "reliance": 2 * 8, "figures": 2 * (3 + 4), "work_done": 2, "shards": 1,
}  # fmt: skip


def test_tiny_run_rows_and_rerun_adds_nothing(suite, tmp_path):
    db = tmp_path / "out" / "r.duckdb"
    console = quiet()
    run_id = run_suite(suite, console=console)
    assert counts(db) == TINY_COUNTS
    (status, seed, packages, timings, suite_hash) = rows(
        db, "SELECT status, seed, packages, timings, suite_hash FROM runs"
    )[0]
    assert status == "done" and seed == 3 and len(suite_hash) == 64
    # The installed torch is recorded (2.14 with our pins; a GPU box may bring its own).
    assert json.loads(packages)["torch"] == importlib.metadata.version("torch")
    assert {"data", "total", "train/lipstick", "explain/control"} <= set(json.loads(timings))
    scen = {
        r[0]: r
        for r in rows(
            db,
            "SELECT scenario, n_train, train_cells, accuracy, "
            "accuracy_aligned, accuracy_conflicting, cached FROM scenarios",
        )
    }
    cells = json.loads(scen["lipstick"][2])
    assert cells["Male=1,Wearing_Lipstick=1"] * 9 == pytest.approx(
        cells["Male=1,Wearing_Lipstick=0"], abs=9
    )  # 10% conflicting
    assert all(0.0 <= scen[s][3] <= 1.0 and scen[s][6] is False for s in scen)
    rp = rows(db, "SELECT scenario, explainer, metric, value, n, direction FROM scores ORDER BY 1")
    assert [(r[0], r[1], r[2], r[5]) for r in rp] == [
        ("control", "gradcam", "ranking_position", "lower"),
        ("lipstick", "gradcam", "ranking_position", "lower"),
    ]
    assert all(1 <= r[3] <= 19 and r[4] > 0 for r in rp)
    ranks = rows(
        db, "SELECT rank FROM region_scores WHERE scenario='lipstick' AND rank IS NOT NULL"
    )
    assert sorted(r[0] for r in ranks) == list(range(1, len(ranks) + 1))
    text = console.file.getvalue()
    assert "scores" in text and "lipstick" in text and "ranking position ↓" in text

    again = quiet()
    assert run_suite(suite, console=again) == run_id
    assert counts(db) == TINY_COUNTS
    assert all(r[0] for r in rows(db, "SELECT cached FROM scenarios"))  # models from the cache
    assert "lipstick" in again.file.getvalue()  # summary still shows stored work


def test_interrupted_run_resumes_without_redoing_work(suite, tmp_path, monkeypatch):
    """Ctrl-C in the middle of the second scenario's explainer: the first stays stored."""
    import benchmark.runner as runner
    from explainers.gradcam import GradCAM

    db = tmp_path / "out" / "r.duckdb"
    state = {"scenario": None, "interrupt": True, "explained": 0}
    original_score, original_explain = runner.explain_and_score, GradCAM.explain

    def tracking_score(p, sc, *args, **kwargs):
        state["scenario"] = sc.name
        return original_score(p, sc, *args, **kwargs)

    def flaky(self, x, y, l_batch=None, r_batch=None):
        if state["scenario"] == "control" and state["interrupt"]:
            raise KeyboardInterrupt
        state["explained"] += len(x)
        return original_explain(self, x, y, l_batch, r_batch)

    monkeypatch.setattr(runner, "explain_and_score", tracking_score)
    monkeypatch.setattr(GradCAM, "explain", flaky)
    with pytest.raises(KeyboardInterrupt):
        run_suite(suite, console=quiet())
    assert rows(db, "SELECT status FROM runs") == [("interrupted",)]
    assert rows(db, "SELECT scenario FROM work_done") == [("lipstick",)]
    assert rows(db, "SELECT DISTINCT scenario FROM scores") == [("lipstick",)]

    state.update(interrupt=False, explained=0)
    run_suite(suite, console=quiet())
    assert rows(db, "SELECT status FROM runs") == [("done",)]
    assert counts(db)["work_done"] == 2 and counts(db)["scores"] == 2
    n_control = rows(db, "SELECT n_explained FROM scenarios WHERE scenario = 'control'")[0][0]
    assert state["explained"] == n_control  # only the unfinished scenario was explained


def test_same_seed_same_numbers_whatever_ran_before(suite, tmp_path, monkeypatch):
    """Two fresh runs in one process (the global RNG already used) agree to the bit."""
    first = tmp_path / "out" / "r.duckdb"
    run_suite(suite, console=quiet())
    torch.rand(1000)  # disturb the global RNG, as any earlier work would
    monkeypatch.setenv("BENCH_CACHE", str(tmp_path / "other-cache"))
    second = tmp_path / "second.duckdb"
    run_suite(suite, db=second, console=quiet())
    sql = "SELECT scenario, explainer, metric, value FROM scores ORDER BY 1, 2, 3"
    assert rows(first, sql) == rows(second, sql)
    sql = "SELECT scenario, model_hash, accuracy, accuracy_conflicting FROM scenarios ORDER BY 1"
    assert rows(first, sql) == rows(second, sql)
    sql = "SELECT scenario, region, ior FROM region_scores ORDER BY 1, 2"
    assert rows(first, sql) == rows(second, sql)


@pytest.mark.parametrize(
    ("change", "field"),
    [
        (("rho: 0.9", "rho: 1.5"), "scenarios[0].rho"),
        (("n: 900", "n: -5"), "dataset.train.params: need n >= 0"),
        (("{ior: soft}", "{ior: hard}"), "metrics[0].params: ior must be 'soft' or 'thresholded'"),
    ],
)
def test_bad_suite_exits_2_and_writes_nothing(tmp_path, change, field):
    bad = tmp_path / "bad.yaml"
    bad.write_text(SUITE.format(db=tmp_path / "out" / "r.duckdb").replace(*change))
    result = CliRunner().invoke(app, ["run", str(bad)])
    assert result.exit_code == 2
    assert field in result.output and "Traceback" not in result.output
    assert len(result.output.strip().splitlines()) == 1
    assert not (tmp_path / "out").exists() and not (tmp_path / "cache").exists()


def test_every_registered_metric_scores_every_scenario(tmp_path):
    """The whole metric registry through the runner: a finite value per scenario."""
    from benchmark.catalogue import METRICS

    names = METRICS.names()
    text = SUITE.format(db=tmp_path / "all.duckdb").replace(
        "metrics: [{name: ranking_position, params: {ior: soft}}]", f"metrics: [{', '.join(names)}]"
    )
    suite = tmp_path / "all.yaml"
    suite.write_text(text)
    run_suite(suite, console=quiet(), leaderboard=False)
    got = rows(tmp_path / "all.duckdb", "SELECT scenario, metric, value, n, direction FROM scores")
    for scenario in ("lipstick", "control"):
        mine = {m: (v, n, d) for s, m, v, n, d in got if s == scenario}
        assert set(names) <= set(mine), (scenario, sorted(mine))
        for value, n, direction in mine.values():
            assert value == value and n > 0 and direction in ("higher", "lower")
