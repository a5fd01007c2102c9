"""The batched renderer: parameters in, images with exact annotations out."""

from __future__ import annotations

from collections.abc import Mapping

import torch

from benchmark.data.base import FaceArrays
from benchmark.data.regions import REGION_ID, REGION_NAMES
from benchmark.data.synthetic import effects
from benchmark.data.synthetic.geometry import Geo, annotations, derive
from benchmark.data.synthetic.noise import fine_noise, smooth_noise
from benchmark.data.synthetic.params import ATTRIBUTES, FaceParams, canonical_params
from benchmark.data.synthetic.raster import (
    MATERIAL_REGION,
    MATERIALS,
    SIDED,
    Canvas,
    M,
    paint_accessories,
    paint_body,
    paint_face,
    paint_features,
)  # fmt: skip

CHUNK_PIXELS = 1 << 21  # faces per chunk = this / pixels per face: bounds temporary memory
SKIN_RGB = torch.tensor(
    [[0.95, 0.80, 0.70], [0.86, 0.66, 0.52], [0.66, 0.46, 0.33], [0.42, 0.28, 0.20]],
    dtype=torch.float64,
)
_REGION_OF = torch.tensor([REGION_ID[MATERIAL_REGION[m]] for m in MATERIALS], dtype=torch.uint8)
_IS_SIDED = torch.tensor([m in SIDED for m in MATERIALS], dtype=torch.uint8)


