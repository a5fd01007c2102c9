"""FaceX figures: the face prototype and high-impact patch grids (METHODS.md §2).

FaceX (Sarridis et al., ICMR 2024, §3.3) summarises a model by the IoR of every face
region drawn on an abstract face, and by each region's highest-impact patches. The
project draws its own prototype from the canonical synthetic face (METHODS.md §9).
Images are RGB uint8 arrays (H, W, 3); OpenCV draws and encodes them.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import cv2
import numpy as np

from benchmark.data.regions import REGION_ID, REGION_NAMES
from benchmark.data.synthetic import canonical_face
from metrics.patches import PatchSet

FONT = cv2.FONT_HERSHEY_SIMPLEX
WHITE = (255, 255, 255)
INK = (30, 30, 30)
GREY = 220  # regions with no IoR
EDGE = (60, 60, 60)  # region boundaries
GAP = 2  # white gap between patch cells

# Accessories on the main face so that every region but hat and eye_g has pixels; those
# two cover other regions, so FaceX draws them on a side panel.
MAIN_ATTRIBUTES: dict[str, int] = {"Wearing_Earrings": 1, "Wearing_Necklace": 1, "Smiling": 1}
SIDE_PANELS: dict[str, dict[str, int]] = {"hat": {"Wearing_Hat": 1}, "eye_g": {"Eyeglasses": 1}}
SIDE_CAPTIONS: dict[str, str] = {"hat": "hat", "eye_g": "eyeglasses"}


@dataclass(frozen=True)
class Panel:
    """Where a face sits in a prototype figure: top-left pixel (y, x) and side length."""

    y: int
    x: int
    side: int


@lru_cache(maxsize=16)
def _labels(side: int, panel: str) -> np.ndarray:
    attributes = MAIN_ATTRIBUTES if panel == "main" else SIDE_PANELS[panel]
    labels = canonical_face(side, attributes).label_maps[0].numpy().copy()
    labels.flags.writeable = False  # shared by every caller through the cache
    return labels


def panel_labels(panel: str, side: int) -> np.ndarray:
    """Region label map (side, side) of a prototype face: "main", "hat" or "eye_g"."""
    if panel != "main" and panel not in SIDE_PANELS:
        raise ValueError(f"unknown panel {panel!r}; expected 'main', 'hat' or 'eye_g'")
    return _labels(side, panel)


def _text_size(text: str, scale: float) -> tuple[int, int]:
    (w, h), base = cv2.getTextSize(text, FONT, scale, 1)
    return w, h + base


def _put(img: np.ndarray, text: str, x: int, y: int, scale: float, colour=INK) -> None:
    """Text with its top-left corner at (x, y), whatever the font's baseline."""
    _, h = cv2.getTextSize(text, FONT, scale, 1)[0]
    cv2.putText(img, text, (x, y + h), FONT, scale, colour, 1, cv2.LINE_AA)


def _fmt(v: float) -> str:
    return f"{v:.3g}"


@lru_cache(maxsize=1)
def _jet() -> np.ndarray:
    ramp = np.arange(256, dtype=np.uint8).reshape(-1, 1)
    return cv2.applyColorMap(ramp, cv2.COLORMAP_JET)[:, 0, ::-1].copy()  # BGR → RGB


def _draw_face(labels: np.ndarray, colours: np.ndarray) -> np.ndarray:
    """Fill regions with their colour and darken pixels that border another region."""
    img = colours[labels]
    edge = np.zeros(labels.shape, dtype=bool)
    # A pixel is an edge when its right or lower neighbour differs: lines one pixel wide.
    edge[:, :-1] |= labels[:, :-1] != labels[:, 1:]
    edge[:-1, :] |= labels[:-1, :] != labels[1:, :]
    img[edge] = EDGE
    return img


def _scale(size: int) -> float:
    return max(0.35, 0.45 * size / 256)


def _title_height(title: str, scale: float, pad: int) -> int:
    return _text_size(title or "Ag", scale)[1] + 2 * pad


def _caption_height(size: int) -> int:
    return _text_size("Ag", _scale(size) * 0.85)[1] + 3


