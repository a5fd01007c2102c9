"""Models as a user brings them (issue 12): a factory, a black-box function, a TorchScript
file and hand-written ONNX graphs whose outputs are known in closed form."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torch import nn

from tests.conftest import PatchModel


class TinyFace(nn.Module):
    """A plain CNN on normalised images, logits out: what a factory returns."""

    def __init__(self, n_classes: int = 2, width: int = 8, seed: int = 0):
        super().__init__()
        torch.manual_seed(seed)
        self.features = nn.Sequential(
            nn.Conv2d(3, width, 3, stride=2, padding=1), nn.ReLU(),
            nn.Conv2d(width, width, 3, padding=1), nn.ReLU(),
        )  # fmt: skip
        self.head = nn.Linear(width, n_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x).mean((2, 3)))


def tiny_face(n_classes: int = 2, width: int = 8, seed: int = 0) -> TinyFace:
    """The factory a suite names as ``tests.model_zoo:tiny_face``."""
    return TinyFace(n_classes, width, seed)


_PATCH = PatchModel().eval()


def patch_probabilities(x_batch: torch.Tensor) -> np.ndarray:
    """A black box: PatchModel's class probabilities as NumPy (no autograd to follow)."""
    with torch.no_grad():
        return _PATCH.to(x_batch.device)(x_batch).softmax(-1).cpu().numpy()


#: Weights of the mean-colour graph: logits = mean(x over H, W) @ W + B.
W = np.array([[0.02, -0.01], [0.0, 0.03], [-0.01, 0.01]], np.float32)
B = np.array([0.1, -0.2], np.float32)


def write_mean_colour_onnx(
    path: Path, softmax: bool = True, size: int = 16, both: bool = False
) -> Path:
    """An ONNX graph ``softmax(GlobalAveragePool(x) @ W + B)`` on (N, 3, size, size);
    with ``both``, the graph returns the probabilities and then the logits."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    nodes = [
        helper.make_node("GlobalAveragePool", ["images"], ["pooled"]),
        helper.make_node("Flatten", ["pooled"], ["flat"], axis=1),
        helper.make_node("Gemm", ["flat", "W", "B"], ["logits"]),
    ]
    out = "logits"
    if softmax:
        nodes.append(helper.make_node("Softmax", ["logits"], ["probabilities"], axis=1))
        out = "probabilities"
    graph = helper.make_graph(
        nodes,
        "mean_colour",
        [helper.make_tensor_value_info("images", TensorProto.FLOAT, ["N", 3, size, size])],
        [
            helper.make_tensor_value_info(name, TensorProto.FLOAT, ["N", 2])
            for name in ([out, "logits"] if both else [out])
        ],
        initializer=[numpy_helper.from_array(W, "W"), numpy_helper.from_array(B, "B")],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    onnx.save(model, str(path))
    return path


def write_patch_torchscript(path: Path) -> Path:
    """PatchModel traced to a TorchScript file."""
    torch.jit.trace(PatchModel().eval(), torch.rand(1, 3, 32, 32)).save(str(path))
    return path


class PatchDetector(nn.Module):
    """A detector that always finds one face, PATCH's box, scored by the patch's
    brightness: the detection score depends on that box alone."""

    def __init__(self):
        super().__init__()
        self.register_buffer("box", torch.tensor([[20.0, 8.0, 28.0, 16.0]]))

    def detect(self, x: torch.Tensor) -> list[tuple[torch.Tensor, torch.Tensor]]:
        s = torch.sigmoid(8 * (x[:, :, 8:16, 20:28].mean((1, 2, 3)) - 0.3))
        return [(self.box, s[i : i + 1]) for i in range(len(x))]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([s for _, s in self.detect(x)])[:, None]


def patch_detector() -> PatchDetector:
    """The factory a detection suite names as ``tests.model_zoo:patch_detector``."""
    return PatchDetector()


def needs_dlib_models() -> None:
    """Skip unless dlib and the face-recognition-models weights are installed."""
    import importlib.util

    import pytest

    if (
        importlib.util.find_spec("dlib") is None
        or importlib.util.find_spec("face_recognition_models") is None
    ):
        pytest.skip("dlib-bin and face-recognition-models not installed", allow_module_level=True)


class PixelEmbedding(nn.Module):
    """The aligned face's centred pixels as its embedding: two faces are as similar as
    their pixels, so a contrastive score's gradient is where mate and nonmate differ."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        flat = x.flatten(1)
        return flat - flat.mean(1, keepdim=True)


def pixel_embedding() -> PixelEmbedding:
    """The factory ``tests.model_zoo:pixel_embedding`` (nothing to train)."""
    return PixelEmbedding()
