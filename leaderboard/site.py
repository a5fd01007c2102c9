"""The static leaderboard: a self-contained HTML site built from the DuckDB results alone.

Pages: ``index.html`` ranks the explainers per metric (direction and n shown, mean rank
across metrics) for each suite's latest run; ``scenario-<run>-<name>.html`` shows one
scenario (see :mod:`leaderboard.scenario`). Figures are written from the PNG bytes
stored in the database, so the site never reads the run's files. Every name from the
database is HTML-escaped.
"""

from __future__ import annotations

import html
import json
import re
from collections import defaultdict
from pathlib import Path

import duckdb

CSS = """
body{font:14px/1.45 system-ui,sans-serif;margin:2rem auto;max-width:70rem;color:#222}
h1,h2{font-weight:600}table{border-collapse:collapse;margin:.5rem 0 1.5rem}
th,td{border-bottom:1px solid #ddd;padding:.3rem .7rem;text-align:right}
th:first-child,td:first-child{text-align:left}th{background:#f4f4f4}
.best{font-weight:700;color:#0a6}.muted{color:#888}a{color:#06c}
figure{display:inline-block;margin:0 1rem 1rem 0;vertical-align:top}
figure img{max-width:100%;border:1px solid #ddd;image-rendering:pixelated}
figcaption{color:#555;font-size:12px}.n{display:block;color:#888;font-size:11px}
.wide{overflow-x:auto}
"""


def esc(value: object) -> str:
    return html.escape(str(value), quote=True)


def fmt(value: float | None, pct: bool = False) -> str:
    if value is None:
        return "–"
    if pct:
        return f"{100 * value:.1f}"
    return f"{value:.0f}" if float(value).is_integer() else f"{value:.3g}"


def page(title: str, body: str) -> str:
    return (
        f'<!doctype html><html lang="en"><head><meta charset="utf-8"><title>{esc(title)}</title>'
        f"<style>{CSS}</style></head><body>{body}</body></html>\n"
    )


def breakable(name: str) -> str:
    """Escaped, with line-break opportunities after ``_`` and ``.`` for long metric names."""
    return esc(name).replace("_", "_<wbr>").replace(".", ".<wbr>")


def table(head: list[str], rows: list[list[str]]) -> str:
    """Cells are HTML already (escaped by the caller); headers are escaped here."""
    th = "".join(f"<th>{breakable(h)}</th>" for h in head)
    tr = "".join("<tr>" + "".join(f"<td>{c}</td>" for c in r) + "</tr>" for r in rows)
    return f"<table><thead><tr>{th}</tr></thead><tbody>{tr}</tbody></table>"


