"""The landmark11 region protocol: XAIface's heuristic face patches (seed 002, §3.1.1).

Five landmarks (eyes, nose tip, mouth corners) are base patches; six more (left and
right forehead, cheek and chin) are placed relative to them. Positions and sizes come
from the inter-eye distance d_e and the nose–mouth distance d_nm, measured in the face's
own frame (x along the eye line, y perpendicular towards the mouth), so the patches
follow the face's position, scale and in-plane rotation. Patches are squares in that
frame and may overlap, so the protocol gives one mask per region, not a label map.

The paper names the patches but gives no proportions; ours (``LAYOUT``) were chosen on
the canonical synthetic face and are checked against its label map in the tests.
"""

from __future__ import annotations

import torch

from benchmark.data.regions import RACE_COLUMNS

LANDMARK11: tuple[str, ...] = (
    "left_eye", "right_eye", "nose", "left_mouth", "right_mouth",
    "left_forehead", "right_forehead", "left_cheek", "right_cheek", "left_chin", "right_chin",
)  # fmt: skip

# Patch → (anchor landmark, offset along the eye line in d_e (+ = away from the face's
# midline), offset towards the mouth (in d_e, or d_nm for the mouth-anchored patches),
# half side (same unit)). Anchors: 0 left eye, 1 right eye, 2 nose, 3/4 mouth corners.
# "left" is the image's left, as CelebA's landmark names.
_E, _M = "d_e", "d_nm"
LAYOUT: dict[str, tuple[int, float, float, float, str]] = {
    "left_eye": (0, 0.0, 0.0, 0.25, _E),
    "right_eye": (1, 0.0, 0.0, 0.25, _E),
    "nose": (2, 0.0, 0.0, 0.22, _E),
    "left_mouth": (3, 0.0, 0.0, 0.45, _M),
    "right_mouth": (4, 0.0, 0.0, 0.45, _M),
    "left_forehead": (0, 0.0, -0.72, 0.25, _E),  # above the brow
    "right_forehead": (1, 0.0, -0.72, 0.25, _E),
    "left_cheek": (0, 0.1, 0.72, 0.25, _E),  # below the eye, outside the nose
    "right_cheek": (1, 0.1, 0.72, 0.25, _E),
    "left_chin": (3, -0.1, 1.0, 0.45, _M),  # below the mouth corner
    "right_chin": (4, -0.1, 1.0, 0.45, _M),
}

# Default `bias_regions` under this protocol: attributes whose evidence lies in a patch.
# Earrings, necklace and hat lie outside every patch: a scenario on them must name its
# regions.
ATTRIBUTE_PATCHES: dict[str, tuple[str, ...]] = {
    "Eyeglasses": ("left_eye", "right_eye"),
    "Smiling": ("left_mouth", "right_mouth"),
    "Wearing_Lipstick": ("left_mouth", "right_mouth"),
    "Blond_Hair": ("left_forehead", "right_forehead"),
    "Heavy_Makeup": ("left_eye", "right_eye", "left_cheek", "right_cheek"),
    "skin_tone": ("left_cheek", "right_cheek", "left_forehead", "right_forehead"),
    "race": ("left_cheek", "right_cheek", "left_forehead", "right_forehead"),
}
ATTRIBUTE_PATCHES.update({race: ATTRIBUTE_PATCHES["race"] for race in RACE_COLUMNS})


def face_frame(points: torch.Tensor) -> tuple[torch.Tensor, ...]:
    """Unit vectors along the eye line (u) and towards the mouth (v), d_e and d_nm.

    Args:
        points: (B, 5, 2) pixel (x, y): left eye, right eye, nose, mouth corners.
    """
    p = points.float()
    eye = p[:, 1] - p[:, 0]
    d_e = eye.norm(dim=-1).clamp_min(1e-3)
    u = eye / d_e[:, None]
    v = torch.stack((-u[:, 1], u[:, 0]), dim=-1)  # u rotated +90°: down in image rows
    mouth = (p[:, 3] + p[:, 4]) / 2
    # Along v only, so a turned head does not inflate it; never below a tenth of d_e.
    d_nm = ((mouth - p[:, 2]) * v).sum(-1).abs().clamp_min(0.1 * d_e)
    return u, v, d_e, d_nm


def landmark11_squares(points: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Centres (B, 11, 2) and half sides (B, 11) of the patches, in pixels."""
    u, v, d_e, d_nm = face_frame(points)
    p = points.float()
    centres, halves = [], []
    for name in LANDMARK11:
        anchor, along, down, half, unit = LAYOUT[name]
        scale = d_e if unit == _E else d_nm
        # Outward is -u on the image's left side of the face, +u on its right.
        side = -1.0 if name.startswith("left") else 1.0
        c = p[:, anchor] + u * (side * along * scale)[:, None] + v * (down * scale)[:, None]
        centres.append(c)
        halves.append(half * scale)
    return torch.stack(centres, 1), torch.stack(halves, 1)


def landmark11_masks(points: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """(B, 11, H, W) bool: the pixels whose centre lies in each patch square.

    Images whose landmarks are not finite get empty masks (the regions count as absent).
    """
    h, w = size
    dev = points.device
    centres, halves = landmark11_squares(points)
    u, v, _, _ = face_frame(points)
    ys = torch.arange(h, device=dev, dtype=torch.float32).view(1, 1, h, 1)
    xs = torch.arange(w, device=dev, dtype=torch.float32).view(1, 1, 1, w)
    dx = xs - centres[..., 0, None, None]
    dy = ys - centres[..., 1, None, None]
    along = dx * u[:, None, 0, None, None] + dy * u[:, None, 1, None, None]
    down = dx * v[:, None, 0, None, None] + dy * v[:, None, 1, None, None]
    half = halves[..., None, None]
    # Exactly representable rotations (90°) must map the grid onto itself: a small slack.
    eps = 1e-4
    return (along.abs() <= half + eps) & (down.abs() <= half + eps)
