"""Detection scores as explained outputs (issue 13): a toy detector whose score reads one
box, a detection suite end to end, and the real MTCNN on the four shared faces."""

from __future__ import annotations

import io
import json

import duckdb
import pytest
import torch
import yaml
from rich.console import Console

from benchmark.catalogue import EXPLAINERS
from benchmark.models.detection import DetectionScore, reference_detections
from explainers.base import build_explainer
from tests.conftest import PATCH, REAL_EXPLAINERS
from tests.model_zoo import PatchDetector
from tests.test_verification import FAST

BLACK_BOX = [n for n in REAL_EXPLAINERS if getattr(EXPLAINERS.get(n), "black_box", False)
             and "canonical" not in getattr(EXPLAINERS.get(n), "needs", ())]  # fmt: skip


def test_the_score_is_the_matched_detection_or_zero():
    x = torch.rand(2, 3, 32, 32)
    boxes = torch.tensor([[20.0, 8.0, 28.0, 16.0], [0.0, 0.0, 8.0, 8.0]])
    s = DetectionScore(PatchDetector(), boxes)(x)
    expected = torch.sigmoid(8 * (x[:, :, 8:16, 20:28].mean((1, 2, 3)) - 0.3))
    assert torch.allclose(s[:, 0], expected) and (s[:, 1] == 0).all()  # no overlap: 0
    ref, score = reference_detections(PatchDetector(), x)
    assert torch.equal(ref, boxes[:1].expand(2, 4)) and torch.allclose(score, expected)


@pytest.mark.parametrize("name", BLACK_BOX)
def test_every_black_box_explainer_finds_the_detected_box(name):
    x = torch.rand(3, 3, 32, 32, generator=torch.Generator().manual_seed(2))
    model = DetectionScore(PatchDetector(), torch.tensor([[20.0, 8.0, 28.0, 16.0]] * 3))
    explainer = build_explainer(EXPLAINERS.get(name), model, seed=0, **FAST.get(name, {}))
    maps = explainer(x, torch.arange(3))
    for m in maps:
        r, c = divmod(int(m.argmax()), 32)
        assert PATCH[0].start <= r < PATCH[0].stop and PATCH[1].start <= c < PATCH[1].stop


DETECT = {
    "name": "detect", "device": "cpu", "task": "detection",
    "dataset": {"test": {"name": "synthetic_faces", "params": {"n": 12, "size": 32}}},
    "model": {"factory": "tests.model_zoo:patch_detector", "train": False},
    "scenarios": [{"name": "face", "target": "face"}],
    "explainers": ["occlusion", {"name": "rise", "params": {"n_masks": 200}}],
    "metrics": [{"name": "bbox_ap", "params": {"reference": "face"}}, "average_drop"],
    "explain": {"batch_size": 8, "max_images": 6}, "figures": {"enabled": False},
}  # fmt: skip


def test_a_detection_suite_scores_maps_against_the_detected_box(tmp_path):
    from benchmark.runner import run_suite

    path = tmp_path / "d.yaml"
    path.write_text(yaml.safe_dump({**DETECT, "db": str(tmp_path / "r.duckdb")}))
    run_suite(path, console=Console(file=io.StringIO()), leaderboard=False)
    with duckdb.connect(str(tmp_path / "r.duckdb"), read_only=True) as con:
        task = con.execute("SELECT task FROM runs").fetchone()[0]
        cells, n = con.execute("SELECT test_cells, n_explained FROM scenarios").fetchone()
        ap = dict(con.execute("SELECT explainer, value FROM scores WHERE metric = 'bbox_ap'")
                  .fetchall())  # fmt: skip
    assert task == "detection" and json.loads(cells) == {"detected": 12} and n == 6
    # the score reads the box alone: maps that find it put their mass inside it
    assert ap["occlusion"] > 0.5 and ap["rise"] > 0.5


@pytest.mark.parametrize(
    ("over", "message"),
    [
        ({"scenarios": [{"name": "s", "target": "Male"}]}, "expected target: face"),
        ({"metrics": ["ranking_position"]}, "which task detection does not have"),
        ({"model": {"factory": "tests.model_zoo:patch_detector", "train": False,
                    "input": {"crop": "landmarks"}}}, "expected crop: none"),
    ],
)  # fmt: skip
def test_detection_suites_refuse_what_has_no_meaning(tmp_path, over, message):
    from benchmark.errors import BenchError
    from benchmark.suite import load_suite

    path = tmp_path / "d.yaml"
    path.write_text(yaml.safe_dump({**DETECT, **over}))
    with pytest.raises(BenchError, match=message):
        load_suite(path)


def test_mtcnn_finds_the_four_real_faces(tmp_path):
    pytest.importorskip("facenet_pytorch")
    from benchmark.data.celebamask_hq import CelebAMaskHQ
    from benchmark.models.detection import MTCNNDetector
    from tests.test_celebamask_hq import SAMPLES

    if not SAMPLES.is_dir():
        pytest.skip("../shared samples absent")
    from tests.real_faces import real_samples_folder

    faces = CelebAMaskHQ(real_samples_folder(tmp_path), size=160).load("test", 0, None)
    x = faces.images.float() / 255
    ref, score = reference_detections(MTCNNDetector(), x)
    assert torch.isfinite(ref).all() and (score > 0.99).all()
    # the box holds the face regions: skin and nose pixels lie inside it
    for box, lab in zip(ref, faces.label_maps, strict=True):
        x0, y0, x1, y1 = box.round().long().tolist()
        nose = (lab == 2).nonzero().float().mean(0)  # (row, col)
        assert x0 < nose[1] < x1 and y0 < nose[0] < y1
    # occluding the face lowers the matched score to (near) nothing
    model = DetectionScore(MTCNNDetector(), ref)
    black = x.clone()
    for i, (x0, y0, x1, y1) in enumerate(ref.round().long().tolist()):
        black[i, :, y0:y1, x0:x1] = 0
    assert (model(black).diagonal() < 0.5).all() and (model(x).diagonal() > 0.99).all()


def test_the_scenario_page_heads_accuracy_as_the_task_reads_it(tmp_path):
    from benchmark.runner import run_suite

    path = tmp_path / "d.yaml"
    path.write_text(yaml.safe_dump({**DETECT, "db": str(tmp_path / "r.duckdb"),
                                    "explainers": ["occlusion"]}))  # fmt: skip
    run_suite(path, console=Console(file=io.StringIO()), leaderboard=True)
    index = (tmp_path / "site" / "index.html").read_text()
    page = next((tmp_path / "site").glob("scenario-*.html")).read_text()
    assert "Detection: does the map cover the detected face?" in index
    assert "faces detected %" in page and "conflicting" not in page
    # the toy's fixed 8 px box never overlaps a synthetic face's box by IoU 0.5
    assert "<td>test images</td><td>0.0</td>" in page
