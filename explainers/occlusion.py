"""Occlusion (Zeiler & Fergus, "Visualizing and Understanding Convolutional Networks",
ECCV 2014), through captum's Occlusion."""

from __future__ import annotations

import torch
from captum.attr import Occlusion as CaptumOcclusion

from explainers.base import Explainer, ModelLike, images_per_forward
from explainers.inference import inference_forward


def n_windows(size: int, window: int, stride: int) -> int:
    """Positions of a sliding window along one side, as captum counts them."""
    return (size - window) // stride + 1


class Occlusion(Explainer):
    """Slide a ``window``×``window`` patch of ``baseline`` over the image (all channels).

    A pixel's score is the drop of the target-class *logit* when a window covering it
    is replaced by the baseline, averaged over those windows (captum's convention:
    positive = the region supports the class). Logits, not probabilities, so that
    saturated softmax outputs do not flatten the map.

    Args:
        model: any module or callable on pixel-space images; forward passes only.
        window: side of the occluding patch in pixels; default ``round(side / 8)``,
            at least 2.
        stride: step of the window; default ``window // 2`` (at least 1).
        baseline: value of occluded pixels (0.0 = black, pixel space).
        perturbations_per_eval: occluded copies of each image per forward; default all
            windows of an image, capped so that one forward holds at most
            ``max_images_per_forward`` images.
        max_images_per_forward: cap used by the default above; by default sized from
            the model's activation bytes, at most 256 on CPU and 4096 on a GPU
            (``explainers.base.images_per_forward``).
    """

    name = "occlusion"
    needs_grad = False
    black_box = True

    def __init__(
        self,
        model: ModelLike,
        *,
        window: int | None = None,
        stride: int | None = None,
        baseline: float = 0.0,
        perturbations_per_eval: int | None = None,
        max_images_per_forward: int | None = None,
        **kw,
    ):
        super().__init__(model, **kw)
        self.window = window
        self.stride = stride
        self.baseline = float(baseline)
        self.perturbations_per_eval = perturbations_per_eval
        self.max_images_per_forward = max_images_per_forward

    def geometry(self, h: int, w: int) -> tuple[int, int, int]:
        """(window, stride, perturbations per forward) for a batch of h×w images."""
        window = self.window or max(2, round(min(h, w) / 8))
        stride = self.stride or max(1, window // 2)
        if window > min(h, w):
            raise ValueError(f"window {window} larger than the image ({h}×{w})")
        return window, stride, n_windows(h, window, stride) * n_windows(w, window, stride)

    def per_eval(self, x_batch: torch.Tensor) -> int:
        """Occluded copies of each image that go through one forward."""
        if self.perturbations_per_eval is not None:
            return int(self.perturbations_per_eval)
        _, _, total = self.geometry(*x_batch.shape[-2:])
        cap = images_per_forward(self.device, self.max_images_per_forward, self.model,
                                 x_batch.shape[1:])  # fmt: skip
        return max(1, min(total, cap // len(x_batch)))

    def attribute(self, x_batch: torch.Tensor, y_batch: torch.Tensor) -> torch.Tensor:
        c, h, w = x_batch.shape[1:]
        window, stride, _ = self.geometry(h, w)
        return CaptumOcclusion(inference_forward(self.model)).attribute(
            x_batch,
            sliding_window_shapes=(c, window, window),
            strides=(c, stride, stride),
            baselines=self.baseline,
            target=y_batch,
            perturbations_per_eval=self.per_eval(x_batch),
        )
