"""The static leaderboard: a self-contained HTML site built from the DuckDB results alone.

Pages: ``index.html`` ranks the explainers per metric (human names, the score key in
the tooltip, direction and n shown, a mean rank over distinct metrics) for each suite's
latest finished experiment, averaged over its seeds (:mod:`leaderboard.selection`,
:mod:`leaderboard.ranking`); ``scenario-<run>-<name>.html`` shows one scenario (see
:mod:`leaderboard.scenario`); ``history-<suite>.html`` a suite's run groups. Every page
is a jinja2 template under ``leaderboard/templates`` with autoescape on, so every name
from the database is HTML-escaped. Figures are written from the PNG bytes stored in the
database, so the site never reads the run's files.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import duckdb

from leaderboard.names import postprocess_text
from leaderboard.ranking import (
    Board,
    build_board,
    details_by_metric,
    load_scores,
    rank_explainers,
    run_means,
    scenario_bias,
)
from leaderboard.render import render
from leaderboard.selection import Experiment, experiments
from leaderboard.util import fmt, has_column, slug

__all__ = [
    "build_site", "describe_bias", "experiment_board", "fmt", "has_column", "rank_explainers",
    "slug",
]  # fmt: skip

TASKS = ("classification", "verification", "detection")
TASK_TITLES = {
    "classification": "Classification: does the map find the shortcut?",
    "verification": "Verification: what makes two faces the same person?",
    "detection": "Detection: does the map cover the detected face?",
}
#: How each task's index section reads: what the scores average, and the headers of
#: the scenarios' accuracy columns (stored in the same three columns for every task).
TASK_NOTES = {
    "classification": (
        "Region metrics (ranking position, bbox AP against the bias box, pointing game) "
        "average the suite's biased scenarios: controls with ρ = 0.5 or no bias attribute "
        "are left out, unless the suite has no biased scenario at all. Every other metric "
        "averages all scenarios",
        ["all", "aligned", "conflicting"],
    ),
    "verification": (
        "Scores are means over the suite's scenarios: mated or nonmated pairs (the "
        "similarity to the reference explained), or inpainting-game triplets (the "
        "contrastive score explained; ranking position and pointing game ask whether "
        "the changed part comes first)",
        ["all pairs (triplets: probe nearer its mate)", "mated accepted", "nonmated rejected"],
    ),
    "detection": (
        "Scores are means over the suite's scenarios (the score of each image's top "
        "detection explained; bbox AP against that box)",
        ["faces detected", "–", "–"],
    ),
}


def describe_bias(target: str, attributes: list[str], rho: float | None) -> str:
    """``Male ~ Wearing_Lipstick (ρ=0.99)``; a model explained as it is has no ρ."""
    attrs = " + ".join(attributes) or "none"
    if rho is None and not attributes and target in ("mated", "nonmated"):
        return f"verification: {target} pairs, similarity to the reference explained"
    if target == "inpainting":
        return f"inpainting game: the nonmate differs from the mate in the {attrs} only"
    if rho is None and not attributes and target == "face":
        return "detection: the score of each image's top detection explained"
    if rho is None:
        return f"{target} vs {attrs} (pretrained, nothing injected)"
    return f"{target} ~ {attrs} (ρ={rho:g})"


def experiment_board(con: duckdb.DuckDBPyConnection, exp: Experiment) -> Board:
    """The index's table of one experiment: scenario means, averaged over its seeds."""
    rows = load_scores(con, exp.run_ids)
    means = run_means(rows, scenario_bias(con, exp.run_ids), exp.registry)
    per_run = [means.get(r, {}) for r in exp.run_ids]
    return build_board(per_run, exp.registry, details_by_metric(rows), exp.references)


def _scenarios(con: duckdb.DuckDBPyConnection, exp: Experiment) -> list[dict[str, Any]]:
    """The experiment's scenarios (the first run's order), accuracies averaged over seeds."""
    marks = ", ".join("?" * len(exp.run_ids))
    rows = con.execute(
        "SELECT scenario, any_value(target), any_value(attributes), any_value(rho), "
        "avg(accuracy), avg(accuracy_aligned), avg(accuracy_conflicting), count(*), "
        "min(CASE WHEN run_id = ? THEN rowid END) AS k "
        f"FROM scenarios WHERE run_id IN ({marks}) GROUP BY scenario ORDER BY k NULLS LAST, "
        "scenario",
        [exp.run_ids[0], *exp.run_ids],
    ).fetchall()
    return [
        {"name": s, "href": f"{slug('scenario', exp.run_ids[0], s)}.html",
         "bias": describe_bias(t, json.loads(a or "[]"), rho), "acc": (acc, al, cf), "seeds": k}
        for s, t, a, rho, acc, al, cf, k, _ in rows
    ]  # fmt: skip


def _hygiene(con: duckdb.DuckDBPyConnection, run_id: str) -> str:
    if not has_column(con, "runs", "data_counts"):  # databases written before it have none
        return ""
    (counts,) = con.execute("SELECT data_counts FROM runs WHERE run_id = ?", [run_id]).fetchone()
    return "; ".join(
        f"{split}: " + ", ".join(f"{k} {v}" for k, v in c.items())
        for split, c in json.loads(counts or "{}").items()
        if c
    )


def run_section(con: duckdb.DuckDBPyConnection, exp: Experiment) -> dict[str, Any]:
    """The index section of one suite's experiment, as the template's context."""
    from leaderboard.history import history_link
    from leaderboard.paper import paper_context

    note, columns = TASK_NOTES.get(exp.task, TASK_NOTES["classification"])
    section: dict[str, Any] = {
        "exp": exp, "note": note, "acc_columns": columns, "history": history_link(con, exp.suite),
        "postprocess": postprocess_text(exp.suite_json), "board": None, "scenarios": [],
        "hygiene": "", "paper": None,
    }  # fmt: skip
    if exp.runs:
        section |= {
            "board": experiment_board(con, exp),
            "scenarios": _scenarios(con, exp),
            "hygiene": _hygiene(con, exp.run_ids[0]),
            "paper": paper_context(con, exp.run_ids, exp.suite_json, exp.references),
        }
    return section


def _clean(out: Path) -> None:
    # Pages and figures of runs no longer shown would linger: remove what we generated.
    for pattern in ("scenario-*.html", "history-*.html", "figures/*.png"):
        for stale in out.glob(pattern):
            stale.unlink()


def build_site(db: Path, out: Path) -> list[Path]:
    """Write the leaderboard for every suite's latest finished experiment in ``db``."""
    from leaderboard.history import write_history_pages
    from leaderboard.scenario import scenario_page

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    _clean(out)
    written = []
    with duckdb.connect(str(db), read_only=True) as con:
        shown = experiments(con)
        tasks = []
        for task in TASKS:  # one part of the index per task, in this order
            mine = [e for e in shown if (e.task if e.task in TASKS else TASKS[0]) == task]
            if mine:
                tasks.append({"title": TASK_TITLES[task],
                              "sections": [run_section(con, e) for e in mine]})  # fmt: skip
        for exp in shown:
            if not exp.runs:
                continue
            for scenario in _scenarios(con, exp):
                path = out / scenario["href"]
                path.write_text(scenario_page(con, exp, scenario["name"], out), encoding="utf-8")
                written.append(path)
        written += write_history_pages(con, out)
    index = out / "index.html"
    index.write_text(render("index.html", tasks=tasks), encoding="utf-8")
    return [index, *written]
