"""Per-face geometry in face coordinates, and the annotations it implies.

Face coordinates (u, v): origin at the face centre, u to the image right, v down, one unit
= half the image side for an unscaled face. The image point of (u, v) is
``scale * R(rot) @ (u, v) + shift``, in normalised image coordinates [-1, 1].

All per-sample quantities are derived here in float64 from :class:`FaceParams` and only
then rounded to float32, so that a sample's geometry is bit-identical whether it is
rendered alone or in a batch (float64 -> float32 rounding hides the last-ulp differences
between vectorised and scalar maths kernels).
"""

from __future__ import annotations

import math

import torch

from benchmark.data.synthetic.params import ATTRIBUTES, CUE_KEYS, SHAPE_KEYS, FaceParams

# Global strength of the target cues. Tuned with a small CNN on 6000 64-px faces so that
# Male/Young are learnable (~85-93%) but not trivially (see tests/test_synthetic.py).
MALE_CUE = 1.0
YOUNG_CUE = 1.0
CORNER_X = 0.92  # mouth-corner landmark, as a fraction of the mouth half-width


class Geo(dict):
    """A dict of per-sample tensors with attribute access (``g.face_w``)."""

    def __getattr__(self, name: str) -> torch.Tensor:
        try:
            return self[name]
        except KeyError as exc:
            raise AttributeError(name) from exc

    def __setattr__(self, name: str, value: torch.Tensor) -> None:
        self[name] = value

    def view(self, *trailing: int, dtype: torch.dtype = torch.float32) -> Geo:
        """Every field reshaped to (N, *trailing) for broadcasting against pixels."""
        return Geo({k: v.to(dtype).reshape(-1, *trailing) for k, v in self.items()})


