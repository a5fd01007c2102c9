""" "Paper vs ours": the numbers a paper suite stores in ``metadata.paper`` beside the
run's own, read from the database only.

``metadata.paper`` holds ``cite``, the paper's ``explainer``, ``scores`` per scenario
and metric (``accuracy`` is the model's balanced test accuracy), optional ``means``
and free-text ``claims`` per scenario.
"""

from __future__ import annotations

import json
from typing import Any

import duckdb

from leaderboard.site import esc, fmt, table

_ACCURACY = "accuracy"


def _paper(con: duckdb.DuckDBPyConnection, run_id: str) -> dict[str, Any]:
    row = con.execute("SELECT suite_json FROM runs WHERE run_id = ?", [run_id]).fetchone()
    suite = json.loads(row[0]) if row and row[0] else {}
    paper = (suite.get("metadata") or {}).get("paper")
    return paper if isinstance(paper, dict) else {}


def _ours(con: duckdb.DuckDBPyConnection, run_id: str) -> dict[tuple[str, str, str], float]:
    rows = con.execute(
        "SELECT scenario, explainer, metric, value FROM scores WHERE run_id = ?", [run_id]
    ).fetchall()
    return {(s, e, m): v for s, e, m, v in rows}


def _best(values: dict[str, float], direction: str | None) -> tuple[str, float] | None:
    if not values:
        return None
    pick = min if direction == "lower" else max
    name = pick(values, key=values.get)
    return name, values[name]


def paper_section(con: duckdb.DuckDBPyConnection, run_id: str) -> str:
    """The comparison table, or "" when the suite cites no paper numbers."""
    paper = _paper(con, run_id)
    scores, claims = paper.get("scores") or {}, paper.get("claims") or {}
    if not scores and not claims:
        return ""
    explainer = paper.get("explainer")
    ours = _ours(con, run_id)
    directions = dict(con.execute("SELECT DISTINCT metric, direction FROM scores").fetchall())
    accuracy = dict(
        con.execute(
            "SELECT scenario, accuracy FROM scenarios WHERE run_id = ?", [run_id]
        ).fetchall()
    )
    rows, same = [], {}
    for scenario, metrics in scores.items():
        for metric, value in (metrics or {}).items():
            if metric == _ACCURACY:
                mine, best = accuracy.get(scenario), None
            else:
                mine = ours.get((scenario, explainer, metric))
                per = {e: v for (s, e, m), v in ours.items() if s == scenario and m == metric}
                best = _best(per, directions.get(metric))
            same.setdefault(metric, []).append(mine)
            rows.append([
                esc(scenario), esc(metric), fmt(value), fmt(mine),
                f"{fmt(best[1])} <span class='n'>{esc(best[0])}</span>" if best else "–",
            ])  # fmt: skip
    for metric, value in (paper.get("means") or {}).items():
        got = [v for v in same.get(metric, []) if v is not None]
        mean = sum(got) / len(got) if got and len(got) == len(same[metric]) else None
        rows.append(["<b>mean</b>", esc(metric), fmt(value), fmt(mean), "–"])
    head = ["scenario", "metric", "paper", f"ours ({esc(explainer or '–')})", "best of ours"]
    notes = "".join(
        f"<p><b>{esc(s)}</b>: the paper reports that {esc(text)}.</p>" for s, text in claims.items()
    )
    return (
        f"<h3>Paper vs ours</h3><p class='muted'>{esc(paper.get('cite', ''))}</p>"
        + (table(head, rows) if rows else "")
        + notes
    )