def prototype_layout(size: int = 256, title: str = "") -> dict[str, Panel]:
    """Where the faces of :func:`prototype_figure` sit: "main", "hat" and "eye_g"."""
    pad = max(4, size // 32)
    top = _title_height(title, _scale(size) * 1.2, pad)
    caption = _caption_height(size)
    # Each small face has a caption line above it and a gap below it for its frame.
    side = (size - pad - 2 * caption) // 2
    x_side = pad + size + pad
    return {
        "main": Panel(top, pad, size),
        "hat": Panel(top + caption, x_side, side),
        "eye_g": Panel(top + size - side, x_side, side),
    }


def prototype_figure(
    ior: Mapping[str, float | None], title: str = "", size: int = 256
) -> np.ndarray:
    """The FaceX face prototype: each region's IoR on an abstract face, blue→red.

    Colours span the min..max of the given values (FaceX, Sarridis et al. 2024, Fig. 3);
    regions with no value are light grey. Hat and eyeglasses cover other regions, so they
    are drawn on two small faces in a side panel. A colour bar gives the range and a
    legend names the three regions with the highest IoR.

    Args:
        ior: IoR per CelebAMask-HQ region name; missing, None or NaN regions are grey.
        title: printed at the top.
        size: side of the main face in pixels.

    Returns:
        RGB uint8 image (H, W, 3).
    """
    unknown = sorted(set(ior) - set(REGION_ID))
    if unknown:
        raise ValueError(f"not CelebAMask-HQ regions: {unknown}")
    values = {r: float(v) for r, v in ior.items() if v is not None and math.isfinite(float(v))}
    lo = min(values.values(), default=0.0)
    hi = max(values.values(), default=0.0)
    jet = _jet()
    colours = np.full((len(REGION_NAMES), 3), GREY, dtype=np.uint8)
    for r, v in values.items():
        t = (v - lo) / (hi - lo) if hi > lo else 0.5  # one value (or all equal): mid-scale
        colours[REGION_ID[r]] = jet[round(t * 255)]

    pad = max(4, size // 32)
    scale = _scale(size)
    layout = prototype_layout(size, title)
    main, hat, eye_g = layout["main"], layout["hat"], layout["eye_g"]

    # Right column: colour bar with its range, then the top-3 legend.
    ranked = sorted(values.items(), key=lambda kv: -kv[1])[:3]  # stable: ties keep ior order
    legend = [f"{i} {r} {_fmt(v)}" for i, (r, v) in enumerate(ranked, 1)]
    bar_w = max(8, size // 20)
    labels_w = max((_text_size(_fmt(v), scale)[0] for v in (lo, hi)), default=0)
    col_w = max([bar_w + pad + labels_w] + [_text_size(s, scale)[0] for s in legend])
    captions_w = max(_text_size(c, scale * 0.85)[0] for c in SIDE_CAPTIONS.values())
    x_col = hat.x + max(hat.side, captions_w) + 2 * pad
    width = max(x_col + col_w, _text_size(title, scale * 1.2)[0] + pad) + pad
    line_h = _text_size("Ag", scale)[1] + 2
    bar_top = main.y + line_h
    bar_h = size // 2
    legend_end = bar_top + bar_h + pad + len(legend) * (line_h + 2)
    height = max(main.y + size, legend_end) + pad
    fig = np.full((height, width, 3), 255, dtype=np.uint8)

    if title:
        _put(fig, title, pad, pad, scale * 1.2)
    fig[main.y : main.y + size, main.x : main.x + size] = _draw_face(
        panel_labels("main", size), colours
    )
    for name, p in (("hat", hat), ("eye_g", eye_g)):
        only = np.full_like(colours, GREY)
        only[REGION_ID[name]] = colours[REGION_ID[name]]
        fig[p.y : p.y + p.side, p.x : p.x + p.side] = _draw_face(panel_labels(name, p.side), only)
        _put(fig, SIDE_CAPTIONS[name], p.x, p.y - _caption_height(size), scale * 0.85)
        cv2.rectangle(fig, (p.x - 1, p.y - 1), (p.x + p.side, p.y + p.side), EDGE, 1)

    if values:
        ramp = jet[np.linspace(255, 0, bar_h).round().astype(int)]  # high at the top
        fig[bar_top : bar_top + bar_h, x_col : x_col + bar_w] = ramp[:, None, :]
        cv2.rectangle(fig, (x_col, bar_top), (x_col + bar_w - 1, bar_top + bar_h - 1), EDGE, 1)
        _put(fig, _fmt(hi), x_col + bar_w + pad, bar_top, scale)
        _put(fig, _fmt(lo), x_col + bar_w + pad, bar_top + bar_h - line_h + 2, scale)
        _put(fig, "IoR", x_col, main.y, scale)
    else:
        _put(fig, "no IoR", x_col, bar_top, scale)
    y = bar_top + bar_h + pad
    for line in legend:
        _put(fig, line, x_col, y, scale)
        y += line_h + 2
    return fig


def _to_hwc(pixels: Any) -> np.ndarray:
    arr = pixels.detach().cpu().numpy() if hasattr(pixels, "detach") else np.asarray(pixels)
    return np.ascontiguousarray(arr.transpose(1, 2, 0).astype(np.uint8))


def patch_grid_figure(
    patches: Mapping[str, PatchSet], order: Sequence[str], cell: int = 32, title: str = ""
) -> np.ndarray:
    """FaceX high-impact patches: one row per region, its patches by value, left to right.

    (Sarridis et al. 2024, §3.3.) Regions in ``order`` with no patches are skipped; each
    patch is upscaled to ``cell``×``cell`` with nearest neighbour, 2-pixel white gaps.

    Args:
        patches: per region, its :class:`~metrics.patches.PatchSet` (value descending).
        order: regions to draw, top to bottom.
        cell: side of a drawn patch in pixels.
        title: printed at the top.

    Returns:
        RGB uint8 image (H, W, 3) on a white background.
    """
    rows = [r for r in order if r in patches and len(patches[r]) > 0]
    scale = max(0.35, 0.4 * cell / 32)
    pad = 4
    top = _title_height(title, scale * 1.2, pad) if title else GAP
    names_w = max((_text_size(r, scale)[0] for r in rows), default=0) + 2 * pad
    n_cols = max((len(patches[r]) for r in rows), default=0)
    width = max(names_w + n_cols * (cell + GAP), _text_size(title, scale * 1.2)[0] + 2 * pad)
    height = top + len(rows) * (cell + GAP)
    fig = np.full((max(height, top + GAP), max(width, 1), 3), 255, dtype=np.uint8)
    if title:
        _put(fig, title, pad, pad, scale * 1.2)
    text_h = _text_size("Ag", scale)[1]
    for i, r in enumerate(rows):
        y = top + i * (cell + GAP)
        _put(fig, r, pad, y + (cell - text_h) // 2, scale)
        for j, px in enumerate(patches[r].pixels):
            x = names_w + j * (cell + GAP)
            tile = cv2.resize(_to_hwc(px), (cell, cell), interpolation=cv2.INTER_NEAREST)
            fig[y : y + cell, x : x + cell] = tile
    return fig


def canonical_figure(
    summary: np.ndarray, face: np.ndarray, title: str = "", size: int = 256, alpha: float = 0.55
) -> np.ndarray:
    """An explainer's canonical summary: its mean canonical map over the canonical face.

    (John et al. 2021, Canonical Saliency Maps, Fig. 1.) Blue→red spans the summary's
    min..max and is blended over the face in grey, so facial parts stay visible.

    Args:
        summary: (H_F, W_F) mean of the min-max normalised maps projected onto F.
        face: (H_F, W_F, 3) uint8 picture of the canonical face.
        title: printed at the top.
        size: side of the drawn face in pixels.
        alpha: weight of the heat map in the blend.

    Returns:
        RGB uint8 image (H, W, 3).
    """
    values = np.nan_to_num(np.asarray(summary, dtype=np.float64))
    lo, hi = float(values.min()), float(values.max())
    t = (values - lo) / (hi - lo) if hi > lo else np.full_like(values, 0.5)
    t = cv2.resize(t.astype(np.float32), (size, size), interpolation=cv2.INTER_LINEAR)
    heat = _jet()[np.clip(np.round(t * 255), 0, 255).astype(int)]
    grey = cv2.cvtColor(np.ascontiguousarray(face, dtype=np.uint8), cv2.COLOR_RGB2GRAY)
    grey = cv2.resize(grey, (size, size), interpolation=cv2.INTER_CUBIC)[..., None]
    blend = (alpha * heat + (1 - alpha) * grey).round().astype(np.uint8)

    pad = max(4, size // 32)
    scale = _scale(size)
    top = _title_height(title, scale * 1.2, pad)
    bar_w = max(8, size // 20)
    labels_w = max(_text_size(_fmt(v), scale)[0] for v in (lo, hi))
    width = max(pad + size + 2 * pad + bar_w + pad + labels_w, _text_size(title, scale * 1.2)[0])
    fig = np.full((top + size + pad, width + pad, 3), 255, dtype=np.uint8)
    if title:
        _put(fig, title, pad, pad, scale * 1.2)
    fig[top : top + size, pad : pad + size] = blend
    x_bar, line_h = pad + size + 2 * pad, _text_size("Ag", scale)[1] + 2
    ramp = _jet()[np.linspace(255, 0, size // 2).round().astype(int)]
    fig[top + line_h : top + line_h + size // 2, x_bar : x_bar + bar_w] = ramp[:, None, :]
    _put(fig, "mean map", x_bar, top, scale)
    _put(fig, _fmt(hi), x_bar + bar_w + pad, top + line_h, scale)
    _put(fig, _fmt(lo), x_bar + bar_w + pad, top + size // 2, scale)
    return fig


def gallery_figure(
    image: np.ndarray, amap: np.ndarray, mask: np.ndarray | None, title: str = "", size: int = 128
) -> np.ndarray:
    """One explained face of the per-image gallery: the image, its map (min-max, blue →
    red, over the face in grey) and the scenario's bias-region mask (white), side by side.

    Args:
        image: (H, W, 3) uint8 face as explained.
        amap: (H, W) the map as the region metrics read it (post-processed).
        mask: (H, W) bool bias regions, or None where the scenario has none.
        title: printed at the top.
        size: side of each panel in pixels.
    """
    face = cv2.resize(np.ascontiguousarray(image, np.uint8), (size, size),
                      interpolation=cv2.INTER_NEAREST)  # fmt: skip
    values = np.nan_to_num(np.asarray(amap, np.float64))
    lo, hi = float(values.min()), float(values.max())
    t = (values - lo) / (hi - lo) if hi > lo else np.zeros_like(values)
    t = cv2.resize(t.astype(np.float32), (size, size), interpolation=cv2.INTER_NEAREST)
    heat = _jet()[np.clip(np.round(t * 255), 0, 255).astype(int)]
    grey = cv2.cvtColor(face, cv2.COLOR_RGB2GRAY)[..., None]
    blend = (0.6 * heat + 0.4 * grey).round().astype(np.uint8)
    panels = [face, blend]
    captions = ["image", "map"]
    if mask is not None:
        m = cv2.resize(np.asarray(mask, np.uint8), (size, size), interpolation=cv2.INTER_NEAREST)
        panels.append(np.repeat((m * 255).astype(np.uint8)[..., None], 3, 2))
        captions.append("bias regions")
    pad, scale = max(4, size // 32), _scale(size)
    top = _title_height(title, scale, pad)
    line_h = _text_size("Ag", scale)[1] + pad
    width = max(len(panels) * (size + pad) + pad, _text_size(title, scale)[0] + 2 * pad)
    fig = np.full((top + size + line_h + pad, width, 3), 255, dtype=np.uint8)
    if title:
        _put(fig, title, pad, pad, scale)
    for i, (panel, caption) in enumerate(zip(panels, captions, strict=True)):
        x = pad + i * (size + pad)
        fig[top : top + size, x : x + size] = panel
        _put(fig, caption, x, top + size + pad // 2, scale)
    return fig


def encode_png(image: np.ndarray) -> bytes:
    """PNG bytes of an RGB uint8 image (H, W, 3)."""
    if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
        raise ValueError(f"expected an RGB uint8 (H, W, 3) image, got {image.dtype} {image.shape}")
    ok, buf = cv2.imencode(".png", cv2.cvtColor(image, cv2.COLOR_RGB2BGR))
    if not ok:
        raise RuntimeError("OpenCV could not encode the image as PNG")
    return buf.tobytes()
