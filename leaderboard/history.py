"""History pages: how each explainer's scores moved across a suite's finished runs.

Runs of one suite repeated over several seeds share a ``group_id`` and make one column;
a run without one (databases written before groups existed) is a column of its own.
Columns follow the start time of their first run. A cell is the mean, over the group's
finished runs, of the explainer's scenario mean (the scenarios each metric averages as
on the index: :mod:`leaderboard.ranking`). ``history-<suite>.html`` is written, and
linked from the suite's section of the index, only when there are two columns or more.
Like the rest of the site it reads the database only.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import duckdb

from leaderboard.names import metric_name
from leaderboard.ranking import load_scores, run_means, scenario_bias
from leaderboard.render import render
from leaderboard.selection import load_suite_json, metric_registry
from leaderboard.util import fmt, has_column, slug

# The group key of a run: its group, or the run itself. Prefixed so that a group id that
# happens to equal some run id cannot merge the two.
_GROUP = "coalesce('g:' || r.group_id, 'r:' || r.run_id)"
# A database written before groups existed, opened read-only, lacks the column (the
# migration adding it runs only on a writable open): every run is then its own group.
_NO_GROUP = "('r:' || r.run_id)"


@dataclass(frozen=True)
class RunGroup:
    """One column of the history: the finished runs of a suite that share a group."""

    key: str
    run_ids: tuple[str, ...]
    started_at: datetime
    git_sha: str | None
    seeds: tuple[int, ...]

    @property
    def heading(self) -> str:
        """Short git sha, start (to the minute) and seeds, for a column header."""
        sha = (self.git_sha or "–")[:7]
        when = self.started_at.strftime("%Y-%m-%d %H:%M") if self.started_at else "–"
        seeds = ", ".join(str(s) for s in self.seeds) or "–"
        return f"{sha} · {when} · seed{'s' if len(self.seeds) > 1 else ''} {seeds}"


def _group_key(con: duckdb.DuckDBPyConnection) -> str:
    return _GROUP if has_column(con, "runs", "group_id") else _NO_GROUP


def run_groups(con: duckdb.DuckDBPyConnection, suite: str) -> list[RunGroup]:
    """The finished run groups of ``suite``, oldest first."""
    rows = con.execute(
        f"SELECT {_group_key(con)} AS g, list(r.run_id ORDER BY r.started_at, r.run_id), "
        "min(r.started_at), arg_min(r.git_sha, r.started_at), "
        "list(DISTINCT r.seed) FILTER (WHERE r.seed IS NOT NULL) "
        "FROM runs r WHERE r.suite = ? AND r.status = 'done' "
        "GROUP BY g ORDER BY min(r.started_at), g",
        [suite],
    ).fetchall()
    return [
        RunGroup(key, tuple(ids), started, sha, tuple(sorted(seeds or [])))
        for key, ids, started, sha, seeds in rows
    ]


def group_scores(
    con: duckdb.DuckDBPyConnection, suite: str
) -> tuple[dict[str, str], dict[tuple[str, str, str], float]]:
    """Per metric its direction, and per (metric, explainer, group key) the cell value."""
    groups = run_groups(con, suite)
    directions: dict[str, str] = {}
    values: dict[tuple[str, str, str], float] = {}
    for g in groups:  # oldest first: the latest run's direction wins
        suites = dict(
            con.execute(
                f"SELECT run_id, suite_json FROM runs WHERE run_id IN "
                f"({', '.join('?' * len(g.run_ids))})",
                list(g.run_ids),
            ).fetchall()
        )
        got: dict[tuple[str, str], list[float]] = defaultdict(list)
        biased = scenario_bias(con, g.run_ids)
        for run_id in g.run_ids:
            registry = metric_registry(load_suite_json(suites.get(run_id)))
            means = run_means(load_scores(con, [run_id]), biased, registry).get(run_id, {})
            for (metric, explainer), (value, _, direction) in means.items():
                got[(metric, explainer)].append(value)
                directions[metric] = direction
        for (metric, explainer), vs in got.items():
            values[(metric, explainer, g.key)] = sum(vs) / len(vs)
    return directions, values


def _cell(value: float | None, previous: float | None, direction: str) -> dict[str, Any]:
    """A cell's text, and when it moved the bad way its arrow and tooltip."""
    shown = fmt(value)
    # Only a move the reader can see in the printed digits is marked: seed noise in the
    # 5th decimal would otherwise paint every column.
    if value is None or previous is None or fmt(previous) == shown:
        return {"text": shown, "worse": False}
    worse = value > previous if direction == "lower" else value < previous
    if not worse:
        return {"text": shown, "worse": False}
    return {
        "text": shown,
        "worse": True,
        "arrow": "▲" if value > previous else "▼",
        "title": f"worse than the previous column ({fmt(previous)})",
    }


def history_page(con: duckdb.DuckDBPyConnection, suite: str) -> str | None:
    """The history page of ``suite``, or None when it has fewer than two run groups."""
    groups = run_groups(con, suite)
    if len(groups) < 2:
        return None
    directions, values = group_scores(con, suite)
    sections = []
    for metric in sorted(directions):
        d = directions[metric]
        rows = []
        for e in sorted({e for m, e, _ in values if m == metric}):
            cells, previous = [], None
            for g in groups:
                value = values.get((metric, e, g.key))
                cells.append(_cell(value, previous, d))
                previous = value
            rows.append({"explainer": e, "cells": cells})
        sections.append({"key": metric, "name": metric_name(metric), "direction": d, "rows": rows})
    return render(
        "history.html",
        suite=suite,
        groups=groups,
        n_runs=sum(len(g.run_ids) for g in groups),
        sections=sections,
    )


def history_href(suite: str) -> str:
    """The file name of a suite's history page."""
    return f"{slug('history', suite)}.html"


def history_link(con: duckdb.DuckDBPyConnection, suite: str) -> dict[str, Any] | None:
    """The link of the suite's index section, or None with fewer than two run groups."""
    groups = run_groups(con, suite)
    if len(groups) < 2:
        return None
    return {"href": history_href(suite), "n": len(groups)}


def write_history_pages(con: duckdb.DuckDBPyConnection, out: Path) -> list[Path]:
    """Write ``history-<suite>.html`` for every suite with two run groups or more."""
    written = []
    suites = con.execute(
        "SELECT DISTINCT suite FROM runs WHERE status = 'done' ORDER BY suite"
    ).fetchall()
    for (suite,) in suites:
        html = history_page(con, suite)
        if html is None:
            continue
        path = Path(out) / history_href(suite)
        path.write_text(html, encoding="utf-8")
        written.append(path)
    return written
