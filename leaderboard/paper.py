""" "Paper vs ours": the numbers a paper suite stores in ``metadata.paper`` beside the
run's own, read from the database only.

``metadata.paper`` holds ``cite``, the paper's ``explainer``, ``scores`` per scenario
and metric (``accuracy`` is the model's balanced test accuracy), optional ``means``
and free-text ``claims`` per scenario. Ours are means over the experiment's seeds;
"best of ours" leaves the reference explainers out. Rendered by ``templates/_paper.html``.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping
from typing import Any

import duckdb

from leaderboard.names import metric_name
from leaderboard.selection import metric_registry

_ACCURACY = "accuracy"


def _paper(suite_json: Mapping[str, Any]) -> dict[str, Any]:
    paper = (suite_json.get("metadata") or {}).get("paper")
    return paper if isinstance(paper, dict) else {}


def _mean(values: list[float]) -> float | None:
    return sum(values) / len(values) if values else None


def _ours(con: duckdb.DuckDBPyConnection, run_ids: list[str]) -> dict[tuple[str, str, str], float]:
    marks = ", ".join("?" * len(run_ids))
    got: dict[tuple[str, str, str], list[float]] = defaultdict(list)
    for s, e, m, v in con.execute(
        f"SELECT scenario, explainer, metric, value FROM scores WHERE run_id IN ({marks}) "
        "AND value IS NOT NULL AND NOT isnan(value)",
        run_ids,
    ).fetchall():
        got[(s, e, m)].append(v)
    return {k: sum(v) / len(v) for k, v in got.items()}


def _best(values: dict[str, float], direction: str | None) -> tuple[str, float] | None:
    if not values:
        return None
    pick = min if direction == "lower" else max
    name = pick(values, key=values.get)
    return name, values[name]


def paper_context(
    con: duckdb.DuckDBPyConnection,
    run_ids: list[str],
    suite_json: Mapping[str, Any],
    references: frozenset[str] = frozenset(),
) -> dict[str, Any] | None:
    """The comparison's rows and claims, or None when the suite cites no paper numbers."""
    paper = _paper(suite_json)
    scores, claims = paper.get("scores") or {}, paper.get("claims") or {}
    if not run_ids or (not scores and not claims):
        return None
    explainer = paper.get("explainer")
    ours = _ours(con, run_ids)
    directions = dict(con.execute("SELECT DISTINCT metric, direction FROM scores").fetchall())
    marks = ", ".join("?" * len(run_ids))
    accuracy: dict[str, list[float]] = defaultdict(list)
    for sc, acc in con.execute(
        f"SELECT scenario, accuracy FROM scenarios WHERE run_id IN ({marks}) "
        "AND accuracy IS NOT NULL",
        run_ids,
    ).fetchall():
        accuracy[sc].append(acc)
    rows, same = [], {}
    registry = metric_registry(suite_json)

    def named(metric: str) -> str:
        return "Balanced test accuracy" if metric == _ACCURACY else metric_name(metric, registry)

    for scenario, metrics in scores.items():
        for metric, value in (metrics or {}).items():
            if metric == _ACCURACY:
                mine, best = _mean(accuracy.get(scenario, [])), None
            else:
                mine = ours.get((scenario, explainer, metric))
                per = {
                    e: v
                    for (s, e, m), v in ours.items()
                    if s == scenario and m == metric and e not in references
                }
                best = _best(per, directions.get(metric))
            same.setdefault(metric, []).append(mine)
            rows.append(
                {"scenario": scenario, "metric": metric, "name": named(metric), "paper": value,
                 "ours": mine, "best": best, "mean": False}
            )  # fmt: skip
    for metric, value in (paper.get("means") or {}).items():
        got = [v for v in same.get(metric, []) if v is not None]
        mean = sum(got) / len(got) if got and len(got) == len(same[metric]) else None
        rows.append(
            {"scenario": "mean", "metric": metric, "name": named(metric), "paper": value,
             "ours": mean, "best": None, "mean": True}
        )  # fmt: skip
    return {
        "cite": paper.get("cite", ""),
        "explainer": explainer or "–",
        "rows": rows,
        "claims": list(claims.items()),
    }
