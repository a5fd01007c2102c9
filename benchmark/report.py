"""The end-of-run summary, read back from the database (skipped work included)."""

from __future__ import annotations

import json

from rich.console import Group
from rich.table import Table

from benchmark.store import Store
from leaderboard.site import fmt


def _header(metric: str, direction: str) -> str:
    # Spaces let rich wrap long metric names instead of cutting them off.
    return metric.replace("_", " ").replace(".", " ") + (" ↓" if direction == "lower" else " ↑")


def summary_table(store: Store, run_id: str) -> Group:
    """The models (accuracy all / aligned / conflicting), then every score per explainer."""
    scen = store.con.execute(
        "SELECT scenario, target, attributes, rho, n_test, n_explained, accuracy, "
        "accuracy_aligned, accuracy_conflicting FROM scenarios WHERE run_id = ? ORDER BY rowid",
        [run_id],
    ).fetchall()
    scores = store.con.execute(
        "SELECT scenario, explainer, metric, value, direction FROM scores WHERE run_id = ? "
        "ORDER BY metric",
        [run_id],
    ).fetchall()
    models = Table(title="models (accuracy % on the balanced test set)")
    for col in ("scenario", "bias", "test", "explained", "acc", "aligned", "conflicting"):
        models.add_column(col, justify="left" if col in ("scenario", "bias") else "right")
    for scenario, target, attributes, rho, n_test, n_expl, acc, acc_al, acc_cf in scen:
        attrs = json.loads(attributes)
        if rho is None and not attrs and target in ("mated", "nonmated"):
            bias = f"{target} pairs (verification)"
        elif target == "inpainting":
            bias = f"inpainting game: nonmate's {'+'.join(attrs)} changed"
        elif rho is None and not attrs and target == "face":
            bias = "top detection (detection)"
        elif rho is None:  # a model explained as it is: nothing was injected
            bias = f"{target} vs {'+'.join(attrs) or 'nothing'}, pretrained"
        else:
            bias = f"{target} ~ {'+'.join(attrs)} ρ={rho:g}" if attrs else f"{target}, no bias"
        models.add_row(
            scenario, bias, str(n_test), str(n_expl if n_expl is not None else n_test),
            fmt(acc, True), fmt(acc_al, True), fmt(acc_cf, True),
        )  # fmt: skip
    metrics: dict[str, str] = {}
    by_key: dict[tuple[str, str], dict[str, float]] = {}
    for scenario, explainer, metric, value, direction in scores:
        metrics.setdefault(metric, direction)
        by_key.setdefault((scenario, explainer), {})[metric] = value
    table = Table(title="scores (↓ lower is better, ↑ higher)")
    table.add_column("scenario")
    table.add_column("explainer", no_wrap=True)
    for m, d in metrics.items():
        table.add_column(_header(m, d), justify="right")
    for scenario, *_ in scen:
        explainers = sorted({e for (s, e) in by_key if s == scenario})
        for i, expl in enumerate(explainers):
            row = by_key[(scenario, expl)]
            table.add_row(
                scenario if i == 0 else "", expl, *(fmt(row.get(m)) for m in metrics),
                end_section=i == len(explainers) - 1,
            )  # fmt: skip
    return Group(models, table)
