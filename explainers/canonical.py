"""Correspondence between face images and one canonical face (Canonical Saliency Maps).

John, Balasubramanian & Jawahar, "Canonical Saliency Maps: Decoding Deep Face Models"
(IEEE T-BIOM 2021), §III-A map every image onto a canonical frontal face F. We use a
piecewise-affine warp (METHODS.md §7): a Delaunay triangulation of F's landmarks plus
its corners, applied with each image's own landmarks. Every lookup is batched on the
device; the triangulation is computed once per canonical face.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

# Elements of one barycentric lookup chunk (points × triangles × images): bounds memory.
_CHUNK = 1 << 22


@dataclass(frozen=True)
class CanonicalFace:
    """The canonical face F maps are projected onto.

    Attributes:
        points: (K, 2) landmarks on F, pixel (x, y) with pixel centres at integers; the
            same K landmarks, in the same order, as the images' ``l_batch``.
        size: (H_F, W_F).
        image: (3, H_F, W_F) uint8 picture of F for figures, or None.
    """

    points: Tensor
    size: tuple[int, int]
    image: Tensor | None = None

    @classmethod
    def mean_of(cls, landmarks: Tensor, size: tuple[int, int]) -> CanonicalFace:
        """F as the mean landmark shape of a set of aligned faces (no canonical render)."""
        return cls(landmarks.float().mean(0), size)


def pixel_centres(size: tuple[int, int], device: torch.device | None = None) -> Tensor:
    """(H·W, 2) pixel (x, y) of every pixel, row-major."""
    h, w = size
    ys, xs = torch.meshgrid(
        torch.arange(h, device=device, dtype=torch.float32),
        torch.arange(w, device=device, dtype=torch.float32),
        indexing="ij",
    )
    return torch.stack([xs.reshape(-1), ys.reshape(-1)], -1)


def _corners(size: tuple[int, int], device: torch.device) -> Tensor:
    h, w = size
    return torch.tensor(
        [[-0.5, -0.5], [w - 0.5, -0.5], [-0.5, h - 0.5], [w - 0.5, h - 0.5]], device=device
    )


def barycentric(points: Tensor, triangles: Tensor) -> tuple[Tensor, Tensor]:
    """Containing triangle and barycentric weights of each point.

    Args:
        points: (B, P, 2).
        triangles: (B, T, 3, 2) vertex positions.

    Returns:
        index (B, P) of the triangle that holds each point (the one where it lies
        deepest inside, so points on edges or just outside still get the nearest), and
        weights (B, P, 3).
    """
    b, p, t = points.shape[0], points.shape[1], triangles.shape[1]
    index = torch.empty(b, p, dtype=torch.long, device=points.device)
    weights = torch.empty(b, p, 3, device=points.device)
    a = triangles[:, None, :, 0]  # (B, 1, T, 2)
    v0 = triangles[:, None, :, 1] - a
    v1 = triangles[:, None, :, 2] - a
    d00, d01, d11 = (v0 * v0).sum(-1), (v0 * v1).sum(-1), (v1 * v1).sum(-1)
    denom = (d00 * d11 - d01 * d01).clamp_min(1e-12)
    step = max(1, _CHUNK // max(1, b * t))
    for i in range(0, p, step):  # chunks of points: memory, not a loop of forwards
        v2 = points[:, i : i + step, None, :] - a
        d20, d21 = (v2 * v0).sum(-1), (v2 * v1).sum(-1)
        v = (d11 * d20 - d01 * d21) / denom
        w = (d00 * d21 - d01 * d20) / denom
        depth = torch.minimum(torch.minimum(v, w), 1.0 - v - w)  # ≥ 0 inside
        best = depth.argmax(-1, keepdim=True)  # (B, p, 1)
        vb, wb = v.gather(2, best)[..., 0], w.gather(2, best)[..., 0]
        index[:, i : i + step] = best[..., 0]
        weights[:, i : i + step] = torch.stack([1.0 - vb - wb, vb, wb], -1)
    return index, weights


def _to_grid(positions: Tensor, size: tuple[int, int]) -> Tensor:
    """Pixel (x, y) → grid_sample's [-1, 1] coordinates (align_corners=False)."""
    h, w = size
    scale = torch.tensor([2.0 / w, 2.0 / h], device=positions.device)
    return (positions + 0.5) * scale - 1.0