def _palette(p: FaceParams, g: Geo) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-face colour of every material (N, M, 3) and texture amplitudes (3, N, M)."""
    f = torch.float64
    n = len(p)
    on = {a: p.attributes[:, i].to(torch.bool)[:, None] for i, a in enumerate(ATTRIBUTES)}
    jitter = p.skin.to(f)
    skin = SKIN_RGB[p.skin_tone] * (1.0 + 0.05 * jitter[:, :1])
    skin = (skin + 0.015 * jitter[:, 1:] * torch.tensor([1.0, 0.0, -1.0], dtype=f)).clamp(0, 1)
    natural = p.hair_rgb.to(f)
    hair = torch.where(on["Blond_Hair"], p.blond_rgb.to(f), natural)
    grey = g.grey[:, None]
    hair = hair * (1.0 - grey) + grey * torch.tensor([0.68, 0.67, 0.66], dtype=f)
    buzz = (p.hair_style == 2)[:, None]
    hair = torch.where(buzz, 0.55 * hair + 0.45 * 0.85 * skin, hair)
    lips = skin * torch.tensor([0.92, 0.78, 0.78], dtype=f) + torch.tensor([0.03, 0.0, 0.01])
    lips = torch.where(on["Wearing_Lipstick"], p.lipstick_rgb.to(f), lips)

    def rgb(*c: float) -> torch.Tensor:
        return torch.tensor(c, dtype=f).expand(n, 3)

    colours = {
        "background": p.background[:, :3].to(f), "skin": skin, "nose": 0.97 * skin,
        "nostril": 0.45 * skin, "sclera": rgb(0.9, 0.88, 0.85), "iris": p.iris_rgb.to(f),
        "pupil": rgb(0.05, 0.04, 0.04), "lash": rgb(0.1, 0.07, 0.06),
        "brow": 0.75 * natural + 0.1 * skin, "ear": skin * torch.tensor([0.97, 0.92, 0.92]),
        "ear_inner": 0.75 * skin, "mouth": rgb(0.32, 0.07, 0.08), "teeth": rgb(0.92, 0.9, 0.84),
        "u_lip": lips, "l_lip": (1.07 * lips).clamp(0, 1), "hair": hair, "hair_back": 0.8 * hair,
        "hat": p.hat_rgb[:, :3].to(f), "hat_band": p.hat_rgb[:, 3:].to(f),
        "earring": p.jewel_rgb[:, :3].to(f), "necklace": p.jewel_rgb[:, 3:].to(f),
        "neck": 0.88 * skin, "cloth": p.cloth_rgb.to(f), "frame": p.frame_rgb.to(f),
    }  # fmt: skip
    palette = torch.stack([colours[m] for m in MATERIALS], 1).float()

    # Texture amplitudes (fine, smooth, streak noise) per material; 0 on the canonical face.
    amp = torch.zeros(3, n, len(MATERIALS), dtype=f)
    for m in ("skin", "nose", "ear", "ear_inner", "neck"):
        amp[0, :, M[m]], amp[1, :, M[m]] = g.texture, 0.04
    for m, a in (("hair", (0.04, 0.1, 0.25)), ("hair_back", (0.04, 0.1, 0.25)),
                 ("hat", (0.03, 0.08, 0.0)), ("hat_band", (0.03, 0.08, 0.0)),
                 ("cloth", (0.03, 0.12, 0.0)), ("u_lip", (0.02, 0.0, 0.0)),
                 ("l_lip", (0.02, 0.0, 0.0))):  # fmt: skip
        amp[:, :, M[m]] = torch.tensor(a, dtype=f)[:, None]
    amp[0, :, 0], amp[1, :, 0] = 0.02, p.background[:, 6].to(f)
    return palette, (p.grain[:, 1].to(f)[None, :, None] * amp).float()


def _render_chunk(p: FaceParams, size: int) -> dict[str, torch.Tensor]:
    """Materials back to front, then labels, flat colours, shading, effects and noise."""
    n = len(p)
    geo = derive(p, size)
    cv = Canvas(geo, p.attributes, size)
    paint_body(cv)
    face, r2 = paint_face(cv)
    paint_features(cv, face, r2)
    paint_accessories(cv)

    idx = cv.mat.reshape(n, -1).long()
    label = _REGION_OF[idx] + (_IS_SIDED[idx] * (cv.u.reshape(n, -1) > 0.0))
    label = label.reshape(n, size, size)
    if cv.lens is not None and cv.lens_mask is not None:
        view = label[:, cv.lens.rows, cv.lens.cols]
        # METHODS.md §1 (CelebAMask-HQ merge): later labels win, so eyes and brows stay
        # visible through the lens; it only relabels background, skin and nose.
        view.masked_fill_(cv.lens_mask & (view < REGION_ID["eye_g"]), REGION_ID["eye_g"])

    palette, amp = _palette(p, geo)
    img = torch.gather(palette.transpose(1, 2), 2, idx[:, None, :].expand(n, 3, -1))
    img = img.reshape(n, 3, size, size)
    seed = p.noise_seed
    fine = fine_noise(seed, size, 1)
    fields = (fine, smooth_noise(seed, size, 2), smooth_noise(seed, size, 4, stretch=8))
    tex = torch.zeros(n, size, size)
    for a, field in zip(amp, fields, strict=True):
        tex += torch.gather(a, 1, idx).reshape(n, size, size) * field

    # Background: a two-colour gradient along a random direction (before the texture).
    xs = ((torch.arange(size, dtype=torch.float64) + 0.5) * (2.0 / size) - 1.0).float()
    bg = p.background.to(torch.float64)
    ca, sa = (torch.cos(bg[:, 7]).float(), torch.sin(bg[:, 7]).float())
    ramp = 0.35 * (ca[:, None, None] * xs[None, None, :] + sa[:, None, None] * xs[None, :, None])
    ramp = (ramp + 0.5) * (cv.mat == 0)
    img += ramp.unsqueeze(1) * (bg[:, 3:6] - bg[:, :3]).float()[:, :, None, None]

    light = p.light.to(torch.float64)
    lx = (light[:, 1] * torch.cos(light[:, 0])).float()[:, None, None]
    ly = (light[:, 1] * torch.sin(light[:, 0])).float()[:, None, None]
    shade = (1.0 + tex) * (1.0 + (lx * xs[None, None, :] + ly * xs[None, :, None]))
    effects.shading(cv, shade, face, r2, fine)
    effects.makeup(cv, img, p.makeup_rgb[:, :3].float(), p.makeup_rgb[:, 3:].float())
    img *= shade.unsqueeze(1)
    effects.lenses(cv, img)
    img += p.grain[:, :1].float()[:, :, None, None] * fine_noise(seed, size, 3).unsqueeze(1)
    images = (img * 255.0 + 0.5).clamp_(0.0, 255.0).to(torch.uint8)
    return {"images": images, "label_maps": label, **annotations(geo, size)}


@torch.no_grad()
def render(params: FaceParams, size: int) -> FaceArrays:
    """Render faces with their label maps, landmarks, boxes and parameters.

    Args:
        params: the faces (any N, e.g. from :func:`sample_params`).
        size: image side in pixels.

    Returns:
        ``FaceArrays`` with uint8 images (N, 3, size, size), int8 attributes, uint8
        19-label maps, float32 5-point landmarks and face boxes, the ``skin_tone`` group,
        and extras ``dense_landmarks`` (N, 68, 2, iBUG-68 order: see
        ``geometry.dense_points``) plus ``param.<name>`` for every :class:`FaceParams`
        field (``FaceParams.from_dict(extras, "param.")`` recovers them). Each face's
        pixels do not depend on the batch it is rendered in.
    """
    if size < 8:
        raise ValueError(f"size must be at least 8 pixels, got {size}")
    n = len(params)
    step = max(1, CHUNK_PIXELS // (size * size))
    parts = [_render_chunk(params[i : i + step], size) for i in range(0, n, step)]
    if not parts:
        empty = {"images": torch.zeros(0, 3, size, size, dtype=torch.uint8),
                 "label_maps": torch.zeros(0, size, size, dtype=torch.uint8),
                 "landmarks": torch.zeros(0, 5, 2), "dense_landmarks": torch.zeros(0, 68, 2),
                 "boxes": torch.zeros(0, 4)}  # fmt: skip
        parts = [empty]
    out = {k: torch.cat([part[k] for part in parts]) for k in parts[0]}
    extras = {"dense_landmarks": out["dense_landmarks"]}
    extras.update({k: v.clone() for k, v in params.as_dict("param.").items()})
    return FaceArrays(
        images=out["images"],
        attributes=params.attributes.clone(),
        attribute_names=ATTRIBUTES,
        label_maps=out["label_maps"],
        landmarks=out["landmarks"],
        boxes=out["boxes"],
        groups={"skin_tone": params.skin_tone.clone()},
        extras=extras,
        regions=REGION_NAMES,
    )


def canonical_face(size: int, attributes: Mapping[str, int] | None = None) -> FaceArrays:
    """The canonical (mean, frontal, noise-free) face at any size, N = 1.

    Args:
        size: image side in pixels.
        attributes: accessories or attributes to show, e.g. ``{"Eyeglasses": 1}``.
    """
    return render(canonical_params(attributes), size)
