"""The leaderboard on hand-made databases, with answers computed by hand: names, the mean
rank over distinct metrics, seeds averaged, failed runs left out, suites without bias,
reference rows, escaping, the post-processing line and the bar charts' intervals."""

from __future__ import annotations

import math
import re
from pathlib import Path
from statistics import NormalDist

import duckdb
import numpy as np
import pytest

from benchmark.compare import Row, bootstrap_se
from benchmark.store import Store
from leaderboard import charts
from leaderboard.names import metric_name, postprocess_text
from leaderboard.selection import experiments
from leaderboard.site import build_site, experiment_board

BIASED = {"lipstick": (0.99, ["Wearing_Lipstick"])}
DIRECTIONS = {
    "ranking_position": "lower", "ranking_position.rp2": "lower", "average_drop": "higher",
    "increase_in_confidence": "lower", "win_percent": "higher", "bbox_ap": "higher",
}  # fmt: skip
# Hand-made scores: a, b, c per key. Ranks (1 = best by direction) in the comments.
SCORES = {
    "ranking_position": {"a": 1.0, "b": 2.0, "c": 3.0},  # a 1, b 2, c 3
    "ranking_position.rp2": {"a": 9.0, "b": 5.0, "c": 1.0},  # a 3, b 2, c 1 (sub-score)
    "average_drop": {"a": 10.0, "b": 30.0, "c": 20.0},  # a 3, b 1, c 2
    "increase_in_confidence": {"a": 0.0, "b": 50.0, "c": 60.0},  # a 1, b 2, c 3 (same family)
    "win_percent": {"a": 80.0, "b": 10.0, "c": 10.0},  # a 1, b 2.5, c 2.5 (same family)
    "bbox_ap": {"a": 0.5, "b": 0.6, "c": 0.1},  # a 2, b 1, c 3
}
# Counted once per family: ranking_position, average_drop, bbox_ap.
MEAN_RANK = {"a": (1 + 3 + 2) / 3, "b": (2 + 1 + 1) / 3, "c": (3 + 2 + 3) / 3}


def add_run(
    store: Store,
    run_id: str,
    scores: dict[str, dict[str, float]],
    *,
    suite: str = "s",
    seed: int = 0,
    group: str | None = None,
    status: str = "done",
    started: str = "2026-01-01 00:00:00",
    scenarios: dict[str, tuple[float | None, list[str]]] = BIASED,
    suite_json: dict | None = None,
    images: dict[tuple[str, str], list[float]] | None = None,
) -> None:
    """A run whose every scenario has ``scores`` (key → explainer → value)."""
    explainers = sorted({e for per in scores.values() for e in per})
    spec = {"explainers": [{"name": e} for e in explainers], "metrics": []}
    store.start_run({
        "run_id": run_id, "suite": suite, "suite_path": f"{suite}.yaml", "suite_hash": "h",
        "seed": seed, "git_sha": "abc", "packages": {}, "device": "cpu", "started_at": started,
        "suite_json": spec if suite_json is None else suite_json, "group_id": group,
    })  # fmt: skip
    store.finish_run(run_id, status, {})
    for name, (rho, attrs) in scenarios.items():
        store.put_scenario({
            "run_id": run_id, "scenario": name, "target": "Male", "attributes": attrs,
            "rho": rho, "directions": [], "bias_regions": [], "model_hash": "m", "n_train": 10,
            "n_test": 4, "train_cells": {}, "test_cells": {}, "accuracy": 0.5,
            "accuracy_aligned": 0.5, "accuracy_conflicting": 0.5, "n_aligned": 2,
            "n_conflicting": 2, "train_seconds": 1.0, "cached": False, "n_explained": 4,
        })  # fmt: skip
        for e in explainers:
            rows = [
                {"metric": m, "value": per[e], "n": 4, "direction": DIRECTIONS.get(m, "higher")}
                for m, per in scores.items()
                if e in per
            ]
            per_image = {m: v for (ex, m), v in (images or {}).items() if ex == e}
            store.put_explainer_results(run_id, name, e, rows, [], 0.0, image_scores=per_image)


def site(tmp_path: Path, fill) -> tuple[Path, str]:
    """Build a DB with ``fill(store)``, render the site; (site folder, index HTML)."""
    db = tmp_path / "r.duckdb"
    with Store(db) as store:
        fill(store)
    out = tmp_path / "site"
    build_site(db, out)
    return out, (out / "index.html").read_text()