def derive(p: FaceParams, size: int) -> Geo:
    """Geometry of every face, float64 (N,) per quantity, for images of side ``size``."""
    f = torch.float64
    attr = {name: p.attributes[:, i].to(f) for i, name in enumerate(ATTRIBUTES)}
    # Cue gains: a neutral (canonical) face has no sex or age marks at all.
    gm, gy = p.target_gain.to(f).unbind(1)
    sm = (2.0 * attr["Male"] - 1.0) * gm * MALE_CUE  # +1 male, -1 female
    so = (1.0 - 2.0 * attr["Young"]) * gy * YOUNG_CUE  # +1 old, -1 young
    z = dict(zip(SHAPE_KEYS, p.shape.to(f).unbind(1), strict=True))
    c = dict(zip(CUE_KEYS, p.cues.to(f).unbind(1), strict=True))
    smile = attr["Smiling"]
    g = Geo()

    rot, scale, sx, sy = p.pose.to(f).unbind(1)
    g.update(cos=torch.cos(rot), sin=torch.sin(rot), scale=scale, tx=2.0 * sx, ty=2.0 * sy)
    px = 2.0 / (size * scale)  # one pixel in face units: thin parts never vanish
    g.px = px

    sag = 0.016 * so + 0.008 * c["sag"]
    g.face_w = 0.47 + 0.012 * sm + 0.014 * z["face_w"]
    g.face_ht = 0.70 + 0.02 * z["face_h"]
    g.face_hb = 0.58 + 0.006 * sm + 0.015 * z["chin"] + sag
    g.jaw_taper = 0.20 - 0.04 * sm + 0.035 * z["jaw_taper"] - 0.6 * sag
    g.jaw_sq = (0.35 + 0.18 * sm + 0.18 * z["jaw_square"]).clamp(0.0, 1.0)

    g.eye_y = -0.12 + 0.012 * z["eye_y"]
    g.eye_dx = 0.19 + 0.008 * z["eye_dx"]
    g.eye_w = 0.085 + 0.005 * z["eye_w"]
    g.eye_h = torch.maximum(0.036 + 0.004 * z["eye_h"] - 0.003 * so, 0.8 * px)
    g.eye_tilt = 0.15 + 0.1 * z["eye_tilt"]
    g.iris_r = torch.maximum(0.95 * g.eye_h, 0.7 * px)
    g.under_eye = (0.04 * gy + 0.06 * so + 0.025 * c["under_eye"]).clamp(0.0, 0.25)

    g.brow_y = g.eye_y - (0.14 - 0.012 * sm + 0.009 * z["brow_gap"])
    g.brow_dx = g.eye_dx - 0.005
    g.brow_len = 1.45 * g.eye_w
    g.brow_t = torch.maximum(0.020 + 0.005 * sm + 0.004 * z["brow_thick"], 0.4 * px)
    g.brow_arch = 0.025 + 0.01 * z["brow_arch"]

    g.nose_top = g.eye_y - 0.01
    g.nose_tip = 0.12 + 0.012 * z["nose_len"] + 0.006 * sm
    g.nose_w = 0.072 + 0.006 * sm + 0.006 * z["nose_w"]
    g.nose_bw = 0.032 + 0.003 * sm
    g.nose_lh = 0.045 + 0.002 * sm

    g.mouth_y = 0.32 + 0.012 * z["mouth_y"] + 0.5 * sag
    g.mouth_w0 = 0.15 + 0.008 * z["mouth_w"]  # before smiling: what the cheeks follow
    g.mouth_w = g.mouth_w0 + 0.02 * smile
    g.lip_u = torch.maximum(0.032 + 0.004 * z["lip_thick"] - 0.003 * sm, 1.25 * px)
    g.lip_l = torch.maximum(0.040 + 0.005 * z["lip_thick"] - 0.004 * sm, 1.25 * px)
    g.lift = 0.006 + 0.03 * smile
    g.open = torch.maximum(0.045 * smile, 1.4 * px * smile)

    g.ear_dx = g.face_w + 0.025
    g.ear_y = g.eye_y + 0.06
    g.ear_w = 0.07 + 0.004 * z["ear"]
    g.ear_h = 0.17 + 0.01 * z["ear"]
    g.neck_w = 0.25 + 0.025 * sm + 0.015 * z["neck_w"]

    style = p.hair_style
    fringe, vol, length = p.hair.to(f).unbind(1)
    buzz = (style == 2).to(f)
    g.skull_cy = torch.full_like(vol, -0.2)
    g.skull_w = g.face_w + (0.06 + 0.07 * vol) * (1 - buzz) + 0.025 * buzz
    g.skull_h = 0.72 + 0.06 * vol * (1 - buzz) - 0.06 * buzz
    # Short styles end behind the ears; drapes (long, bob) carry on below.
    g.hair_cut = torch.where((style == 1) | (style == 3), 9.0, g.ear_y + 0.08)
    g.hairline_y = torch.where(fringe > 0.5, -0.38 + 0.03 * length, -0.6 + 0.06 * length)
    g.hairline_y = torch.where(style == 2, torch.full_like(vol, -0.62), g.hairline_y)
    g.hairline_c = torch.where(fringe > 0.5, 0.3, 0.9).to(f) * (1 - buzz) + 0.5 * buzz
    g.fringe = fringe * (1 - buzz)
    drape_w = torch.where(style == 1, 0.12 + 0.08 * vol, 0.10 + 0.05 * vol)
    g.drape_w = g.face_w + drape_w
    g.drape_bot = torch.where(style == 1, 0.75 + 0.35 * length, 0.38 + 0.15 * length)
    g.drape_bot = torch.where((style == 1) | (style == 3), g.drape_bot, -9.0)
    g.grey = (-0.05 + 0.3 * so + 0.2 * c["grey"]).clamp(0.0, 0.8)

    hat_style, hat_h = p.hat.to(f).unbind(1)
    g.hat_y = -0.50 + 0.06 * (hat_h - 0.5)
    g.hat_w = g.skull_w + 0.05
    g.brim = hat_style  # 1: a brim band wider than the crown
    g.band_t = torch.maximum(torch.full_like(px, 0.07), 2.0 * px)

    lw, lh, round_, tint = p.glasses.to(f).unbind(1)
    g.lens_w = 0.125 + 0.008 * lw
    g.lens_h = 0.085 + 0.008 * lh
    g.lens_sq = 1.0 - round_
    g.lens_cy = g.eye_y + 0.01
    g.frame_t = torch.maximum(torch.full_like(px, 0.022), 1.1 * px)
    g.tint = tint

    hoop, drop = p.jewel.to(f).unbind(1)
    g.hoop = hoop
    g.stud_r = torch.maximum(torch.full_like(px, 0.032), 1.0 * px)
    g.hoop_r = torch.full_like(px, 0.055)
    g.hoop_t = torch.maximum(torch.full_like(px, 0.026), 1.0 * px)
    g.nk_y = 0.72 + 0.05 * drop
    g.nk_c = torch.full_like(px, 1.2)
    g.nk_t = torch.maximum(torch.full_like(px, 0.026), 1.1 * px)
    g.pend_r = torch.maximum(torch.full_like(px, 0.03), 1.0 * px)
    neck_open, neck_depth = p.cloth.to(f).unbind(1)
    g.nl_w = g.neck_w + 0.03 + 0.15 * neck_open
    g.nl_h = 0.06 + 0.14 * neck_depth

    g.stubble = (0.03 * gm + 0.06 * sm + 0.035 * c["stubble"]).clamp(0.0, 0.25)
    g.wrinkles = (0.07 * gy + 0.1 * so + 0.04 * c["wrinkles"]).clamp(0.0, 0.35)
    g.texture = (0.025 + 0.018 * so + 0.006 * c["texture"]).clamp(0.004, 0.08)
    g.tex_gain = p.grain[:, 1].to(f)  # 0 on the canonical face: no speckle anywhere
    g.line_w = torch.maximum(torch.full_like(px, 0.012), 0.9 * px)
    return g


