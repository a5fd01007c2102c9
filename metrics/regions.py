"""Region attribution (IoR) of FaceX (Sarridis et al. 2024, §3.3; METHODS.md §2).

Written by hand because no library computes attribution per label-map region; the
per-region sums use one ``scatter_add`` over the whole batch, on the device.
"""

from __future__ import annotations

from typing import Literal

import torch
import torch.nn.functional as F

IorMode = Literal["soft", "thresholded"]


def is_stack(s_batch: torch.Tensor) -> bool:
    """True for per-region masks (B, R, H, W), which may overlap (landmark patches);
    False for label maps (B, H, W), one region id per pixel (CelebAMask-HQ)."""
    return s_batch.dim() == 4


def region_masks(s_batch: torch.Tensor, region_ids) -> torch.Tensor:
    """(B, H, W) bool: pixels in any of ``region_ids``, from label maps or a mask stack."""
    ids = list(region_ids)
    if is_stack(s_batch):
        return s_batch[:, ids].bool().any(1)
    return torch.isin(s_batch, torch.as_tensor(ids, device=s_batch.device, dtype=s_batch.dtype))


#: Attribution post-processing before the region metrics (``explain.postprocess``).
POSTPROCESS = {"signed": lambda a: a, "positive": torch.relu, "absolute": torch.abs}


def postprocess(a_batch: torch.Tensor, policy: str) -> torch.Tensor:
    """``a_batch`` as the region metrics read it under ``policy`` (signed, positive, absolute)."""
    return POSTPROCESS[policy](a_batch)


def localises(metric: object) -> bool:
    """Whether a metric places maps on regions or boxes (it reads post-processed maps)."""
    return bool(set(getattr(metric, "needs", ())) & {"masks", "boxes"})


def minmax(a_batch: torch.Tensor) -> torch.Tensor:
    """Per-map min-max normalisation to [0, 1]; a constant map becomes all zeros."""
    flat = a_batch.flatten(1)
    lo = flat.min(dim=1, keepdim=True).values
    hi = flat.max(dim=1, keepdim=True).values
    span = (hi - lo).clamp_min(torch.finfo(flat.dtype).tiny)
    out = torch.where(hi > lo, (flat - lo) / span, torch.zeros_like(flat))
    return out.view_as(a_batch)


def binarise(g: torch.Tensor) -> torch.Tensor:
    """FaceX public code: 1 where G ≥ the mean of G's non-zero values, per map."""
    flat = g.flatten(1)
    nz = (flat > 0).float()
    mean_nz = (flat * nz).sum(1, keepdim=True) / nz.sum(1, keepdim=True).clamp_min(1)
    return ((flat >= mean_nz) & (flat > 0)).float().view_as(g)


def _binarised_at(g: torch.Tensor, size: int) -> torch.Tensor:
    g = F.interpolate(g.unsqueeze(1), size=(size, size), mode="bilinear", align_corners=False)
    return binarise(g.squeeze(1))


def image_ior(
    a_batch: torch.Tensor,
    s_batch: torch.Tensor,
    n_regions: int,
    mode: IorMode = "soft",
    size: int = 64,
) -> tuple[torch.Tensor, torch.Tensor]:
    """IoR_{i,r} = Σ(G_i ⊙ M_{i,r}) / Σ M_{i,r} for every image and region.

    Args:
        a_batch: saliency maps (B, H, W).
        s_batch: region label maps (B, H, W), ids in [0, n_regions); or per-region
            masks (B, n_regions, H, W), which may overlap.
        n_regions: number of region ids.
        mode: "soft" (the paper) or "thresholded" (the public code: G binarised at the
            mean of its non-zero values, at ``size``×``size``).
        size: working resolution of the thresholded variant.

    Returns:
        ior (B, R) float, and present (B, R) bool (region r has pixels in image i).
    """
    g = minmax(a_batch.float())
    if is_stack(s_batch):
        masks = s_batch.float()
        if mode == "thresholded":
            g = _binarised_at(g, size)
            masks = F.interpolate(masks, size=(size, size), mode="nearest")
        sums = torch.einsum("bhw,brhw->br", g, masks)
        counts = masks.sum((2, 3))
        present = counts > 0
        return sums / counts.clamp_min(1), present
    labels = s_batch.long()
    if mode == "thresholded":
        g = _binarised_at(g, size)
        labels = F.interpolate(labels.unsqueeze(1).float(), size=(size, size), mode="nearest")
        labels = labels.squeeze(1).long()
    b = g.shape[0]
    flat_lab = labels.flatten(1)
    sums = g.new_zeros(b, n_regions).scatter_add_(1, flat_lab, g.flatten(1))
    counts = g.new_zeros(b, n_regions).scatter_add_(1, flat_lab, torch.ones_like(g.flatten(1)))
    present = counts > 0
    return sums / counts.clamp_min(1), present


def rank_regions(ior: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
    """1-based rank of each region by IoR descending; 0 where the region is not ranked."""
    key = torch.where(valid, ior, torch.full_like(ior, -torch.inf))
    order = torch.argsort(key, descending=True, stable=True)
    ranks = torch.zeros_like(order)
    ranks[order] = torch.arange(1, len(order) + 1, device=ior.device)
    return torch.where(valid, ranks, torch.zeros_like(ranks))


def top_share(ior: torch.Tensor, present: torch.Tensor) -> torch.Tensor:
    """(B, R): 1 for the region with the image's highest IoR, 0 elsewhere.

    The per-image version of FaceX's rank 1 (IoR is a mean over the region, so large
    regions such as background and skin do not win by size). Regions absent from an
    image cannot win; tied regions share the point, so rows sum to 1 (0 for an image
    with no region present).
    """
    key = torch.where(present, ior, torch.full_like(ior, -torch.inf))
    best = key.amax(1, keepdim=True)
    won = (key == best) & present
    return won.float() / won.sum(1, keepdim=True).clamp_min(1)


class RegionIoR:
    """Running FaceX summary over batches: Σ_i IoR_{i,r} and N_r, hence IoR_r (§2).

    Args:
        n_regions: number of region ids.
        mode: "soft" or "thresholded" (see :func:`image_ior`).
    """

    def __init__(self, n_regions: int, mode: IorMode = "soft"):
        self.n_regions, self.mode = n_regions, mode
        self._sum: torch.Tensor | None = None
        self._count: torch.Tensor | None = None
        self.n = 0

    def update(self, a_batch: torch.Tensor, s_batch: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """Add a batch; returns its per-image ``(ior, present)`` for callers that need more."""
        ior, present = image_ior(a_batch, s_batch, self.n_regions, self.mode)
        s = torch.where(present, ior, torch.zeros_like(ior)).sum(0)
        c = present.sum(0)
        self._sum = s if self._sum is None else self._sum + s
        self._count = c if self._count is None else self._count + c
        self.n += a_batch.shape[0]
        return ior, present

    def result(self) -> tuple[torch.Tensor, torch.Tensor]:
        """IoR_r (R,) and N_r (R,) over everything seen."""
        if self._sum is None or self._count is None:
            raise ValueError("no batch seen")
        return self._sum / self._count.clamp_min(1), self._count
