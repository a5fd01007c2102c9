"""The static leaderboard, rendered from a tiny run's database alone."""

from __future__ import annotations

import json
import shutil

import duckdb
import pytest
from typer.testing import CliRunner

from benchmark.cli import app
from benchmark.runner import run_suite
from leaderboard.names import postprocess_text
from leaderboard.site import build_site, rank_explainers, slug
from tests.test_e2e import SUITE, quiet


@pytest.fixture(scope="module")
def db(tmp_path_factory):
    """One tiny run for the module (tests that change the DB work on a copy)."""
    tmp = tmp_path_factory.mktemp("leaderboard")
    suite = tmp / "tiny.yaml"
    path = tmp / "out" / "r.duckdb"
    suite.write_text(SUITE.format(db=path))
    with pytest.MonkeyPatch.context() as mp:  # conftest's cache isolation is per test
        mp.setenv("BENCH_CACHE", str(tmp / "cache"))
        run_suite(suite, console=quiet())
    return path


def test_rank_explainers_by_direction_with_ties():
    assert rank_explainers({"a": 1.0, "b": 3.0, "c": 1.0}, "lower") == {"a": 1.5, "c": 1.5, "b": 3}
    assert rank_explainers({"a": 1.0, "b": 3.0}, "higher") == {"b": 1, "a": 2}


def test_run_renders_the_site_from_the_db(db):
    index = (db.parent / "site" / "index.html").read_text()
    with duckdb.connect(str(db), read_only=True) as con:
        (acc,) = con.execute("SELECT accuracy FROM scenarios WHERE scenario='lipstick'").fetchone()
        (rp,) = con.execute("SELECT value FROM scores WHERE scenario='lipstick'").fetchone()
    assert "<h2>tiny</h2>" in index
    assert '<th title="ranking_position" class="counted">Ranking position&nbsp;↓</th>' in index
    assert "<td>gradcam</td><td>1</td>" in index  # its mean rank: the only explainer
    with duckdb.connect(str(db), read_only=True) as con:
        (suite_json,) = con.execute("SELECT suite_json FROM runs").fetchone()
    assert postprocess_text(json.loads(suite_json)) in index
    assert f"{100 * acc:.1f}" in index  # the scenario's accuracy, from the database
    # The index averages biased scenarios only: here just lipstick (the control is ρ=0.5).
    assert f'<span class="best">{rp:.0f}</span><span class="n">n=' in index
    pages = sorted((db.parent / "site").glob("scenario-*.html"))
    assert len(pages) == 2
    lipstick = next(p for p in pages if p.name.endswith("lipstick.html")).read_text()
    assert "Region ranking: gradcam (Ranking position)" in lipstick
    assert lipstick.count("<tr>") >= 19 + 2
    assert f'<td>gradcam</td><td><span class="best">{rp:.0f}</span></td>' in lipstick
    # One bar chart (one metric), one bar (one explainer); ranking position is a
    # dataset-level score of one seed: no interval.
    assert lipstick.count("<svg ") == 1 and lipstick.count('<g class="bar') == 1
    assert f'data-explainer="gradcam" data-value="{rp:.6g}">' in lipstick
    # Ground truth: one row per measured attribute (4 Wearing_*, Blond_Hair, Eyeglasses,
    # Smiling, skin_tone), with its regions.
    assert "Ground truth" in lipstick and lipstick.count("<td>Wearing_") == 4
    assert "<td>Wearing_Lipstick</td><td>u_lip, l_lip</td>" in lipstick
    # Figures: written from the DB's bytes, linked from the page.
    with duckdb.connect(str(db), read_only=True) as con:
        figs = con.execute(
            "SELECT kind, png FROM figures WHERE scenario = 'lipstick' ORDER BY kind"
        ).fetchall()
    gallery = [f"gallery:{i:03d}" for i in range(4)]
    assert [k for k, _ in figs] == ["canonical", *gallery, "patches", "prototype"]
    # The canonical summary sits beside the FaceX prototype, the patch grid after them.
    order = [lipstick.index(f"-gradcam-{k}.png") for k in ("prototype", "canonical", "patches")]
    assert order == sorted(order)
    for kind, png in figs:
        name = f"figures/{slug(run_id(db), 'lipstick', 'gradcam', kind)}.png"
        assert f'src="{name}"' in lipstick
        assert (db.parent / "site" / name).read_bytes() == png


def run_id(db) -> str:
    with duckdb.connect(str(db), read_only=True) as con:
        return con.execute("SELECT run_id FROM runs").fetchone()[0]


def test_site_needs_only_the_database(db, tmp_path):
    """Figures come from the PNG bytes in DuckDB: deleting the run's files changes nothing."""
    for png in (db.parent / "figures").rglob("*.png"):
        png.unlink()
    out = tmp_path / "fresh-site"
    build_site(db, out)
    assert len(list((out / "figures").glob("*.png"))) == 2 * (3 + 4)
    # A rebuild into the same folder drops pages of runs it no longer shows.
    (out / "scenario-old-run-x.html").write_text("stale")
    build_site(db, out)
    assert not (out / "scenario-old-run-x.html").exists()


def test_every_name_is_escaped(db, tmp_path):
    db = shutil.copy(db, tmp_path / "copy.duckdb")
    with duckdb.connect(str(db)) as con:
        con.execute("UPDATE scores SET explainer = '<img src=x onerror=alert(1)>'")
        con.execute("UPDATE region_scores SET explainer = '<img src=x onerror=alert(1)>'")
        con.execute("UPDATE scenarios SET target = '<script>x</script>'")
    out = tmp_path / "site2"
    result = CliRunner().invoke(app, ["leaderboard", "--db", str(db), "--out", str(out)])
    assert result.exit_code == 0, result.output
    text = "".join(p.read_text() for p in out.glob("*.html"))
    assert "<img src=x" not in text and "<script>" not in text
    assert "&lt;img src=x onerror=alert(1)&gt;" in text and "&lt;script&gt;" in text


def test_leaderboard_without_db_is_a_clean_error(tmp_path):
    result = CliRunner().invoke(app, ["leaderboard", "--db", str(tmp_path / "none.duckdb")])
    assert result.exit_code == 2 and "no results database" in result.output
