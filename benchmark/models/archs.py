"""Architectures. Every model takes pixel-space [0, 1] images and normalises inside.

Keeping normalisation inside the model lets explainers and metrics perturb in pixel
space (METHODS.md: "black" is pixel 0), and declares the Grad-CAM target layer.
"""

from __future__ import annotations

from pathlib import Path

import torch
import torchvision
from torch import nn

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


class FaceClassifier(nn.Module):
    """A classifier over pixel-space images, with a declared target layer for CAMs.

    Args:
        backbone: the network on normalised images, returning logits.
        target_layer: dotted path of the CAM layer inside ``backbone``.
        mean, std: per-channel normalisation applied before the backbone.
    """

    def __init__(
        self,
        backbone: nn.Module,
        target_layer: str,
        mean: tuple[float, ...] = IMAGENET_MEAN,
        std: tuple[float, ...] = IMAGENET_STD,
    ):
        super().__init__()
        self.backbone = backbone
        self.target_layer_name = target_layer
        self.register_buffer("mean", torch.tensor(mean).view(1, -1, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(std).view(1, -1, 1, 1), persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.backbone((x - self.mean) / self.std)

    @property
    def target_layer(self) -> nn.Module:
        """The layer CAM methods read (a property, so it is not registered twice)."""
        return self.backbone.get_submodule(self.target_layer_name)


def _block(c_in: int, c_out: int, kernel: int = 3, stride: int = 1) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(c_in, c_out, kernel, stride=stride, padding=kernel // 2, bias=False),
        nn.BatchNorm2d(c_out),
        nn.ReLU(),  # not in-place: CAM hooks read this output
    )


def small_cnn(n_classes: int = 2, width: int = 16) -> FaceClassifier:
    """Two strided conv blocks, two at 1/4 resolution, global average pooling.

    Strided convolutions instead of full-resolution convs + pooling keep training at
    hundreds of images per second on two CPU cores; the target layer stays at 1/4 of
    the input (16×16 at 64 px), fine enough for Grad-CAM to separate lips from nose.
    """
    w = width
    backbone = nn.Sequential(
        _block(3, w, kernel=5, stride=2),
        _block(w, 2 * w, stride=2),
        _block(2 * w, 4 * w),
        _block(4 * w, 4 * w),
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
        nn.Linear(4 * w, n_classes),
    )
    return FaceClassifier(backbone, target_layer="3", mean=(0.5, 0.5, 0.5), std=(0.25, 0.25, 0.25))


def small_embedding(dim: int = 128, width: int = 16) -> FaceClassifier:
    """:func:`small_cnn` with a ``dim``-d output: a face embedding (compared by cosine)
    that the benchmark trains on synthetic identities (``task: verification``)."""
    return small_cnn(n_classes=dim, width=width)


def _load_backbone_weights(net: nn.Module, weights_path: str | None) -> None:
    """Load torchvision weights from a local file (no download at run time)."""
    if weights_path is None:
        return
    state = torch.load(Path(weights_path).expanduser(), map_location="cpu", weights_only=True)
    head = {k for k in state if k.startswith(("fc.", "classifier.6."))}
    net.load_state_dict({k: v for k, v in state.items() if k not in head}, strict=False)


def resnet18(n_classes: int = 2, weights_path: str | None = None) -> FaceClassifier:
    """torchvision ResNet-18; target layer ``layer4`` (He et al. 2016)."""
    net = torchvision.models.resnet18(weights=None)
    _load_backbone_weights(net, weights_path)
    net.fc = nn.Linear(net.fc.in_features, n_classes)
    return FaceClassifier(net, target_layer="layer4")


def resnet50(n_classes: int = 2, weights_path: str | None = None) -> FaceClassifier:
    """torchvision ResNet-50; target layer ``layer4``."""
    net = torchvision.models.resnet50(weights=None)
    _load_backbone_weights(net, weights_path)
    net.fc = nn.Linear(net.fc.in_features, n_classes)
    return FaceClassifier(net, target_layer="layer4")


def vgg16(n_classes: int = 2, weights_path: str | None = None) -> FaceClassifier:
    """torchvision VGG-16 with batch norm; target layer: the last ReLU of ``features``."""
    net = torchvision.models.vgg16_bn(weights=None)
    _load_backbone_weights(net, weights_path)
    net.classifier[6] = nn.Linear(net.classifier[6].in_features, n_classes)
    last_relu = max(i for i, m in enumerate(net.features) if isinstance(m, nn.ReLU))
    return FaceClassifier(net, target_layer=f"features.{last_relu}")