# Contours shared by the rasteriser and the landmarks, evaluated at any broadcastable x.


def eye_lids(x: torch.Tensor, g: Geo) -> tuple[torch.Tensor, torch.Tensor]:
    """Upper and lower lid v at eye coordinate x (-1 inner corner, +1 outer corner)."""
    e = 1.0 - x * x
    base = g.eye_y - g.eye_h * g.eye_tilt * x
    return base - g.eye_h * e, base + 0.75 * g.eye_h * e


def brow_centre(x: torch.Tensor, g: Geo) -> torch.Tensor:
    """Brow centre line v at brow coordinate x (-1 inner end, +1 outer end)."""
    t = (x - 0.2) * (1.0 / 1.2)
    return g.brow_y - g.brow_arch * (1.0 - t * t)


def brow_half_thickness(x: torch.Tensor, g: Geo) -> torch.Tensor:
    """Brow half thickness at x: heavier at the inner end, rounded ends."""
    x2 = x * x
    x4 = x2 * x2
    return g.brow_t * (1.15 - 0.35 * x) * (1.0 - x4 * x4)


def lip_curves(x: torch.Tensor, g: Geo) -> tuple[torch.Tensor, ...]:
    """(line, open_top, open_bot, upper_top, lower_bot) v of the mouth at x = u / mouth_w."""
    x2 = x * x
    e = torch.clamp(1.0 - x2, min=0.0)
    se = torch.sqrt(e)
    line = g.mouth_y - g.lift * x2
    open_top = line - 0.35 * g.open * e
    open_bot = line + 0.65 * g.open * e
    bow = torch.clamp(1.0 - x2 * 40.0, min=0.0)  # Cupid's bow dip at the philtrum
    upper_top = open_top - g.lip_u * se * (1.0 - 0.3 * bow)
    lower_bot = open_bot + g.lip_l * se
    return line, open_top, open_bot, upper_top, lower_bot


def jaw_halfwidth(y: torch.Tensor, g: Geo) -> torch.Tensor:
    """Half width of the lower face at y = v / face_hb in [0, 1]."""
    a = g.jaw_sq
    cc = torch.clamp(1.0 - y * y, min=0.0)
    x2 = 2.0 * cc / ((1.0 - a) + torch.sqrt((1.0 - a) ** 2 + 4.0 * a * cc))
    return g.face_w * (1.0 - g.jaw_taper * y) * torch.sqrt(x2)


def face_contour(phi: torch.Tensor, g: Geo) -> tuple[torch.Tensor, torch.Tensor]:
    """Right half of the face outline at angles phi in [-pi/2, pi/2] (0 = face centre height)."""
    s = torch.sin(phi)
    top_u, top_v = g.face_w * torch.cos(phi), g.face_ht * s
    y = torch.clamp(s, min=0.0)
    return torch.where(s < 0, top_u, jaw_halfwidth(y, g)), torch.where(s < 0, top_v, g.face_hb * y)


def to_pixels(u: torch.Tensor, v: torch.Tensor, g: Geo, size: int) -> torch.Tensor:
    """Face coordinates (N, K) to pixel (x, y), (N, K, 2), pixel centres at integers."""
    xn = g.scale * (g.cos * u - g.sin * v) + g.tx
    yn = g.scale * (g.sin * u + g.cos * v) + g.ty
    return torch.stack([(xn + 1.0) * (size / 2.0) - 0.5, (yn + 1.0) * (size / 2.0) - 0.5], -1)


def _lin(a: float, b: float, k: int) -> torch.Tensor:
    return torch.linspace(a, b, k, dtype=torch.float64)[None, :]


