"""`bench run --executor ray` on a local Ray cluster (issue 15): the same database as the
local executor, every score; a rerun over stored cells runs only the rest."""

from __future__ import annotations

import shutil

import duckdb
import pytest

from tests.sharded_runs import SUITE, assert_same_results, bench, whole

ray = pytest.importorskip("ray", reason="the Ray executor's tests need Ray: pip install '.[ray]'")

__all__ = ["whole"]


@pytest.fixture(scope="module")
def cluster():
    """Two CPUs: two one-CPU cells run at once."""
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, configure_logging=False)
    yield
    ray.shutdown()


def test_ray_cluster_gives_the_local_executors_database(whole, cluster, tmp_path, monkeypatch):
    monkeypatch.setenv("BENCH_CACHE", str(whole.cache))  # the whole run's models
    db = tmp_path / "ray" / "r.duckdb"
    text = bench("run", SUITE, "--executor", "ray", "--db", db)
    assert "6 explain cell(s), 0 stored, 6 to run; 1 CPU and 0 GPU per cell" in text
    assert text.count("stored: prepare on ") == 2 and text.count("stored: ") == 8
    assert_same_results(whole.db, db)
    with duckdb.connect(str(db), read_only=True) as con:
        assert con.execute("SELECT status FROM runs").fetchall() == [("done",)]
        (n,) = con.execute("SELECT count(*) FROM scores WHERE metric = 'win_percent'").fetchone()
    assert n == 6  # Win % of every explainer: scored by the driver once all are stored
    assert (db.parent / "site" / "index.html").is_file()


def test_ray_rerun_runs_only_the_cells_not_stored(whole, cluster, tmp_path, monkeypatch):
    """As after a kill: the lipstick cells are stored (shard 1's database), hat's are not."""
    monkeypatch.setenv("BENCH_CACHE", str(whole.cache))
    first = tmp_path / "s1.duckdb"
    bench("run", SUITE, "--shard", "1/2", "--db", first)
    db = tmp_path / "resumed.duckdb"
    shutil.copy(first, db)
    text = bench("run", SUITE, "--executor", "ray", "--db", db, "--no-leaderboard")
    assert "6 explain cell(s), 3 stored, 3 to run" in text
    assert "lipstick" not in "".join(ln for ln in text.splitlines() if ln.startswith("stored"))
    assert text.count("stored: ") == 4  # hat's prepare cell and its three explainers
    assert_same_results(whole.db, db)
