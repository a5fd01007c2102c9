"""One scenario's page: accuracies, scores with bar charts and bootstrap intervals, the
ground truth, a gallery of each explainer's stored figures, and its region rankings.

Scores and charts are averaged over the experiment's finished seeds; the ground truth,
figures and region rankings are those of its first run (named on the page). Rendered
by ``templates/scenario.html``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import duckdb

from leaderboard.charts import scenario_charts
from leaderboard.names import postprocess_text
from leaderboard.ranking import build_board, details_by_metric, load_scores, run_means
from leaderboard.render import render
from leaderboard.selection import Experiment
from leaderboard.site import describe_bias
from leaderboard.util import fmt, slug

#: Stored figure kinds, in page order, and their captions. Kinds starting with
#: ``gallery`` (per-image strips: image, map, mask) follow the aggregate figures.
CAPTIONS = {
    "prototype": "FaceX prototype: mean IoR per region, blue (low) to red (high)",
    "canonical": "canonical summary: mean map projected onto the canonical face",
    "patches": "high-impact patches per region, most attributed first",
}
GALLERY_CAPTION = "one explained image: the image, the explainer's map, the bias mask"


def _ground_truth(con: duckdb.DuckDBPyConnection, run_id: str, name: str) -> dict[str, Any]:
    rel = con.execute(
        "SELECT attribute, regions, reliance, n FROM reliance "
        "WHERE run_id = ? AND scenario = ? ORDER BY reliance DESC, attribute",
        [run_id, name],
    ).fetchall()
    rows = [
        [a, ", ".join(json.loads(r)), fmt(v), str(i + 1), str(n)]
        for i, (a, r, v, n) in enumerate(rel)
    ]
    agree = con.execute(
        "SELECT explainer, metric, value, details FROM scores "
        "WHERE run_id = ? AND scenario = ? AND metric LIKE 'gt_agreement%' ORDER BY explainer",
        [run_id, name],
    ).fetchall()
    by_expl: dict[str, dict[str, Any]] = {}
    for e, m, v, det in agree:
        entry = by_expl.setdefault(e, {})
        entry["top_hit" if m.endswith(".top_hit") else "rho"] = v
        entry["top"] = json.loads(det or "{}").get("explainer_top", "–")
    agree_rows = [
        [
            e,
            fmt(d.get("rho")),
            "yes" if d.get("top_hit") == 1 else ("no" if "top_hit" in d else "–"),
            str(d.get("top", "–")),
        ]
        for e, d in sorted(by_expl.items())
    ]
    return {"reliance": rows, "agreement": agree_rows}


def _figures(
    con: duckdb.DuckDBPyConnection, run_id: str, name: str, out: Path
) -> dict[str, list[dict[str, str]]]:
    """Per explainer its stored figures, written under ``out/figures``."""
    rows = con.execute(
        "SELECT explainer, kind, png FROM figures WHERE run_id = ? AND scenario = ? "
        # The canonical summary sits beside the FaceX prototype, the patch grid after,
        # then any per-image gallery strips.
        "ORDER BY explainer, CASE kind WHEN 'prototype' THEN 0 WHEN 'canonical' THEN 1 "
        "WHEN 'patches' THEN 2 ELSE 3 END, kind",
        [run_id, name],
    ).fetchall()
    out_rows: dict[str, list[dict[str, str]]] = {}
    for explainer, kind, png in rows:
        if png is None:
            continue
        file = f"figures/{slug(run_id, name, explainer, kind)}.png"
        (out / file).parent.mkdir(parents=True, exist_ok=True)
        (out / file).write_bytes(png)
        gallery = kind.startswith("gallery")
        caption = GALLERY_CAPTION if gallery else CAPTIONS.get(kind, kind)
        out_rows.setdefault(explainer, []).append(
            {"src": file, "alt": f"{kind} of {explainer} on {name}", "caption": caption,
             "kind": kind, "gallery": gallery}
        )  # fmt: skip
    return out_rows


def _regions(con: duckdb.DuckDBPyConnection, run_id: str, name: str) -> dict[str, list]:
    """Per explainer, per metric: its region rows (region, IoR, rank, top share, images)."""
    rows = con.execute(
        "SELECT explainer, metric, region, ior, rank, n_present, top_share FROM region_scores "
        "WHERE run_id = ? AND scenario = ? ORDER BY explainer, metric, rank NULLS LAST",
        [run_id, name],
    ).fetchall()
    out: dict[str, dict[str, list[list[str]]]] = {}
    for e, m, r, ior, rank, n, peak in rows:
        out.setdefault(e, {}).setdefault(m, []).append(
            [r, fmt(ior), fmt(rank), fmt(peak, True), str(n)]
        )
    return {e: list(per.items()) for e, per in out.items()}


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


def scenario_page(con: duckdb.DuckDBPyConnection, exp: Experiment, name: str, out: Path) -> str:
    """The HTML of one scenario of ``exp``; writes its figures under ``out/figures``."""
    first = exp.run_ids[0]
    marks = ", ".join("?" * len(exp.run_ids))
    target, attrs, rho, n_train, n_test, cells, n_explained = con.execute(
        "SELECT target, attributes, rho, n_train, n_test, train_cells, n_explained "
        "FROM scenarios WHERE run_id = ? AND scenario = ?",
        [first, name],
    ).fetchone()
    acc, al, cf = con.execute(
        "SELECT avg(accuracy), avg(accuracy_aligned), avg(accuracy_conflicting) "
        f"FROM scenarios WHERE run_id IN ({marks}) AND scenario = ?",
        [*exp.run_ids, name],
    ).fetchone()
    rows = load_scores(con, exp.run_ids, name)
    means = run_means(rows, {}, exp.registry)
    board = build_board(
        [means.get(r, {}) for r in exp.run_ids], exp.registry, details_by_metric(rows),
        exp.references,
    )  # fmt: skip
    compared = {}
    for r in rows:
        if r.details.get("compared"):
            compared[r.metric] = r.details["compared"]
    figures = _figures(con, first, name, out)
    regions = _regions(con, first, name)
    explainers = [r.explainer for r in board.rows]
    explainers += sorted((set(figures) | set(regions)) - set(explainers))
    return render(
        "scenario.html",
        exp=exp,
        name=name,
        first=first,
        target=target,
        bias=describe_bias(target, json.loads(attrs or "[]"), rho),
        n_train=n_train,
        n_test=n_test,
        n_explained=n_explained,
        train_cells=list(json.loads(cells or "{}").items()),
        accuracy=_accuracy_table(target, acc, al, cf),
        postprocess=postprocess_text(exp.suite_json),
        board=board,
        compared=sorted(compared.items()),
        charts=scenario_charts(con, exp.run_ids, name, board, rows),
        truth=_ground_truth(con, first, name),
        explainers=explainers,
        references=exp.references,
        figures=figures,
        has_gallery=any(f["gallery"] for fs in figures.values() for f in fs),
        regions=regions,
    )
