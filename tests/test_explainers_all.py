"""`suites/explainers_all.yaml` scaled down: every registered explainer, every metric,
through the runner, and all of them on the leaderboard."""

from __future__ import annotations

import re
from pathlib import Path

import duckdb
import yaml

from benchmark.catalogue import EXPLAINERS, METRICS
from benchmark.runner import run_suite
from tests.test_e2e import quiet

SUITE = Path(__file__).parents[1] / "suites" / "explainers_all.yaml"


def test_the_suite_lists_the_whole_catalogue():
    spec = yaml.safe_load(SUITE.read_text())
    names = [e if isinstance(e, str) else e["name"] for e in spec["explainers"]]
    assert sorted(EXPLAINERS.canonical(n) for n in names) == EXPLAINERS.names()
    metrics = [m if isinstance(m, str) else m["name"] for m in spec["metrics"]]
    assert sorted(METRICS.canonical(m) for m in metrics) == METRICS.names()


def test_scaled_down_explainers_all_runs_and_the_leaderboard_shows_all(tmp_path):
    spec = yaml.safe_load(SUITE.read_text())
    spec["dataset"] = {
        "train": {"name": "synthetic_faces", "params": {"n": 900, "size": 32}},
        "test": {"name": "synthetic_faces", "params": {"n": 320, "size": 32}},
    }
    spec["model"] = {"arch": "small_cnn", "params": {"width": 8},
                     "train": {"epochs": 1, "batch_size": 64}}  # fmt: skip
    spec["scenarios"] = spec["scenarios"][:1]
    spec["explain"] = {"target": "label", "batch_size": 4, "max_images": 4}
    for e in spec["explainers"]:  # SLIC at 32 px: a finer, grid-like segmentation
        if isinstance(e, dict) and e["name"] in ("lime", "kernel_shap"):
            e["params"].update(n_segments=16, compactness=100.0, n_samples=32)
    spec["db"] = str(tmp_path / "all.duckdb")
    path = tmp_path / "explainers_all.yaml"
    path.write_text(yaml.safe_dump(spec))
    run_suite(path, console=quiet())
    with duckdb.connect(str(tmp_path / "all.duckdb"), read_only=True) as con:
        got = con.execute("SELECT explainer, metric, value FROM scores").fetchall()
        kinds = con.execute("SELECT explainer, count(*) FROM figures GROUP BY 1").fetchall()
    labels = {e if isinstance(e, str) else e["name"] for e in spec["explainers"]}
    assert {e for e, _, _ in got} == labels
    for label in labels:
        mine = {m for e, m, v in got if e == label and v == v}
        assert {METRICS.canonical(m if isinstance(m, str) else m["name"])
                for m in spec["metrics"]} <= mine, label  # fmt: skip
    # prototype, canonical summary, patches and a gallery of 4 faces
    assert dict(kinds) == dict.fromkeys(labels, 3 + 4)
    index = (tmp_path / "site" / "index.html").read_text()
    shown = set(re.findall(r"<td[^>]*>([a-z_+]+)</td>", index))
    assert labels <= shown
