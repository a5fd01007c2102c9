"""RISE (Petsiuk, Das & Saenko, "RISE: Randomized Input Sampling for Explanation of
Black-box Models", BMVC 2018). Our own implementation: captum has no RISE."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from explainers.base import Explainer, ModelLike, class_scores, images_per_forward
from explainers.inference import inference_forward


def rise_masks(
    n: int,
    s: int,
    p: float,
    size: int | tuple[int, int],
    generator: torch.Generator,
    chunk: int = 256,
) -> torch.Tensor:
    """RISE's smooth random masks, (n, H, W) float32 in [0, 1], on ``generator``'s device.

    Binary s×s grids with P(1)=p are upsampled bilinearly to (s+1)·⌈H/s⌉ × (s+1)·⌈W/s⌉
    and cropped to H×W at a random shift below one cell, so cell borders fall anywhere
    (METHODS.md §6). All random numbers are drawn before the upsampling, which runs in
    chunks of ``chunk`` masks to bound the memory of the large upsampled grids.
    """
    h, w = (size, size) if isinstance(size, int) else size
    dev = generator.device
    cell_h, cell_w = math.ceil(h / s), math.ceil(w / s)
    grids = (torch.rand(n, 1, s, s, generator=generator, device=dev) < p).float()
    dy = torch.randint(0, cell_h, (n,), generator=generator, device=dev)
    dx = torch.randint(0, cell_w, (n,), generator=generator, device=dev)
    rows = torch.arange(h, device=dev)
    cols = torch.arange(w, device=dev)
    out = torch.empty(n, h, w, device=dev)
    for i in range(0, n, chunk):
        up = F.interpolate(
            grids[i : i + chunk],
            size=((s + 1) * cell_h, (s + 1) * cell_w),
            mode="bilinear",
            align_corners=False,
        )[:, 0]
        k = torch.arange(len(up), device=dev)
        r = (dy[i : i + chunk, None] + rows)[:, :, None]  # (k, H, 1): shifted row of each mask
        c = (dx[i : i + chunk, None] + cols)[:, None, :]  # (k, 1, W)
        # clamp: interpolation weights may sum to 1 + ε, and callers rely on [0, 1]
        out[i : i + chunk] = up[k[:, None, None], r, c].clamp_(0.0, 1.0)
    return out


NORMALISATIONS = ("coverage", "paper")


class RISE(Explainer):
    """saliency = Σ_k f(X ⊙ m_k) · m_k / Z, f = softmax probability of the target class.

    Z = N·p as in the paper and METHODS.md §6 (``normalize="paper"``, the default).
    ``"coverage"`` divides each pixel by Σ_k m_k instead: the same limit as N grows
    (E[m] = p everywhere) but without the mask-coverage noise f̄·(Σ_k m_k / (N·p) − 1),
    which dominates the paper's estimate when f barely changes across masks (a
    saturated softmax).

    The masks are drawn once per image size from the explainer's seeded generator and
    kept on the device, so every image of a run is explained with the same masks.

    Args:
        model: any module or callable on pixel-space images; forward passes only.
        n_masks: N, number of masks.
        s: grid side before upsampling.
        p: probability that a grid cell is kept.
        masks_per_forward: masks per forward pass; each forward holds
            ``masks_per_forward × B`` images (B = the explainer's batch). By default
            ``max_images_per_forward // B`` (at least 1).
        max_images_per_forward: cap used by the default above; by default sized from
            the model's activation bytes, at most 256 on CPU and 4096 on a GPU
            (``explainers.base.images_per_forward``).
        normalize: ``"paper"`` (N·p, default) or ``"coverage"`` (Σ_k m_k per pixel).
    """

    name = "rise"
    needs_grad = False
    black_box = True

    def __init__(
        self,
        model: ModelLike,
        *,
        n_masks: int = 4000,
        s: int = 8,
        p: float = 0.5,
        masks_per_forward: int | None = None,
        max_images_per_forward: int | None = None,
        normalize: str = "paper",
        **kw,
    ):
        super().__init__(model, **kw)
        if not 0.0 < p <= 1.0:
            raise ValueError(f"p must be in (0, 1], got {p}")
        if normalize not in NORMALISATIONS:
            raise ValueError(f"normalize must be one of {NORMALISATIONS}, got {normalize!r}")
        self.normalize = normalize
        self.n_masks = int(n_masks)
        self.s = int(s)
        self.p = float(p)
        self.masks_per_forward = masks_per_forward
        self.max_images_per_forward = max_images_per_forward
        self._masks: dict[tuple[int, int], torch.Tensor] = {}

    def masks(self, h: int, w: int) -> torch.Tensor:
        """The (N, H, W) masks for h×w images, drawn on first use."""
        if (h, w) not in self._masks:
            self._masks[(h, w)] = rise_masks(self.n_masks, self.s, self.p, (h, w), self.generator())
        return self._masks[(h, w)]

    def attribute(self, x_batch: torch.Tensor, y_batch: torch.Tensor) -> torch.Tensor:
        b, c, h, w = x_batch.shape
        masks = self.masks(h, w)
        sal = x_batch.new_zeros(b, h, w)
        cap = images_per_forward(self.device, self.max_images_per_forward, self.model, (c, h, w))
        per = self.masks_per_forward or max(1, cap // b)
        forward = inference_forward(self.model)
        for i in range(0, len(masks), per):
            m = masks[i : i + per]
            k = len(m)
            # One forward for every (image, mask) pair of the chunk: (B·k, C, H, W).
            xm = (x_batch[:, None] * m[None, :, None]).reshape(b * k, c, h, w)
            prob = class_scores(self.model, forward(xm)).view(b, k, -1)
            score = prob.gather(2, y_batch.view(b, 1, 1).expand(b, k, 1))[..., 0]  # (B, k)
            sal += torch.einsum("bk,khw->bhw", score, m)
        if self.normalize == "paper":
            return sal / (len(masks) * self.p)
        # A pixel no mask kept (possible only for tiny N) has no evidence: score 0.
        return sal / masks.sum(0).clamp_min(1e-12)