def dense_points(g: Geo) -> tuple[torch.Tensor, torch.Tensor]:
    """The 68 dense landmarks in face coordinates (u, v), each (N, 68), iBUG-68 order.

    0-16 jaw line from the image-left temple round the chin to the image-right temple;
    17-21 image-left brow (outer to inner); 22-26 image-right brow (inner to outer);
    27-30 nose bridge, top to tip; 31-35 nose base, left to right; 36-41 image-left eye
    (outer corner, two upper-lid points, inner corner, two lower-lid points); 42-47
    image-right eye (inner corner, upper lid, outer corner, lower lid); 48-59 outer lip
    contour clockwise from the image-left corner; 60-67 inner lip contour likewise.
    """
    g = g.view(1, dtype=torch.float64)
    phi0 = torch.asin(torch.clamp((g.eye_y + 0.02) / g.face_ht, -1.0, 1.0))
    t = _lin(0.0, 1.0, 9)
    ju, jv = face_contour(phi0 + (math.pi / 2 - phi0) * t, g)
    jaw_u = torch.cat([-ju, ju.flip(1)[:, 1:]], 1)
    jaw_v = torch.cat([jv, jv.flip(1)[:, 1:]], 1)

    bx = _lin(0.9, -0.9, 5)
    brow_u = torch.cat([-(g.brow_dx + g.brow_len * bx), g.brow_dx + g.brow_len * bx.flip(1)], 1)
    brow_v = torch.cat([brow_centre(bx, g), brow_centre(bx.flip(1), g)], 1)

    bridge_v = g.nose_top + 0.03 + (g.nose_tip - g.nose_top - 0.03) * _lin(0.0, 1.0, 4)
    base_x = _lin(-0.8, 0.8, 5)
    nose_u = torch.cat([torch.zeros_like(bridge_v), g.nose_w * base_x], 1)
    nose_v = torch.cat([bridge_v, g.nose_tip + g.nose_lh * (0.55 + 0.15 * (1 - base_x.abs()))], 1)

    # Eye points as (x, upper?) in eye coordinates; the right eye mirrors the left.
    ex = torch.tensor([[1.0, 0.35, -0.35, -1.0, -0.35, 0.35]], dtype=torch.float64)
    upper = torch.tensor([[1.0, 1.0, 1.0, 1.0, 0.0, 0.0]], dtype=torch.float64)
    rx = torch.tensor([[-1.0, -0.35, 0.35, 1.0, 0.35, -0.35]], dtype=torch.float64)
    eye_u = torch.cat([-(g.eye_dx + g.eye_w * ex), g.eye_dx + g.eye_w * rx], 1)
    lids = [eye_lids(ex, g), eye_lids(rx, g)]
    eye_v = torch.cat([torch.where(upper > 0, up, lo) for up, lo in lids], 1)

    ox = torch.tensor([[-1.0, -0.66, -0.33, 0.0, 0.33, 0.66, 1.0, 0.66, 0.33, 0.0, -0.33, -0.66]])
    ix = torch.tensor([[-CORNER_X, -0.4, 0.0, 0.4, CORNER_X, 0.4, 0.0, -0.4]])
    ox, ix = ox.double(), ix.double()
    line_o, _, _, top_o, bot_o = lip_curves(ox, g)
    line_i, otop_i, obot_i, _, _ = lip_curves(ix, g)
    outer_v = torch.cat([line_o[:, :1], top_o[:, 1:6], line_o[:, 6:7], bot_o[:, 7:]], 1)
    inner_v = torch.cat([line_i[:, :1], otop_i[:, 1:4], line_i[:, 4:5], obot_i[:, 5:]], 1)
    lip_u = torch.cat([ox, ix], 1) * g.mouth_w
    u = torch.cat([jaw_u, brow_u, nose_u, eye_u, lip_u], 1)
    v = torch.cat([jaw_v, brow_v, nose_v, eye_v, outer_v, inner_v], 1)
    return u, v


def annotations(g: Geo, size: int) -> dict[str, torch.Tensor]:
    """Landmarks (N, 5, 2), dense landmarks (N, 68, 2) and face boxes (N, 4), float32 pixels."""
    g1 = g.view(1, dtype=torch.float64)
    n = g1.face_w.shape[0]
    zero = torch.zeros(n, 1, dtype=torch.float64)
    # Mouth corners just inside the lips' tips, where the lips are thick enough to show.
    line = lip_curves(torch.full((n, 1), CORNER_X, dtype=torch.float64), g1)[0]
    corner = CORNER_X * g1.mouth_w
    u5 = torch.cat([-g1.eye_dx, g1.eye_dx, zero, -corner, corner], 1)
    v5 = torch.cat([g1.eye_y, g1.eye_y, g1.nose_tip, line, line], 1)
    du, dv = dense_points(g)
    ru, rv = face_contour(_lin(-math.pi / 2, math.pi / 2, 33), g1)
    outline = to_pixels(torch.cat([-ru, ru], 1), torch.cat([rv, rv], 1), g1, size)
    lo, hi = outline.min(dim=1).values, outline.max(dim=1).values
    return {
        "landmarks": to_pixels(u5, v5, g1, size).float(),
        "dense_landmarks": to_pixels(du, dv, g1, size).float(),
        "boxes": torch.cat([lo, hi], 1).float(),
    }
