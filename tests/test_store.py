from __future__ import annotations

import duckdb
import pytest

from benchmark.store import Store

SCORE = {"metric": "ranking_position", "value": 1.0, "n": 4, "direction": "lower"}
REGION = {"metric": "ranking_position", "region": "skin", "ior": 0.5, "rank": 1, "n_present": 4}


def test_writes_are_keyed_and_replace(tmp_path):
    with Store(tmp_path / "r.duckdb") as store:
        assert not store.is_done("run", "sc", "gradcam")
        figure = {"kind": "prototype", "path": "p.png", "png": b"\x89PNG"}
        store.put_explainer_results("run", "sc", "gradcam", [SCORE], [REGION], 1.0)
        store.put_explainer_results(
            "run", "sc", "gradcam", [{**SCORE, "value": 2.0}], [REGION], 1.0,
            per_image={"win_percent": [0.25, 0.5]}, figures=[figure],
            image_scores={"average_drop": [1.0, float("nan")]},
        )  # fmt: skip
        assert store.is_done("run", "sc", "gradcam")
        assert store.counts() == {
            "runs": 0, "scenarios": 0, "scores": 1, "region_scores": 1, "per_image": 1,
            "image_scores": 1, "reliance": 0, "figures": 1, "work_done": 1, "shards": 0,
        }  # fmt: skip
        assert store.con.execute("SELECT value FROM scores").fetchall() == [(2.0,)]
        assert store.per_image("run", "sc", "win_percent") == {"gradcam": [0.25, 0.5]}
        assert store.con.execute("SELECT png FROM figures").fetchone()[0] == b"\x89PNG"


def test_reliance_round_trip(tmp_path):
    with Store(tmp_path / "r.duckdb") as store:
        assert store.reliance("run", "sc") == {}
        rows = [{"attribute": "Wearing_Hat", "regions": ["hat"], "reliance": 0.4, "n": 8}]
        store.put_reliance("run", "sc", rows)
        assert store.reliance("run", "sc") == {"Wearing_Hat": 0.4}


def test_old_database_gains_new_columns(tmp_path):
    path = tmp_path / "old.duckdb"
    with duckdb.connect(str(path)) as con:  # region_scores as first released
        con.execute(
            "CREATE TABLE region_scores (run_id VARCHAR, scenario VARCHAR, explainer VARCHAR, "
            "metric VARCHAR, region VARCHAR, ior DOUBLE, rank INTEGER, n_present BIGINT, "
            "PRIMARY KEY (run_id, scenario, explainer, metric, region))"
        )
    with Store(path) as store:
        store.put_explainer_results(
            "run", "sc", "gradcam", [SCORE], [{**REGION, "top_share": 0.75}], 1.0
        )
        assert store.con.execute("SELECT top_share FROM region_scores").fetchall() == [(0.75,)]


def test_failed_write_leaves_nothing(tmp_path):
    with Store(tmp_path / "r.duckdb") as store:
        with pytest.raises(duckdb.ConstraintException):  # a region row without its key
            store.put_explainer_results("run", "sc", "gradcam", [SCORE], [{"metric": "x"}], 1.0)
        assert store.counts()["scores"] == 0 and not store.is_done("run", "sc", "gradcam")


def test_run_restart_keeps_start_time(tmp_path):
    run = {
        "run_id": "r1", "suite": "s", "suite_path": "s.yaml", "suite_hash": "h", "seed": 0,
        "git_sha": None, "packages": {"torch": "2"}, "device": "cpu", "started_at": None,
        "suite_json": {},
    }  # fmt: skip
    with Store(tmp_path / "r.duckdb") as store:
        store.con.execute("SELECT 1")
        store.start_run({**run, "started_at": "2026-01-01 00:00:00"})
        store.finish_run("r1", "interrupted", {"total": 1.0})
        store.start_run({**run, "started_at": "2026-02-02 00:00:00"})
        started, status = store.con.execute("SELECT started_at, status FROM runs").fetchone()
        assert str(started).startswith("2026-01-01") and status == "running"
        assert store.counts()["runs"] == 1
