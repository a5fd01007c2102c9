"""The end-of-run summary table, read back from the database (skipped work included)."""

from __future__ import annotations

import json

from rich.table import Table

from benchmark.store import Store
from leaderboard.site import fmt


def summary_table(store: Store, run_id: str) -> Table:
    """Per scenario and explainer: accuracies (all / aligned / conflicting) and every score."""
    scen = store.con.execute(
        "SELECT scenario, target, attributes, rho, accuracy, accuracy_aligned, "
        "accuracy_conflicting FROM scenarios WHERE run_id = ? ORDER BY rowid",
        [run_id],
    ).fetchall()
    scores = store.con.execute(
        "SELECT scenario, explainer, metric, value, direction FROM scores WHERE run_id = ?",
        [run_id],
    ).fetchall()
    metrics: dict[str, str] = {}
    by_key: dict[tuple[str, str], dict[str, float]] = {}
    for scenario, explainer, metric, value, direction in scores:
        metrics.setdefault(metric, direction)
        by_key.setdefault((scenario, explainer), {})[metric] = value
    table = Table(title="summary (accuracy in %; ↓ lower is better, ↑ higher)")
    for col in ("scenario", "bias", "acc", "aligned", "conflicting", "explainer"):
        table.add_column(
            col, justify="right" if col in ("acc", "aligned", "conflicting") else "left"
        )
    for m, d in metrics.items():
        table.add_column(f"{m} {'↓' if d == 'lower' else '↑'}", justify="right")
    for scenario, target, attributes, rho, acc, acc_al, acc_cf in scen:
        attrs = json.loads(attributes)
        bias = f"{target} ~ {'+'.join(attrs)} ρ={rho:g}" if attrs else f"{target}, no bias"
        explainers = sorted({e for (s, e) in by_key if s == scenario}) or ["–"]
        for i, expl in enumerate(explainers):
            head = [scenario, bias, fmt(acc, True), fmt(acc_al, True), fmt(acc_cf, True)]
            head = head if i == 0 else [""] * 5
            row = by_key.get((scenario, expl), {})
            table.add_row(*head, expl, *(fmt(row.get(m)) for m in metrics))
    return table
