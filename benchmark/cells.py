"""A run's work as independent cells, planned once from the suite.

A **prepare** cell (seed × scenario) trains or loads the scenario's model, stores its
accuracies and measures its ground-truth reliance. An **explain** cell (seed ×
scenario × explainer) explains and scores with that model, so each explain cell
depends on exactly one prepare cell (:attr:`Cell.needs`). Comparative metrics (Win %)
are not cells: they are recomputed from the stored per-image values wherever every
explainer of a scenario is present (a full run, a merge, the Ray driver).

Shards split the explain cells into contiguous blocks of the planned order (seed,
scenario, explainer), so a scenario's cells stay mostly on one shard and few models are
prepared twice; a shard runs the prepare cells its explain cells need.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Literal

from benchmark.errors import BenchError
from benchmark.suite import Suite

_SHARD = re.compile(r"^\s*(\d+)\s*/\s*(\d+)\s*$")


@dataclass(frozen=True, order=True)
class Cell:
    """One unit of work: ``explainer`` is None for a prepare cell."""

    seed: int
    scenario: str
    explainer: str | None = None

    @property
    def kind(self) -> Literal["prepare", "explain"]:
        return "prepare" if self.explainer is None else "explain"

    @property
    def needs(self) -> Cell | None:
        """The prepare cell an explain cell depends on (None for a prepare cell)."""
        return None if self.explainer is None else Cell(self.seed, self.scenario)

    def __str__(self) -> str:
        what = self.explainer or "prepare"
        return f"{what} on {self.scenario} (seed {self.seed})"


def plan_cells(suite: Suite) -> list[Cell]:
    """Every cell of a suite in run order: per seed and scenario, its prepare cell, then
    one explain cell per explainer."""
    cells = []
    for seed in suite.seeds or [suite.seed]:
        for sc in suite.scenarios:
            cells.append(Cell(seed, sc.name))
            cells += [Cell(seed, sc.name, e.display_name) for e in suite.explainers]
    return cells


def parse_shard(text: str) -> tuple[int, int]:
    """``"2/4"`` → (2, 4); shards count from 1. Raises BenchError on anything else."""
    m = _SHARD.match(text or "")
    if not m:
        raise BenchError(f"--shard: expected K/N such as 1/4, got {text!r}")
    k, n = int(m.group(1)), int(m.group(2))
    if n < 1 or not 1 <= k <= n:
        raise BenchError(f"--shard: expected 1 ≤ K ≤ N in K/N, got {text!r}")
    return k, n


def shard_cells(cells: list[Cell], k: int, n: int) -> list[Cell]:
    """Shard ``k`` of ``n``: a contiguous block of the explain cells and the prepare
    cells those need, in run order. The ``n`` shards partition the explain cells."""
    explain = [c for c in cells if c.explainer is not None]
    lo, hi = (k - 1) * len(explain) // n, k * len(explain) // n
    mine = set(explain[lo:hi])
    needed = {c.needs for c in mine}
    return [c for c in cells if c in mine or c in needed]


def by_run(cells: Iterable[Cell]) -> dict[int, dict[str, set[str]]]:
    """seed → scenario → the explainer labels to run (empty: prepare only)."""
    out: dict[int, dict[str, set[str]]] = {}
    for c in cells:
        labels = out.setdefault(c.seed, {}).setdefault(c.scenario, set())
        if c.explainer is not None:
            labels.add(c.explainer)
    return out
