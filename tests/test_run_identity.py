"""Run identity (issue 12): the run id and the model cache change with the code (an
uncommitted edit included), the data's index files, a checkpoint's content and the
package versions; and a model explained as it is runs end to end with no training."""

from __future__ import annotations

import io
import json
import os
from pathlib import Path

import duckdb
import pytest
import torch
import yaml
from rich.console import Console
from typer.testing import CliRunner

from benchmark import fingerprint, provenance
from benchmark.cli import app
from benchmark.plan import plan
from benchmark.runner import run_suite
from benchmark.scenario_models import model_key, model_seed_key
from tests.model_zoo import tiny_face
from tests.test_celebamask_hq import build_replica


def write_suite(tmp_path: Path, **over) -> Path:
    data = {
        "name": "byo", "device": "cpu", "db": str(tmp_path / "out" / "r.duckdb"),
        "dataset": {"test": {"name": "celebamask_hq",
                             "params": {"root": str(tmp_path / "hq"), "size": 32}}},
        "model": {"factory": "tests.model_zoo:tiny_face", "checkpoint": str(tmp_path / "w.pt"),
                  "train": False},
        "scenarios": [{"name": "s", "target": "Male", "observe": ["Wearing_Hat"]}],
        "explainers": ["saliency"], "metrics": ["average_drop"],
        **over,
    }  # fmt: skip
    path = tmp_path / "s.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


@pytest.fixture
def suite(tmp_path) -> Path:
    build_replica(tmp_path / "hq")
    torch.save(tiny_face(seed=1).state_dict(), tmp_path / "w.pt")
    return write_suite(tmp_path)


def run_id(path: Path) -> str:
    return plan(path, None, "cpu", False).run_id


def test_same_inputs_same_run(suite):
    assert run_id(suite) == run_id(suite)


def test_an_edited_source_file_is_a_new_run(suite, tmp_path, monkeypatch):
    """Uncommitted edits count: the code is hashed as it is on disk, not by commit."""
    root = tmp_path / "src"
    (root / "benchmark").mkdir(parents=True)
    module = root / "benchmark" / "x.py"
    module.write_text("A = 1\n")
    monkeypatch.setattr(fingerprint, "ROOT", root)
    before = run_id(suite)
    module.write_text("A = 2\n")
    assert run_id(suite) != before


def test_touched_index_file_is_a_new_run(suite, tmp_path):
    before = run_id(suite)
    attributes = tmp_path / "hq" / "CelebAMask-HQ-attribute-anno.txt"
    st = attributes.stat()
    os.utime(attributes, ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))
    assert run_id(suite) != before


def test_new_checkpoint_content_at_the_same_path_and_mtime_is_a_new_run(suite, tmp_path):
    before = run_id(suite)
    weights = tmp_path / "w.pt"
    st = weights.stat()
    torch.save(tiny_face(seed=2).state_dict(), weights)
    os.utime(weights, ns=(st.st_atime_ns, st.st_mtime_ns))  # same stamp, new bytes
    assert run_id(suite) != before


def test_other_package_versions_are_a_new_run(suite, monkeypatch):
    before = run_id(suite)
    real = provenance.package_versions()
    monkeypatch.setattr(provenance, "package_versions", lambda: {**real, "torch": "0.0.1"})
    assert run_id(suite) != before


def test_model_cache_key_follows_the_model_code(tmp_path, monkeypatch):
    path = write_suite(
        tmp_path,
        dataset={"train": {"name": "synthetic_faces", "params": {"n": 60, "size": 32}},
                 "test": {"name": "synthetic_faces", "params": {"n": 40, "size": 32}}},
        model={"factory": "tests.model_zoo:tiny_face", "train": {"epochs": 1}},
        scenarios=[{"name": "s", "target": "Male", "attributes": ["Wearing_Hat"], "rho": 0.9}],
    )  # fmt: skip
    root = tmp_path / "src"
    (root / "benchmark" / "models").mkdir(parents=True)
    train_code = root / "benchmark" / "models" / "train.py"
    train_code.write_text("LR = 1\n")
    monkeypatch.setattr(fingerprint, "ROOT", root)
    p = plan(path, None, "cpu", False)
    sc = p.suite.scenarios[0]
    before, seeds = model_key(p, sc), model_seed_key(p, sc)
    train_code.write_text("LR = 2\n")
    assert model_key(p, sc) != before  # retrained, never served from the cache
    assert model_seed_key(p, sc) == seeds  # from the same seeds: a comment changes no number


def test_a_pretrained_factory_runs_without_training_and_records_its_fingerprint(suite, tmp_path):
    rid = run_suite(suite, console=Console(file=io.StringIO()), leaderboard=False)
    with duckdb.connect(str(tmp_path / "out" / "r.duckdb"), read_only=True) as con:
        (prints,) = con.execute("SELECT fingerprint FROM runs WHERE run_id = ?", [rid]).fetchone()
        n_train, rho, model_hash, acc = con.execute(
            "SELECT n_train, rho, model_hash, accuracy FROM scenarios"
        ).fetchone()
        n_scores = con.execute("SELECT count(*) FROM scores").fetchone()[0]
    prints = json.loads(prints)
    assert set(prints) == {"code", "data", "model_files", "model_code", "packages"}
    assert prints["model_files"]["checkpoint"] == fingerprint.file_digest(tmp_path / "w.pt")
    assert prints["model_code"]["module"] == "tests.model_zoo"
    assert n_train == 0 and rho is None and model_hash.startswith("factory:")
    assert acc is not None and n_scores > 0
    # A rerun is the same run and adds nothing.
    assert run_suite(suite, console=Console(file=io.StringIO()), leaderboard=False) == rid


def test_validate_builds_explainers_with_their_params_before_any_training(tmp_path):
    path = write_suite(
        tmp_path,
        dataset={"train": {"name": "synthetic_faces", "params": {"n": 60, "size": 32}},
                 "test": {"name": "synthetic_faces", "params": {"n": 40, "size": 32}}},
        model={"arch": "small_cnn", "train": {"epochs": 1}},
        scenarios=[{"name": "s", "target": "Male", "attributes": ["Wearing_Hat"], "rho": 0.9}],
        explainers=["gradcam", {"name": "rise", "params": {"p": 1.5}}],
    )  # fmt: skip
    for command in (["validate", str(path)], ["run", str(path)]):
        result = CliRunner().invoke(app, command)
        assert result.exit_code == 2, result.output
        lines = result.output.strip().splitlines()
        assert len(lines) == 1 and "explainers[1].params: rise: p must be in (0, 1]" in lines[0]
    assert not (tmp_path / "out").exists()
