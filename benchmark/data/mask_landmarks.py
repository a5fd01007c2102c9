"""Five landmarks read off CelebAMask-HQ label maps (``celebamask_hq`` with
``landmarks: masks``).

CelebAMask-HQ has ground-truth region masks but no landmarks; the regions place them
exactly enough for a face crop or a canonical face: the eye centres (image-left first),
the nose tip (centre of the nose region's lowest third) and the mouth corners (the
leftmost and rightmost pixels of mouth and lips). A face whose eyes, nose or mouth are
not visible gets NaN landmarks. Batched on tensors: no per-image Python loop.
"""

from __future__ import annotations

import torch

from benchmark.data.regions import REGION_ID

CHUNK = 256  # label maps per step, to bound the (B, H, W) temporaries


def _centre(mask: torch.Tensor, xs: torch.Tensor, ys: torch.Tensor) -> torch.Tensor:
    """(B, H, W) bool → (B, 2) centroid (x, y); NaN where the mask is empty."""
    n = mask.sum((1, 2)).float()
    cx = (mask * xs).sum((1, 2)) / n
    cy = (mask * ys).sum((1, 2)) / n
    return torch.stack([cx, cy], -1)  # 0/0 is NaN: an empty mask has no centre


def _corner(mask: torch.Tensor, xs: torch.Tensor, ys: torch.Tensor, right: bool) -> torch.Tensor:
    """(B, 2) mean position of the mask's pixels within 1 px of its extreme column."""
    inf = torch.tensor(float("inf"))
    col = torch.where(mask, xs if not right else -xs, inf).amin((1, 2))
    col = -col if right else col
    near = mask & ((xs - col[:, None, None]).abs() <= 1.0)
    return _centre(near, xs, ys)


def landmarks_from_label_maps(label_maps: torch.Tensor) -> torch.Tensor:
    """(N, H, W) uint8 label maps → (N, 5, 2) float32 pixel (x, y) landmarks."""
    n, h, w = label_maps.shape
    ys, xs = torch.meshgrid(
        torch.arange(h, dtype=torch.float32), torch.arange(w, dtype=torch.float32), indexing="ij"
    )
    out = torch.full((n, 5, 2), float("nan"))
    mouth_ids = torch.tensor([REGION_ID[r] for r in ("mouth", "u_lip", "l_lip")])
    for start in range(0, n, CHUNK):
        lab = label_maps[start : start + CHUNK].long()
        eyes = torch.stack(
            [_centre(lab == REGION_ID[r], xs, ys) for r in ("l_eye", "r_eye")], 1
        )  # (B, 2, 2)
        order = eyes[..., 0].argsort(1)  # image-left first, whatever the labels call it
        eyes = eyes.gather(1, order[..., None].expand(-1, -1, 2))
        nose = lab == REGION_ID["nose"]
        rows = torch.where(nose, ys, torch.nan)
        top = torch.nan_to_num(rows, nan=float("inf")).amin((1, 2))
        bottom = torch.nan_to_num(rows, nan=-float("inf")).amax((1, 2))
        low = nose & (ys >= (top + 2 * (bottom - top) / 3)[:, None, None])
        mouth = torch.isin(lab, mouth_ids)
        parts = [eyes[:, 0], eyes[:, 1], _centre(low, xs, ys)]
        parts += [_corner(mouth, xs, ys, right=False), _corner(mouth, xs, ys, right=True)]
        out[start : start + CHUNK] = torch.stack(parts, 1)
    # A face missing any of the five has none: a partial set cannot place a crop.
    bad = ~torch.isfinite(out).all(-1).all(-1)
    out[bad] = float("nan")
    return out