class PiecewiseAffine:
    """Piecewise-affine correspondence between images and a canonical face.

    Args:
        face: the canonical face F.
        image_size: (H, W) of the images.

    skimage's PiecewiseAffineTransform fits one image at a time on NumPy; here the
    triangles are fixed by F and every image's warp is a batched gather.
    """

    def __init__(self, face: CanonicalFace, image_size: tuple[int, int]):
        from scipy.spatial import Delaunay  # one triangulation of F, on its K+4 points

        self.face = face
        self.image_size = (int(image_size[0]), int(image_size[1]))
        pts = torch.cat([face.points.float().cpu(), _corners(face.size, torch.device("cpu"))])
        self.simplices = torch.as_tensor(Delaunay(pts.double().numpy()).simplices).long()
        self._canonical = pts
        self._hull = torch.as_tensor(Delaunay(face.points.double().cpu().numpy()).simplices)

    def _image_points(self, l_batch: Tensor) -> Tensor:
        corners = _corners(self.image_size, l_batch.device)
        return torch.cat([l_batch.float(), corners.expand(len(l_batch), -1, -1)], 1)

    def _canonical_points(self, device: torch.device) -> Tensor:
        return self._canonical.to(device)

    def to_image(self, q: Tensor, l_batch: Tensor) -> Tensor:
        """Image positions (B, Q, 2) of canonical points ``q`` (Q, 2)."""
        tri = self.simplices.to(q.device)
        verts = self._canonical_points(q.device)[tri][None]  # (1, T, 3, 2)
        index, weights = barycentric(q[None].float(), verts)
        corner_ids = tri[index[0]]  # (Q, 3) vertex ids
        image_pts = self._image_points(l_batch)  # (B, K+4, 2)
        return (image_pts[:, corner_ids] * weights[0][None, ..., None]).sum(2)

    def to_canonical(self, p: Tensor, l_batch: Tensor) -> Tensor:
        """Canonical positions (B, P, 2) of image points ``p`` (P, 2), per image."""
        tri = self.simplices.to(p.device)
        image_pts = self._image_points(l_batch)
        verts = image_pts[:, tri]  # (B, T, 3, 2)
        index, weights = barycentric(p[None].float().expand(len(l_batch), -1, -1), verts)
        canonical = self._canonical_points(p.device)[tri]  # (T, 3, 2)
        return (canonical[index] * weights[..., None]).sum(2)

    def inside_face(self, q: Tensor) -> Tensor:
        """(Q,) True where a canonical point lies inside the hull of F's landmarks."""
        verts = self.face.points.float().to(q.device)[self._hull.to(q.device)][None]
        _, weights = barycentric(q[None].float(), verts)
        return weights[0].amin(-1) >= -1e-4

    def project(self, maps: Tensor, l_batch: Tensor) -> Tensor:
        """Image maps (B, C, H, W) or (B, H, W) sampled onto F: (B, [C,] H_F, W_F)."""
        squeeze = maps.dim() == 3
        m = maps[:, None] if squeeze else maps
        q = pixel_centres(self.face.size, maps.device)
        grid = _to_grid(self.to_image(q, l_batch), self.image_size)
        out = F.grid_sample(m.float(), grid.view(len(m), *self.face.size, 2), align_corners=False)
        return out[:, 0] if squeeze else out

    def reproject(self, canonical_maps: Tensor, l_batch: Tensor) -> Tensor:
        """Canonical maps (B, H_F, W_F) drawn back onto each image: (B, H, W)."""
        p = pixel_centres(self.image_size, canonical_maps.device)
        grid = _to_grid(self.to_canonical(p, l_batch), self.face.size)
        out = F.grid_sample(
            canonical_maps[:, None].float(),
            grid.view(len(l_batch), *self.image_size, 2),
            align_corners=False,
        )
        return out[:, 0]


class CanonicalSummary:
    """Mean canonical projection of an explainer's maps: its model-level summary (§7).

    Each map is min-max normalised first, as FaceX's IoR does, so that explainers of
    different scales are comparable side by side.
    """

    def __init__(self, face: CanonicalFace, image_size: tuple[int, int]):
        self.warp = PiecewiseAffine(face, image_size)
        self.total: Tensor | None = None
        self.n = 0

    def update(self, a_batch: Tensor, l_batch: Tensor) -> None:
        flat = a_batch.flatten(1)
        lo, hi = flat.amin(1), flat.amax(1)
        span = (hi - lo).clamp_min(1e-12)
        norm = (a_batch - lo[:, None, None]) / span[:, None, None]
        s = self.warp.project(norm, l_batch).sum(0)
        self.total = s if self.total is None else self.total + s
        self.n += len(a_batch)

    def result(self) -> Tensor:
        """(H_F, W_F) mean, on the device."""
        if self.total is None:
            raise ValueError("no maps seen")
        return self.total / self.n
