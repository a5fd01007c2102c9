"""Scores averaged over scenarios and seeds, ranked per metric, and a mean rank over
distinct metrics.

**Which scenarios a score averages.** Region metrics (``ranking_position`` and its
sub-scores, ``bbox_ap`` against the bias box, ``pointing_game``) ask where the injected
shortcut is: on a control (ρ = 0.5, or no bias attribute) a far-down ranking position
is the right answer, not a poor one, so they average a run's biased scenarios only
(injected bias, or a model explained as it is: ρ NULL). A suite with no biased scenario
at all (``celeba_default``: CelebA's own correlations) has nothing else to rank them on,
and they average all its scenarios. Every other metric (confidence, deletion/insertion,
sanity, stability, ground-truth agreement, plugins) averages all scenarios.

**Seeds.** A cell is the mean over the experiment's finished runs (seeds) of each run's
scenario mean.

**Metric families.** The mean rank counts each family once, by one representative key:

- a metric and its sub-scores (``ranking_position`` with ``ranking_position.rp2``…,
  ``gt_agreement`` with ``gt_agreement.top_hit``) count as the metric's own key: the
  sub-scores are the same measurement of other attributes or another cut of it;
- ``average_drop``, ``increase_in_confidence`` and ``win_percent`` of one setting
  (variant, alpha, confidence kind) are three views of the same explanation confidences
  (``metrics/confidence.py`` shares them through one forward pass) and count as
  ``average_drop`` (else ``increase_in_confidence``, else ``win_percent``): the graded
  per-image mean, where Increase in confidence counts images and Win % depends on which
  other explainers ran.

Reference explainers (``random``, ``oracle``) are shown but take no rank, and the other
explainers' ranks are computed without them.
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import duckdb

from leaderboard.names import metric_name

CONFIDENCE = ("average_drop", "increase_in_confidence", "win_percent")
BIAS_REGION = frozenset({"ranking_position", "bbox_ap", "pointing_game"})

Means = dict[tuple[str, str], tuple[float, int | None, str]]  # (metric, explainer) → v, n, dir


@dataclass(frozen=True)
class ScoreRow:
    """One stored score."""

    run_id: str
    scenario: str
    explainer: str
    metric: str
    value: float
    n: int | None
    direction: str
    details: Mapping[str, Any]


def registered(key: str, registry: Mapping[str, str]) -> str:
    """The registered metric name behind a score key (its label resolved)."""
    base = key.split(".")[0]
    return registry.get(base, base)


def family(key: str, registry: Mapping[str, str], details: Mapping[str, Any]) -> str:
    """The family a score key belongs to (see the module docstring)."""
    if registered(key, registry) in CONFIDENCE:
        settings = [details.get(k) for k in ("variant", "alpha", "confidence")]
        shown = ", ".join(str(s) for s in settings if s is not None)
        return f"confidence ({shown})" if shown else "confidence"
    return key.split(".")[0]


def _preference(key: str, registry: Mapping[str, str]) -> tuple:
    name = registered(key, registry)
    confidence = CONFIDENCE.index(name) if name in CONFIDENCE else 0
    return (confidence, "." in key, key)


def bias_region(key: str, registry: Mapping[str, str], details: Mapping[str, Any]) -> bool:
    """Whether the key scores the map against the bias attributes' regions (a metric may
    say so in its details, as the Quantus adapter's localisation metrics do)."""
    if details.get("bias_regions") is True:
        return True
    name = registered(key, registry)
    return name in BIAS_REGION and not (name == "bbox_ap" and details.get("reference") == "face")


def is_biased(rho: float | None, attributes: list[str]) -> bool:
    """An injected bias (ρ ≠ 0.5 on some attribute), or a model explained as it is."""
    return rho is None or (rho != 0.5 and bool(attributes))


def load_scores(
    con: duckdb.DuckDBPyConnection, run_ids: Iterable[str], scenario: str | None = None
) -> list[ScoreRow]:
    """The non-missing scores of ``run_ids`` (of one scenario if given)."""
    ids = list(run_ids)
    if not ids:
        return []
    marks = ", ".join("?" * len(ids))
    where = " AND scenario = ?" if scenario is not None else ""
    rows = con.execute(
        "SELECT run_id, scenario, explainer, metric, value, n, direction, details FROM scores "
        f"WHERE run_id IN ({marks}){where} AND value IS NOT NULL AND NOT isnan(value) "
        "ORDER BY run_id, scenario, explainer, metric",
        [*ids, *([scenario] if scenario is not None else [])],
    ).fetchall()
    return [ScoreRow(*r[:7], json.loads(r[7] or "{}") or {}) for r in rows]


def scenario_bias(
    con: duckdb.DuckDBPyConnection, run_ids: Iterable[str]
) -> dict[tuple[str, str], bool]:
    """(run, scenario) → whether the scenario is biased (see :func:`is_biased`)."""
    ids = list(run_ids)
    if not ids:
        return {}
    rows = con.execute(
        "SELECT run_id, scenario, rho, attributes FROM scenarios "
        f"WHERE run_id IN ({', '.join('?' * len(ids))})",
        ids,
    ).fetchall()
    return {(r, s): is_biased(rho, json.loads(a or "[]")) for r, s, rho, a in rows}


