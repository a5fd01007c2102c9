"""`bench merge`: the shards of one run (``bench run --shard k/N``) into one database.

Rows are keyed as in ``benchmark.store``. A row two inputs both hold (every shard
prepares the scenarios it explains, so each stores their accuracies and reliance) must
agree on every column but timings and paths, else the merge stops: shards that trained
different models would otherwise mix silently. Merging is idempotent: the output's own
rows of the same run take part, so a second merge of the same shards changes nothing.
Once merged, the comparative metrics (Win %) are scored over every explainer, and a
run whose explain cells are all present is ``done``. The Ray executor's driver stores
each finished cell through :func:`merge_rows` too.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import duckdb

from benchmark.errors import BenchError
from benchmark.store import TABLES, Store

Rows = dict[str, list[dict[str, Any]]]

KEYS: dict[str, tuple[str, ...]] = {
    "runs": ("run_id",),
    "scenarios": ("run_id", "scenario"),
    "scores": ("run_id", "scenario", "explainer", "metric"),
    "region_scores": ("run_id", "scenario", "explainer", "metric", "region"),
    "per_image": ("run_id", "scenario", "explainer", "metric"),
    "image_scores": ("run_id", "scenario", "explainer", "metric"),
    "reliance": ("run_id", "scenario", "attribute"),
    "figures": ("run_id", "scenario", "explainer", "kind"),
    "work_done": ("run_id", "scenario", "explainer"),
    "shards": ("run_id", "shard", "shards"),
}
#: Columns that differ between two computations of the same result.
VOLATILE: dict[str, frozenset[str]] = {
    "runs": frozenset({"started_at", "finished_at", "timings", "status", "device", "suite_path"}),
    "scenarios": frozenset({"train_seconds", "cached"}),
    "work_done": frozenset({"seconds"}),
    "figures": frozenset({"path"}),
    "shards": frozenset({"status", "timings"}),
}
_TABLES_SQL = "SELECT table_name FROM information_schema.tables"
_MODELS_HINT = (
    " (the shards trained different models: give them one cache folder, cache_dir or BENCH_CACHE)"
)
_WHY = (("code", "code"), ("data", "data files"), ("model_files", "model files"),
        ("model_code", "model code"), ("packages", "package versions"))  # fmt: skip


def read_rows(
    con: duckdb.DuckDBPyConnection,
    run_ids: set[str] | None = None,
    tables: tuple[str, ...] = TABLES,
) -> Rows:
    """Every results table's rows (only those of ``run_ids`` where given; the tables
    not in ``tables`` left empty)."""
    have = {r[0] for r in con.execute(_TABLES_SQL).fetchall()}
    out: Rows = {}
    for table in TABLES:
        if table not in have or table not in tables:
            out[table] = []
            continue
        where, args = "", []
        if run_ids is not None:
            if not run_ids:
                out[table] = []
                continue
            where, args = f" WHERE run_id IN ({', '.join('?' * len(run_ids))})", sorted(run_ids)
        cur = con.execute(f"SELECT * FROM {table}{where}", args)
        cols = [d[0] for d in cur.description]
        out[table] = [dict(zip(cols, row, strict=True)) for row in cur.fetchall()]
    return out


def read_database(path: Path) -> Rows:
    """The rows of a results database on disk, opened read-only."""
    path = Path(path)
    if not path.is_file():
        raise BenchError(f"{path}: no such results database")
    try:
        con = duckdb.connect(str(path), read_only=True)
    except duckdb.Error as exc:
        raise BenchError(f"{path}: not a DuckDB results database ({exc})") from None
    try:
        tables = {r[0] for r in con.execute(_TABLES_SQL).fetchall()}
        if "runs" not in tables:
            raise BenchError(f"{path}: not a results database (it has no runs table)")
        return read_rows(con)
    finally:
        con.close()


def _load(value: Any) -> Any:
    if isinstance(value, str):
        try:
            return json.loads(value)
        except ValueError:
            return value
    return value


def _close(a: Any, b: Any) -> bool:
    """Equal, floats to 1e-6 relative (one model on two machines, not two models)."""
    a, b = _load(a), _load(b)
    if isinstance(a, float) or isinstance(b, float):
        if a is None or b is None or isinstance(a, bool) or isinstance(b, bool):
            return a == b
        a, b = float(a), float(b)
        return (math.isnan(a) and math.isnan(b)) or math.isclose(a, b, rel_tol=1e-6, abs_tol=1e-9)
    if isinstance(a, list | tuple) and isinstance(b, list | tuple):
        return len(a) == len(b) and all(_close(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_close(a[k], b[k]) for k in a)
    return a == b


def _short(value: Any) -> str:
    text = value if isinstance(value, str) else json.dumps(value, sort_keys=True, default=str)
    return text if len(text) <= 20 else text[:16] + "…"


def _why_different(a: Mapping[str, Any], b: Mapping[str, Any]) -> str:
    fa, fb = _load(a.get("fingerprint")) or {}, _load(b.get("fingerprint")) or {}
    for key, what in _WHY:
        if fa.get(key) != fb.get(key):
            x, y = fa.get(key), fb.get(key)
            if isinstance(x, dict) and isinstance(y, dict):  # name the first differing entry
                k = next(k for k in sorted({*x, *y}) if x.get(k) != y.get(k))
                x, y, what = x.get(k), y.get(k), f"{what} ({k})"
            return f"was run with different {what} ({_short(x)} vs {_short(y)})"
    if a.get("suite_hash") != b.get("suite_hash"):
        return (f"is a run of a different suite ({a.get('suite')} {_short(a.get('suite_hash'))} "
                f"vs {b.get('suite')} {_short(b.get('suite_hash'))})")  # fmt: skip
    return "is a run of a different seed list"


def check_one_run(sources: list[tuple[str, Rows]]) -> None:
    """Raise BenchError unless every source holds runs of one suite run, split one way."""
    ref: tuple[str, dict[str, Any]] | None = None
    split: tuple[str, int, int] | None = None
    for label, rows in sources:
        for run in rows["runs"]:
            if ref is None:
                ref = (label, run)
            elif run.get("group_id") != ref[1].get("group_id"):
                raise BenchError(
                    f"{label}: run {run['run_id'][:12]} {_why_different(ref[1], run)} than "
                    f"{ref[0]}; expected shards of one run (one suite, code and data: "
                    "bench run SUITE --shard K/N from one checkout)"
                )
        for shard in rows["shards"]:
            if split is None:
                split = (label, shard["shard"], shard["shards"])
            elif shard["shards"] != split[2]:
                raise BenchError(
                    f"{label}: holds shard {shard['shard']}/{shard['shards']}, {split[0]} shard "
                    f"{split[1]}/{split[2]}; expected shards of one split (the same N)"
                )


def combine(sources: list[tuple[str, Rows]]) -> dict[str, list[dict[str, Any]]]:
    """The union of ``sources`` per table, the first holder of a row kept; raises
    BenchError where two hold one row with different results."""
    merged: dict[str, dict[tuple, tuple[dict[str, Any], str]]] = {t: {} for t in TABLES}
    for label, rows in sources:
        for table in TABLES:
            volatile = VOLATILE.get(table, frozenset())
            for row in rows.get(table, []):
                key = tuple(row[c] for c in KEYS[table])
                if key not in merged[table]:
                    merged[table][key] = (dict(row), label)
                    continue
                first, where = merged[table][key]
                if table == "runs":
                    _combine_runs(first, row)
                    continue
                for col, value in row.items():
                    if col not in volatile and not _close(first.get(col), value):
                        hint = _MODELS_HINT if table == "scenarios" else ""
                        raise BenchError(
                            f"{label}: {table} {'/'.join(map(str, key[1:]))}: {col} is "
                            f"{_short(value)}, {where} has {_short(first.get(col))}; expected "
                            f"the same result from every shard{hint}"
                        )
    return {t: [row for row, _ in merged[t].values()] for t in TABLES}


def write_rows(store: Store, merged: Mapping[str, list[dict[str, Any]]], figures: Path) -> None:
    """Store combined rows in one transaction; PNGs are written again under ``figures``."""
    for row in merged["figures"]:
        path = figures / row["run_id"][:16] / Path(row["path"]).name
        if row.get("png") is not None and (not path.is_file() or path.read_bytes() != row["png"]):
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(row["png"])
        row["path"] = str(path)
    store.con.execute("BEGIN TRANSACTION")
    try:
        for table in TABLES:
            store.put_rows(table, merged[table])
        store.con.execute("COMMIT")
    except BaseException:
        store.con.execute("ROLLBACK")
        raise


def merge_rows(store: Store, sources: list[tuple[str, Rows]], figures: Path) -> None:
    """:func:`combine` then :func:`write_rows`."""
    write_rows(store, combine(sources), figures)


def _combine_runs(first: dict[str, Any], row: Mapping[str, Any]) -> None:
    starts = [t for t in (first.get("started_at"), row.get("started_at")) if t is not None]
    first["started_at"] = min(starts) if starts else None
    ends = (first.get("finished_at"), row.get("finished_at"))
    first["finished_at"] = None if None in ends else max(ends)
    devices = [d for d in str(first.get("device") or "").split(" + ") if d]
    if row.get("device") and row["device"] not in devices:
        first["device"] = " + ".join([*devices, row["device"]])


def finish_runs(store: Store, run_ids: set[str]) -> dict[str, dict[str, Any]]:
    """Score the comparative metrics and set each run's status and summed timings from
    its shards; per run: status, explain cells present and expected, shards present."""
    from benchmark.catalogue import METRICS, REGION_PROTOCOLS
    from benchmark.scoring import compare_stored
    from metrics.base import MetricContext

    report = {}
    for run_id in sorted(run_ids):
        shards = store.con.execute(
            "SELECT shard, shards, timings, plan FROM shards WHERE run_id = ? ORDER BY shard",
            [run_id],
        ).fetchall()
        plans = [_load(p) for *_, p in shards if p]
        done = set(store.con.execute(
            "SELECT scenario, explainer FROM work_done WHERE run_id = ?", [run_id]
        ).fetchall())  # fmt: skip
        if not plans:  # a database from before shards: its run is as it was stored
            report[run_id] = {"status": None, "cells": len(done), "expected": None, "shards": []}
            continue
        plan = plans[0]
        labels = plan["explainers"]
        ctx = MetricContext(REGION_PROTOCOLS.get(plan["region_protocol"])().regions)
        metrics = [(m, METRICS.get(name)(ctx, **params)) for m, name, params in plan["metrics"]]
        for scenario in plan["scenarios"]:
            compare_stored(store, run_id, scenario, labels, metrics)
        expected = {(sc, e) for sc in plan["scenarios"] for e in labels}
        n = shards[0][1]
        present = sorted({k for k, *_ in shards})
        status = "done" if expected <= done else "incomplete"
        timings: dict[str, float] = {}
        if n > 1:
            for *_, t, _ in shards:
                for key, value in (_load(t) or {}).items():
                    if isinstance(value, int | float):
                        timings[key] = timings.get(key, 0.0) + value
            store.con.execute(
                "UPDATE runs SET status = ?, timings = ? WHERE run_id = ?",
                [status, json.dumps(timings, sort_keys=True), run_id],
            )
        report[run_id] = {"status": status, "cells": len(done & expected),
                          "expected": len(expected), "shards": present, "of": n}  # fmt: skip
    return report


def merge_databases(inputs: list[Path], out: Path) -> dict[str, dict[str, Any]]:
    """Merge shard databases into ``out`` (created or extended); see the module doc.
    Every check runs before ``out`` is opened for writing."""
    out = Path(out)
    for path in inputs:
        if Path(path).resolve() == out.resolve():
            raise BenchError(f"--db: {out} is also an input; expected a new or another file")
    sources = [(str(path), read_database(Path(path))) for path in inputs]
    check_one_run(sources)
    runs = {r["run_id"] for _, rows in sources for r in rows["runs"]}
    existing: Rows = {t: [] for t in TABLES}
    if out.is_file():
        con = duckdb.connect(str(out), read_only=True)
        try:
            existing = read_rows(con, runs)
        finally:
            con.close()
    sources = [(str(out), existing), *sources]
    check_one_run(sources)
    merged = combine(sources)
    with Store(out) as store:
        write_rows(store, merged, out.parent / "figures")
        return finish_runs(store, runs)