def body_rows(html: str) -> dict[str, list[str]]:
    """Explainer → its row's cell texts, from the index's ranking table."""
    table = html.split('<table class="ranking">')[1].split("</table>")[0]
    out = {}
    for row in re.findall(r"<tr[^>]*>(.*?)</tr>", table.split("<tbody>")[1], re.S):
        cells = [re.sub(r"<[^>]+>", " ", c).split() for c in re.findall(r"<td>(.*?)</td>", row)]
        out[" ".join(cells[0])] = [" ".join(c) for c in cells[1:]]
    return out


def test_names_and_tooltips():
    assert metric_name("average_drop") == "Average Drop %"
    assert metric_name("ranking_position.rp2") == "Ranking position (2nd attribute)"
    assert metric_name("ranking_position.rp3") == "Ranking position (3rd attribute)"
    assert metric_name("quantus:FaithfulnessCorrelation") == "Quantus: FaithfulnessCorrelation"
    assert metric_name("my_plugin_score") == "My Plugin Score"
    assert metric_name("rp_thr", {"rp_thr": "ranking_position"}) == "Ranking position (rp_thr)"
    assert postprocess_text({}) == "maps: signed (raw maps)"
    positive = {"explain": {"postprocess": "positive"}}
    assert postprocess_text(positive) == "maps: positive (ReLU) before region metrics"


def test_mean_rank_counts_each_metric_family_once(tmp_path):
    _, index = site(tmp_path, lambda s: add_run(s, "r1", SCORES))
    assert '<th title="average_drop" class="counted">Average Drop %&nbsp;↑</th>' in index
    assert '<th title="ranking_position.rp2">Ranking position (2nd attribute)&nbsp;↓</th>' in index
    assert '<th title="win_percent">Win %&nbsp;↑</th>' in index
    assert "ranking_<wbr>" not in index and "_<wbr>" not in index
    rows = body_rows(index)
    assert list(rows) == ["b", "a", "c"]  # by mean rank
    for e, want in MEAN_RANK.items():
        assert rows[e][0] == f"{want:.3g}", (e, rows[e])
    assert "Counted once with them" in index and "Win % with Average Drop %" in index


def test_a_mean_rank_over_fewer_metrics_says_so(tmp_path):
    scores = {"average_drop": {"a": 1.0, "b": 2.0}, "bbox_ap": {"a": 0.1}}
    rows = body_rows(site(tmp_path, lambda s: add_run(s, "r", scores))[1])
    assert rows["a"][0] == "1.5" and rows["b"][0] == "1 over 1 of 2 metrics"


def test_seeds_are_averaged_and_failed_runs_are_not_ranked(tmp_path):
    def fill(store):
        for seed, value in enumerate((1.0, 3.0)):
            add_run(store, f"s{seed}", {"average_drop": {"a": value, "b": 2.5}}, seed=seed,
                    group="g1", started=f"2026-01-02 00:0{seed}:00")  # fmt: skip
        # Same group, interrupted; and a newer group that failed: neither is averaged.
        add_run(store, "s9", {"average_drop": {"a": 1000.0, "b": 1000.0}}, seed=9, group="g1",
                status="interrupted", started="2026-01-02 00:09:00")  # fmt: skip
        add_run(store, "f0", {"average_drop": {"a": 1000.0, "b": 1000.0}}, group="g2",
                status="failed", started="2026-01-03 00:00:00")  # fmt: skip

    out, index = site(tmp_path, fill)
    rows = body_rows(index)
    assert rows["a"][1].startswith("2 ")  # (1 + 3) / 2, beside its n
    assert rows["b"][1].startswith("2.5 ") and "1000" not in index.split("Incomplete")[0]
    assert "2 seeds (0, 1) averaged" in index
    incomplete = index.split("Incomplete (not ranked):")[1].split("</p>")[0]
    assert "run s9 (seed 9) · interrupted" in incomplete
    assert "run f0 (seed 0) · failed" in incomplete
    page = next(out.glob("scenario-s0-lipstick.html")).read_text()
    assert "scores averaged over 2 seeds (0, 1)" in page
    assert not list(out.glob("scenario-f0-*.html"))


def test_a_suite_that_never_finished_is_listed_not_ranked(tmp_path):
    fill = lambda s: add_run(s, "x", {"average_drop": {"a": 1.0}}, status="failed")  # noqa: E731
    _, index = site(tmp_path, fill)
    assert "No finished run of this suite yet" in index and 'class="ranking"' not in index
    assert "run x (seed 0) · failed" in index


