"""One scenario's page: model accuracies, scores, ground truth, FaceX figures, regions."""

from __future__ import annotations

import json
from pathlib import Path

import duckdb

from leaderboard.site import describe_bias, esc, fmt, page, slug, table


def _arrow(direction: str) -> str:
    return "↑" if direction == "higher" else "↓"


def _scores(con: duckdb.DuckDBPyConnection, run_id: str, name: str) -> tuple[str, list[str]]:
    rows = con.execute(
        "SELECT explainer, metric, value, n, direction, details FROM scores "
        "WHERE run_id = ? AND scenario = ? ORDER BY explainer, metric",
        [run_id, name],
    ).fetchall()
    metrics: dict[str, str] = {}
    for _, m, _, _, d, _ in rows:
        metrics.setdefault(m, d)
    metrics = dict(sorted(metrics.items()))
    cell = {(e, m): v for e, m, v, *_ in rows}
    explainers = sorted({e for e, *_ in rows})
    body = [
        [esc(e)] + [fmt(cell[(e, m)]) if (e, m) in cell else "–" for m in metrics]
        for e in explainers
    ]
    compared = {
        m: json.loads(det).get("compared") for _, m, *_, det in rows if det and "compared" in det
    }
    notes = "".join(
        f"<p class='muted'>{esc(m)} compares {esc(', '.join(c))} (sums to 100 over them).</p>"
        for m, c in compared.items()
        if c
    )
    head = ["explainer", *(f"{m} {_arrow(d)}" for m, d in metrics.items())]
    return table(head, body) + notes, explainers


def _ground_truth(con: duckdb.DuckDBPyConnection, run_id: str, name: str) -> str:
    rel = con.execute(
        "SELECT attribute, regions, reliance, n FROM reliance "
        "WHERE run_id = ? AND scenario = ? ORDER BY reliance DESC, attribute",
        [run_id, name],
    ).fetchall()
    if not rel:
        return ""
    rows = [
        [esc(a), esc(", ".join(json.loads(r))), fmt(v), str(i + 1), str(n)]
        for i, (a, r, v, n) in enumerate(rel)
    ]
    agree = con.execute(
        "SELECT explainer, metric, value, details FROM scores "
        "WHERE run_id = ? AND scenario = ? AND metric LIKE 'gt_agreement%' ORDER BY explainer",
        [run_id, name],
    ).fetchall()
    by_expl: dict[str, dict[str, object]] = {}
    for e, m, v, det in agree:
        entry = by_expl.setdefault(e, {})
        entry["top_hit" if m.endswith(".top_hit") else "rho"] = v
        entry["top"] = json.loads(det or "{}").get("explainer_top", "–")
    agree_rows = [
        [
            esc(e),
            fmt(d.get("rho")),  # type: ignore[arg-type]
            "yes" if d.get("top_hit") == 1 else ("no" if "top_hit" in d else "–"),
            esc(d.get("top", "–")),
        ]
        for e, d in sorted(by_expl.items())
    ]
    return (
        "<h2>Ground truth (counterfactual renders, METHODS §9)</h2>"
        "<p>Reliance = mean |M(X) − M(X with the attribute toggled)| over the explained "
        "images, M the probability of the explained class.</p>"
        + table(["attribute", "regions", "reliance", "true rank", "images"], rows)
        + (
            table(
                ["explainer", "Spearman ρ ↑", "top attribute right", "explainer's top"], agree_rows
            )
            if agree_rows
            else ""
        )
    )


