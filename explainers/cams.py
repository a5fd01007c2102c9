"""The CAM family beyond Grad-CAM: Grad-CAM++, Score-CAM, HiRes-CAM and Layer-CAM.

Our own implementation on :class:`~explainers.base.Explainer`, not pytorch-grad-cam's
classes: those copy activations and gradients to NumPy on the CPU (``.cpu().numpy()``),
and its Score-CAM runs one image's channels at a time with a ``.item()`` per output, so
nothing stays on the device or batches across images. The formulas follow
pytorch-grad-cam (grad-cam 1.5.7) so that the maps agree with it (``tests/test_cams.py``
checks this); where it departs from a paper, the class docstring says so.

Every method reads the target layer's output A (B, K, h, w) through one forward hook,
registered with :meth:`Explainer.add_hook` and removed right after the forward. The
gradient methods take g = ∂y_c/∂A of the target-class logit y_c by ``torch.autograd.grad``
on that output, so no backward hooks and no ``.grad`` of the model's parameters are
touched. Maps are returned at the layer's resolution and upsampled by the base.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from explainers.base import Explainer, ModelLike, images_per_forward
from explainers.inference import inference_forward


class _LayerCAM(Explainer):
    """Shared part: the target layer and the capture of its output (and gradient).

    Args:
        model: a module exposing ``target_layer`` (or pass ``layer``).
        layer: dotted path of the layer inside ``model``; default ``model.target_layer``.
    """

    def __init__(self, model: ModelLike, *, layer: str | None = None, **kw: Any):
        super().__init__(model, **kw)
        if not isinstance(model, nn.Module):
            raise TypeError(f"{type(self).__name__} needs an nn.Module, got {type(model)}")
        self.layer: nn.Module = model.get_submodule(layer) if layer else model.target_layer

    def _forward_capturing(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(logits, A): one forward of ``x`` with the target layer's output captured.

        With gradients enabled the hook hands the rest of the network a leaf copy of A
        that requires grad: ∂y/∂A is then available even when the model's parameters
        are frozen, and the backward pass stops at the layer.
        """
        captured: list[torch.Tensor] = []

        def hook(module: nn.Module, inputs: Any, output: torch.Tensor) -> torch.Tensor | None:
            if not isinstance(output, torch.Tensor):
                raise TypeError(f"the CAM layer must output a tensor, got {type(output)}")
            if torch.is_grad_enabled():
                output = output.detach().requires_grad_(True)
                captured.append(output)
                return output
            captured.append(output)
            return None

        handle = self.layer.register_forward_hook(hook)
        self.add_hook(handle)  # removed by the base even if the forward raises
        try:
            logits = self.model(x)
        finally:
            handle.remove()
        if len(captured) != 1:
            raise RuntimeError(f"the CAM layer ran {len(captured)} times in one forward")
        if captured[0].dim() != 4:
            raise ValueError(f"the CAM layer must output (B,K,h,w), got {tuple(captured[0].shape)}")
        return logits, captured[0]

    def _activations_and_gradients(
        self, x: torch.Tensor, y: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """A and g = ∂y_c/∂A, both (B, K, h, w) float32 on the device.

        The images of a batch are independent (eval mode), so the gradient of the sum of
        the target logits gives each image its own gradient.
        """
        logits, act = self._forward_capturing(x)
        score = logits.gather(1, y[:, None]).sum()
        (grad,) = torch.autograd.grad(score, act)
        return act.detach().float(), grad.float()


class GradCAMPlusPlus(_LayerCAM):
    """Grad-CAM++ (Chattopadhay, Sarkar, Howlader & Balasubramanian, "Grad-CAM++:
    Generalized Gradient-based Visual Explanations for Deep Convolutional Networks",
    WACV 2018).

    With the paper's exponential output Y = exp(y_c) its higher derivatives are powers of
    the first one (eq. 19), so with g = ∂y_c/∂A::

        α^k_ij = g² / (2·g² + (Σ_ab A^k_ab)·g³ + ε)     (0 where g = 0)
        w_k    = Σ_ij α^k_ij · ReLU(g^k_ij)
        map    = ReLU(Σ_k w_k A^k)

    The common factor exp(y_c) of ∂Y/∂A only scales the map and is dropped, as in
    pytorch-grad-cam, whose ε = 1e-6 we keep so that the maps agree (ε is not in the
    paper and is not scale-free: it matters where g² is of order ε).

    Args:
        eps: ε in the denominator of α.
    """

    name = "gradcam_plusplus"

    def __init__(self, model: ModelLike, *, layer: str | None = None, eps: float = 1e-6, **kw):
        super().__init__(model, layer=layer, **kw)
        self.eps = float(eps)

    def attribute(self, x_batch: torch.Tensor, y_batch: torch.Tensor) -> torch.Tensor:
        act, g = self._activations_and_gradients(x_batch, y_batch)
        g2 = g * g
        denom = 2 * g2 + act.sum(dim=(2, 3), keepdim=True) * g2 * g + self.eps
        # A zero denominator (only possible for negative activations) gets α = 0, not inf.
        ok = (g != 0) & (denom != 0)
        alpha = torch.where(ok, g2 / torch.where(ok, denom, torch.ones_like(denom)), 0.0)
        w = (alpha * g.clamp_min(0)).sum(dim=(2, 3), keepdim=True)  # (B, K, 1, 1)
        return (w * act).sum(dim=1).clamp_min(0)


class HiResCAM(_LayerCAM):
    """HiRes-CAM (Draelos & Carin, "Use HiResCAM instead of Grad-CAM for faithful
    explanations of convolutional neural networks", arXiv:2011.08891, 2020).

    map = ReLU(Σ_k g^k ⊙ A^k): the gradient multiplies the activations elementwise
    instead of being averaged over space first. The paper shows the map unclipped;
    the ReLU is pytorch-grad-cam's (and keeps the map comparable with the other CAMs).
    """

    name = "hirescam"

    def attribute(self, x_batch: torch.Tensor, y_batch: torch.Tensor) -> torch.Tensor:
        act, g = self._activations_and_gradients(x_batch, y_batch)
        return (g * act).sum(dim=1).clamp_min(0)


class LayerCAM(_LayerCAM):
    """Layer-CAM (Jiang, Zhang, Hou, Cheng & Wei, "LayerCAM: Exploring Hierarchical Class
    Activation Maps for Localization", IEEE TIP 2021).

    map = ReLU(Σ_k ReLU(g^k) ⊙ A^k): each location weighted by its own positive gradient.
    """

    name = "layercam"

    def attribute(self, x_batch: torch.Tensor, y_batch: torch.Tensor) -> torch.Tensor:
        act, g = self._activations_and_gradients(x_batch, y_batch)
        return (g.clamp_min(0) * act).sum(dim=1).clamp_min(0)


class ScoreCAM(_LayerCAM):
    """Score-CAM (Wang, Wang, Du, Yang, Zhang, Ding, Mardziel & Hu, "Score-CAM:
    Score-Weighted Visual Explanations for Convolutional Neural Networks", CVPRW 2020).

    Each channel A^k is upsampled to the input size (bilinear, ``align_corners=True``
    like pytorch-grad-cam's ``UpsamplingBilinear2d``), min-max normalised to H^k, and the
    masked image X ⊙ H^k is scored by its target-class logit s_k. As in the paper's
    Algorithm 1 and pytorch-grad-cam, the weights are the softmax of those scores over the
    channels (the baseline score f(X_b) of the paper is a constant shift, which the
    softmax ignores)::

        w = softmax_k(s_k),   map = ReLU(Σ_k w_k A^k)

    Forward passes only. The B·K masked images of a batch are built chunk by chunk and go
    through the model in forwards of at most ``max_images_per_forward`` images (chunks
    run across images), so the masks of the whole batch are never held at once.

    Args:
        max_images_per_forward: images per forward; by default sized from the model's
            activation bytes, at most 256 on CPU and 4096 on a GPU
            (``explainers.base.images_per_forward``).
    """

    name = "scorecam"
    needs_grad = False

    def __init__(
        self,
        model: ModelLike,
        *,
        layer: str | None = None,
        max_images_per_forward: int | None = None,
        **kw,
    ):
        super().__init__(model, layer=layer, **kw)
        self.max_images_per_forward = max_images_per_forward

    def attribute(self, x_batch: torch.Tensor, y_batch: torch.Tensor) -> torch.Tensor:
        b, _, h, w = x_batch.shape
        _, act = self._forward_capturing(x_batch)
        act = act.detach().float()
        k = act.shape[1]
        flat = act.reshape(b * k, 1, *act.shape[2:])  # one map per (image, channel) pair
        cap = images_per_forward(self.device, self.max_images_per_forward, self.model,
                                 x_batch.shape[1:])  # fmt: skip
        scores = torch.empty(b * k, device=act.device)
        forward = inference_forward(self.model)  # the capture hook is gone by now
        for i in range(0, b * k, cap):
            idx = torch.arange(i, min(i + cap, b * k), device=act.device)
            img = idx // k
            m = F.interpolate(flat[idx], size=(h, w), mode="bilinear", align_corners=True)
            lo = m.amin(dim=(2, 3), keepdim=True)
            hi = m.amax(dim=(2, 3), keepdim=True)
            m = (m - lo) / (hi - lo + 1e-8)
            logits = forward(x_batch[img] * m.to(x_batch.dtype)).float()
            scores[i : i + len(idx)] = logits.gather(1, y_batch[img][:, None])[:, 0]
        weights = torch.softmax(scores.view(b, k), dim=1)
        return torch.einsum("bk,bkhw->bhw", weights, act).clamp_min(0)
