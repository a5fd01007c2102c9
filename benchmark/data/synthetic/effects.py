"""Shading and skin marks painted over the flat colours: the subtle age and sex cues.

Each effect touches only pixels of the materials it names, so that a counterfactual
changes no pixel outside the regions of the toggled attribute. Shading effects multiply a
one-channel ``shade`` field (cheap); colour effects (make-up) blend the RGB image.
"""

from __future__ import annotations

import torch

from benchmark.data.synthetic.raster import Canvas, Window, _sq


def _ramp(d: torch.Tensor, width: torch.Tensor) -> torch.Tensor:
    """1 on a line (d = 0) falling to 0 at distance ``width``: a soft stroke profile."""
    return torch.clamp(1.0 - d.abs() * (1.0 / width), min=0.0)


def _darken(shade: torch.Tensor, w: Window, amount: torch.Tensor, *materials: str) -> None:
    view = shade[:, w.rows, w.cols]
    view.mul_(1.0 - amount * w.is_(*materials))


def shading(cv: Canvas, shade: torch.Tensor, face: Window, r2: torch.Tensor,
            fine: torch.Tensor) -> None:  # fmt: skip
    """Face roundness, nose relief, lip parting, stubble, wrinkles and eye bags."""
    g, n64 = cv.g, cv.g64
    _darken(shade, face, 0.14 * r2 * r2, "skin")

    w = cv.window(-n64.nose_w, n64.nose_w, n64.nose_top, n64.nose_tip + n64.nose_lh)
    _darken(shade, w, 0.2 * torch.clamp(_sq(w.u * (1.0 / g.nose_w)), max=1.0), "nose")

    lw = n64.line_w
    w = cv.window(-n64.mouth_w, n64.mouth_w, n64.mouth_y - n64.lift - lw, n64.mouth_y + lw)
    line = g.mouth_y - g.lift * _sq(w.u * (1.0 / g.mouth_w))
    _darken(shade, w, 0.35 * _ramp(w.v - line, g.line_w), "u_lip", "l_lip")

    # Beard shadow: a darkening of the lower face, speckled by the per-pixel noise.
    w = cv.window(-n64.face_w, n64.face_w, n64.nose_tip, n64.face_hb)
    ramp = torch.clamp((w.v - g.nose_tip - 0.02) * 12.0, 0.0, 1.0)
    speckle = 0.6 + 0.4 * g.tex_gain * fine[:, w.rows, w.cols]
    _darken(shade, w, g.stubble * ramp * speckle, "skin")

    w = cv.window(-0.3, 0.3, n64.brow_y - 0.25 - lw, n64.brow_y - 0.1 + lw)
    across = torch.clamp(1.0 - _sq(w.u * (1.0 / 0.26)), min=0.0)
    lines = sum(_ramp(w.v - (g.brow_y - 0.1 - 0.055 * k) - 0.04 * _sq(w.u), g.line_w)
                for k in range(3))  # fmt: skip
    _darken(shade, w, g.wrinkles * across * lines, "skin")

    corner = n64.eye_dx + n64.eye_w + 0.015
    for w in cv.sides(corner + 0.04, 0.05, n64.eye_y - 0.045 - lw, n64.eye_y + 0.045 + lw):
        du = w.u.abs() - (g.eye_dx + g.eye_w + 0.015)
        dv = w.v - g.eye_y
        near = (du > 0.0) & (du < 0.07)
        feet = sum(_ramp(dv - k * du, g.line_w) for k in (-0.6, 0.0, 0.6))
        _darken(shade, w, 0.8 * g.wrinkles * feet * near, "skin")

    top, bottom = n64.nose_tip + 0.01, n64.mouth_y + 0.03
    left, right = n64.nose_w + 0.015, n64.mouth_w0 + 0.035
    for w in cv.sides(0.5 * (left + right), 0.5 * (right - left) + 0.01 + lw, top, bottom):
        t = (w.v - (g.nose_tip + 0.01)) * (1.0 / (g.mouth_y + 0.02 - g.nose_tip))
        left, right = g.nose_w + 0.015, g.mouth_w0 + 0.035
        fold = _ramp(w.u.abs() - (left + (right - left) * t + 0.03 * t * (1.0 - t)), g.line_w)
        _darken(shade, w, 0.8 * g.wrinkles * fold * ((t > 0.0) & (t < 1.0)), "skin")

    for w in cv.sides(n64.eye_dx, n64.eye_w, n64.eye_y, n64.eye_y + 0.1):
        r = _sq((w.u.abs() - g.eye_dx) * (1.0 / g.eye_w))
        r = r + _sq((w.v - (g.eye_y + g.eye_h + 0.025)) * (1.0 / 0.025))
        _darken(shade, w, g.under_eye * torch.clamp(1.0 - r, min=0.0), "skin")


def _tint(img: torch.Tensor, w: Window, weight: torch.Tensor, rgb: torch.Tensor) -> None:
    view = img[:, :, w.rows, w.cols]
    weight = weight.unsqueeze(1)
    view.add_(weight * (rgb[:, :, None, None] - view))


def makeup(cv: Canvas, img: torch.Tensor, shadow: torch.Tensor, blush: torch.Tensor) -> None:
    """Heavy_Makeup: eye shadow between eye and brow, blush on the cheeks (skin only)."""
    g, n64 = cv.g, cv.g64
    on = cv.on["Heavy_Makeup"]
    for w in cv.sides(n64.eye_dx, 1.25 * n64.eye_w, n64.eye_y - 0.09, n64.eye_y + 0.03):
        r = _sq((w.u.abs() - g.eye_dx) * (1.0 / (1.25 * g.eye_w)))
        r = r + _sq((w.v - (g.eye_y - 0.03)) * (1.0 / 0.055))
        _tint(img, w, 0.65 * torch.clamp(1.0 - r, min=0.0) * (w.is_("skin") & on), shadow)
    for w in cv.sides(0.25, 0.11, 0.02, 0.18):
        r = _sq((w.u.abs() - 0.25) * (1.0 / 0.11)) + _sq((w.v - 0.1) * (1.0 / 0.075))
        _tint(img, w, 0.35 * torch.clamp(1.0 - r, min=0.0) * (w.is_("skin") & on), blush)


def lenses(cv: Canvas, img: torch.Tensor) -> None:
    """Glasses lenses: tint what lies behind them and add a glare streak."""
    w, lens = cv.lens, cv.lens_mask
    if w is None or lens is None:
        return
    g = cv.g
    x = (w.u.abs() - g.eye_dx) * (1.0 / g.lens_w)
    y = (w.v - g.lens_cy) * (1.0 / g.lens_h)
    s = 0.6 * x + y + 0.45
    glare = 0.08 * ((s > 0.0) & (s < 0.3))
    view = img[:, :, w.rows, w.cols]
    view.copy_(
        torch.where(lens.unsqueeze(1), view * g.tint.unsqueeze(1) + glare.unsqueeze(1), view)
    )