def _figures(
    con: duckdb.DuckDBPyConnection, run_id: str, name: str, explainer: str, out: Path
) -> str:
    rows = con.execute(
        "SELECT kind, png FROM figures WHERE run_id = ? AND scenario = ? AND explainer = ? "
        # The canonical summary sits beside the FaceX prototype, the patch grid after.
        "ORDER BY CASE kind WHEN 'prototype' THEN 0 WHEN 'canonical' THEN 1 ELSE 2 END, kind",
        [run_id, name, explainer],
    ).fetchall()
    html = ""
    captions = {
        "prototype": "FaceX prototype: mean IoR per region, blue (low) to red (high)",
        "canonical": "canonical summary: mean map projected onto the canonical face",
        "patches": "high-impact patches per region, most attributed first",
    }
    for kind, png in rows:
        if png is None:
            continue
        file = f"figures/{slug(run_id, name, explainer, kind)}.png"
        (out / file).parent.mkdir(parents=True, exist_ok=True)
        (out / file).write_bytes(png)
        alt = f"{kind} of {explainer} on {name}"
        html += (
            f'<figure><img src="{esc(file)}" alt="{esc(alt)}">'
            f"<figcaption>{esc(captions.get(kind, kind))}</figcaption></figure>"
        )
    return html


def _accuracy_table(target: str, acc, al, cf) -> tuple[list[str], list[list[str]]]:
    """The model's accuracies, headed as the task reads them (the columns are shared)."""
    if target in ("mated", "nonmated"):  # verification: best threshold over all pairs
        head = ["verification accuracy %", "all pairs", "mated accepted", "nonmated rejected"]
        return head, [["test pairs", fmt(acc, True), fmt(al, True), fmt(cf, True)]]
    if target == "inpainting":  # the game: is the probe nearer its mate than the nonmate?
        head = ["triplet accuracy %", "probe nearer its mate than the nonmate"]
        return head, [["test triplets", fmt(acc, True)]]
    if target == "face":  # detection: images with a face found
        return ["faces detected %", "all images"], [["test images", fmt(acc, True)]]
    head = ["model accuracy %", "all", "aligned", "conflicting"]
    return head, [["balanced test set", fmt(acc, True), fmt(al, True), fmt(cf, True)]]


def scenario_page(con: duckdb.DuckDBPyConnection, run_id: str, scenario: tuple, out: Path) -> str:
    """The HTML of one scenario; writes its figures under ``out/figures``."""
    name, target, attrs, rho, acc, al, cf, n_train, n_test, train_cells = scenario
    n_explained = con.execute(
        "SELECT n_explained FROM scenarios WHERE run_id = ? AND scenario = ?", [run_id, name]
    ).fetchone()[0]
    scores_html, explainers = _scores(con, run_id, name)
    regions = con.execute(
        "SELECT explainer, metric, region, ior, rank, n_present, top_share FROM region_scores "
        "WHERE run_id = ? AND scenario = ? ORDER BY explainer, metric, rank NULLS LAST",
        [run_id, name],
    ).fetchall()
    per_explainer = ""
    for e in explainers:
        per_explainer += f"<h2>{esc(e)}</h2>" + _figures(con, run_id, name, e, out)
        for metric in sorted({m for ex, m, *_ in regions if ex == e}):
            rows = [
                [esc(r), fmt(ior), fmt(rank), fmt(peak, True), str(n)]
                for ex, m, r, ior, rank, n, peak in regions
                if ex == e and m == metric
            ]
            per_explainer += f"<h3>Region ranking: {esc(e)} ({esc(metric)})</h3>"
            per_explainer += table(["region", "IoR", "rank", "top in images %", "images"], rows)
    cells = "".join(
        f"<li>{esc(k)}: {esc(v)}</li>" for k, v in json.loads(train_cells or "{}").items()
    )
    explained = f", {n_explained} of them explained" if n_explained is not None else ""
    body = (
        f'<p><a href="index.html">← leaderboard</a></p><h1>{esc(name)}</h1>'
        f"<p>Target {esc(target)}, bias {esc(describe_bias(target, json.loads(attrs), rho))}; "
        f"{n_train} training and {n_test} test images{explained}.</p>"
        + table(*_accuracy_table(target, acc, al, cf))
        + (f"<details><summary>training cells</summary><ul>{cells}</ul></details>" if cells else "")
        + "<h2>Scores</h2>"
        + scores_html
        + _ground_truth(con, run_id, name)
        + per_explainer
    )
    return page(f"{name} — face-xai-bench", body)
