"""High-impact patches of FaceX (Sarridis et al., ICMR 2024, §3.3; METHODS.md §2).

For image i, patch q and region r, V_{i,q,r} = Σ over the patch of G_i ⊙ 1[s_i = r], with
G_i the min-max normalised saliency map. Each region keeps its top-k patches over the
whole explained set, at most one per image. Everything stays on the device: one
``scatter_add`` per batch gives V for every patch and region, and a running top-k merges
each batch's best patch per image into the kept set.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import Tensor

from metrics.regions import is_stack, minmax


@dataclass
class PatchSet:
    """The kept patches of one region, ordered by value descending.

    Attributes:
        values: V of each patch, float (k,).
        images: index of the source image in the explained set, long (k,).
        origins: (y, x) pixel of each patch's top-left corner, long (k, 2).
        pixels: the patch pixels, ``round(x * 255)``, uint8 (k, 3, Z, Z).
    """

    values: Tensor
    images: Tensor
    origins: Tensor
    pixels: Tensor

    def __len__(self) -> int:
        return int(self.values.shape[0])

    @classmethod
    def empty(cls, patch: int, device: torch.device | str = "cpu") -> PatchSet:
        """A set with no patches (k = 0), for regions never seen."""
        return cls(
            values=torch.zeros(0, device=device),
            images=torch.zeros(0, dtype=torch.long, device=device),
            origins=torch.zeros(0, 2, dtype=torch.long, device=device),
            pixels=torch.zeros(0, 3, patch, patch, dtype=torch.uint8, device=device),
        )


class HighImpactPatches:
    """Running top-k high-impact patches per region (FaceX, Sarridis et al. 2024, §3.3).

    Patches are a non-overlapping Z×Z grid from the top-left corner; a remainder at the
    bottom or right that does not fill a whole patch is ignored (G is still min-max
    normalised over the whole map, as for IoR). Patches with V = 0 are
    never kept. Ties keep the lower image index (then the patch earlier in raster order),
    so results do not depend on how the images were split into batches (fed in
    increasing ``offset`` order).

    Args:
        region_names: names of the label ids in the label maps (id = position).
        patch: patch side Z in pixels (METHODS.md default: image side / 32).
        top_k: patches kept per region.
    """

    def __init__(self, region_names: Sequence[str], patch: int, top_k: int = 20):
        if patch < 1:
            raise ValueError(f"patch must be at least 1 pixel, got {patch}")
        if top_k < 1:
            raise ValueError(f"top_k must be at least 1, got {top_k}")
        self.region_names = tuple(region_names)
        self.patch = patch
        self.top_k = top_k
        self.reset()

    def reset(self) -> None:
        """Forget every patch seen."""
        # Kept state, one row per region; -inf marks an unused slot.
        self._values: Tensor | None = None  # (R, K) float
        self._images: Tensor | None = None  # (R, K) long
        self._origins: Tensor | None = None  # (R, K, 2) long
        self._pixels: Tensor | None = None  # (R, K, 3, Z, Z) uint8

    def update(self, x_batch: Tensor, a_batch: Tensor, s_batch: Tensor, offset: int) -> None:
        """Merge one batch into the kept patches.

        Args:
            x_batch: images in pixel space [0, 1], float (B, 3, H, W).
            a_batch: saliency maps, any range (B, H, W).
            s_batch: region label maps, ids in [0, len(region_names)) (B, H, W), or
                per-region masks (B, R, H, W), which may overlap.
            offset: index of the batch's first image in the whole explained set.
        """
        b, h, w = a_batch.shape
        z, n_reg = self.patch, len(self.region_names)
        ny, nx = h // z, w // z
        if ny == 0 or nx == 0 or b == 0:
            return
        dev = a_batch.device
        hc, wc = ny * z, nx * z
        n_patch = ny * nx

        g = minmax(a_batch.float())[:, :hc, :wc]
        if is_stack(s_batch):  # overlapping masks: the sum per patch of G ⊙ M_r, per region
            m = s_batch[:, :, :hc, :wc].to(torch.float64)
            if m.shape[1] != n_reg:
                raise ValueError(f"expected {n_reg} region masks, got {m.shape[1]}")
            gm = g.double()[:, None] * m
            v = gm.view(b, n_reg, ny, z, nx, z).sum((3, 5)).flatten(2).transpose(1, 2).float()
        else:
            v = self._label_sums(g, s_batch[:, :hc, :wc].long(), nx, z)
        # Each image's best patch per region; the first one in raster order on ties.
        best = v.amax(dim=1, keepdim=True)  # (B, 1, R)
        order = torch.arange(n_patch, device=dev).view(1, n_patch, 1)
        q = torch.where(v == best, order, n_patch).amin(dim=1)  # (B, R)
        best = best.squeeze(1)
        key = torch.where(best > 0, best, torch.full_like(best, -torch.inf)).T  # (R, B)

        images = (torch.arange(b, device=dev) + offset).expand(n_reg, b)
        origins = torch.stack(((q // nx) * z, (q % nx) * z), dim=-1).transpose(0, 1)  # (R,B,2)
        tiles = (
            x_batch[:, :, :hc, :wc]
            .reshape(b, 3, ny, z, nx, z)
            .permute(0, 2, 4, 1, 3, 5)
            .reshape(b, n_patch, 3, z, z)
        )
        pixels = tiles[torch.arange(b, device=dev)[:, None], q]  # (B, R, 3, Z, Z)
        pixels = (pixels.float().clamp(0, 1) * 255).round().to(torch.uint8).transpose(0, 1)

        if self._values is not None:
            # Kept patches first: they come from earlier images, so a stable sort keeps
            # the lower image index on ties, as one call on all images would.
            key = torch.cat((self._values, key), dim=1)
            images = torch.cat((self._images, images), dim=1)
            origins = torch.cat((self._origins, origins), dim=1)
            pixels = torch.cat((self._pixels, pixels), dim=1)
        keep = torch.sort(-key, dim=1, stable=True).indices[:, : self.top_k]  # (R, K)
        self._values = key.gather(1, keep)
        self._images = images.gather(1, keep)
        self._origins = origins[torch.arange(n_reg, device=dev)[:, None], keep]
        self._pixels = pixels[torch.arange(n_reg, device=dev)[:, None], keep]

    def _label_sums(self, g: Tensor, labels: Tensor, nx: int, z: int) -> Tensor:
        """(B, patches, R): Σ over each patch of G on each label's pixels, one scatter."""
        b, hc, wc = g.shape
        n_reg, dev = len(self.region_names), g.device
        # An id ≥ R would silently land in the next patch's bucket of the flat index.
        if labels.numel() and (labels.min() < 0 or labels.max() >= n_reg):
            raise ValueError(f"label ids must lie in [0, {n_reg}) for {n_reg} region names")
        rows = torch.arange(hc, device=dev) // z
        cols = torch.arange(wc, device=dev) // z
        patch_id = rows[:, None] * nx + cols[None, :]  # (hc, wc)
        index = (patch_id[None] * n_reg + labels).flatten(1)
        # float64 accumulation: CUDA's atomic adds run in any order, and summing ≤ Z²
        # values in [0, 1] in double makes the float32 result (and so ties) independent of it.
        v = torch.zeros(b, (hc // z) * nx * n_reg, dtype=torch.float64, device=dev)
        v.scatter_add_(1, index, g.flatten(1).double())
        return v.float().view(b, -1, n_reg)

    def result(self) -> dict[str, PatchSet]:
        """The kept patches of every region (empty where no patch had V > 0)."""
        if self._values is None:
            return {name: PatchSet.empty(self.patch) for name in self.region_names}
        assert self._images is not None and self._origins is not None
        assert self._pixels is not None
        counts = torch.isfinite(self._values).sum(1).tolist()
        return {
            name: PatchSet(
                values=self._values[r, :k].clone(),
                images=self._images[r, :k].clone(),
                origins=self._origins[r, :k].clone(),
                pixels=self._pixels[r, :k].clone(),
            )
            for r, (name, k) in enumerate(zip(self.region_names, counts, strict=True))
        }
