"""DuckDB results: runs, scenarios, scores, region scores, per-image values, ground-truth
reliance and figures.

Every table has a primary key, and writes use ``INSERT OR REPLACE``: rerunning an
interrupted suite skips what is stored and never duplicates a row. The leaderboard
reads this database and nothing else.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import duckdb

SCHEMA = """
CREATE TABLE IF NOT EXISTS runs (
    run_id VARCHAR PRIMARY KEY,
    suite VARCHAR, suite_path VARCHAR, suite_hash VARCHAR, seed BIGINT,
    git_sha VARCHAR, packages JSON, device VARCHAR,
    started_at TIMESTAMP, finished_at TIMESTAMP, timings JSON, status VARCHAR,
    suite_json JSON
);
CREATE TABLE IF NOT EXISTS scenarios (
    run_id VARCHAR, scenario VARCHAR,
    target VARCHAR, attributes JSON, rho DOUBLE, directions JSON, bias_regions JSON,
    model_hash VARCHAR, n_train BIGINT, n_test BIGINT,
    train_cells JSON, test_cells JSON,
    accuracy DOUBLE, accuracy_aligned DOUBLE, accuracy_conflicting DOUBLE,
    n_aligned BIGINT, n_conflicting BIGINT, train_seconds DOUBLE, cached BOOLEAN,
    n_explained BIGINT,
    PRIMARY KEY (run_id, scenario)
);
CREATE TABLE IF NOT EXISTS scores (
    run_id VARCHAR, scenario VARCHAR, explainer VARCHAR, metric VARCHAR,
    value DOUBLE, n BIGINT, direction VARCHAR, details JSON,
    PRIMARY KEY (run_id, scenario, explainer, metric)
);
CREATE TABLE IF NOT EXISTS region_scores (
    run_id VARCHAR, scenario VARCHAR, explainer VARCHAR, metric VARCHAR, region VARCHAR,
    ior DOUBLE, rank INTEGER, n_present BIGINT, top_share DOUBLE,
    PRIMARY KEY (run_id, scenario, explainer, metric, region)
);
CREATE TABLE IF NOT EXISTS per_image (
    run_id VARCHAR, scenario VARCHAR, explainer VARCHAR, metric VARCHAR, values DOUBLE[],
    PRIMARY KEY (run_id, scenario, explainer, metric)
);
CREATE TABLE IF NOT EXISTS image_scores (
    run_id VARCHAR, scenario VARCHAR, explainer VARCHAR, metric VARCHAR, values DOUBLE[],
    PRIMARY KEY (run_id, scenario, explainer, metric)
);
CREATE TABLE IF NOT EXISTS reliance (
    run_id VARCHAR, scenario VARCHAR, attribute VARCHAR, regions JSON,
    reliance DOUBLE, n BIGINT,
    PRIMARY KEY (run_id, scenario, attribute)
);
CREATE TABLE IF NOT EXISTS figures (
    run_id VARCHAR, scenario VARCHAR, explainer VARCHAR, kind VARCHAR,
    path VARCHAR, png BLOB,
    PRIMARY KEY (run_id, scenario, explainer, kind)
);
CREATE TABLE IF NOT EXISTS shards (
    run_id VARCHAR, group_id VARCHAR, shard INTEGER, shards INTEGER, status VARCHAR,
    timings JSON, plan JSON,
    PRIMARY KEY (run_id, shard, shards)
);
CREATE TABLE IF NOT EXISTS work_done (
    run_id VARCHAR, scenario VARCHAR, explainer VARCHAR, seconds DOUBLE,
    PRIMARY KEY (run_id, scenario, explainer)
);
"""
# Columns added after a table was first released: databases written earlier gain them.
MIGRATIONS = (
    "ALTER TABLE scenarios ADD COLUMN IF NOT EXISTS n_explained BIGINT",
    "ALTER TABLE region_scores ADD COLUMN IF NOT EXISTS top_share DOUBLE",
    "ALTER TABLE runs ADD COLUMN IF NOT EXISTS data_counts JSON",
    "ALTER TABLE runs ADD COLUMN IF NOT EXISTS group_id VARCHAR",
    "ALTER TABLE runs ADD COLUMN IF NOT EXISTS fingerprint JSON",
    "ALTER TABLE runs ADD COLUMN IF NOT EXISTS task VARCHAR",
)
TABLES = (
    "runs", "scenarios", "scores", "region_scores", "per_image", "image_scores", "reliance",
    "figures", "work_done", "shards",
)  # fmt: skip


def _json(value: Any) -> str:
    return json.dumps(value, sort_keys=True, default=str)


class Store:
    """A results database. Use as a context manager; each write is one transaction."""

    def __init__(self, path: Path):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.con = duckdb.connect(str(self.path))
        self.con.execute(SCHEMA)
        for sql in MIGRATIONS:
            self.con.execute(sql)

    def close(self) -> None:
        self.con.close()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def _upsert(self, table: str, rows: Iterable[dict[str, Any]]) -> None:
        rows = list(rows)
        if not rows:
            return
        cols = list(rows[0])
        sql = (
            f"INSERT OR REPLACE INTO {table} ({', '.join(cols)}) "
            f"VALUES ({', '.join('?' for _ in cols)})"
        )
        self.con.executemany(sql, [[r[c] for c in cols] for r in rows])

    # -- runs --------------------------------------------------------------------------
    def start_run(self, run: dict[str, Any]) -> None:
        """Record a run (or mark an interrupted one running again), keeping its start."""
        row = self.con.execute(
            "SELECT started_at FROM runs WHERE run_id = ?", [run["run_id"]]
        ).fetchone()
        if row is not None:
            run = {**run, "started_at": row[0]}
        elif run.get("started_at") is None:
            run = {**run, "started_at": datetime.now(timezone.utc).replace(tzinfo=None)}
        run = {**run, **{k: _json(run[k]) for k in ("packages", "suite_json", "fingerprint")
                         if k in run}}  # fmt: skip
        self._upsert("runs", [{**run, "status": "running", "finished_at": None, "timings": "{}"}])

    def finish_run(self, run_id: str, status: str, timings: dict[str, float]) -> None:
        self.con.execute(
            "UPDATE runs SET status = ?, finished_at = now(), timings = ? WHERE run_id = ?",
            [status, _json(timings), run_id],
        )

    def put_shard(
        self,
        run_id: str,
        group_id: str,
        shard: tuple[int, int],
        status: str,
        timings: dict[str, float],
        plan: dict[str, Any],
    ) -> None:
        """Which shard (k of n; 1 of 1 is a whole run) of a run this database holds.

        ``plan``: the run's scenarios, explainer labels and metrics (label, registry
        name, params) and this shard's cells, which ``bench merge`` needs to finish it.
        """
        self._upsert("shards", [{
            "run_id": run_id, "group_id": group_id, "shard": shard[0], "shards": shard[1],
            "status": status, "timings": _json(timings), "plan": _json(plan),
        }])  # fmt: skip

    def put_rows(self, table: str, rows: Iterable[dict[str, Any]]) -> None:
        """Insert or replace rows as read from another results database (``bench merge``)."""
        self._upsert(table, rows)

    def put_data_counts(self, run_id: str, counts: dict[str, Any]) -> None:
        """What each split's loader kept and dropped (e.g. CelebAMask-HQ faces removed)."""
        self.con.execute(
            "UPDATE runs SET data_counts = ? WHERE run_id = ?", [_json(counts), run_id]
        )

    # -- scenarios ---------------------------------------------------------------------
    def put_scenario(self, row: dict[str, Any]) -> None:
        json_cols = ("attributes", "directions", "bias_regions", "train_cells", "test_cells")
        self._upsert("scenarios", [{k: _json(v) if k in json_cols else v for k, v in row.items()}])

    # -- scores ------------------------------------------------------------------------
    def is_done(self, run_id: str, scenario: str, explainer: str) -> bool:
        """Whether every metric of (scenario, explainer) is stored."""
        row = self.con.execute(
            "SELECT 1 FROM work_done WHERE run_id = ? AND scenario = ? AND explainer = ?",
            [run_id, scenario, explainer],
        ).fetchone()
        return row is not None

    def put_explainer_results(
        self,
        run_id: str,
        scenario: str,
        explainer: str,
        scores: list[dict[str, Any]],
        regions: list[dict[str, Any]],
        seconds: float,
        per_image: dict[str, list[float]] | None = None,
        figures: list[dict[str, Any]] | None = None,
        image_scores: dict[str, list[float]] | None = None,
    ) -> None:
        """All results of one (scenario, explainer), then its done-marker, atomically.

        Args:
            scores: rows with metric, value, n, direction, details.
            regions: rows with metric, region, ior, rank, n_present, top_share.
            seconds: time spent explaining and scoring.
            per_image: per metric, the per-image values later compared across
                explainers (Win %).
            figures: rows with kind, path and the PNG bytes.
            image_scores: per metric, the per-image values whose mean is its score
                (for confidence intervals).
        """
        key = {"run_id": run_id, "scenario": scenario, "explainer": explainer}
        self.con.execute("BEGIN TRANSACTION")
        try:
            self.put_scores(run_id, scenario, explainer, scores)
            self._upsert("region_scores", [{**key, **r} for r in regions])
            self._upsert(
                "per_image",
                [{**key, "metric": m, "values": v} for m, v in (per_image or {}).items()],
            )
            self._upsert(
                "image_scores",
                [{**key, "metric": m, "values": v} for m, v in (image_scores or {}).items()],
            )
            self._upsert("figures", [{**key, **f} for f in figures or []])
            self._upsert("work_done", [{**key, "seconds": seconds}])
            self.con.execute("COMMIT")
        except BaseException:
            self.con.execute("ROLLBACK")
            raise

    def put_scores(
        self, run_id: str, scenario: str, explainer: str, scores: list[dict[str, Any]]
    ) -> None:
        """Score rows of one (scenario, explainer); replaces rows with the same metric."""
        key = {"run_id": run_id, "scenario": scenario, "explainer": explainer}
        self._upsert(
            "scores", [{**key, **s, "details": _json(s.get("details", {}))} for s in scores]
        )

    def per_image(self, run_id: str, scenario: str, metric: str) -> dict[str, list[float]]:
        """Stored per-image values of ``metric`` in a scenario, per explainer."""
        rows = self.con.execute(
            "SELECT explainer, values FROM per_image "
            "WHERE run_id = ? AND scenario = ? AND metric = ?",
            [run_id, scenario, metric],
        ).fetchall()
        return dict(rows)

    def put_reliance(self, run_id: str, scenario: str, rows: list[dict[str, Any]]) -> None:
        """Ground-truth reliance per attribute of one scenario (METHODS §9)."""
        key = {"run_id": run_id, "scenario": scenario}
        self._upsert("reliance", [{**key, **r, "regions": _json(r["regions"])} for r in rows])

    def reliance(self, run_id: str, scenario: str) -> dict[str, float]:
        """Stored ground-truth reliance of a scenario, per attribute (empty if none)."""
        rows = self.con.execute(
            "SELECT attribute, reliance FROM reliance WHERE run_id = ? AND scenario = ? "
            "ORDER BY rowid",
            [run_id, scenario],
        ).fetchall()
        return dict(rows)

    def counts(self) -> dict[str, int]:
        """Rows per table (for tests and the run summary)."""
        return {t: self.con.execute(f"SELECT count(*) FROM {t}").fetchone()[0] for t in TABLES}