@pytest.mark.parametrize(
    "scenarios, metric",
    [
        ({"gender_default": (0.5, [])}, "ranking_position"),  # celeba_default: nothing injected
        ({"census": (0.5, []), "balanced": (0.5, [])}, "average_drop"),  # fairface_census_race
        ({"control": (0.5, ["Wearing_Lipstick"])}, "deletion_auc"),  # a control, no region metric
        ({"pretrained": (None, [])}, "ranking_position"),  # a model explained as it is
    ],
)
def test_suites_without_injected_bias_are_ranked(tmp_path, scenarios, metric):
    scores = {metric: {"a": 1.0, "b": 2.0}}
    _, index = site(tmp_path, lambda s: add_run(s, "r", scores, scenarios=scenarios))
    rows = body_rows(index)
    assert set(rows) == {"a", "b"} and all(r[1].split()[0] in ("1", "2") for r in rows.values())


def test_region_metrics_skip_controls_where_the_suite_has_a_bias(tmp_path):
    scenarios = {"lipstick": (0.99, ["Wearing_Lipstick"]), "control": (0.5, ["Wearing_Lipstick"])}

    def fill(store):
        add_run(store, "r", {"ranking_position": {"a": 1.0}, "average_drop": {"a": 10.0}},
                scenarios=scenarios)  # fmt: skip
        # The control's values differ: a region metric leaves it out, average_drop not.
        store.put_scores("r", "control", "a", [
            {"metric": "ranking_position", "value": 19.0, "n": 4, "direction": "lower"},
            {"metric": "average_drop", "value": 30.0, "n": 4, "direction": "higher"},
        ])  # fmt: skip

    db = tmp_path / "r.duckdb"
    with Store(db) as store:
        fill(store)
    with duckdb.connect(str(db), read_only=True) as con:
        (exp,) = experiments(con)
        board = experiment_board(con, exp)
    (row,) = board.rows
    assert row.cells["ranking_position"].value == 1.0
    assert row.cells["average_drop"].value == 20.0


def test_a_metric_that_says_it_scores_bias_regions_skips_controls(tmp_path):
    """``quantus:PointingGame`` is no registered name: its details say it is a region
    metric, so the control's value is left out of its average."""
    scenarios = {"lipstick": (0.99, ["Wearing_Lipstick"]), "control": (0.5, ["Wearing_Lipstick"])}
    key = "quantus:PointingGame"
    db = tmp_path / "r.duckdb"
    with Store(db) as store:
        add_run(store, "r", {"average_drop": {"a": 10.0}}, scenarios=scenarios)
        for name, value in (("lipstick", 0.8), ("control", 0.2)):
            row = {"metric": key, "value": value, "n": 4, "direction": "higher"}
            store.put_scores("r", name, "a", [{**row, "details": {"bias_regions": True}}])
    with duckdb.connect(str(db), read_only=True) as con:
        (exp,) = experiments(con)
        (row,) = experiment_board(con, exp).rows
    assert row.cells[key].value == pytest.approx(0.8)


def test_reference_rows_are_shown_but_not_ranked(tmp_path):
    spec = {"explainers": [{"name": "a"}, {"name": "b"}, {"name": "oracle", "label": "truth"},
                           {"name": "random"}]}  # fmt: skip
    scores = {
        "average_drop": {"a": 10.0, "b": 20.0, "truth": 90.0, "random": 1.0},
        "bbox_ap": {"a": 0.3, "b": 0.2, "truth": 1.0, "random": 0.05},
    }
    out, index = site(tmp_path, lambda s: add_run(s, "r", scores, suite_json=spec))
    rows = body_rows(index)
    assert list(rows) == ["a", "b", "random", "truth"]  # ranked, then the references
    assert rows["a"][0] == "1.5" and rows["b"][0] == "1.5"  # ranks without the oracle
    assert rows["truth"][0] == "reference" and rows["random"][0] == "reference"
    assert index.count('<tr class="reference">') == 2
    truth_row = re.search(r'<tr class="reference"><td>truth</td>(.*?)</tr>', index, re.S)
    assert truth_row and 'class="best"' not in truth_row.group(1)
    page = next(out.glob("scenario-*.html")).read_text()
    assert '<td>truth <span class="tag">reference</span></td>' in page
    assert page.count('class="bar reference"') == 2 * 2  # two charts, two references each


def test_labels_are_escaped(tmp_path):
    evil = "<script>alert(1)</script>"
    out, index = site(tmp_path, lambda s: add_run(s, "r", {"average_drop": {evil: 1.0}}))
    page = next(out.glob("scenario-*.html")).read_text()
    for html in (index, page):
        assert "<script>" not in html and "&lt;script&gt;alert(1)&lt;/script&gt;" in html


