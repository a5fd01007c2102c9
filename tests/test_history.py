"""Leaderboard history: one column per run group, oldest first, regressions marked."""

from __future__ import annotations

import re
from pathlib import Path

import duckdb
import pytest

from benchmark.store import Store
from leaderboard.history import run_groups
from leaderboard.site import build_site

# Biased scenarios are averaged; the control (ρ = 0.5) and the one without a bias
# attribute score 100 everywhere, so any leak into a cell shows.
SCENARIOS = {
    "lipstick": (0.99, ["Wearing_Lipstick"]),
    "hat": (0.99, ["Wearing_Hat"]),
    "control": (0.5, ["Wearing_Lipstick"]),
    "plain": (0.9, []),
}
DIRECTIONS = {"ranking_position": "lower", "bbox_ap": "higher"}


def add_run(
    store: Store,
    run_id: str,
    started: str,
    sha: str,
    seed: int,
    group: str | None,
    scores: dict[tuple[str, str], tuple[float, float]],
    suite: str = "tiny",
    status: str = "done",
) -> None:
    """A run with the four scenarios; ``scores`` gives (lipstick, hat) per (explainer, metric)."""
    store.start_run(
        {
            "run_id": run_id, "suite": suite, "suite_path": f"{suite}.yaml", "suite_hash": "h",
            "seed": seed, "git_sha": sha, "packages": {}, "device": "cpu",
            "started_at": started, "suite_json": {}, "group_id": group,
        }
    )  # fmt: skip
    store.finish_run(run_id, status, {})
    for name, (rho, attrs) in SCENARIOS.items():
        store.put_scenario(
            {
                "run_id": run_id, "scenario": name, "target": "Male", "attributes": attrs,
                "rho": rho, "directions": [], "bias_regions": [], "model_hash": "m",
                "n_train": 10, "n_test": 4, "train_cells": {}, "test_cells": {},
                "accuracy": 0.5, "accuracy_aligned": 0.5, "accuracy_conflicting": 0.5,
                "n_aligned": 2, "n_conflicting": 2, "train_seconds": 1.0, "cached": False,
                "n_explained": 4,
            }
        )  # fmt: skip
    for explainer in sorted({e for e, _ in scores}):
        for name in SCENARIOS:
            rows = [
                {
                    "metric": metric, "direction": DIRECTIONS[metric], "n": 4,
                    "value": {"lipstick": lip, "hat": hat}.get(name, 100.0),
                }
                for (e, metric), (lip, hat) in scores.items()
                if e == explainer
            ]  # fmt: skip
            store.put_scores(run_id, name, explainer, rows)


def _same(rp: float, ap: float, rise: tuple[float, float] | None) -> dict:
    scores = {("gradcam", "ranking_position"): (rp, rp), ("gradcam", "bbox_ap"): (ap, ap)}
    if rise is not None:
        scores |= {
            ("rise", "ranking_position"): (rise[0],) * 2,
            ("rise", "bbox_ap"): (rise[1],) * 2,
        }
    return scores


@pytest.fixture
def db(tmp_path: Path) -> Path:
    """Three groups of `tiny`, written newest first so that only started_at orders them."""
    path = tmp_path / "r.duckdb"
    with Store(path) as store:
        for i, seed in enumerate((0, 1, 2)):  # g-new: run means 3, 4, 5 and 0.45
            add_run(store, f"new{i}", f"2026-01-03 08:0{i}:00", "ccccccc333", seed, "g-new",
                    _same(3.0 + i, 0.45, (7.0, 0.30001)))  # fmt: skip
        # Not finished: left out, though its group finished (scores would show as 1000).
        add_run(store, "new-stopped", "2026-01-03 07:00:00", "ccccccc333", 3, "g-new",
                _same(1000.0, 1000.0, (1000.0, 1000.0)), status="interrupted")  # fmt: skip
        # An old database's run: no group id, its own column; rise scored bbox_ap only, a
        # hair worse than in g-old (0.29999 < 0.3), too little to show in the digits.
        mid = _same(2.0, 0.4, None) | {("rise", "bbox_ap"): (0.29999, 0.29999)}
        add_run(store, "mid", "2026-01-02 09:00:00", "bbbbbbb222", 7, None, mid)
        # g-old: gradcam's ranking position differs per scenario, (1+3)/2 and (2+4)/2.
        for i, seed in enumerate((1, 0)):
            scores = {
                ("gradcam", "ranking_position"): (1.0 + i, 3.0 + i),
                ("gradcam", "bbox_ap"): (0.5 + 0.2 * i, 0.5 + 0.2 * i),
                ("rise", "ranking_position"): (6.0, 6.0),
                ("rise", "bbox_ap"): (0.3, 0.3),
            }
            add_run(store, f"old{i}", f"2026-01-01 10:0{5 * i}:00", "aaaaaaa111", seed,
                    "g-old", scores)  # fmt: skip
        add_run(store, "other0", "2026-01-04 00:00:00", "ddddddd", 0, None, _same(1, 1, None),
                suite="other")  # fmt: skip
    return path


