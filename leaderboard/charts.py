"""Bar charts of one scenario's scores with bootstrap intervals, as numbers for the SVG
template (``templates/_charts.html``).

The interval of a bar is value ± q·SE: SE from the two-stage bootstrap of
:func:`benchmark.compare.bootstrap_se` (resample the seeds, then each seed's images,
from ``image_scores``), with ``RESAMPLES`` draws from a generator seeded with ``SEED``
afresh for every bar, so a page is the same on every build; q is the normal 97.5 %
quantile for one seed and Student's t with k − 1 degrees of freedom for k seeds (as
``bench compare`` reads a spread from few seeds). A dataset-level score (Ranking
position) of one seed has no interval.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from statistics import NormalDist

import duckdb
import numpy as np

from benchmark.compare import Row, bootstrap_se
from leaderboard.ranking import Board, ScoreRow
from leaderboard.util import fmt

RESAMPLES = 1000
SEED = 0
CONFIDENCE = 0.95
# Layout (px): explainer labels, the plot, the value labels.
LABEL_W, PLOT_W, VALUE_W, ROW_H, BAR_H, TOP, BOTTOM = 150, 240, 140, 22, 14, 8, 26


@dataclass
class Bar:
    """One explainer's bar: value, interval and their x positions."""

    explainer: str
    value: float
    low: float | None
    high: float | None
    reference: bool
    best: bool
    y: float = 0.0
    x0: float = 0.0  # the bar's left edge (min of zero and value)
    width: float = 0.0
    x_low: float | None = None
    x_high: float | None = None

    @property
    def cy(self) -> float:
        """The y of the bar's middle (the whisker)."""
        return self.y + BAR_H / 2

    @property
    def text_y(self) -> float:
        """The baseline of the bar's labels."""
        return self.y + BAR_H - 3

    @property
    def label(self) -> str:
        """The printed value, with its interval."""
        if self.low is None or self.high is None:
            return fmt(self.value)
        return f"{fmt(self.value)} [{fmt(self.low)}, {fmt(self.high)}]"


@dataclass
class Chart:
    """A horizontal bar chart of one score key."""

    key: str
    name: str
    direction: str
    bars: list[Bar]
    lo: float
    hi: float
    width: int
    height: int
    zero_x: float
    seeds: int

    label_x = LABEL_W - 6
    value_x = LABEL_W + PLOT_W + 6
    bar_h = BAR_H

    @property
    def axis_bottom(self) -> float:
        """The lower end of the zero line."""
        return self.height - BOTTOM + 4

    @property
    def tick_y(self) -> float:
        """The baseline of the tick labels."""
        return self.height - 8

    @property
    def ticks(self) -> list[tuple[float, str]]:
        """(x, label) at the axis ends and at zero."""
        out = {self.x(self.lo): fmt(self.lo), self.x(self.hi): fmt(self.hi)}
        out[self.zero_x] = "0"
        return sorted(out.items())

    def x(self, v: float) -> float:
        """The x of value ``v``."""
        return LABEL_W + (v - self.lo) / (self.hi - self.lo) * PLOT_W


def interval(
    seed_values: list[float], seed_images: list[np.ndarray | None]
) -> tuple[float | None, float | None]:
    """The bootstrap interval of the mean over seeds (None, None where it is zero)."""
    row = Row("higher")
    for i, (v, images) in enumerate(zip(seed_values, seed_images, strict=True)):
        row.seeds[i] = float(v)
        if images is not None:
            row.images[i] = images
    se = bootstrap_se(row, RESAMPLES, np.random.default_rng(SEED))
    mean = float(np.mean(seed_values))
    # Identical seeds of a dataset-level score leave rounding noise, not an interval.
    if not math.isfinite(se) or se <= 1e-12 * max(1.0, abs(mean)):
        return None, None
    k = len(seed_values)
    if k > 1:
        from scipy.stats import t as student_t

        q = float(student_t.ppf(0.5 + CONFIDENCE / 2, k - 1))
    else:
        q = NormalDist().inv_cdf(0.5 + CONFIDENCE / 2)
    return mean - q * se, mean + q * se


def image_values(
    con: duckdb.DuckDBPyConnection, run_ids: list[str], scenario: str
) -> dict[tuple[str, str, str], np.ndarray]:
    """(run, explainer, metric) → the per-image values behind the score, NaN left out."""
    if not run_ids:
        return {}
    rows = con.execute(
        "SELECT run_id, explainer, metric, values FROM image_scores "
        f"WHERE run_id IN ({', '.join('?' * len(run_ids))}) AND scenario = ?",
        [*run_ids, scenario],
    ).fetchall()
    out = {}
    for run, e, m, values in rows:
        arr = np.asarray([np.nan if v is None else v for v in values], dtype=float)
        out[(run, e, m)] = arr[~np.isnan(arr)]
    return out


def _layout(chart: Chart) -> Chart:
    for i, bar in enumerate(chart.bars):
        bar.y = TOP + i * ROW_H
        a, b = chart.x(min(0.0, bar.value)), chart.x(max(0.0, bar.value))
        bar.x0, bar.width = a, max(b - a, 1.0)
        if bar.low is not None and bar.high is not None:
            bar.x_low, bar.x_high = chart.x(bar.low), chart.x(bar.high)
    return chart


def bar_chart(key: str, name: str, direction: str, bars: list[Bar], seeds: int) -> Chart:
    """Scale the bars onto one axis that holds zero, every value and every interval."""
    points = [0.0] + [v for b in bars for v in (b.value, b.low, b.high) if v is not None]
    lo, hi = min(points), max(points)
    if hi == lo:
        hi = lo + 1.0
    height = TOP + ROW_H * len(bars) + BOTTOM
    chart = Chart(key, name, direction, bars, lo, hi, LABEL_W + PLOT_W + VALUE_W, height, 0, seeds)
    chart.zero_x = chart.x(0.0)
    return _layout(chart)


def scenario_charts(
    con: duckdb.DuckDBPyConnection,
    run_ids: list[str],
    scenario: str,
    board: Board,
    rows: Iterable[ScoreRow],
) -> list[Chart]:
    """One chart per score key of the scenario's board, explainers in the board's order."""
    images = image_values(con, run_ids, scenario)
    per_seed: Mapping[tuple[str, str], dict[str, float]] = defaultdict(dict)
    for r in rows:
        per_seed[(r.explainer, r.metric)][r.run_id] = r.value
    charts = []
    for col in board.columns:
        bars = []
        for row in board.rows:
            cell = row.cells.get(col.key)
            if cell is None:
                continue
            seeds = per_seed.get((row.explainer, col.key), {})
            ids = [r for r in run_ids if r in seeds]
            low, high = interval(
                [seeds[r] for r in ids], [images.get((r, row.explainer, col.key)) for r in ids]
            )
            bars.append(Bar(row.explainer, cell.value, low, high, row.reference, cell.best))
        if bars:
            charts.append(bar_chart(col.key, col.name, col.direction, bars, len(run_ids)))
    return charts
