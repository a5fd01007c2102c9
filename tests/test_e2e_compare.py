"""End to end with several explainers: Win % across them, resumed runs, the explained cap,
the ground truth and the figures in the database."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from benchmark.cli import app
from benchmark.data.synthetic import SyntheticFaces
from benchmark.runner import run_suite
from tests.test_e2e import SUITE, quiet, rows

TWO = (
    SUITE.replace(
        "explainers: [gradcam]", "explainers: [gradcam, {{name: ig, params: {{n_steps: 4}}}}]"
    )
    .replace(
        "metrics: [{{name: ranking_position, params: {{ior: soft}}}}]",
        "metrics: [win_percent, average_drop, gt_agreement, ranking_position]",
    )
    .replace("explain: {{batch_size: 64}}", "explain: {{batch_size: 32, max_images: 48}}")
)


@pytest.fixture
def suite(tmp_path):
    path = tmp_path / "two.yaml"
    path.write_text(TWO.format(db=tmp_path / "out" / "r.duckdb"))
    return path


def win_rows(db) -> list[tuple]:
    return rows(
        db,
        "SELECT scenario, explainer, value, n, details FROM scores "
        "WHERE metric = 'win_percent' ORDER BY 1, 2",
    )


def test_win_percent_sums_to_100_and_stores_the_compared_set(suite, tmp_path):
    db = tmp_path / "out" / "r.duckdb"
    run_suite(suite, console=quiet(), leaderboard=False)
    got = win_rows(db)
    assert [(s, e) for s, e, *_ in got] == [
        ("control", "gradcam"), ("control", "integrated_gradients"),
        ("lipstick", "gradcam"), ("lipstick", "integrated_gradients"),
    ]  # fmt: skip
    for scenario in ("control", "lipstick"):
        mine = [r for r in got if r[0] == scenario]
        assert sum(r[2] for r in mine) == pytest.approx(100.0)
        assert all(r[3] == 48 for r in mine)  # the explained cap, 12 per cell
        details = json.loads(mine[0][4])
        assert details["compared"] == ["gradcam", "integrated_gradients"]
        assert details["variant"] == "negative"
    # Accuracies use the whole balanced test set; only the explained images are capped.
    n_test, n_explained = rows(db, "SELECT n_test, n_explained FROM scenarios")[0]
    assert n_explained == 48 and n_test > n_explained
    # Ground truth and agreement: reliance for every accessory, ρ in [-1, 1], a top hit.
    assert rows(db, "SELECT count(*) FROM reliance WHERE scenario = 'lipstick'")[0][0] == 8
    agree = rows(db, "SELECT metric, value FROM scores WHERE metric LIKE 'gt_agreement%'")
    assert {m for m, _ in agree} == {"gt_agreement", "gt_agreement.top_hit"}
    assert all(-1 <= v <= 1 for _, v in agree)
    # Figures: PNG bytes in the DB, and the same bytes in the file whose path is stored.
    figs = rows(db, "SELECT kind, path, png FROM figures")
    assert len(figs) == 2 * 2 * (3 + 4)  # prototype, canonical summary, patches, 4 faces
    for _, path, png in figs:
        assert png[:8] == b"\x89PNG\r\n\x1a\n" and Path(path).read_bytes() == png


def test_interrupted_second_explainer_resumes_to_the_same_win_percent(suite, tmp_path, monkeypatch):
    from explainers.integrated_gradients import IntegratedGradients

    reference = tmp_path / "ref.duckdb"
    run_suite(suite, db=reference, console=quiet(), leaderboard=False)

    calls = {"n": 0}
    original = IntegratedGradients.explain

    def flaky(self, x, y, l_batch=None, r_batch=None):
        calls["n"] += 1
        if calls["n"] == 2:  # second batch of the first scenario, after gradcam was stored
            raise KeyboardInterrupt
        return original(self, x, y, l_batch, r_batch)

    monkeypatch.setattr(IntegratedGradients, "explain", flaky)
    db = tmp_path / "out" / "r.duckdb"
    with pytest.raises(KeyboardInterrupt):
        run_suite(suite, console=quiet(), leaderboard=False)
    assert rows(db, "SELECT explainer FROM work_done") == [("gradcam",)]
    assert win_rows(db) == []  # not comparable until every explainer ran
    monkeypatch.setattr(IntegratedGradients, "explain", original)
    run_suite(suite, console=quiet(), leaderboard=False)
    assert [r[:3] for r in win_rows(db)] == [r[:3] for r in win_rows(reference)]


class PlainFaces(SyntheticFaces):
    """Synthetic faces that, like a real dataset, cannot re-render a face."""

    counterfactual = None


def test_ground_truth_metric_needs_a_dataset_with_counterfactuals(tmp_path):
    text = TWO.format(db=tmp_path / "out" / "r.duckdb").replace(
        "test: {name: synthetic_faces", "test: {name: 'tests.test_e2e_compare:PlainFaces'"
    )
    bad = tmp_path / "bad.yaml"
    bad.write_text(text)
    result = CliRunner().invoke(app, ["run", str(bad)])
    assert result.exit_code == 2, result.output
    assert "metrics[2]: gt_agreement needs counterfactual renders" in result.output
    assert len(result.output.strip().splitlines()) == 1 and not (tmp_path / "out").exists()
    # Without that metric the same dataset runs, with no reliance rows.
    ok = tmp_path / "ok.yaml"
    ok.write_text(text.replace("gt_agreement, ", ""))
    run_suite(ok, console=quiet(), leaderboard=False)
    assert rows(tmp_path / "out" / "r.duckdb", "SELECT count(*) FROM reliance") == [(0,)]