def _tables(html: str) -> dict[str, list[list[str]]]:
    """Per metric heading, the table's rows as cell texts (header row first)."""
    out = {}
    for part in html.split("<h2>")[1:]:
        title = part.split("</h2>")[0]
        rows = re.findall(r"<tr>(.*?)</tr>", part)
        out[title] = [
            [re.sub(r"<[^>]+>", "", c) for c in re.findall(r"<t[hd]>(.*?)</t[hd]>", r)]
            for r in rows
        ]
    return out


HEAD = [
    "explainer",
    "aaaaaaa · 2026-01-01 10:00 · seeds 0, 1",
    "bbbbbbb · 2026-01-02 09:00 · seed 7",
    "ccccccc · 2026-01-03 08:00 · seeds 0, 1, 2",
]


def test_history_page_cells_and_order(db, tmp_path):
    out = tmp_path / "site"
    written = build_site(db, out)
    page = out / "history-tiny.html"
    assert page in written and not (out / "history-other.html").exists()
    html = page.read_text()
    assert _tables(html) == {
        # ↑: gradcam fell 0.6 → 0.4 (marked), rose to 0.45; rise's 0.3 → 0.29999 prints
        # the same, so it is not marked.
        "bbox_ap ↑": [HEAD, ["gradcam", "0.6", "▼ 0.4", "0.45"], ["rise", "0.3", "0.3", "0.3"]],
        # ↓: gradcam (2+3)/2 → 2 → (3+4+5)/3 (marked); rise has no value in `mid`, so its
        # 6 → 7 crosses a gap and is not compared.
        "ranking_position ↓": [
            HEAD,
            ["gradcam", "2.5", "2", "▲ 4"],
            ["rise", "6", "–", "7"],
        ],
    }
    assert html.count('class="worse"') == 2
    assert 'title="worse than the previous column (2)"' in html
    assert "3 run group(s), 6 finished run(s)" in html


def test_index_links_the_history_of_suites_with_two_groups(db, tmp_path):
    out = tmp_path / "site"
    build_site(db, out)
    index = (out / "index.html").read_text()
    tiny, other = index.split("<h2>tiny</h2>")[1], index.split("<h2>other</h2>")[1]
    assert '<a href="history-tiny.html">History across 3 run groups</a>' in tiny
    assert "history-" not in other.split("<h2>")[0]
    assert index.count("history-") == 1


def test_null_group_ids_are_groups_of_one(db):
    with duckdb.connect(str(db), read_only=True) as con:
        groups = run_groups(con, "tiny")
    assert [g.run_ids for g in groups] == [("old0", "old1"), ("mid",), ("new0", "new1", "new2")]
    assert [g.seeds for g in groups] == [(0, 1), (7,), (0, 1, 2)]


def test_a_single_group_has_no_page_and_no_link(db, tmp_path):
    out = tmp_path / "site"
    build_site(db, out)
    assert (out / "history-tiny.html").exists()
    single = tmp_path / "single.duckdb"
    with Store(single) as store:
        for i in range(2):  # two seeds of one group: one column
            add_run(store, f"s{i}", f"2026-02-01 00:0{i}:00", "eeeeeee", i, "g", _same(1, 1, None))
    written = build_site(single, out)  # the same folder: the old page must go too
    assert sorted(p.name for p in out.glob("history-*.html")) == []
    assert not any(p.name.startswith("history-") for p in written)
    assert "history-" not in (out / "index.html").read_text()
