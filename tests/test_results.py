"""benchmark.results: the pandas API over a results database, against the SQL rows."""

from __future__ import annotations

import math

import pandas as pd
import pytest

from benchmark.errors import BenchError
from benchmark.results import Results
from benchmark.runner import run_suite
from tests.test_e2e import SUITE, quiet, rows

METRICS = "[{name: ranking_position, params: {ior: soft}}, deletion_auc]"


@pytest.fixture(scope="module")
def two_runs(tmp_path_factory):
    """The tiny suite at seeds 3 and then 4, into one database."""
    tmp = tmp_path_factory.mktemp("results")
    db = tmp / "r.duckdb"
    ids = []
    for seed in (3, 4):
        text = SUITE.format(db=db).replace("seed: 3", f"seed: {seed}")
        text = text.replace("metrics: [{name: ranking_position, params: {ior: soft}}]",
                            f"metrics: {METRICS}")  # fmt: skip
        path = tmp / f"tiny{seed}.yaml"
        path.write_text(text)
        ids.append(run_suite(path, console=quiet(), leaderboard=False))
    return db, ids


def test_scores_are_the_database_rows_of_the_newest_run(two_runs):
    db, (first, second) = two_runs
    with Results(db) as r:
        frame = r.scores()
        runs = r.runs()
    assert isinstance(frame, pd.DataFrame) and set(frame["run_id"]) == {second}
    assert list(runs["run_id"]) == [second, first] and set(runs["seed"]) == {3, 4}
    sql = rows(db, f"SELECT scenario, explainer, metric, value FROM scores "
                   f"WHERE run_id = '{second}' ORDER BY scenario, explainer, metric")  # fmt: skip
    got = list(frame[["scenario", "explainer", "metric", "value"]].itertuples(index=False))
    assert [tuple(g) for g in got] == sql
    assert set(frame["direction"]) == {"lower"} and (frame["suite"] == "tiny").all()


def test_all_runs_average_into_the_table(two_runs):
    db, ids = two_runs
    with Results(db) as r:
        both = r.scores(metric="deletion_auc", run="all")
        table = r.table("deletion_auc", run="all")
        one = r.table("deletion_auc", run=ids[0])
    assert len(both) == 4 and set(both["run_id"]) == set(ids)
    for scenario in ("lipstick", "control"):
        values = both[both["scenario"] == scenario]["value"]
        assert table.loc["gradcam", scenario] == pytest.approx(values.mean())
    first = both[(both["run_id"] == ids[0]) & (both["scenario"] == "control")]["value"].item()
    assert one.loc["gradcam", "control"] == pytest.approx(first)


def test_per_image_values_average_to_the_score(two_runs):
    db, _ = two_runs
    with Results(db) as r:
        images = r.per_image("deletion_auc", scenario="lipstick")
        score = r.scores(metric="deletion_auc", scenario="lipstick")["value"].item()
        regions = r.region_scores(scenario="lipstick")
        scenarios = r.scenarios()
    assert list(images["image"]) == list(range(len(images))) and len(images) > 10
    assert images["value"].mean() == pytest.approx(score)
    assert len(regions) == 19 and regions["rank"].min() == 1
    assert list(scenarios["scenario"]) == ["control", "lipstick"]
    assert math.isclose(scenarios.set_index("scenario").loc["lipstick", "rho"], 0.9)


def test_unknown_runs_metrics_and_files_get_one_line(two_runs, tmp_path):
    db, (first, _) = two_runs
    with Results(db) as r:
        with pytest.raises(BenchError, match=rf"did you mean '{first}'"):
            r.scores(run=first[:-1] + "x")
        with pytest.raises(BenchError, match="did you mean 'deletion_auc'"):
            r.table("deletion_au")
    with pytest.raises(BenchError, match="no results database"):
        Results(tmp_path / "none.duckdb")
