"""Which runs the leaderboard shows: per suite, the seeds of its latest finished experiment.

Runs of one suite that share a ``group_id`` are the seeds of one experiment (a run
without one, from a database written before groups existed, is an experiment of its
own). The index and the scenario pages show, per suite, the experiment whose first run
started last among those with a finished (``status = 'done'``) run, averaged over its
finished runs. Runs that did not finish (failed, interrupted, still running) are never
averaged or ranked; those of the shown experiment, or started after it, are listed as
incomplete.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import duckdb

from leaderboard.util import has_column

#: Registered names of the built-in reference explainers: shown, never ranked.
REFERENCE_EXPLAINERS = frozenset({"random", "oracle"})
_EPOCH = datetime(1970, 1, 1)


@dataclass(frozen=True)
class RunInfo:
    """One run (one seed) of a suite."""

    run_id: str
    seed: int | None
    status: str
    started_at: datetime | None
    device: str | None
    git_sha: str | None


@dataclass(frozen=True)
class Experiment:
    """The shown experiment of a suite: its finished seeds and its incomplete runs."""

    suite: str
    task: str
    group_id: str | None
    runs: tuple[RunInfo, ...]  # finished, oldest first
    incomplete: tuple[RunInfo, ...] = ()
    suite_json: Mapping[str, Any] = field(default_factory=dict)

    @property
    def run_ids(self) -> list[str]:
        """The finished runs' ids, oldest first."""
        return [r.run_id for r in self.runs]

    @property
    def seeds(self) -> list[int]:
        """The finished runs' seeds (sorted; runs without one left out)."""
        return sorted(r.seed for r in self.runs if r.seed is not None)

    @property
    def references(self) -> frozenset[str]:
        """Labels of the reference explainers (registered ``random`` or ``oracle``)."""
        return reference_labels(self.suite_json)

    @property
    def registry(self) -> dict[str, str]:
        """Metric label → registered metric name, from the suite."""
        return metric_registry(self.suite_json)


def _specs(suite_json: Mapping[str, Any], key: str) -> list[dict[str, Any]]:
    specs = suite_json.get(key) if isinstance(suite_json, Mapping) else None
    out = []
    for spec in specs or []:
        if isinstance(spec, str):
            out.append({"name": spec})
        elif isinstance(spec, Mapping) and isinstance(spec.get("name"), str):
            out.append(dict(spec))
    return out


def reference_labels(suite_json: Mapping[str, Any]) -> frozenset[str]:
    """The labels under which the suite's reference explainers are stored."""
    return frozenset(
        spec.get("label") or spec["name"]
        for spec in _specs(suite_json, "explainers")
        if spec["name"] in REFERENCE_EXPLAINERS
    )


def metric_registry(suite_json: Mapping[str, Any]) -> dict[str, str]:
    """Score-key prefix (a suite label or the name) → registered metric name."""
    return {
        spec.get("label") or spec["name"]: spec["name"] for spec in _specs(suite_json, "metrics")
    }


def load_suite_json(raw: str | None) -> dict[str, Any]:
    """``runs.suite_json`` as a dict ({} when absent or not JSON)."""
    try:
        value = json.loads(raw) if raw else {}
    except (TypeError, ValueError):
        return {}
    return value if isinstance(value, dict) else {}


def experiments(con: duckdb.DuckDBPyConnection) -> list[Experiment]:
    """Per suite (sorted by name), its latest finished experiment and incomplete runs."""
    group = "r.group_id" if has_column(con, "runs", "group_id") else "NULL"
    task = "coalesce(r.task, 'classification')" if has_column(con, "runs", "task") else "NULL"
    rows = con.execute(
        f"SELECT r.suite, r.run_id, r.seed, r.status, r.started_at, r.device, r.git_sha, "
        f"{group}, {task}, r.suite_json FROM runs r ORDER BY r.suite, r.started_at, r.run_id"
    ).fetchall()
    by_suite: dict[str, list[tuple]] = {}
    for row in rows:
        by_suite.setdefault(row[0], []).append(row)
    return [_experiment(suite, runs) for suite, runs in sorted(by_suite.items())]


def _experiment(suite: str, rows: list[tuple]) -> Experiment:
    def key(row: tuple) -> str:
        return f"g:{row[7]}" if row[7] is not None else f"r:{row[1]}"

    def info(row: tuple) -> RunInfo:
        return RunInfo(row[1], row[2], row[3] or "–", row[4], row[5], row[6])

    groups: dict[str, list[tuple]] = {}
    for row in rows:
        groups.setdefault(key(row), []).append(row)
    done = {k: [r for r in g if r[3] == "done"] for k, g in groups.items()}
    finished = [k for k, g in done.items() if g]
    if finished:
        # As the history orders its columns: by the first finished run's start.
        shown = max(finished, key=lambda k: (min(r[4] or _EPOCH for r in done[k]), k))
        since = min(r[4] or _EPOCH for r in done[shown])
        incomplete = [
            r for r in rows
            if r[3] != "done" and (key(r) == shown or (r[4] or _EPOCH) > since)
        ]  # fmt: skip
        picked = done[shown]
    else:  # nothing finished: the latest attempt, listed as incomplete only
        shown = max(groups, key=lambda k: (max(r[4] or _EPOCH for r in groups[k]), k))
        incomplete, picked = groups[shown], []
    head = picked[0] if picked else groups[shown][0]
    return Experiment(
        suite=suite,
        task=head[8] or "classification",
        group_id=head[7],
        runs=tuple(info(r) for r in picked),
        incomplete=tuple(info(r) for r in incomplete),
        suite_json=load_suite_json(head[9]),
    )