def slug(*parts: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", "-".join(parts))


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


def has_column(con: duckdb.DuckDBPyConnection, table: str, column: str) -> bool:
    """Whether ``table`` has ``column``: the leaderboard opens older databases read-only,
    so the store's migrations have not added later columns to them."""
    (n,) = con.execute(
        "SELECT count(*) FROM duckdb_columns() WHERE table_name = ? AND column_name = ?",
        [table, column],
    ).fetchone()
    return bool(n)


def latest_runs(con: duckdb.DuckDBPyConnection) -> list[tuple]:
    return con.execute(
        "SELECT run_id, suite, status, started_at, device, git_sha FROM runs r "
        "WHERE started_at = (SELECT max(started_at) FROM runs WHERE suite = r.suite) "
        "ORDER BY suite"
    ).fetchall()


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
        "Scores are means over the suite's biased scenarios (controls with ρ = 0.5 or no "
        "bias attribute are left out)",
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

#: Scenarios averaged on the index: injected biases, and models explained as they are
#: (rho NULL). Controls (ρ = 0.5, or nothing injected) are shown but not averaged.
RANKED_SCENARIOS = "(c.rho IS NULL OR (c.rho != 0.5 AND c.attributes != '[]'))"


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


def run_section(con: duckdb.DuckDBPyConnection, run: tuple, task: str = "classification") -> str:
    """One suite's latest run: explainers ranked per metric, then its scenarios, with
    the words of its task."""
    run_id, suite, status, started, device, sha = run
    # Controls (no injected correlation) are shown per scenario but not averaged: there a
    # far-down ranking position is the right answer, not a poor one.
    rows = con.execute(
        "SELECT s.explainer, s.metric, avg(s.value), sum(s.n), any_value(s.direction) "
        "FROM scores s JOIN scenarios c USING (run_id, scenario) "
        f"WHERE s.run_id = ? AND {RANKED_SCENARIOS} "
        "GROUP BY s.explainer, s.metric ORDER BY s.metric, s.explainer",
        [run_id],
    ).fetchall()
    by_metric: dict[str, dict[str, tuple[float, int]]] = defaultdict(dict)
    direction: dict[str, str] = {}
    for explainer, metric, value, n, d in rows:
        by_metric[metric][explainer] = (value, n)
        direction[metric] = d
    ranks: dict[str, dict[str, float]] = {
        m: rank_explainers({e: v for e, (v, _) in per.items()}, direction[m])
        for m, per in by_metric.items()
    }
    explainers = sorted({e for per in by_metric.values() for e in per})
    mean_rank = {
        e: sum(ranks[m][e] for m in ranks if e in ranks[m])
        / max(1, sum(e in r for r in ranks.values()))
        for e in explainers
    }
    head = ["explainer", "mean rank"] + [
        f"{m} {'↑' if direction[m] == 'higher' else '↓'}" for m in by_metric
    ]
    body_rows = []
    for e in sorted(explainers, key=lambda e: mean_rank[e]):
        cells = [esc(e), fmt(mean_rank[e])]
        for m, per in by_metric.items():
            if e not in per:
                cells.append("–")
                continue
            value, n = per[e]
            best = ' class="best"' if ranks[m][e] == 1 else ""
            cells.append(f'<span{best}>{fmt(value)}</span><span class="n">n={n}</span>')
        body_rows.append(cells)
    scen = con.execute(
        "SELECT scenario, target, attributes, rho, accuracy, accuracy_aligned, "
        "accuracy_conflicting FROM scenarios WHERE run_id = ? ORDER BY rowid",
        [run_id],
    ).fetchall()
    scen_rows = [
        [
            f'<a href="{esc(slug("scenario", run_id, s))}.html">{esc(s)}</a>',
            esc(describe_bias(t, json.loads(a), rho)),
            fmt(acc, True),
            fmt(al, True),
            fmt(cf, True),
        ]
        for s, t, a, rho, acc, al, cf in scen
    ]
    note, columns = TASK_NOTES.get(task, TASK_NOTES["classification"])
    from leaderboard.history import history_link  # it uses this module's helpers
    from leaderboard.paper import paper_section  # it uses this module's helpers

    counts = None
    if has_column(con, "runs", "data_counts"):  # databases written before it have none
        (counts,) = con.execute(
            "SELECT data_counts FROM runs WHERE run_id = ?", [run_id]
        ).fetchone()
    hygiene = "; ".join(
        f"{split}: " + ", ".join(f"{k} {v}" for k, v in c.items())
        for split, c in json.loads(counts or "{}").items()
        if c
    )
    return (
        f"<h2>{esc(suite)}</h2><p class='muted'>run {esc(run_id)} · {esc(status)} · "
        f"{esc(started)} · {esc(device)} · git {esc(sha or '–')}</p>"
        + history_link(con, suite)
        + f"<p>{esc(note)}; ranks per metric follow each metric's direction "
        "(↑ higher is better, ↓ lower), ties share the mean rank.</p>"
        + f'<div class="wide">{table(head, body_rows)}</div>'
        + "<h3>Scenarios (accuracy %)</h3>"
        + table(["scenario", "bias", *columns], scen_rows)
        + (f"<p class='muted'>data: {esc(hygiene)}</p>" if hygiene else "")
        + paper_section(con, run_id)
    )


def build_site(db: Path, out: Path) -> list[Path]:
    from leaderboard.history import write_history_pages
    from leaderboard.scenario import scenario_page

    """Write the leaderboard for every suite's latest run in ``db`` into ``out``."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    # Pages and figures of runs no longer shown would linger: remove what we generated.
    for pattern in ("scenario-*.html", "history-*.html", "figures/*.png"):
        for stale in out.glob(pattern):
            stale.unlink()
    written = []
    with duckdb.connect(str(db), read_only=True) as con:
        runs = latest_runs(con)
        tasks = dict(con.execute("SELECT run_id, coalesce(task, 'classification') FROM runs")
                     .fetchall())  # fmt: skip
        sections = []
        for task in TASKS:  # one part of the index per task, in this order
            mine = [run for run in runs if tasks.get(run[0]) == task]
            if mine:
                sections.append(f"<h1 class='task'>{esc(TASK_TITLES[task])}</h1>")
                sections += [run_section(con, run, task) for run in mine]
        for run in runs:
            for scenario in con.execute(
                "SELECT scenario, target, attributes, rho, accuracy, accuracy_aligned, "
                "accuracy_conflicting, n_train, n_test, train_cells "
                "FROM scenarios WHERE run_id = ?",
                [run[0]],
            ).fetchall():
                path = out / f"{slug('scenario', run[0], scenario[0])}.html"
                path.write_text(scenario_page(con, run[0], scenario, out), encoding="utf-8")
                written.append(path)
        written += write_history_pages(con, out)
    index = out / "index.html"
    intro = (
        "<h1>face-xai-bench leaderboard</h1><p>Which explainer reveals what a face model "
        "relies on? Built from the DuckDB results alone.</p>"
    )
    index.write_text(page("face-xai-bench leaderboard", intro + "".join(sections)), "utf-8")
    return [index, *written]
