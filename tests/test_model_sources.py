"""Bring your own model (issue 12): every source, the declared preprocessing and outputs
against hand-computed values, and one-line refusals of what a source cannot do."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from torch import nn

from benchmark.catalogue import EXPLAINERS
from benchmark.errors import BenchError
from benchmark.models.adapter import FaceModel
from benchmark.models.sources import build_model, resolve_file
from benchmark.suite import InputSpec, ModelSpec, OutputSpec, load_suite
from tests.conftest import PATCH, REAL_EXPLAINERS, PatchModel, check_generic
from tests.model_zoo import B, W, tiny_face, write_mean_colour_onnx, write_patch_torchscript

onnxruntime = pytest.importorskip("onnxruntime")


class Recorder(nn.Module):
    """Returns fixed logits and keeps what it was given."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.seen = x
        return torch.zeros(len(x), 2)


def test_preprocessing_size_bgr_range_mean_std_layout():
    rec = Recorder()
    spec = InputSpec(size=4, channels="BGR", range=[0, 255], mean=[10, 20, 30], std=2,
                     layout="NHWC")  # fmt: skip
    x = torch.zeros(1, 3, 8, 8)
    x[:, 0], x[:, 1], x[:, 2] = 0.2, 0.4, 0.6  # R, G, B
    FaceModel(rec, spec)(x)
    assert rec.seen.shape == (1, 4, 4, 3)  # resized, channels last
    # BGR order, then (255·x − mean) / std with the mean in the core's (BGR) order
    expected = [(0.6 * 255 - 10) / 2, (0.4 * 255 - 20) / 2, (0.2 * 255 - 30) / 2]
    assert torch.allclose(rec.seen[0, 0, 0], torch.tensor(expected), atol=1e-4)


@pytest.mark.parametrize(
    ("kind", "raw", "probs"),
    [
        ("logits", [[1.0, 3.0]], [1 / (1 + math.e**2), 1 / (1 + math.e**-2)]),
        ("probabilities", [[0.3, 0.7]], [0.3, 0.7]),
        ("logit", [[2.0]], [1 / (1 + math.e**2), 1 / (1 + math.e**-2)]),
        ("probability", [0.8], [0.2, 0.8]),
    ],
)
def test_output_kinds_become_logits_with_the_same_probabilities(kind, raw, probs):
    core = nn.Module()
    core.forward = lambda x: torch.tensor(raw)  # type: ignore[method-assign]
    out = FaceModel(core, output=OutputSpec(kind=kind))(torch.zeros(1, 3, 4, 4))
    assert out.shape == (1, 2)
    assert torch.allclose(out.softmax(-1), torch.tensor([probs]), atol=1e-6)


def test_positive_class_reorders_outputs_to_the_dataset_labels():
    core = nn.Module()
    core.forward = lambda x: torch.tensor([[0.9, 0.1]])  # type: ignore[method-assign]
    spec = OutputSpec(kind="probabilities", classes=["male", "female"], positive="male")
    p = FaceModel(core, output=spec)(torch.zeros(1, 3, 4, 4)).softmax(-1)
    assert torch.allclose(p, torch.tensor([[0.1, 0.9]]), atol=1e-6)  # label 1 = male


def _onnx_spec(path: Path, backend: str, **over) -> ModelSpec:
    return ModelSpec(
        onnx=str(path), backend=backend, input=InputSpec(size=16, range=[0, 255], std=255),
        output=OutputSpec(kind="probabilities", classes=["a", "b"]), **over,
    )  # fmt: skip


@pytest.mark.parametrize("backend", ["onnxruntime", "onnx2torch"])
def test_onnx_model_matches_the_closed_form(tmp_path, backend):
    path = write_mean_colour_onnx(tmp_path / "m.onnx")
    model = build_model(_onnx_spec(path, backend), probe_size=(32, 32))
    x = torch.rand(3, 3, 32, 32)
    # resized to 16 px (area-preserving), range [0, 255] / 255: the pixel means again
    logits = x.mean((2, 3)).numpy() @ W + B
    expected = torch.from_numpy(logits).softmax(-1)
    assert torch.allclose(model(x).softmax(-1), expected, atol=1e-5)
    assert model.black_box is (backend == "onnxruntime")


@pytest.mark.parametrize("backend", ["onnxruntime", "onnx2torch"])
def test_onnx_output_name_picks_one_of_several_outputs(tmp_path, backend):
    path = write_mean_colour_onnx(tmp_path / "m.onnx", both=True)
    spec = ModelSpec(onnx=str(path), backend=backend, output=OutputSpec(name="logits"))
    x = torch.rand(2, 3, 16, 16)
    expected = torch.from_numpy(x.mean((2, 3)).numpy() @ W + B)
    assert torch.allclose(build_model(spec, probe_size=(16, 16))(x), expected, atol=1e-5)
    with pytest.raises(BenchError, match=r"model\.output\.name: expected an output of"):
        build_model(ModelSpec(onnx=str(path), backend=backend, output=OutputSpec(name="x")))


