"""Rasterising the face parts into a material map, back to front.

Every part is an analytic shape (ellipse, superellipse, band around a curve) evaluated on
each sample's own face-coordinate grid. Small parts are evaluated only inside a window of
rows and columns that holds that part for every sample of the batch, which is what makes
rendering fast. Two rules keep a face's pixels independent of its batch-mates: shapes are
pure float32 arithmetic (+, *, /, sqrt, comparisons: exact in any memory layout), and every
shape lies inside its window by construction (a window is sized for the whole batch).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from benchmark.data.synthetic.geometry import (
    Geo,
    brow_centre,
    brow_half_thickness,
    eye_lids,
    lip_curves,
    to_pixels,
)
from benchmark.data.synthetic.params import ATTRIBUTES

# Materials: what a pixel is made of (colour, texture); several map to one region label.
MATERIALS: tuple[str, ...] = (
    "background", "skin", "nose", "nostril", "sclera", "iris", "pupil", "lash", "brow",
    "ear", "ear_inner", "mouth", "teeth", "u_lip", "l_lip", "hair", "hair_back", "hat",
    "hat_band", "earring", "necklace", "neck", "cloth", "frame",
)  # fmt: skip
M = {name: i for i, name in enumerate(MATERIALS)}
# Region label of each material; sided ones get +1 on the image-right half of the face.
MATERIAL_REGION: dict[str, str] = {
    "background": "background", "skin": "skin", "nose": "nose", "nostril": "nose",
    "sclera": "l_eye", "iris": "l_eye", "pupil": "l_eye", "lash": "l_eye", "brow": "l_brow",
    "ear": "l_ear", "ear_inner": "l_ear", "mouth": "mouth", "teeth": "mouth",
    "u_lip": "u_lip", "l_lip": "l_lip", "hair": "hair", "hair_back": "hair", "hat": "hat",
    "hat_band": "hat", "earring": "ear_r", "necklace": "neck_l", "neck": "neck",
    "cloth": "cloth", "frame": "eye_g",
}  # fmt: skip
SIDED: tuple[str, ...] = ("sclera", "iris", "pupil", "lash", "brow", "ear", "ear_inner")


@dataclass
class Window:
    """A rectangle of pixels holding one part for every sample, with its coordinates."""

    rows: slice
    cols: slice
    u: torch.Tensor
    v: torch.Tensor
    mat: torch.Tensor  # a view into the canvas: painting it paints the canvas
    side: int = 0  # -1 / +1: the image-left / right member of a mirrored pair

    def paint(self, mask: torch.Tensor, material: str) -> None:
        self.mat.masked_fill_(mask, M[material])

    def is_(self, *materials: str) -> torch.Tensor:
        """Pixels of these materials (on this window's half of the face, for a pair)."""
        out = self.mat == M[materials[0]]
        for name in materials[1:]:
            out |= self.mat == M[name]
        # The two windows of a pair may overlap; each effect must apply once per pixel.
        if self.side < 0:
            out &= self.u < 0.0
        elif self.side > 0:
            out &= self.u >= 0.0
        return out


Bound = torch.Tensor | float  # a face-coordinate bound: one number, or one per sample


def _col(t: Bound, n: int) -> torch.Tensor:
    return torch.as_tensor(t, dtype=torch.float64).reshape(-1, 1).expand(n, 1)


class Canvas:
    """Face-coordinate grids and the material map of one batch of faces."""

    def __init__(self, geo: Geo, attributes: torch.Tensor, size: int):
        self.size = size
        self.g64 = geo.view(1, dtype=torch.float64)
        self.g = geo.view(1, 1)
        self.n = n = attributes.shape[0]
        self.on = {a: attributes[:, i].bool().reshape(n, 1, 1) for i, a in enumerate(ATTRIBUTES)}
        c, s, k, tx, ty = (
            geo[name].to(torch.float64) for name in ("cos", "sin", "scale", "tx", "ty")
        )
        coef = [c / k, s / k, -(c * tx + s * ty) / k, -s / k, c / k, (s * tx - c * ty) / k]
        a, b, cu, d, e, cv = (t.float().reshape(n, 1, 1) for t in coef)
        xs = ((torch.arange(size, dtype=torch.float64) + 0.5) * (2.0 / size) - 1.0).float()
        self.u = a * xs[None, None, :] + (b * xs[None, :, None] + cu)
        self.v = d * xs[None, None, :] + (e * xs[None, :, None] + cv)
        self.mat = torch.zeros(n, size, size, dtype=torch.uint8)
        self.lens: Window | None = None
        self.lens_mask: torch.Tensor | None = None

    def window(self, u0: Bound, u1: Bound, v0: Bound, v1: Bound) -> Window:
        """The pixel rectangle holding face box [u0, u1] x [v0, v1] of every sample."""
        n = self.n
        u = torch.cat([_col(u0, n), _col(u1, n), _col(u0, n), _col(u1, n)], 1)
        v = torch.cat([_col(v0, n), _col(v0, n), _col(v1, n), _col(v1, n)], 1)
        pix = to_pixels(u, v, self.g64, self.size)
        if n == 0:
            lo, hi = [0, 0], [-1, -1]
        else:
            lo = pix.reshape(-1, 2).min(0).values.floor().long().tolist()
            hi = pix.reshape(-1, 2).max(0).values.floor().long().tolist()
        cols = slice(max(0, lo[0]), max(0, min(self.size, hi[0] + 2)))
        rows = slice(max(0, lo[1]), max(0, min(self.size, hi[1] + 2)))
        return Window(rows, cols, self.u[:, rows, cols], self.v[:, rows, cols],
                      self.mat[:, rows, cols])  # fmt: skip

    def sides(self, cu: Bound, hw: Bound, v0: Bound, v1: Bound) -> list[Window]:
        """Windows of a mirrored pair of parts centred at u = -cu and u = +cu."""
        left = self.window(-cu - hw, -cu + hw, v0, v1)
        right = self.window(cu - hw, cu + hw, v0, v1)
        left.side, right.side = -1, 1
        return [left, right]

    def full(self) -> Window:
        whole = slice(0, self.size)
        return Window(whole, whole, self.u, self.v, self.mat)


def _sq(t: torch.Tensor) -> torch.Tensor:
    return t * t


def paint_body(cv: Canvas) -> None:
    """Back hair, neck, clothes and necklace: everything behind the face."""
    g, w = cv.g, cv.full()
    u, v = w.u, w.v
    skull = _sq(u * (1.0 / g.skull_w)) + _sq((v - g.skull_cy) * (1.0 / g.skull_h)) < 1.0
    skull &= v < g.hair_cut
    half = 0.5 * (g.drape_bot - g.skull_cy)
    x2 = _sq(u * (1.0 / g.drape_w))
    y2 = _sq((v - (g.skull_cy + half)) * (1.0 / half))
    drape = (x2 * x2 + y2 * y2 < 1.0) & (g.drape_bot > 0.0)
    w.paint(skull | drape, "hair_back")

    n64 = cv.g64
    w = cv.window(-1.3 * n64.neck_w, 1.3 * n64.neck_w, 0.2, 2.0)
    widen = 1.0 + 0.25 * torch.clamp(w.v - 0.75, 0.0, 1.0)
    w.paint((w.u.abs() < g.neck_w * widen) & (w.v > 0.2), "neck")

    w = cv.window(-1.3, 1.3, 0.75, 2.2)
    shoulders = _sq(w.u * (1.0 / 1.2)) + _sq((w.v - 1.42) * (1.0 / 0.64)) < 1.0
    neckline = _sq(w.u * (1.0 / g.nl_w)) + _sq((w.v - 0.78) * (1.0 / g.nl_h)) < 1.0
    w.paint(shoulders & ~neckline, "cloth")

    reach = n64.neck_w + 0.25
    w = cv.window(-reach, reach, n64.nk_y - n64.nk_t, n64.nk_y + n64.nk_c * reach**2 + n64.nk_t)
    chain = (w.v - (g.nk_y + g.nk_c * _sq(w.u))).abs() < 0.5 * g.nk_t
    chain &= w.u.abs() < g.neck_w + 0.24
    pend = _sq(w.u) + _sq(w.v - (g.nk_y + 0.5 * g.nk_t + 0.8 * g.pend_r)) < _sq(g.pend_r)
    w.paint((chain | pend) & w.is_("neck", "cloth") & cv.on["Wearing_Necklace"], "necklace")


def paint_face(cv: Canvas) -> tuple[Window, torch.Tensor]:
    """Ears, then the face oval; returns the oval's window and its radial field."""
    g, n64 = cv.g, cv.g64
    for w in cv.sides(n64.ear_dx, n64.ear_w + 0.01, n64.ear_y - n64.ear_h, n64.ear_y + n64.ear_h):
        du = w.u.abs() - g.ear_dx
        dv = w.v - g.ear_y
        w.paint(_sq(du * (1.0 / g.ear_w)) + _sq(dv * (1.0 / g.ear_h)) < 1.0, "ear")
        inner = _sq((du + 0.2 * g.ear_w) * (1.0 / (0.45 * g.ear_w)))
        inner = inner + _sq((dv + 0.1 * g.ear_h) * (1.0 / (0.6 * g.ear_h)))
        w.paint(inner < 1.0, "ear_inner")

    w = cv.window(-n64.face_w, n64.face_w, -n64.face_ht, n64.face_hb)
    u, v = w.u, w.v
    top = _sq(u * (1.0 / g.face_w)) + _sq(v * (1.0 / g.face_ht))
    y = v * (1.0 / g.face_hb)
    x2 = _sq(u / (g.face_w * (1.0 - g.jaw_taper * y)))
    bottom = x2 * ((1.0 - g.jaw_sq) + g.jaw_sq * x2) + y * y
    r2 = torch.where(v < 0.0, top, bottom)
    w.paint(r2 < 1.0, "skin")
    return w, r2


def paint_features(cv: Canvas, face: Window, r2: torch.Tensor) -> None:
    """Nose, eyes, brows, lips and mouth, then the hair over the forehead."""
    g, n64 = cv.g, cv.g64
    w = cv.window(-n64.nose_w, n64.nose_w, n64.nose_top, n64.nose_tip + n64.nose_lh)
    au, v = w.u.abs(), w.v
    t = torch.clamp((v - g.nose_top) * (1.0 / (g.nose_tip - g.nose_top)), 0.0, 1.0)
    column = (
        (v > g.nose_top) & (v < g.nose_tip) & (au < g.nose_bw + (g.nose_w - g.nose_bw) * t * t * t)
    )
    lobe = _sq(au * (1.0 / g.nose_w)) + _sq((v - g.nose_tip) * (1.0 / g.nose_lh)) < 1.0
    w.paint(column | lobe, "nose")
    radius = torch.minimum(torch.clamp(0.28 * g.nose_w, min=0.6 * g.px), 0.45 * g.nose_w)
    nostril = _sq((au - 0.5 * g.nose_w) * (1.0 / radius))
    nostril = nostril + _sq((v - g.nose_tip - 0.45 * g.nose_lh) * (1.0 / (0.3 * g.nose_lh)))
    w.paint(nostril < 1.0, "nostril")

    for w in cv.sides(n64.eye_dx, n64.eye_w, n64.eye_y - 2 * n64.eye_h, n64.eye_y + 2 * n64.eye_h):
        au, v = w.u.abs(), w.v
        x = (au - g.eye_dx) * (1.0 / g.eye_w)
        upper, lower = eye_lids(x, g)
        eye = (x.abs() < 1.0) & (v > upper) & (v < lower)
        w.paint(eye, "sclera")
        d2 = _sq(au - g.eye_dx) + _sq(v - g.eye_y)
        w.paint(eye & (d2 < _sq(g.iris_r)), "iris")
        w.paint(eye & (d2 < _sq(0.45 * g.iris_r)), "pupil")
        w.paint(eye & (v < upper + torch.clamp(0.3 * g.eye_h, min=0.45 * g.px)), "lash")

    top, bottom = n64.brow_y - n64.brow_arch - 2 * n64.brow_t, n64.brow_y + 2 * n64.brow_t
    for w in cv.sides(n64.brow_dx, n64.brow_len, top, bottom):
        x = (w.u.abs() - g.brow_dx) * (1.0 / g.brow_len)
        band = (w.v - brow_centre(x, g)).abs() < brow_half_thickness(x, g)
        w.paint((x.abs() < 1.0) & band, "brow")

    top = n64.mouth_y - n64.lift - n64.lip_u - 0.35 * n64.open
    w = cv.window(-n64.mouth_w, n64.mouth_w, top, n64.mouth_y + 0.65 * n64.open + n64.lip_l)
    x = w.u * (1.0 / g.mouth_w)
    _, open_top, open_bot, upper_top, lower_bot = lip_curves(x, g)
    inside = x.abs() < 1.0
    v = w.v
    w.paint(inside & (v > upper_top) & (v <= open_top), "u_lip")
    w.paint(inside & (v > open_bot) & (v < lower_bot), "l_lip")
    mouth = inside & (v > open_top) & (v <= open_bot)
    w.paint(mouth, "mouth")
    w.paint(mouth & (v < 0.5 * (open_top + open_bot)) & (x.abs() < 0.85), "teeth")

    u, v = face.u, face.v
    wave = g.fringe * 0.03 * (2.0 * ((u * 9.0) - torch.floor(u * 9.0)) - 1.0).abs()
    hair = (v < g.hairline_y + g.hairline_c * _sq(u) + wave) & (r2 < 1.0)
    face.paint(hair, "hair")


def paint_accessories(cv: Canvas) -> None:
    """Earrings, glasses (frames; lenses recorded for tinting) and the hat, in that order."""
    g, n64 = cv.g, cv.g64
    lobe_y = n64.ear_y + n64.ear_h
    for w in cv.sides(n64.ear_dx, n64.ear_w + 0.2, lobe_y - 0.3, lobe_y + 0.3):
        du = w.u.abs() - g.ear_dx
        stud = _sq(du - 0.005) + _sq(w.v - (g.ear_y + 0.85 * g.ear_h)) < _sq(g.stud_r)
        d2 = _sq(du) + _sq(w.v - (g.ear_y + g.ear_h + 0.7 * g.hoop_r))
        ring = (d2 < _sq(g.hoop_r + 0.5 * g.hoop_t)) & (d2 > _sq(g.hoop_r - 0.5 * g.hoop_t))
        w.paint(torch.where(g.hoop > 0.5, ring, stud) & cv.on["Wearing_Earrings"], "earring")

    reach = n64.face_w + 0.04
    w = cv.window(-reach, reach, n64.lens_cy - n64.lens_h - n64.frame_t,
                  n64.lens_cy + n64.lens_h + n64.frame_t)  # fmt: skip
    au, v = w.u.abs(), w.v

    def superellipse(rx: torch.Tensor, ry: torch.Tensor) -> torch.Tensor:
        x2 = _sq((au - g.eye_dx) * (1.0 / rx))
        y2 = _sq((v - g.lens_cy) * (1.0 / ry))
        k = g.lens_sq
        return x2 * ((1.0 - k) + k * x2) + y2 * ((1.0 - k) + k * y2) < 1.0

    on = cv.on["Eyeglasses"]
    lens = superellipse(g.lens_w, g.lens_h)
    rim = superellipse(g.lens_w + g.frame_t, g.lens_h + g.frame_t) & ~lens
    bridge = (au < g.eye_dx - g.lens_w + g.frame_t) & (
        (v - (g.lens_cy - 0.35 * g.lens_h)).abs() < 0.5 * g.frame_t
    )
    arm = (au > g.eye_dx + g.lens_w) & (au < g.face_w + 0.03)
    arm &= (v - (g.lens_cy - 0.4 * g.lens_h)).abs() < torch.clamp(0.4 * g.frame_t, min=0.55 * g.px)
    w.paint((rim | bridge | arm) & on, "frame")
    cv.lens, cv.lens_mask = w, lens & on

    w = cv.window(-n64.hat_w - 0.25, n64.hat_w + 0.25, -3.0, n64.hat_y + 0.1)
    u, v = w.u, w.v
    bottom = g.hat_y + 0.1 * _sq(u)
    crown = (_sq(u * (1.0 / g.hat_w)) + _sq((v - g.hat_y) * (1.0 / 0.75)) < 1.0) & (v < bottom)
    band = v > bottom - g.band_t
    brim = (g.brim > 0.5) & band & (_sq(u * (1.0 / (g.hat_w + 0.2))) < 1.0) & (v < bottom)
    on = cv.on["Wearing_Hat"]
    w.paint(crown & on, "hat")
    w.paint(((crown & band) | brim) & on, "hat_band")
