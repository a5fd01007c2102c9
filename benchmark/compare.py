"""Compare two runs (or a run and a baseline) row by row, with uncertainty (issue 6).

A *side* is a run, a group of runs (one per seed) or a baseline file. Each row
(scenario, explainer, metric) of a side is summarised as its value (the mean over seeds)
and a standard error from a two-stage bootstrap: resample the seeds, then the images of
each seed where the metric is a per-image mean (``image_scores``). The difference of two
sides gets the interval d ± t·√(se_A² + se_B²): the sides are independent samples (they
may use other seeds), and a baseline keeps only (value, se, seeds), so it stays small.
t has Welch–Satterthwaite degrees of freedom from each side's k − 1 seeds (infinite for
one seed, whose SE comes from its images alone): a spread estimated from three seeds is
itself uncertain, and a normal quantile there raised false alarms from 0 to 4 % of rows.

A row is *worse* when the interval lies below zero in the metric's bad direction and
the difference exceeds the metric's tolerance; *better* symmetrically; else unchanged.
Written by hand: asv and pytest-benchmark compare timings, not scores with a direction.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from statistics import NormalDist
from typing import Any

import duckdb
import numpy as np
from scipy.stats import t as student_t

from benchmark.errors import BenchError

Key = tuple[str, str, str]  # scenario, explainer, metric


@dataclass
class Row:
    """One (scenario, explainer, metric) of a side."""

    direction: str
    seeds: dict[int, float] = field(default_factory=dict)
    images: dict[int, np.ndarray] = field(default_factory=dict)  # seed → values, no NaN
    value: float = math.nan
    se: float = 0.0

    @property
    def df(self) -> float:
        """Degrees of freedom of ``se``: seeds − 1, or infinite for a single seed."""
        return len(self.seeds) - 1 if len(self.seeds) > 1 else math.inf


@dataclass
class Side:
    """A run, a group of runs or a baseline: its label, seeds, rows and metric tolerances."""

    label: str
    seeds: list[int]
    rows: dict[Key, Row]
    tolerance: dict[str, float] = field(default_factory=dict)
    suite: str | None = None


def bootstrap_se(row: Row, resamples: int, rng: np.random.Generator) -> float:
    """SE of the mean over seeds: resample seeds, then each seed's images."""
    seeds = sorted(row.seeds)
    k = len(seeds)
    if k == 0:
        return math.nan
    draws = np.empty((resamples, k))
    for j, seed in enumerate(seeds):
        values = row.images.get(seed)
        if values is not None and len(values) > 1:
            pick = rng.integers(0, len(values), (resamples, len(values)))
            draws[:, j] = values[pick].mean(1)
        else:  # a dataset-level score: no image-level resampling
            draws[:, j] = row.seeds[seed]
    if k > 1:
        draws = np.take_along_axis(draws, rng.integers(0, k, (resamples, k)), axis=1)
        # The bootstrap of k seed means underestimates their spread by (k-1)/k.
        spread = draws.mean(1)
        return float(spread.std() * math.sqrt(k / (k - 1)))
    return float(draws[:, 0].std())


def _resolve(con: duckdb.DuckDBPyConnection, ref: str) -> list[tuple]:
    """Runs named by ``ref``: a run id or a group id (all its seeds), or a unique prefix."""
    rows = con.execute(
        "SELECT run_id, group_id, seed, suite, suite_json, status FROM runs "
        "WHERE starts_with(run_id, ?) OR starts_with(coalesce(group_id, ''), ?) ORDER BY seed",
        [ref, ref],
    ).fetchall()
    by_run = [r for r in rows if r[0].startswith(ref)]
    by_group = [r for r in rows if (r[1] or "").startswith(ref)]
    named = {("run", r[0]) for r in by_run} | {("group", r[1]) for r in by_group}
    if not named:
        raise BenchError(f"no run or group id starting with {ref!r} in the database")
    if len(named) > 1:
        raise BenchError(f"{ref!r} starts {len(named)} run or group ids; give more characters")
    runs = by_run or by_group
    if unfinished := [r[0][:12] for r in runs if r[5] != "done"]:
        raise BenchError(f"run(s) {', '.join(unfinished)} of {ref!r} did not finish")
    return runs


def tolerances(suite_json: Mapping[str, Any]) -> dict[str, float]:
    """Score key → tolerance: the metric classes' defaults, then the suite's overrides."""
    from benchmark.catalogue import METRICS

    out: dict[str, float] = {}
    for spec in suite_json.get("metrics", []):
        spec = {"name": spec} if isinstance(spec, str) else spec
        try:
            cls = METRICS.get(spec["name"])
        except Exception:
            continue
        out[spec.get("label") or cls.name] = float(getattr(cls, "tolerance", 0.0))
    out.update(
        {k: float(v) for k, v in (suite_json.get("check") or {}).get("tolerance", {}).items()}
    )
    return out


