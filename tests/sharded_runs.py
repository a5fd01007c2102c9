"""One whole run of tests/suites/sharded.yaml for the shard, merge and Ray tests, and
the table comparison that says two databases hold the same results."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest
from typer.testing import CliRunner

from benchmark.cli import app
from benchmark.merge import KEYS, VOLATILE, read_database

SUITE = Path(__file__).parent / "suites" / "sharded.yaml"
#: Every table of results (runs and shards hold timings and who ran them).
RESULTS = ("scenarios", "scores", "region_scores", "per_image", "image_scores", "reliance",
           "figures", "work_done")  # fmt: skip


@dataclass(frozen=True)
class Whole:
    db: Path
    cache: Path
    tmp: Path


def results(db: Path) -> dict[str, dict[tuple, dict]]:
    """Per results table, key → the row without its volatile columns (timings, paths)."""
    rows = read_database(db)
    out = {}
    for table in RESULTS:
        drop = VOLATILE.get(table, frozenset())
        out[table] = {
            tuple(r[c] for c in KEYS[table]): {k: v for k, v in r.items() if k not in drop}
            for r in rows[table]
        }
    return out


def assert_same_results(a: Path, b: Path) -> None:
    """Every stored value of ``a`` equals ``b``'s, bit for bit."""
    ra, rb = results(a), results(b)
    for table in RESULTS:
        assert ra[table].keys() == rb[table].keys(), table
        for key, row in ra[table].items():
            assert row == rb[table][key], (table, key)


def bench(*args: str) -> str:
    """``bench ARGS`` in this process; its output (exit code 0 asserted)."""
    result = CliRunner().invoke(app, list(map(str, args)))
    assert result.exit_code == 0, result.output
    return result.output


@pytest.fixture(scope="session")
def whole(tmp_path_factory) -> Whole:
    """The suite run in one process (models trained here, cached for the other runs)."""
    tmp = tmp_path_factory.mktemp("sharded")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("BENCH_CACHE", str(tmp / "cache"))
        bench("run", SUITE, "--db", tmp / "whole" / "r.duckdb", "--no-leaderboard")
    return Whole(tmp / "whole" / "r.duckdb", tmp / "cache", tmp)
