"""Guided backpropagation and Guided Grad-CAM through captum.

Guided Backpropagation (Springenberg, Dosovitskiy, Brox & Riedmiller, "Striving for
Simplicity: The All Convolutional Net", ICLR workshop 2015) and Guided Grad-CAM
(Selvaraju et al., "Grad-CAM: Visual Explanations from Deep Networks via Gradient-based
Localization", ICCV 2017). Both override the backward pass of every ``nn.ReLU`` module
with hooks that captum removes after each call.
"""

from __future__ import annotations

import torch
from captum.attr import GuidedBackprop as CaptumGuidedBackprop
from captum.attr import GuidedGradCam as CaptumGuidedGradCam

from explainers.base import Explainer, ModelLike


class GuidedBackprop(Explainer):
    """The gradient with every ReLU passing back only positive gradients (Springenberg 2015).

    captum's GuidedBackprop returns the signed guided gradient per channel. With the
    default ``abs=True`` we take its magnitude per channel before the base sums the
    channels, as for Saliency: the guided gradient at the input is a gradient through
    the first (linear) layer, whose sign says which way a pixel's colour should move,
    not whether the pixel matters, so signed channels would cancel. ``abs=False``
    keeps captum's signed values.

    Args:
        model: an ``nn.Module`` on pixel-space images (ReLUs as modules, not in-place).
        abs: magnitude (True) or signed (False) guided gradients.
    """

    name = "guided_backprop"

    def __init__(self, model: ModelLike, *, abs: bool = True, **kw):
        super().__init__(model, **kw)
        self.abs = bool(abs)

    def attribute(self, x_batch: torch.Tensor, y_batch: torch.Tensor) -> torch.Tensor:
        a = CaptumGuidedBackprop(self.model).attribute(x_batch, target=y_batch)
        return a.abs() if self.abs else a


class GuidedGradCAM(Explainer):
    """Guided backprop ⊙ upsampled ReLU(Grad-CAM) (Selvaraju et al. 2017), captum's.

    captum multiplies the signed guided gradients (B, 3, H, W) by the Grad-CAM map of
    the target layer (ReLU applied, upsampled to the input with ``interpolate_mode``).
    As for :class:`GuidedBackprop`, ``abs=True`` (default) takes the magnitude per
    channel before the base sums channels; Grad-CAM ≥ 0, so the result is
    |guided gradient| ⊙ Grad-CAM, the paper's fine-grained, class-discriminative map.

    Args:
        model: a module exposing ``target_layer`` (or pass ``layer``).
        layer: dotted path of the layer inside ``model``; default ``model.target_layer``.
        abs: magnitude (True) or signed (False) guided gradients.
        interpolate_mode: how captum upsamples the Grad-CAM map ("nearest", captum's
            default, or "bilinear", as the base and our Grad-CAM do).
    """

    name = "guided_gradcam"

    def __init__(
        self,
        model: ModelLike,
        *,
        layer: str | None = None,
        abs: bool = True,
        interpolate_mode: str = "bilinear",
        **kw,
    ):
        super().__init__(model, **kw)
        self.layer = model.get_submodule(layer) if layer else model.target_layer
        self.abs = bool(abs)
        self.interpolate_mode = interpolate_mode

    def attribute(self, x_batch: torch.Tensor, y_batch: torch.Tensor) -> torch.Tensor:
        ggc = CaptumGuidedGradCam(self.model, self.layer)
        a = ggc.attribute(x_batch, target=y_batch, interpolate_mode=self.interpolate_mode)
        return a.abs() if self.abs else a
