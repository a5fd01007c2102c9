"""Grad-CAM (Selvaraju et al., "Grad-CAM: Visual Explanations from Deep Networks via
Gradient-based Localization", ICCV 2017), through captum's LayerGradCam."""

from __future__ import annotations

import torch
from captum.attr import LayerGradCam

from explainers.base import Explainer, ModelLike


class GradCAM(Explainer):
    """ReLU(Σ_k α_k A^k) at the model's target layer, upsampled bilinearly to the input.

    Args:
        model: a module exposing ``target_layer`` (or pass ``layer``).
        layer: dotted path of the layer inside ``model``; default ``model.target_layer``.
        relu: apply the paper's ReLU (captum's default is not to).
    """

    name = "gradcam"

    def __init__(self, model: ModelLike, *, layer: str | None = None, relu: bool = True, **kw):
        super().__init__(model, **kw)
        self.layer = model.get_submodule(layer) if layer else model.target_layer
        self.relu = relu

    def attribute(self, x_batch: torch.Tensor, y_batch: torch.Tensor) -> torch.Tensor:
        cam = LayerGradCam(self.model, self.layer)
        return cam.attribute(x_batch, target=y_batch, relu_attributions=self.relu)
