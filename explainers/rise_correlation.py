"""Correlation-based RISE (XAIface, seed 002; METHODS §10).

Where RISE averages the masks weighted by the score, XAIface takes, per pixel, the
Pearson correlation over the N masks between the pixel's mask value and the score of the
masked image: a pixel whose presence goes with a high score is positive, one whose
presence lowers it negative, and a constant offset of the score (a similarity that never
drops to 0) cancels, which the weighted mean does not. The masks and the batched
forwards are RISE's; the sums behind the correlation are accumulated chunk by chunk.
"""

from __future__ import annotations

import torch

from explainers.base import class_scores, images_per_forward
from explainers.inference import inference_forward
from explainers.rise import RISE


class CorrelationRISE(RISE):
    """saliency(p) = corr_k(m_k(p), f(X ⊙ m_k)) over the N masks (XAIface).

    Args:
        n_masks, s, p, masks_per_forward, max_images_per_forward: as RISE
            (``normalize`` does not apply: a correlation has its own scale, [−1, 1]).
    """

    name = "rise_correlation"

    def attribute(self, x_batch: torch.Tensor, y_batch: torch.Tensor) -> torch.Tensor:
        b, c, h, w = x_batch.shape
        masks = self.masks(h, w)
        n = len(masks)
        cap = images_per_forward(self.device, self.max_images_per_forward, self.model, (c, h, w))
        per = self.masks_per_forward or max(1, cap // b)
        forward = inference_forward(self.model)
        dt = torch.float64  # sums of thousands of products: float32 would cancel badly
        s1 = x_batch.new_zeros(b, dtype=dt)
        s2 = x_batch.new_zeros(b, dtype=dt)
        sm = x_batch.new_zeros(b, h, w, dtype=dt)
        m1 = masks.sum(0).to(dt)
        m2 = (masks.to(dt) ** 2).sum(0)
        for i in range(0, n, per):
            m = masks[i : i + per]
            k = len(m)
            xm = (x_batch[:, None] * m[None, :, None]).reshape(b * k, c, h, w)
            scores = class_scores(self.model, forward(xm)).view(b, k, -1)
            f = scores.gather(2, y_batch.view(b, 1, 1).expand(b, k, 1))[..., 0].to(dt)
            s1 += f.sum(1)
            s2 += (f * f).sum(1)
            sm += torch.einsum("bk,khw->bhw", f, m.to(dt))
        cov = n * sm - s1[:, None, None] * m1
        var_m = (n * m2 - m1 * m1).clamp_min(0)
        var_f = (n * s2 - s1 * s1).clamp_min(0)
        denom = (var_m[None] * var_f[:, None, None]).sqrt()
        # A constant score (or a pixel every mask keeps) carries no evidence: 0.
        corr = torch.where(denom > 0, cov / denom.clamp_min(1e-300), torch.zeros_like(cov))
        return corr.float()