def run_means(
    rows: Iterable[ScoreRow], biased: Mapping[tuple[str, str], bool], registry: Mapping[str, str]
) -> dict[str, Means]:
    """Per run, per (metric, explainer): the mean over the scenarios it averages."""
    rows = list(rows)
    any_biased = defaultdict(bool)
    for (run, _), b in biased.items():
        any_biased[run] |= b
    acc: dict[str, dict[tuple[str, str], list[ScoreRow]]] = defaultdict(lambda: defaultdict(list))
    for r in rows:
        region = bias_region(r.metric, registry, r.details)
        if region and any_biased[r.run_id] and not biased.get((r.run_id, r.scenario), True):
            continue
        acc[r.run_id][(r.metric, r.explainer)].append(r)
    out: dict[str, Means] = {}
    for run, cells in acc.items():
        out[run] = {}
        for key, got in cells.items():
            ns = [g.n for g in got if g.n is not None]
            mean = sum(g.value for g in got) / len(got)
            out[run][key] = (mean, sum(ns) if ns else None, got[-1].direction)
    return out


def rank_explainers(values: dict[str, float], direction: str) -> dict[str, float]:
    """1 = best by the metric's direction; ties share the mean of their positions."""
    order = sorted(values, key=lambda e: values[e], reverse=direction == "higher")
    ranks: dict[str, float] = {}
    i = 0
    while i < len(order):
        j = i
        while j + 1 < len(order) and values[order[j + 1]] == values[order[i]]:
            j += 1
        for e in order[i : j + 1]:
            ranks[e] = (i + j) / 2 + 1
        i = j + 1
    return ranks


@dataclass
class Cell:
    """One explainer's value of one score key, over the seeds that have it."""

    value: float
    n: int | None
    seeds: int
    rank: float | None = None

    @property
    def best(self) -> bool:
        return self.rank == 1


@dataclass
class Column:
    """A score key: its name, direction, family and whether it counts in the mean rank."""

    key: str
    name: str
    direction: str
    family: str
    counted: bool


@dataclass
class BoardRow:
    """One explainer: its cells and mean rank (None for a reference row)."""

    explainer: str
    reference: bool
    cells: dict[str, Cell] = field(default_factory=dict)
    mean_rank: float | None = None
    n_ranked: int = 0


@dataclass
class Board:
    """Explainers × score keys: ranked rows by mean rank, then the reference rows."""

    columns: list[Column]
    rows: list[BoardRow]
    seeds: int

    @property
    def families(self) -> dict[str, list[str]]:
        """Family → its keys, the counted one first."""
        out: dict[str, list[str]] = {}
        for c in self.columns:
            out.setdefault(c.family, []).append(c.key)
        return out


def build_board(
    per_run: Iterable[Means],
    registry: Mapping[str, str],
    details: Mapping[str, Mapping[str, Any]],
    references: Iterable[str] = (),
) -> Board:
    """Cells averaged over the runs, ranked per key, mean rank over families.

    Args:
        per_run: each run's (metric, explainer) means.
        registry: metric label → registered name (for families and names).
        details: per score key, one stored ``details`` (the confidence settings).
        references: explainers shown unranked.
    """
    runs = list(per_run)
    refs = set(references)
    values: dict[tuple[str, str], list[tuple[float, int | None]]] = defaultdict(list)
    direction: dict[str, str] = {}
    for means in runs:
        for (metric, explainer), (v, n, d) in means.items():
            values[(metric, explainer)].append((v, n))
            direction[metric] = d
    fam = {m: family(m, registry, details.get(m, {})) for m in direction}
    counted = {
        f: min((m for m in fam if fam[m] == f), key=lambda m: _preference(m, registry))
        for f in set(fam.values())
    }
    keys = sorted(direction, key=lambda m: (counted[fam[m]], _preference(m, registry)))
    columns = [
        Column(m, metric_name(m, registry), direction[m], fam[m], counted[fam[m]] == m)
        for m in keys
    ]
    explainers = sorted({e for _, e in values})
    rows = {e: BoardRow(e, e in refs) for e in explainers}
    for (m, e), got in values.items():
        ns = [n for _, n in got if n is not None]
        n = round(sum(ns) / len(ns)) if ns else None
        rows[e].cells[m] = Cell(sum(v for v, _ in got) / len(got), n, len(got))
    for m in keys:
        ranked = {e: r.cells[m].value for e, r in rows.items() if m in r.cells and not r.reference}
        for e, rank in rank_explainers(ranked, direction[m]).items():
            rows[e].cells[m].rank = rank
    for row in rows.values():
        if row.reference:
            continue
        got = [row.cells[k].rank for k in counted.values() if k in row.cells]
        row.n_ranked = len(got)
        row.mean_rank = sum(got) / len(got) if got else None  # type: ignore[arg-type]
    inf = float("inf")
    ordered = sorted(
        rows.values(),
        key=lambda r: (r.reference, inf if r.mean_rank is None else r.mean_rank, r.explainer),
    )
    return Board(columns, ordered, len(runs))


def details_by_metric(rows: Iterable[ScoreRow]) -> dict[str, Mapping[str, Any]]:
    """One stored ``details`` per score key (the last seen)."""
    return {r.metric: r.details for r in rows}
