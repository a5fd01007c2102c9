"""History pages: how each explainer's scores moved across a suite's finished runs.

Runs of one suite repeated over several seeds share a ``group_id`` and make one column;
a run without one (databases written before groups existed) is a column of its own.
Columns follow the start time of their first run. A cell is the mean, over the group's
runs, of the explainer's mean score over the suite's biased scenarios: the value the
index page shows for one run, averaged over seeds. ``history-<suite>.html`` is written,
and linked from the suite's section of the index, only when there are two columns or more.
Like the rest of the site it reads the database only.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import duckdb

from leaderboard.site import RANKED_SCENARIOS, esc, fmt, page, slug, table

# The group key of a run: its group, or the run itself. Prefixed so that a group id that
# happens to equal some run id cannot merge the two.
_GROUP = "coalesce('g:' || r.group_id, 'r:' || r.run_id)"
# A database written before groups existed, opened read-only, lacks the column (the
# migration adding it runs only on a writable open): every run is then its own group.
_NO_GROUP = "('r:' || r.run_id)"
_WORSE = "color:#c00;font-weight:600"


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
    from leaderboard.site import has_column

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
    # The same biased-scenario filter as the index (leaderboard.site.run_section): on a
    # control a far-down ranking position is the right answer, so it is not averaged.
    rows = con.execute(
        "WITH per_run AS ("
        " SELECT s.run_id, s.metric, s.explainer, avg(s.value) AS v, any_value(s.direction) AS d"
        " FROM scores s JOIN scenarios c USING (run_id, scenario) JOIN runs r USING (run_id)"
        f" WHERE r.suite = ? AND r.status = 'done' AND {RANKED_SCENARIOS}"
        " GROUP BY s.run_id, s.metric, s.explainer) "
        f"SELECT {_group_key(con)} AS g, p.metric, p.explainer, avg(p.v), any_value(p.d), "
        "max(r.started_at) AS t "
        "FROM per_run p JOIN runs r USING (run_id) GROUP BY g, p.metric, p.explainer ORDER BY t",
        [suite],
    ).fetchall()
    directions: dict[str, str] = {}
    values: dict[tuple[str, str, str], float] = {}
    for group, metric, explainer, value, direction, _ in rows:
        directions[metric] = direction  # oldest first: the latest run's direction wins
        values[(metric, explainer, group)] = value
    return directions, values


def _arrow(direction: str) -> str:
    return "↑" if direction == "higher" else "↓"


def _cell(value: float | None, previous: float | None, direction: str) -> str:
    if value is None:
        return "–"
    shown = fmt(value)
    # Only a move the reader can see in the printed digits is marked: seed noise in the
    # 5th decimal would otherwise paint every column.
    if previous is None or fmt(previous) == shown:
        return shown
    worse = value > previous if direction == "lower" else value < previous
    if not worse:
        return shown
    arrow = "▲" if value > previous else "▼"
    title = f"worse than the previous column ({fmt(previous)})"
    return f'<span class="worse" style="{_WORSE}" title="{esc(title)}">{arrow} {shown}</span>'


def history_page(con: duckdb.DuckDBPyConnection, suite: str) -> str | None:
    """The history page of ``suite``, or None when it has fewer than two run groups."""
    groups = run_groups(con, suite)
    if len(groups) < 2:
        return None
    directions, values = group_scores(con, suite)
    head = ["explainer"] + [g.heading for g in groups]
    sections = []
    for metric in sorted(directions):
        d = directions[metric]
        explainers = sorted({e for m, e, _ in values if m == metric})
        rows = []
        for e in explainers:
            cells, previous = [esc(e)], None
            for g in groups:
                value = values.get((metric, e, g.key))
                cells.append(_cell(value, previous, d))
                previous = value
            rows.append(cells)
        sections.append(
            f"<h2>{esc(metric)} {_arrow(d)}</h2>" + f'<div class="wide">{table(head, rows)}</div>'
        )
    n_runs = sum(len(g.run_ids) for g in groups)
    body = (
        f"<p><a href='index.html'>← leaderboard</a></p><h1>{esc(suite)}: history</h1>"
        f"<p class='muted'>{len(groups)} run group(s), {n_runs} finished run(s), oldest "
        "first. Column: short git sha, start of the group's first run, its seeds.</p>"
        "<p>Each cell is the mean, over the group's runs (one per seed), of the explainer's "
        "mean score over the suite's biased scenarios (controls with ρ = 0.5 or no bias "
        "attribute are left out). <span style='" + _WORSE + "'>▲ / ▼</span> marks a value "
        "that moved in the metric's bad direction since the previous column (↑ higher is "
        "better, ↓ lower).</p>" + "".join(sections)
    )
    return page(f"{suite} history · face-xai-bench", body)


def history_href(suite: str) -> str:
    """The file name of a suite's history page."""
    return f"{slug('history', suite)}.html"


def history_link(con: duckdb.DuckDBPyConnection, suite: str) -> str:
    """A link for the suite's index section, or "" with fewer than two run groups."""
    groups = run_groups(con, suite)
    if len(groups) < 2:
        return ""
    return (
        f'<p><a href="{esc(history_href(suite))}">History across {len(groups)} run groups</a></p>'
    )


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
