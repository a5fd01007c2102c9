"""`bench export`: every table round-trips through csv, parquet and json; errors write nothing."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import duckdb
import pytest
from typer.testing import CliRunner

from benchmark.cli import app
from benchmark.store import TABLES, Store

RUNS = ("a1b2c3d4e5f60718", "a1ff00112233aabb", "c0ffee0123456789")
PNG = b"\x89PNG\r\n\x1a\n\x00\xff"
READERS = {"csv": "read_csv_auto", "parquet": "read_parquet", "json": "read_json_auto"}


def _fill(store: Store, run_id: str, i: int) -> None:
    store.start_run(
        {
            "run_id": run_id, "suite": "tiny", "suite_path": "tiny.yaml", "suite_hash": "h" * 8,
            "seed": i, "git_sha": "deadbeef", "packages": {"torch": "2.14.1"}, "device": "cpu",
            "started_at": f"2026-01-0{i + 1} 10:00:00", "suite_json": {"name": "tiny"},
            "group_id": "g-one",
        }
    )  # fmt: skip
    store.finish_run(run_id, "done", {"total": 1.5 + i})
    store.put_data_counts(run_id, {"train": {"kept": 10}})
    store.put_scenario(
        {
            "run_id": run_id, "scenario": "lipstick", "target": "Male",
            "attributes": ["Wearing_Lipstick"], "rho": 0.99, "directions": ["negative"],
            "bias_regions": ["u_lip", "l_lip"], "model_hash": "m", "n_train": 100,
            "n_test": 40, "train_cells": {"0/0": 1}, "test_cells": {"0/0": 10},
            "accuracy": 0.5 + i / 10, "accuracy_aligned": 0.9, "accuracy_conflicting": 0.1,
            "n_aligned": 20, "n_conflicting": 20, "train_seconds": 2.25, "cached": i == 1,
            "n_explained": 8,
        }
    )  # fmt: skip
    store.put_explainer_results(
        run_id, "lipstick", "gradcam",
        [{"metric": "ranking_position", "value": 1.0 + i, "n": 8, "direction": "lower",
          "details": {"per_region": [0.25, 0.5]}}],
        [{"metric": "ranking_position", "region": "u_lip", "ior": 0.125, "rank": 1,
          "n_present": 8, "top_share": 0.75}],
        3.5, per_image={"win_percent": [0.25, 1 / 3]},
        figures=[{"kind": "prototype", "path": "p.png", "png": PNG}],
    )  # fmt: skip
    store.put_reliance(
        run_id, "lipstick",
        [{"attribute": "Wearing_Lipstick", "regions": ["u_lip"], "reliance": 0.4, "n": 8}],
    )  # fmt: skip
    store.con.execute(
        "INSERT INTO image_scores VALUES (?, 'lipstick', 'gradcam', 'bbox_ap', [0.5, 0.75])",
        [run_id],
    )
    plan = {"scenarios": ["lipstick"], "explainers": ["gradcam"], "cells": [["lipstick", "x"]]}
    store.put_shard(run_id, "g-one", (1, 1), "done", {"total": 1.5 + i}, plan)


@pytest.fixture
def db(tmp_path: Path) -> Path:
    path = tmp_path / "r.duckdb"
    with Store(path) as store:
        for i, run_id in enumerate(RUNS):
            _fill(store, run_id, i)
    return path


@pytest.fixture
def work(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty current folder: default outputs land here, and errors must leave it empty."""
    folder = tmp_path / "work"
    folder.mkdir()
    monkeypatch.chdir(folder)
    return folder


def _normalised(rows: list[tuple], types: list[str]) -> list[tuple]:
    """Values as the formats encode them, decoded: JSON and list text, base64 PNG bytes."""

    def one(value: object, kind: str) -> object:
        if isinstance(value, str) and (kind == "JSON" or kind.endswith("[]")):
            return json.loads(value)
        if isinstance(value, str) and kind == "BLOB":
            return base64.b64decode(value)
        return value

    return [tuple(one(v, t) for v, t in zip(row, types, strict=True)) for row in rows]


def _table(db: Path, table: str, run_id: str | None = None) -> tuple[list[str], list[tuple]]:
    with duckdb.connect(str(db), read_only=True) as con:
        types = con.execute(
            "SELECT column_name, data_type FROM duckdb_columns() WHERE table_name = ? "
            "ORDER BY column_index",
            [table],
        ).fetchall()
        (keys,) = con.execute(
            "SELECT constraint_column_names FROM duckdb_constraints() "
            "WHERE table_name = ? AND constraint_type = 'PRIMARY KEY'",
            [table],
        ).fetchone()
        where = " WHERE run_id = ?" if run_id else ""
        rows = con.execute(
            f"SELECT * FROM {table}{where} ORDER BY {', '.join(keys)}", [run_id] if run_id else []
        ).fetchall()
    names = [c for c, _ in types]
    return names, _normalised(rows, [t for _, t in types])


