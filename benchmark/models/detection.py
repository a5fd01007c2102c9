"""Face detection as something every explainer can explain (METHODS §10).

The explained score of an image is f(X) = the score of the detection that matches the
reference box (IoU ≥ 0.5; the detection being explained, found on the unperturbed
image), 0 if none does. :class:`DetectionScore` returns, for a batch of (perturbed)
images, that score against *every* reference box of the explained set, as
:class:`~benchmark.models.verification.PairScore` does for similarities: output k is
the score for box k, the detector runs once per batch, and nothing softmaxes it.

A detector is a module with ``detect(x) -> [(boxes (K, 4), scores (K,)), …]`` per
image, on pixel-space RGB [0, 1] images; :class:`MTCNNDetector` wraps facenet-pytorch's
MTCNN (weights inside its wheel).
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn
from torchvision.ops import box_iou

from benchmark.errors import BenchError

Detections = list[tuple[torch.Tensor, torch.Tensor]]


def _detect(model: nn.Module, x: torch.Tensor) -> Detections:
    """Detections of ``model`` (a detector, or the adapter around one)."""
    core = getattr(model, "core", model)
    if not hasattr(core, "detect"):
        raise BenchError("model: a detection suite needs a detector (a module with detect())")
    pre = getattr(model, "preprocess", None)
    return core.detect(pre(x) if pre is not None and core is not model else x)


class DetectionScore(nn.Module):
    """Score of the detection matching each reference box.

    Args:
        detector: a detector (see the module docstring), or the adapter around one.
        boxes: (P, 4) reference boxes (x0, y0, x1, y1) in pixels.
        iou: the match threshold.
    """

    raw_scores = True

    def __init__(self, detector: nn.Module, boxes: torch.Tensor, iou: float = 0.5):
        super().__init__()
        self.detector = detector
        self.black_box = True  # detectors end in NMS: no useful gradient
        self.iou = float(iou)
        self.register_buffer("boxes", boxes.float(), persistent=False)

    @torch.no_grad()
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = torch.zeros(len(x), len(self.boxes), device=x.device)
        for i, (boxes, scores) in enumerate(_detect(self.detector, x)):
            if len(boxes) == 0:
                continue
            overlap = box_iou(boxes.float().to(x.device), self.boxes.to(x.device))  # (K, P)
            matched = torch.where(overlap >= self.iou, scores.float().to(x.device)[:, None], 0)
            out[i] = matched.amax(0)
        return out


def reference_detections(detector: nn.Module, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The top detection of each image: (N, 4) boxes (NaN where none) and (N,) scores."""
    boxes = torch.full((len(x), 4), float("nan"))
    scores = torch.zeros(len(x))
    for i, (b, s) in enumerate(_detect(detector, x)):
        if len(b):
            k = int(s.argmax())
            boxes[i], scores[i] = b[k].float().cpu(), float(s[k])
    return boxes, scores


class MTCNNDetector(nn.Module):
    """facenet-pytorch's MTCNN (Zhang et al. 2016) as a black-box face detector.

    ``forward`` gives the top face probability of each image (B, 1), so the detector
    also fits the model interface; ``detect`` gives every face.
    """

    black_box = True

    def __init__(self, min_face_size: int = 20, thresholds: tuple[float, ...] = (0.6, 0.7, 0.7)):
        super().__init__()
        try:
            from facenet_pytorch import MTCNN
        except ImportError as exc:
            raise BenchError(
                "model: MTCNN needs facenet-pytorch (pip install --no-deps facenet-pytorch, "
                f"and requests): {exc}"
            ) from None
        self.net = MTCNN(keep_all=True, min_face_size=int(min_face_size),
                         thresholds=list(thresholds), device="cpu")  # fmt: skip

    def detect(self, x: torch.Tensor) -> Detections:
        # MTCNN sends its inputs to its own `device` attribute, which `.to()` leaves
        # behind: follow the weights, so a CUDA run detects on the GPU.
        self.net.device = next(self.net.parameters()).device
        # MTCNN reads (B, H, W, 3) RGB bytes as floats; one call per batch.
        frames = (x.detach().float().clamp(0, 1) * 255).permute(0, 2, 3, 1).to(self.net.device)
        with torch.no_grad():
            boxes, probs = self.net.detect(frames)
        out = []
        for b, s in zip(boxes, probs, strict=True):
            if b is None:
                out.append((torch.zeros(0, 4), torch.zeros(0)))
            else:
                out.append((torch.from_numpy(np.asarray(b, np.float32)),
                            torch.from_numpy(np.asarray(s, np.float32))))  # fmt: skip
        return out

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        top = [float(s.max()) if len(s) else 0.0 for _, s in self.detect(x)]
        return torch.tensor(top, device=x.device)[:, None]


def mtcnn_detector(min_face_size: int = 20) -> MTCNNDetector:
    """The factory a suite names (``benchmark.models.detection:mtcnn_detector``)."""
    return MTCNNDetector(min_face_size)