def load_side(
    con: duckdb.DuckDBPyConnection, ref: str, resamples: int = 2000, seed: int = 0
) -> Side:
    """The rows of the run or group ``ref`` with their bootstrap SEs."""
    runs = _resolve(con, ref)
    ids = [r[0] for r in runs]
    seed_of = {r[0]: int(r[2]) for r in runs}
    marks = ", ".join("?" * len(ids))
    rows: dict[Key, Row] = {}
    for run_id, sc, ex, metric, value, direction in con.execute(
        f"SELECT run_id, scenario, explainer, metric, value, direction FROM scores "
        f"WHERE run_id IN ({marks}) AND value IS NOT NULL AND NOT isnan(value)",
        ids,
    ).fetchall():
        row = rows.setdefault((sc, ex, metric), Row(direction))
        row.seeds[seed_of[run_id]] = float(value)
    for run_id, sc, ex, metric, values in con.execute(
        f"SELECT run_id, scenario, explainer, metric, values FROM image_scores "
        f"WHERE run_id IN ({marks})",
        ids,
    ).fetchall():
        if (row := rows.get((sc, ex, metric))) is not None:
            arr = np.asarray(values, dtype=float)
            row.images[seed_of[run_id]] = arr[~np.isnan(arr)]
    rng = np.random.default_rng(seed)
    for key in sorted(rows):
        row = rows[key]
        row.value = float(np.mean(list(row.seeds.values())))
        row.se = bootstrap_se(row, resamples, rng)
    suite_json = json.loads(runs[0][4] or "{}")
    label = (runs[0][1] or runs[0][0])[:12] if len(runs) > 1 else runs[0][0][:12]
    return Side(label, sorted(seed_of.values()), rows, tolerances(suite_json), runs[0][3])


@dataclass
class Verdict:
    """One compared row: A's and B's values, B − A, the interval, the verdict."""

    key: Key
    direction: str
    a: float | None
    b: float | None
    diff: float | None
    low: float | None
    high: float | None
    tolerance: float
    verdict: str  # better, worse, unchanged, new, missing


def _tolerance(metric: str, *tables: Mapping[str, float]) -> float:
    base = metric.split(".")[0]  # ranking_position.rp2 → ranking_position
    for table in tables:
        if metric in table:
            return table[metric]
    for table in tables:
        if base in table:
            return table[base]
    return 0.0


def _quantile(confidence: float, a: Row, b: Row) -> float:
    """Two-sided t quantile with Welch–Satterthwaite degrees of freedom."""
    va, vb = a.se**2, b.se**2
    terms = [v * v / df for v, df in ((va, a.df), (vb, b.df)) if v > 0 and math.isfinite(df)]
    df = (va + vb) ** 2 / sum(terms) if terms and va + vb > 0 else math.inf
    p = 0.5 + confidence / 2
    return NormalDist().inv_cdf(p) if math.isinf(df) else float(student_t.ppf(p, df))


def compare(
    a: Side,
    b: Side,
    confidence: float = 0.95,
    tolerance: Mapping[str, float] | None = None,
    correction: str = "bonferroni",
) -> list[Verdict]:
    """Every row of ``a`` and ``b``; the verdict reads B against A (A the reference).

    With ``correction="bonferroni"`` the ``confidence`` holds for all rows together (each
    row's interval at 1 − (1 − confidence) / rows): a gate over dozens of rows would
    otherwise flag one by chance in most runs.
    """
    shared = len(set(a.rows) & set(b.rows))
    if correction == "bonferroni" and shared > 1:
        confidence = 1 - (1 - confidence) / shared
    out = []
    for key in sorted(set(a.rows) | set(b.rows)):
        ra, rb = a.rows.get(key), b.rows.get(key)
        tol = _tolerance(key[2], tolerance or {}, b.tolerance, a.tolerance)
        if ra is None or rb is None:
            r = ra or rb
            assert r is not None
            verdict = "new" if ra is None else "missing"
            out.append(Verdict(key, r.direction, ra and ra.value, rb and rb.value,
                               None, None, None, tol, verdict))  # fmt: skip
            continue
        diff = rb.value - ra.value
        half = _quantile(confidence, ra, rb) * math.hypot(ra.se, rb.se)
        low, high = diff - half, diff + half
        # Oriented so that > 0 is better; float noise of a recomputed mean is no change.
        gain, lo, hi = (diff, low, high) if ra.direction == "higher" else (-diff, -high, -low)
        tiny = 1e-9 * max(1.0, abs(ra.value), abs(rb.value))
        if hi < 0 and -gain > max(tol, tiny):
            verdict = "worse"
        elif lo > 0 and gain > max(tol, tiny):
            verdict = "better"
        else:
            verdict = "unchanged"
        out.append(Verdict(key, ra.direction, ra.value, rb.value, diff, low, high, tol, verdict))
    return out
