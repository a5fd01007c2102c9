"""Face crop and alignment a model declares (``model.input.crop``), applied to the data.

A face model trained on aligned chips (dlib's, ArcFace's) should see faces the way it
was trained. The crop needs each face's landmarks or box, which a forward does not get,
so it happens on the explained faces before anything sees them: images, label maps,
landmarks and boxes move together, and maps, masks and metrics all stay in the frame
the model reads. Written here because torchvision and scikit-image align one image at
a time on the CPU; this is one batched least-squares fit and one ``grid_sample``.
"""

from __future__ import annotations

from dataclasses import replace

import torch
import torch.nn.functional as F

from benchmark.data.base import FaceArrays
from benchmark.errors import BenchError

#: Where the 5 landmarks (eyes, nose tip, mouth corners, image-left first) sit in a
#: face square of side 1 with no padding: a mean frontal face, eyes level.
TEMPLATE = ((0.30, 0.34), (0.70, 0.34), (0.50, 0.56), (0.34, 0.78), (0.66, 0.78))


def similarity_to(src: torch.Tensor, dst: torch.Tensor) -> torch.Tensor:
    """Least-squares similarity (rotation, scale, shift) mapping ``dst`` onto ``src``.

    Args:
        src, dst: (B, K, 2) corresponding points.

    Returns:
        (B, 2, 3) matrices M with ``src ≈ M @ [dst, 1]``.
    """
    u, v = dst[..., 0], dst[..., 1]
    one, zero = torch.ones_like(u), torch.zeros_like(u)
    # x = a·u − c·v + tx, y = c·u + a·v + ty: linear in (a, c, tx, ty)
    rows_x = torch.stack([u, -v, one, zero], -1)
    rows_y = torch.stack([v, u, zero, one], -1)
    design = torch.cat([rows_x, rows_y], 1).double()
    target = torch.cat([src[..., 0], src[..., 1]], 1).double().unsqueeze(-1)
    a, c, tx, ty = torch.linalg.lstsq(design, target).solution.squeeze(-1).unbind(-1)
    m = torch.stack([torch.stack([a, -c, tx], -1), torch.stack([c, a, ty], -1)], 1)
    return m.float()


def crop_transforms(faces: FaceArrays, mode: str, padding: float, side: int) -> torch.Tensor:
    """(N, 2, 3) maps from chip pixels (side × side) to image pixels, one per face.

    ``landmarks``: the 5 landmarks fitted onto :data:`TEMPLATE`; ``box``: the square
    around the face box. Faces without landmarks (or box) keep the whole image.
    """
    n = len(faces)
    h, w = faces.size
    sx, sy = w / side, h / side
    scale_full = torch.tensor([[sx, 0.0, sx / 2 - 0.5], [0.0, sy, sy / 2 - 0.5]])
    out = scale_full.expand(n, 2, 3).clone()
    # chip pixel centres (i + 0.5) ↔ face-square coordinates in [−padding, 1 + padding]
    if mode == "landmarks":
        if faces.landmarks is None:
            raise BenchError("model.input.crop: landmarks, but the test data has no landmarks")
        src = faces.landmarks.float()
        t = torch.tensor(TEMPLATE)
        dst = (t + padding) / (1 + 2 * padding) * side - 0.5
        ok = torch.isfinite(src).all(-1).all(-1)
        if ok.any():
            out[ok] = similarity_to(src[ok], dst.expand(int(ok.sum()), -1, -1))
        return out
    if faces.boxes is None:
        raise BenchError("model.input.crop: box, but the test data has no face boxes")
    box = faces.boxes.float()
    ok = torch.isfinite(box).all(-1) & (box[:, 2] > box[:, 0]) & (box[:, 3] > box[:, 1])
    centre = (box[:, :2] + box[:, 2:]) / 2
    extent = (box[:, 2:] - box[:, :2]).amax(-1) * (1 + 2 * padding)
    s = extent / side
    m = torch.zeros(n, 2, 3)
    m[:, 0, 0], m[:, 1, 1] = s, s
    # pixel centres at integers: chip pixel u spans [u, u + 1) of the continuous chip
    m[:, :, 2] = centre - s[:, None] * (side - 1) / 2 - 0.5
    out[ok] = m[ok]
    return out


def _grid(m: torch.Tensor, in_size: tuple[int, int], side: int) -> torch.Tensor:
    """``grid_sample`` grid (N, side, side, 2) reading image pixels M·(chip pixel)."""
    h, w = in_size
    ax = torch.arange(side, device=m.device, dtype=torch.float32)
    ys, xs = torch.meshgrid(ax, ax, indexing="ij")
    pts = torch.stack([xs, ys, torch.ones_like(xs)], -1).view(1, -1, 3)
    src = pts @ m.transpose(1, 2)  # (N, side², 2) image pixel (x, y)
    norm = torch.stack([(2 * src[..., 0] + 1) / w - 1, (2 * src[..., 1] + 1) / h - 1], -1)
    return norm.view(len(m), side, side, 2)


def warp_images(images: torch.Tensor, m: torch.Tensor, side: int) -> torch.Tensor:
    """uint8 (N, 3, H, W) → uint8 (N, 3, side, side) chips (bilinear, black outside)."""
    grid = _grid(m.to(images.device), tuple(images.shape[-2:]), side)
    chips = F.grid_sample(images.float(), grid, mode="bilinear", align_corners=False)
    return chips.round().clamp(0, 255).to(torch.uint8)


def _points(p: torch.Tensor, m: torch.Tensor) -> torch.Tensor:
    """Image-pixel points (N, K, 2) → chip pixels, through the inverse of M."""
    a = m[:, :, :2]
    inv = torch.linalg.inv(a.double()).float()
    return ((p - m[:, None, :, 2]) @ inv.transpose(1, 2)).to(p.dtype)


def align(faces: FaceArrays, m: torch.Tensor, side: int) -> FaceArrays:
    """``faces`` cropped and aligned by the transforms ``m`` into side × side chips."""
    m = m.to(faces.images.device)
    maps = None
    if faces.label_maps is not None:
        lab = faces.label_maps
        if tuple(lab.shape[-2:]) != faces.size:
            lab = F.interpolate(lab[:, None].float(), size=faces.size, mode="nearest")[:, 0]
        grid = _grid(m, faces.size, side)
        maps = F.grid_sample(lab[:, None].float(), grid, mode="nearest",
                             align_corners=False)[:, 0].to(torch.uint8)  # fmt: skip
    landmarks = _points(faces.landmarks.float(), m) if faces.landmarks is not None else None
    boxes = None
    if faces.boxes is not None:
        b = faces.boxes.float()
        corners = torch.stack([b[:, [0, 1]], b[:, [2, 1]], b[:, [0, 3]], b[:, [2, 3]]], 1)
        c = _points(corners - 0.5, m) + 0.5  # box edges, not pixel centres
        boxes = torch.cat([c.amin(1), c.amax(1)], -1).clamp(0, side)
    extras = dict(faces.extras)
    if "dense_landmarks" in extras:
        extras["dense_landmarks"] = _points(extras["dense_landmarks"].float(), m)
    return replace(
        faces,
        images=warp_images(faces.images, m, side),
        label_maps=maps,
        landmarks=landmarks,
        boxes=boxes,
        extras=extras,
    )


def align_faces(faces: FaceArrays, mode: str, padding: float) -> tuple[FaceArrays, torch.Tensor]:
    """Faces aligned as ``model.input.crop`` says, at the data's own side; and the
    transforms (for counterfactual renders of the same faces)."""
    side = min(faces.size)
    m = crop_transforms(faces, mode, padding, side)
    return align(faces, m, side), m
