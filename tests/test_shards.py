"""Cells, shards and merging (issue 15): shards partition the work, merged shards equal a
one-process run, bad merges stop with one line, and a SIGKILLed shard loses nothing."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import duckdb
import pytest
from typer.testing import CliRunner

from benchmark.cells import Cell, parse_shard, plan_cells, shard_cells
from benchmark.cli import app
from benchmark.errors import BenchError
from benchmark.runner import shard_db
from benchmark.suite import load_suite
from tests.sharded_runs import SUITE, assert_same_results, bench, whole

__all__ = ["whole"]  # the session fixture, imported to be found here

EXPLAINERS = ("gradcam", "occlusion", "rise")


def test_cells_are_planned_per_seed_scenario_and_explainer():
    cells = plan_cells(load_suite(SUITE))
    assert cells == [
        Cell(0, "lipstick"), *(Cell(0, "lipstick", e) for e in EXPLAINERS),
        Cell(0, "hat"), *(Cell(0, "hat", e) for e in EXPLAINERS),
    ]  # fmt: skip
    assert Cell(0, "hat", "rise").needs == Cell(0, "hat") and Cell(0, "hat").needs is None


@pytest.mark.parametrize("n", [1, 2, 3, 4, 5, 6, 7])
def test_shards_partition_the_explain_cells_and_carry_what_they_need(n):
    cells = plan_cells(load_suite(SUITE))
    shards = [shard_cells(cells, k, n) for k in range(1, n + 1)]
    explain = [[c for c in s if c.explainer] for s in shards]
    assert sorted(c for s in explain for c in s) == sorted(c for c in cells if c.explainer)
    assert max(map(len, explain)) - min(map(len, explain)) <= 1  # 6 cells: as even as can be
    for s in shards:
        assert {c.needs for c in s if c.explainer} == {c for c in s if c.explainer is None}
    if n == 2:  # contiguous blocks: one scenario per shard, one model each
        assert shards[0] == cells[:4] and shards[1] == cells[4:]


@pytest.mark.parametrize("text", ["0/2", "3/2", "1/0", "a/b", "2", "", "1/2/3"])
def test_bad_shard_is_one_line_and_writes_nothing(text, tmp_path):
    with pytest.raises(BenchError, match="--shard: expected"):
        parse_shard(text)
    db = tmp_path / "r.duckdb"
    result = CliRunner().invoke(app, ["run", str(SUITE), "--shard", text, "--db", str(db)])
    assert result.exit_code == 2 and "--shard: expected" in result.output
    assert len(result.output.strip().splitlines()) == 1 and not db.exists()


def test_shard_default_file_sits_beside_the_results_db():
    assert shard_db(SUITE.parent / "results.duckdb", 2, 4).name == "results.shard-2-of-4.duckdb"


@pytest.fixture(scope="session")
def shards(whole):
    """Both shards of the suite, each into its own file (models from the whole run's cache)."""
    out = []
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("BENCH_CACHE", str(whole.cache))
        for k in (1, 2):
            db = whole.tmp / "shards" / f"s{k}.duckdb"
            text = bench("run", SUITE, "--shard", f"{k}/2", "--db", db)
            assert f"shard {k}/2: 3 explain cell(s), 0 stored, 3 to run" in text
            assert text.count("stored: ") == 3
            assert "once all 2 are: bench merge SHARD_1.duckdb … SHARD_2.duckdb --db" in text
            out.append(db)
    return out


def _one(db, sql):
    with duckdb.connect(str(db), read_only=True) as con:
        return con.execute(sql).fetchall()


def test_two_shards_merged_equal_a_one_process_run(whole, shards, tmp_path):
    assert _one(shards[0], "SELECT status FROM runs") == [("shard done",)]
    assert _one(shards[0], "SELECT DISTINCT scenario FROM work_done") == [("lipstick",)]
    out = tmp_path / "merged" / "r.duckdb"
    text = bench("merge", *shards, "--db", out)
    assert "done, 6/6 explain cells from shard(s) 1, 2 of 2" in text
    assert (out.parent / "site" / "index.html").is_file()
    assert_same_results(whole.db, out)
    assert _one(out, "SELECT status FROM runs") == [("done",)]
    # Win % over all three explainers of each scenario: the shares sum to 100
    wins = _one(out, "SELECT scenario, sum(value) FROM scores WHERE metric = 'win_percent' "
                     "GROUP BY scenario ORDER BY scenario")  # fmt: skip
    assert wins == [("hat", pytest.approx(100.0)), ("lipstick", pytest.approx(100.0))]
    # figures are written again beside the merged DB, from the PNG bytes it holds
    for path, png in _one(out, "SELECT path, png FROM figures"):
        assert path.startswith(str(out.parent / "figures")) and Path(path).read_bytes() == png
    # idempotent: merging again (in either order) changes no row
    before = _one(out, "SELECT * EXCLUDE (details) FROM scores ORDER BY ALL")
    bench("merge", shards[1], shards[0], "--db", out, "--no-leaderboard")
    assert _one(out, "SELECT * EXCLUDE (details) FROM scores ORDER BY ALL") == before
    assert_same_results(whole.db, out)


def test_a_missing_shard_leaves_the_run_incomplete(shards, tmp_path):
    out = tmp_path / "half.duckdb"
    text = bench("merge", shards[0], "--db", out, "--no-leaderboard")
    assert "incomplete, 3/6 explain cells from shard(s) 1 of 2; missing shard(s) 2 of 2" in text
    assert _one(out, "SELECT status FROM runs") == [("incomplete",)]
    bench("merge", shards[1], "--db", out, "--no-leaderboard")  # the late shard completes it
    assert _one(out, "SELECT status FROM runs") == [("done",)]


def _altered(src, dst, sql):
    shutil.copy(src, dst)
    with duckdb.connect(str(dst)) as con:
        con.execute(sql)
    return dst


def _refused(first, bad, out, message):
    result = CliRunner().invoke(app, ["merge", str(first), str(bad), "--db", str(out)])
    assert result.exit_code == 2, result.output
    assert message in result.output, result.output
    assert len(result.output.strip().splitlines()) == 1 and not out.exists()
    return result.output


def test_merge_refuses_shards_of_other_code_suite_or_split_with_one_line(shards, tmp_path):
    fp = json.loads(_one(shards[1], "SELECT fingerprint FROM runs")[0][0])
    other = json.dumps({**fp, "code": "0123456789abcdef"})
    cases = {
        "was run with different code (": f"UPDATE runs SET fingerprint = '{other}', group_id = 'x'",
        "is a run of a different suite (": "UPDATE runs SET suite_hash = 'x', group_id = 'g2'",
        "holds shard 2/3, ": "UPDATE shards SET shards = 3",
    }
    for i, (message, sql) in enumerate(cases.items()):
        bad = _altered(shards[1], tmp_path / f"bad{i}.duckdb", sql)
        text = _refused(shards[0], bad, tmp_path / f"out{i}.duckdb", message)
        assert text.strip().startswith(f"error: {bad}:")


def test_merge_refuses_shards_that_disagree_on_a_scenario(shards, tmp_path):
    """Two shards that prepared one scenario with different models do not mix."""
    bad = _altered(shards[0], tmp_path / "bad.duckdb", "UPDATE scenarios SET accuracy = 0.01")
    text = _refused(shards[0], bad, tmp_path / "out.duckdb", "scenarios lipstick: accuracy is 0.01")
    assert "give them one cache folder" in text


def test_sigkilled_shard_rerun_loses_nothing(whole, shards, tmp_path):
    """Killed after its first stored cell, the shard reruns the rest only."""
    db = tmp_path / "killed.duckdb"
    env = {**os.environ, "BENCH_CACHE": str(whole.cache), "PYTHONUNBUFFERED": "1"}
    cmd = [sys.executable, "-m", "benchmark", "run", str(SUITE), "--shard", "1/2", "--db", str(db)]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            env=env)  # fmt: skip
    seen = []
    for line in proc.stdout:
        seen.append(line)
        if line.startswith("stored: "):
            proc.send_signal(signal.SIGKILL)
            break
    proc.wait(timeout=120)
    proc.stdout.close()
    assert proc.returncode == -signal.SIGKILL, "".join(seen)
    stored = _one(db, "SELECT count(*) FROM work_done")[0][0]
    assert 1 <= stored < 3
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("BENCH_CACHE", str(whole.cache))
        text = bench("run", SUITE, "--shard", "1/2", "--db", db)
    assert f"3 explain cell(s), {stored} stored, {3 - stored} to run" in text
    assert text.count("stored: ") == 3 - stored
    assert_same_results(shards[0], db)