def _read(path: Path, fmt: str, db: Path, table: str) -> tuple[list[str], list[tuple]]:
    with duckdb.connect(str(db), read_only=True) as con:
        types = [
            t
            for (t,) in con.execute(
                "SELECT data_type FROM duckdb_columns() WHERE table_name = ? ORDER BY column_index",
                [table],
            ).fetchall()
        ]
    with duckdb.connect() as con:
        rel = con.execute(f"SELECT * FROM {READERS[fmt]}('{path}')")
        names = [d[0] for d in rel.description]
        return names, _normalised(rel.fetchall(), types)


def export(*args: str) -> object:
    return CliRunner().invoke(app, ["export", *args])


@pytest.mark.parametrize("fmt", ["csv", "parquet", "json"])
@pytest.mark.parametrize("table", TABLES)
def test_every_table_round_trips(db, work, table, fmt):
    result = export(table, "--format", fmt, "--db", str(db))
    assert result.exit_code == 0, result.output
    path = work / f"{table}.{fmt}"  # the default: <table>.<ext> in the current folder
    assert f"{table}: 3 row(s) → {table}.{fmt}" in result.output
    assert sorted(p.name for p in work.iterdir()) == [f"{table}.{fmt}"]  # no partial left
    expected = _table(db, table)
    assert len(expected[1]) == 3
    assert _read(path, fmt, db, table) == expected


def test_png_bytes_are_raw_in_parquet_and_base64_elsewhere(db, work):
    for fmt in ("csv", "json", "parquet"):
        assert export("figures", "--format", fmt, "--db", str(db)).exit_code == 0
    with duckdb.connect() as con:
        pngs = {
            fmt: con.execute(f"SELECT png FROM {READERS[fmt]}('figures.{fmt}')").fetchall()
            for fmt in READERS
        }
    assert pngs["parquet"] == [(PNG,)] * 3
    assert pngs["csv"] == pngs["json"] == [("iVBORw0KGgoA/w==",)] * 3


def test_json_is_one_array_with_nested_json_columns(db, work):
    assert export("runs", "--format", "json", "--db", str(db)).exit_code == 0
    runs = json.loads((work / "runs.json").read_text())  # the standard library reads it
    assert [r["seed"] for r in runs] == [0, 1, 2]
    assert runs[0]["packages"] == {"torch": "2.14.1"} and runs[2]["timings"] == {"total": 3.5}
    assert runs[1]["started_at"] == "2026-01-02 10:00:00" and runs[1]["group_id"] == "g-one"


@pytest.mark.parametrize(("prefix", "run_id"), [("c0f", RUNS[2]), (RUNS[1], RUNS[1])])
def test_run_filter_accepts_a_unique_prefix(db, work, prefix, run_id):
    out = work / "sub" / "scores.parquet"
    result = export(
        "scores", "--format", "parquet", "--db", str(db), "--out", str(out), "--run", prefix
    )
    assert result.exit_code == 0, result.output
    assert "scores: 1 row(s)" in result.output
    names, rows = _read(out, "parquet", db, "scores")
    assert rows == _table(db, "scores", run_id)[1]
    assert [r[names.index("run_id")] for r in rows] == [run_id]
    assert rows[0][names.index("value")] == 1.0 + RUNS.index(run_id)


def test_out_may_name_a_folder(db, work):
    result = export("runs", "--format", "csv", "--db", str(db), "--out", str(work))
    assert result.exit_code == 0, result.output
    assert (work / "runs.csv").read_text().splitlines()[0].startswith("run_id,suite,")


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["socres", "--format", "csv"], "unknown table 'socres'; expected one of runs, "),
        (["socres", "--format", "csv"], "did you mean 'scores'?"),
        (["scores", "--format", "xlsx"], "--format: unknown format 'xlsx'; expected one of csv, "),
        (["scores", "--format", "jsno"], "did you mean 'json'?"),
        (["scores", "--format", "csv", "--run", "zz"], "--run: no run id starts with 'zz'"),
        (["scores", "--format", "csv", "--run", "a1"], "--run: 'a1' is ambiguous, 2 runs"),
        (["scores", "--format", "csv", "--db", "missing.duckdb"], "--db: no results database"),
    ],
)
def test_bad_input_is_one_line_exit_2_and_writes_nothing(db, work, args, message):
    if "--db" not in args:
        args = [*args, "--db", str(db)]
    result = export(*args, "--out", str(work / "out" / "x.csv"))
    assert result.exit_code == 2
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), result.output
    assert message in " ".join(result.output.split())
    assert list(work.iterdir()) == []


def test_a_file_that_is_not_a_database_is_an_error(work):
    (work / "notes.duckdb").write_text("not a database")
    result = export("runs", "--format", "csv", "--db", "notes.duckdb")
    assert result.exit_code == 2 and "cannot open notes.duckdb" in result.output
    assert sorted(p.name for p in work.iterdir()) == ["notes.duckdb"]