def test_onnx2torch_gives_gradients_and_onnxruntime_does_not(tmp_path):
    path = write_mean_colour_onnx(tmp_path / "m.onnx")
    x = torch.rand(1, 3, 16, 16, requires_grad=True)
    converted = build_model(_onnx_spec(path, "onnx2torch"))
    converted(x)[0, 1].backward()
    # d logit_b / d x_c = W[c, b] / (16·16) per pixel, up to the log-softmax's share
    assert x.grad is not None and torch.isfinite(x.grad).all() and x.grad.abs().sum() > 0
    assert not build_model(_onnx_spec(path, "onnxruntime"))(x).requires_grad


def test_factory_with_a_checkpoint_loads_it_weights_only(tmp_path):
    reference = tiny_face(seed=7)
    torch.save(reference.state_dict(), tmp_path / "w.pt")
    spec = ModelSpec(factory="tests.model_zoo:tiny_face", params={"seed": 0},
                     checkpoint=str(tmp_path / "w.pt"), train=False)  # fmt: skip
    model = build_model(spec, probe_size=(32, 32))
    x = torch.rand(2, 3, 32, 32)
    assert torch.allclose(model(x), reference(x), atol=1e-6)
    # no declared CAM layer: the last layer with a spatial output
    assert model.target_layer is model.core.features[3]


def test_torchscript_and_callable_sources_score_like_the_module(tmp_path):
    path = write_patch_torchscript(tmp_path / "m.pt")
    x = torch.rand(2, 3, 32, 32)
    ts = build_model(ModelSpec(torchscript=str(path)), probe_size=(32, 32))
    assert torch.allclose(ts(x), PatchModel().eval()(x), atol=1e-5)
    spec = ModelSpec(callable="tests.model_zoo:patch_probabilities",
                     output=OutputSpec(kind="probabilities"))  # fmt: skip
    box = build_model(spec, probe_size=(32, 32))
    assert torch.allclose(box(x).softmax(-1), PatchModel().eval()(x).softmax(-1), atol=1e-5)


BLACK_BOX = [n for n in REAL_EXPLAINERS if getattr(EXPLAINERS.get(n), "black_box", False)]
WHITE_BOX = [n for n in REAL_EXPLAINERS if not getattr(EXPLAINERS.get(n), "black_box", False)]


@pytest.mark.parametrize("name", BLACK_BOX)
def test_every_black_box_explainer_runs_on_a_plain_function(name):
    """Forward passes only, through NumPy: the maps still peak on the patch."""
    spec = ModelSpec(callable="tests.model_zoo:patch_probabilities",
                     output=OutputSpec(kind="probabilities"))  # fmt: skip
    model = build_model(spec)
    cls = EXPLAINERS.get(name)
    from tests.conftest import build
    from tests.test_explainers import TEST_PARAMS

    x = torch.rand(2, 3, 32, 32, generator=torch.Generator().manual_seed(1))
    params = dict(TEST_PARAMS.get(name, {}))
    if name == "kernel_shap":  # log-probabilities are flatter than logits: more coalitions
        params["n_samples"] = 200
    make = lambda m: build(cls, m, batch_size=3, seed=0, **params)  # noqa: E731
    check_generic(make, model, x, torch.ones(2, dtype=torch.long))


def _suite(tmp_path: Path, model: dict, explainers: list, metrics: list | None = None) -> Path:
    data = {
        "name": "byo", "device": "cpu",
        "dataset": {"test": {"name": "synthetic_faces", "params": {"n": 40, "size": 32}}},
        "model": model,
        "scenarios": [{"name": "s", "target": "Male", "observe": ["Wearing_Hat"]}],
        "explainers": explainers, "metrics": metrics or ["average_drop"],
    }  # fmt: skip
    path = tmp_path / "s.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


@pytest.mark.parametrize("name", WHITE_BOX)
def test_onnxruntime_refuses_every_explainer_that_needs_gradients(tmp_path, name):
    path = _suite(tmp_path, {"onnx": "m.onnx"}, [name])
    with pytest.raises(BenchError, match=r"explainers\[0\]: .* which an onnxruntime model"):
        load_suite(path)