def test_ray_executor_without_ray_says_how_to_install(monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, "ray", None)
    db = tmp_path / "r.duckdb"
    result = CliRunner().invoke(app, ["run", str(SUITE), "--executor", "ray", "--db", str(db)])
    assert result.exit_code == 2 and "Ray is not installed" in result.output
    assert not db.exists()
    result = CliRunner().invoke(app, ["run", str(SUITE), "--executor", "rey"])
    assert result.exit_code == 2 and "--executor: expected local or ray" in result.output


def test_cells_of_several_seeds_keep_each_seeds_scenarios_together(tmp_path):
    suite = tmp_path / "seeds.yaml"
    suite.write_text(f"include: {SUITE}\nseeds: [3, 5]\n")
    cells = plan_cells(load_suite(suite))
    assert [c.seed for c in cells] == [3] * 8 + [5] * 8
    first, second = shard_cells(cells, 1, 2), shard_cells(cells, 2, 2)
    assert {c.seed for c in first} == {3} and {c.seed for c in second} == {5}


def test_a_verification_suite_splits_and_merges_like_a_classification_one(tmp_path):
    """Three shards of a verification suite (its one embedding prepared by each) merged
    equal its one-process run, Win % over the three explainers included."""
    import yaml

    from benchmark.merge import merge_databases
    from benchmark.runner import run_suite
    from tests.test_e2e import quiet
    from tests.test_verification import VERIFY

    path = tmp_path / "v.yaml"
    path.write_text(yaml.safe_dump(VERIFY))
    run_suite(path, db=tmp_path / "whole.duckdb", console=quiet(), leaderboard=False)
    parts = [tmp_path / f"v{k}.duckdb" for k in (1, 2, 3)]
    for k, db in enumerate(parts, 1):
        run_suite(path, db=db, console=quiet(), leaderboard=False, shard=(k, 3))
    (report,) = merge_databases(parts, tmp_path / "merged.duckdb").values()
    assert report["status"] == "done" and report["cells"] == report["expected"] == 6
    assert_same_results(tmp_path / "whole.duckdb", tmp_path / "merged.duckdb")
    assert (
        len(_one(tmp_path / "merged.duckdb", "SELECT * FROM scores WHERE metric = 'win_percent'"))
        == 6
    )
