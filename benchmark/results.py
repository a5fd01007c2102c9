"""Results as pandas DataFrames: the Python API over a results database (issue 14).

Reads the DuckDB file ``bench run`` writes, read-only, and returns DataFrames (DuckDB's
``.df()``), so a notebook or a paper script needs no SQL::

    from benchmark.results import Results

    with Results("bench_results/results.duckdb") as r:
        r.scores(metric="ranking_position")  # one row per scenario × explainer
        r.table("deletion_auc")  # explainers × scenarios
        r.per_image("average_drop")  # one row per explained image

``run`` selects runs: ``"latest"`` (default: the newest finished run of each suite),
``"all"`` (every finished run, e.g. the seeds of a group), or one run id. Unfinished
(running, interrupted) runs are left out unless asked for by id.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import duckdb
import pandas as pd

from benchmark.errors import BenchError, did_you_mean

# The newest finished run of each suite (ties: the larger id, so the choice is stable).
LATEST = """
SELECT run_id FROM (
    SELECT run_id, row_number() OVER (
        PARTITION BY suite ORDER BY finished_at DESC, run_id DESC) AS k
    FROM runs WHERE status = 'done') WHERE k = 1
"""


class Results:
    """A results database, read-only.

    Args:
        db: the DuckDB file of ``bench run``.

    Raises:
        BenchError: no such file.
    """

    def __init__(self, db: str | Path):
        path = Path(db)
        if not path.is_file():
            raise BenchError(f"{path}: no results database (run `bench run` first)")
        self.con = duckdb.connect(str(path), read_only=True)

    def close(self) -> None:
        self.con.close()

    def __enter__(self) -> Results:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    # -- selecting runs ---------------------------------------------------------------
    def runs(self, all_statuses: bool = False) -> pd.DataFrame:
        """One row per run: suite, seed, task, status, device, times (newest first)."""
        where = "" if all_statuses else "WHERE status = 'done'"
        return self.con.execute(
            "SELECT run_id, suite, seed, task, status, device, group_id, started_at, "
            f"finished_at, git_sha FROM runs {where} ORDER BY finished_at DESC, run_id DESC"
        ).df()

    def _run_ids(self, run: str) -> list[str]:
        if run == "latest":
            return [r for (r,) in self.con.execute(LATEST).fetchall()]
        if run == "all":
            sql = "SELECT run_id FROM runs WHERE status = 'done'"
            return [r for (r,) in self.con.execute(sql).fetchall()]
        known = [r for (r,) in self.con.execute("SELECT run_id FROM runs").fetchall()]
        if run not in known:
            hint = did_you_mean(run, known) or f"; known: {', '.join(known[:8]) or 'none'}"
            raise BenchError(f"run: expected 'latest', 'all' or a run id, got {run!r}{hint}")
        return [run]

    def _select(self, table: str, columns: str, run: str, **where: str | None) -> pd.DataFrame:
        ids = self._run_ids(run)
        clauses = ["t.run_id IN (SELECT unnest(?))"]
        params: list[Any] = [ids]
        for column, value in where.items():
            if value is not None:
                clauses.append(f"t.{column} = ?")
                params.append(value)
        order = ", ".join(f"t.{c}" for c in ("run_id", "scenario", "explainer", "metric"))
        extra = ", t.region" if table == "region_scores" else ""
        sql = (
            f"SELECT r.suite, {columns} FROM {table} t JOIN runs r USING (run_id) "
            f"WHERE {' AND '.join(clauses)} ORDER BY {order}{extra}"
        )
        return self.con.execute(sql, params).df()

    # -- the tables ---------------------------------------------------------------------
    def scores(
        self,
        metric: str | None = None,
        scenario: str | None = None,
        explainer: str | None = None,
        run: str = "latest",
    ) -> pd.DataFrame:
        """One row per run × scenario × explainer × metric (score key): value, n images,
        direction (``higher``/``lower`` is better), details (JSON text)."""
        cols = "t.run_id, t.scenario, t.explainer, t.metric, t.value, t.n, t.direction, t.details"
        return self._select("scores", cols, run, metric=metric, scenario=scenario,
                            explainer=explainer)  # fmt: skip

    def region_scores(
        self, metric: str = "ranking_position", scenario: str | None = None, run: str = "latest"
    ) -> pd.DataFrame:
        """Per-region intensity (IoR), rank and top share of a ranking metric."""
        cols = "t.run_id, t.scenario, t.explainer, t.region, t.ior, t.rank, t.top_share"
        return self._select("region_scores", cols, run, metric=metric, scenario=scenario)

    def scenarios(self, run: str = "latest") -> pd.DataFrame:
        """Per scenario: target, injected rho, test-set sizes and accuracies."""
        cols = (
            "t.run_id, t.scenario, t.target, t.rho, t.n_train, t.n_test, t.n_explained, "
            "t.accuracy, t.accuracy_aligned, t.accuracy_conflicting"
        )
        ids = self._run_ids(run)
        return self.con.execute(
            f"SELECT r.suite, {cols} FROM scenarios t JOIN runs r USING (run_id) "
            "WHERE t.run_id IN (SELECT unnest(?)) ORDER BY t.run_id, t.scenario",
            [ids],
        ).df()

    def per_image(
        self, metric: str, scenario: str | None = None, run: str = "latest"
    ) -> pd.DataFrame:
        """Long format: one row per explained image (``image`` its index in the
        explained set) and its value of ``metric``, whose mean (NaN left out) is the
        score: for paired tests across explainers. Metrics whose score is not such a
        mean (ranking positions) have none."""
        frame = self._select("image_scores", "t.run_id, t.scenario, t.explainer, t.values", run,
                             metric=metric, scenario=scenario)  # fmt: skip
        frame = frame.explode("values", ignore_index=False)
        frame["image"] = frame.groupby(level=0).cumcount()
        frame = frame.rename(columns={"values": "value"}).reset_index(drop=True)
        return frame.astype({"value": float})[
            ["suite", "run_id", "scenario", "explainer", "image", "value"]
        ]

    def table(self, metric: str, run: str = "latest") -> pd.DataFrame:
        """One metric as explainers (rows) × scenarios (columns); several runs (``all``)
        are averaged, as seeds are."""
        frame = self.scores(metric=metric, run=run)
        if frame.empty:
            known = sorted(self.scores(run=run)["metric"].unique())
            raise BenchError(
                f"metric: no scores for {metric!r} in these runs{did_you_mean(metric, known)}"
            )
        return frame.pivot_table(index="explainer", columns="scenario", values="value",
                                 aggfunc="mean")  # fmt: skip
