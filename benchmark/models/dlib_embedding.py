"""dlib's face-recognition ResNet as a black-box embedding (128-d, METHODS §10).

The weights ship in the ``face-recognition-models`` wheel and dlib's Python bindings in
``dlib-bin``: nothing is downloaded. The model reads 150×150 RGB byte chips aligned the
way ``dlib.get_face_chip`` aligns them; feed it faces cropped on their landmarks
(``model.input.crop: landmarks``). dlib takes a list of chips per call and runs them as
one batch, so every perturbation of an explainer's step is one call.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from benchmark.errors import BenchError

CHIP = 150
WEIGHTS = "dlib_face_recognition_resnet_model_v1.dat"


def weights_file() -> Path:
    """The ResNet's weights inside the installed ``face_recognition_models`` package.

    Found without importing the package, whose ``__init__`` needs ``pkg_resources``
    (gone from recent setuptools).
    """
    spec = importlib.util.find_spec("face_recognition_models")
    if spec is None or not spec.submodule_search_locations:
        raise BenchError(
            "model: dlib's face embedding needs face-recognition-models and dlib-bin "
            "(pip install -e '.[models]')"
        )
    path = Path(next(iter(spec.submodule_search_locations))) / "models" / WEIGHTS
    if not path.is_file():
        raise BenchError(f"model: {path} is missing from face-recognition-models")
    return path


class DlibFaceEmbedding(nn.Module):
    """e(X): dlib's 128-d descriptor of each image (resized to 150×150), a black box.

    Args:
        jitters: dlib's ``num_jitters`` (0: one pass per image, the default).
    """

    black_box = True

    def __init__(self, jitters: int = 0):
        super().__init__()
        try:
            import dlib
        except ImportError:
            raise BenchError("model: dlib's face embedding needs dlib-bin (pip install "
                             "-e '.[models]')") from None  # fmt: skip
        self.net = dlib.face_recognition_model_v1(str(weights_file()))
        self.jitters = int(jitters)

    @torch.no_grad()
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if tuple(x.shape[-2:]) != (CHIP, CHIP):
            x = F.interpolate(x.float(), size=(CHIP, CHIP), mode="bilinear",
                              align_corners=False, antialias=True)  # fmt: skip
        chips = (x.clamp(0, 1) * 255).round().to(torch.uint8).permute(0, 2, 3, 1).cpu().numpy()
        out = self.net.compute_face_descriptor(list(np.ascontiguousarray(chips)), self.jitters)
        return torch.tensor(np.asarray([np.asarray(d) for d in out]), dtype=torch.float32,
                            device=x.device)  # fmt: skip


def dlib_face_embedding(jitters: int = 0) -> DlibFaceEmbedding:
    """The factory a suite names (``benchmark.models.dlib_embedding:dlib_face_embedding``)."""
    return DlibFaceEmbedding(jitters)