def test_postprocess_policy_is_shown(tmp_path):
    spec = {"explainers": [{"name": "a"}], "explain": {"postprocess": "positive"}}
    out, index = site(tmp_path, lambda s: add_run(s, "r", SCORES, suite_json=spec))
    page = next(out.glob("scenario-*.html")).read_text()
    assert "maps: positive (ReLU) before region metrics" in index
    assert "maps: positive (ReLU) before region metrics" in page
    _, plain = site(tmp_path / "old", lambda s: add_run(s, "r", SCORES))
    assert "maps: signed (raw maps)" in plain


def _bars(svg: str) -> dict[str, dict[str, float]]:
    out = {}
    for attrs, inner in re.findall(r'<g class="bar[^"]*"([^>]*)>(.*?)</g>', svg, re.S):
        data = dict(re.findall(r'data-(\w+)="([^"]*)"', attrs))
        rect = dict(re.findall(r'(\w+)="([\d.]+)"', re.search(r"<rect[^>]*>", inner).group(0)))
        ci = re.search(r'<line class="ci" x1="([\d.]+)" y1="[\d.]+" x2="([\d.]+)"', inner)
        bar = {k: float(v) for k, v in data.items() if k != "explainer"}
        bar |= {"x": float(rect["x"]), "width": float(rect["width"])}
        if ci:
            bar |= {"x_low": float(ci.group(1)), "x_high": float(ci.group(2))}
        out[data["explainer"]] = bar
    return out


def test_bar_chart_whiskers_sit_at_the_bootstrap_bounds(tmp_path):
    rng = np.random.default_rng(5)
    per_image = {e: (rng.random(12) * 100).round(2).tolist() for e in ("a", "b", "c")}
    scores = {"average_drop": {e: float(np.mean(v)) for e, v in per_image.items()},
              "ranking_position": {"a": 1.0, "b": 2.0, "c": 3.0}}  # fmt: skip
    images = {(e, "average_drop"): v for e, v in per_image.items()}
    out, _ = site(tmp_path, lambda s: add_run(s, "r", scores, images=images))
    page = next(out.glob("scenario-*.html")).read_text()
    svgs = dict(re.findall(r'<svg [^>]*data-metric="([^"]+)">(.*?)</svg>', page, re.S))
    assert set(svgs) == {"average_drop", "ranking_position"}
    bars = _bars(svgs["average_drop"])
    assert set(bars) == {"a", "b", "c"}
    q = NormalDist().inv_cdf(0.975)
    for e, values in per_image.items():
        row = Row("higher", seeds={0: float(np.mean(values))}, images={0: np.array(values)})
        se = bootstrap_se(row, charts.RESAMPLES, np.random.default_rng(charts.SEED))
        mean, bar = float(np.mean(values)), bars[e]
        assert bar["value"] == pytest.approx(mean, rel=1e-5)
        assert bar["low"] == pytest.approx(mean - q * se, rel=1e-5)
        assert bar["high"] == pytest.approx(mean + q * se, rel=1e-5)
        end = bar["x"] + bar["width"]  # every value is positive: the bar grows from zero
        assert bar["x_low"] < end < bar["x_high"]
        assert math.isclose(bar["x_high"] - end, end - bar["x_low"], rel_tol=1e-3)
    # Ranking position is dataset-level: one seed, no interval, three bars still.
    rp = _bars(svgs["ranking_position"])
    assert set(rp) == {"a", "b", "c"} and not any("low" in b for b in rp.values())


def test_gallery_strips_are_shown_when_stored(tmp_path):
    def fill(store):
        add_run(store, "r", {"average_drop": {"a": 1.0}})
        figure = {"kind": "gallery:000", "path": "g.png", "png": b"\x89PNG-fake"}
        store.put_explainer_results("r", "lipstick", "a", [], [], 0.0, figures=[figure])

    out, _ = site(tmp_path, fill)
    page = next(out.glob("scenario-*.html")).read_text()
    assert 'src="figures/r-lipstick-a-gallery_000.png"' in page
    assert "the image, the explainer&#39;s map, the bias mask" in page
    assert (out / "figures" / "r-lipstick-a-gallery_000.png").read_bytes() == b"\x89PNG-fake"


def test_templates_are_packaged():
    import tomllib

    root = Path(__file__).parents[1]
    data = tomllib.loads((root / "pyproject.toml").read_text())["tool"]["setuptools"]
    patterns = data["package-data"]["leaderboard"]
    templates = sorted((root / "leaderboard" / "templates").iterdir())
    assert templates and all(any(t.match(f"*/{p}") for p in patterns) for t in templates)
    deps = data and tomllib.loads((root / "pyproject.toml").read_text())["project"]
    assert "jinja2>=3" in deps["dependencies"]