def test_torchscript_takes_input_gradients_but_not_layer_hooks(tmp_path):
    load_suite(_suite(tmp_path, {"torchscript": "m.pt"}, ["saliency", "integrated_gradients"]))
    with pytest.raises(BenchError, match="gradcam needs hooks on the model's layers"):
        load_suite(_suite(tmp_path, {"torchscript": "m.pt"}, ["gradcam"]))


def test_a_black_box_has_no_weights_to_randomise(tmp_path):
    path = _suite(tmp_path, {"callable": "tests.model_zoo:patch_probabilities"}, ["occlusion"],
                  ["model_randomisation"])  # fmt: skip
    with pytest.raises(BenchError, match=r"metrics\[0\]: model_randomisation re-initialises"):
        load_suite(path)


@pytest.mark.parametrize(
    ("model", "message"),
    [
        ({"arch": "small_cnn", "onnx": "m.onnx"}, "expected one model source, got arch and onnx"),
        ({"params": {}}, "expected one model source"),
        ({"onnx": "m.onnx", "train": {"epochs": 1}}, "model.train: expected train: false"),
        ({"arch": "small_cnn", "backend": "onnx2torch"}, "expected backend only with onnx"),
        ({"factory": "not a target"}, "model.factory"),
        ({"onnx": "m.onnx", "output": {"classes": ["f", "m"], "positive": "male"}},
         "model.output.positive: expected a name among classes (f, m), got 'male'"),
        ({"onnx": "m.onnx", "input": {"range": [1, 0]}}, "expected [low, high] with low < high"),
    ],
)  # fmt: skip
def test_bad_model_blocks_are_one_line(tmp_path, model, message):
    with pytest.raises(BenchError) as info:
        load_suite(_suite(tmp_path, model, ["occlusion"]))
    assert message in str(info.value) and "\n" not in str(info.value)


def test_model_files_say_what_is_missing():
    with pytest.raises(BenchError, match="package 'no_such_pkg' is not installed"):
        resolve_file("pkg:no_such_pkg/m.onnx", "onnx")
    with pytest.raises(BenchError, match=r"model\.onnx: no such file"):
        resolve_file("/nonexistent/m.onnx", "onnx")


def test_declared_outputs_must_match_the_model(tmp_path):
    path = write_mean_colour_onnx(tmp_path / "m.onnx")
    spec = ModelSpec(onnx=str(path), output=OutputSpec(classes=["a", "b", "c"]))
    with pytest.raises(BenchError, match="expected 3 outputs"):
        build_model(spec, probe_size=(16, 16))
    with pytest.raises(BenchError, match="no layer 'fetures' in the model; did you mean"):
        build_model(ModelSpec(factory="tests.model_zoo:tiny_face", target_layer="fetures",
                              train=False), probe_size=(16, 16))  # fmt: skip


def test_patch_peak_survives_preprocessing(tmp_path):
    """A model reading BGR bytes at half size: Saliency through the adapter still
    peaks on the patch in the explainer's own pixel space."""
    spec = ModelSpec(factory="tests.conftest:PatchModel", train=False,
                     input=InputSpec(channels="BGR", range=[0, 255], std=255))  # fmt: skip
    model = build_model(spec, probe_size=(32, 32))
    from explainers.gradients import Saliency

    maps = Saliency(model)(torch.rand(2, 3, 32, 32), torch.ones(2, dtype=torch.long))
    for m in maps:
        r, c = divmod(int(m.argmax()), m.shape[1])
        assert PATCH[0].start <= r < PATCH[0].stop and PATCH[1].start <= c < PATCH[1].stop
    assert np.isfinite(maps.numpy()).all()


def test_the_factory_example_suite_explains_a_torchvision_model(tmp_path, monkeypatch):
    """examples/own_factory.yaml: torchvision's constructor, a state dict, ImageNet
    preprocessing at 224 px; the planned model is the ResNet on normalised inputs."""
    import torchvision

    net = torchvision.models.resnet18(num_classes=2).eval()
    torch.save(net.state_dict(), tmp_path / "r18.pt")
    monkeypatch.setenv("MODEL_WEIGHTS", str(tmp_path / "r18.pt"))
    from benchmark.plan import plan

    p = plan(Path(__file__).parents[1] / "examples" / "own_factory.yaml", None, "cpu", False)
    x = torch.rand(2, 3, 64, 64)
    resized = torch.nn.functional.interpolate(x, size=224, mode="bilinear", antialias=True)
    mean = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)
    std = torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)
    with torch.no_grad():
        direct = net((resized - mean) / std)[:, [0, 1]]
        assert torch.allclose(p.model(x), direct, atol=1e-4)
    assert p.model.target_layer is p.model.core.layer4 and p.model is not None
