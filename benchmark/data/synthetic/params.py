"""Per-face render parameters: sampling, counterfactual toggling and the canonical face.

A face is fully described by a :class:`FaceParams` row: the binary attributes, the skin-tone
group and every continuous choice the renderer makes (shape latents, colours, pose, noise
seed). Shapes that depend on ``Male``/``Young`` are stored as class-free latents and the
class shift is applied at render time, so flipping an attribute re-renders the *same*
person with only that attribute changed.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from dataclasses import dataclass

import torch

ATTRIBUTES: tuple[str, ...] = (
    "Male", "Young", "Blond_Hair", "Eyeglasses", "Smiling", "Wearing_Earrings",
    "Wearing_Lipstick", "Wearing_Necklace", "Wearing_Hat", "Heavy_Makeup",
)  # fmt: skip
GROUPS: tuple[str, ...] = ("skin_tone",)
TARGETS: tuple[str, ...] = ("Male", "Young")  # attributes expressed by subtle, spread-out cues

DEFAULT_PREVALENCE: dict[str, float] = {
    "Male": 0.5, "Young": 0.5, "Blond_Hair": 0.35, "Eyeglasses": 0.35, "Smiling": 0.5,
    "Wearing_Earrings": 0.35, "Wearing_Lipstick": 0.45, "Wearing_Necklace": 0.35,
    "Wearing_Hat": 0.35, "Heavy_Makeup": 0.4,
}  # fmt: skip

# Column names of the latent matrices (standard normal, clipped to +-2.5).
SHAPE_KEYS: tuple[str, ...] = (
    "face_w", "face_h", "jaw_taper", "jaw_square", "eye_y", "eye_dx", "eye_w", "eye_h",
    "brow_gap", "brow_thick", "brow_arch", "nose_len", "nose_w", "mouth_y", "mouth_w",
    "lip_thick", "ear", "neck_w", "eye_tilt", "chin",
)  # fmt: skip
CUE_KEYS: tuple[str, ...] = ("stubble", "wrinkles", "texture", "grey", "sag", "under_eye")
HAIR_STYLES: tuple[str, ...] = ("short", "long", "buzz", "bob")
SKIN_TONES: tuple[str, ...] = ("light", "medium_light", "medium_dark", "dark")


@dataclass(frozen=True)
class FaceParams:
    """Everything needed to render N faces; every field has first dimension N.

    Attributes:
        attributes: int8 (N, 10) binary attributes in ``ATTRIBUTES`` order.
        skin_tone: int64 (N,) group 0..3, light to dark.
        target_gain: float32 (N, 2) how strongly the Male/Young cues are expressed
            (1 for sampled faces; 0 leaves the canonical face sex- and age-neutral).
        pose: float32 (N, 4) rotation (radians), scale, shift x and y (fraction of size).
        shape: float32 (N, len(SHAPE_KEYS)) identity shape latents, ~N(0, 1).
        cues: float32 (N, len(CUE_KEYS)) latents of the age/sex texture cues, ~N(0, 1).
        skin: float32 (N, 2) lightness and warmth jitter within the tone group.
        hair_style: int64 (N,) index into ``HAIR_STYLES``.
        hair: float32 (N, 3) fringe (0/1), volume, length latent in [0, 1].
        hair_rgb: float32 (N, 3) natural (non-blond) hair colour.
        blond_rgb: float32 (N, 3) hair colour used when Blond_Hair is on.
        iris_rgb: float32 (N, 3).
        lipstick_rgb: float32 (N, 3) lip colour when Wearing_Lipstick is on.
        makeup_rgb: float32 (N, 6) eye-shadow and blush colours (Heavy_Makeup).
        glasses: float32 (N, 4) lens width and height latents, roundness, lens tint.
        frame_rgb: float32 (N, 3) spectacle frame colour.
        hat: float32 (N, 2) style (0 beanie, 1 brimmed), height latent.
        hat_rgb: float32 (N, 6) crown and band colours.
        jewel: float32 (N, 2) earring style (0 stud, 1 hoop), necklace drop latent.
        jewel_rgb: float32 (N, 6) earring and necklace colours.
        cloth_rgb: float32 (N, 3).
        cloth: float32 (N, 2) neckline width and depth latents in [0, 1].
        background: float32 (N, 8) two colours, texture amplitude, gradient angle.
        light: float32 (N, 2) lighting gradient angle (radians) and strength.
        noise_seed: int64 (N,) seed of the per-pixel noise fields.
        grain: float32 (N, 2) pixel-noise amplitude and texture gain (0 = clean).
    """

    attributes: torch.Tensor
    skin_tone: torch.Tensor
    target_gain: torch.Tensor
    pose: torch.Tensor
    shape: torch.Tensor
    cues: torch.Tensor
    skin: torch.Tensor
    hair_style: torch.Tensor
    hair: torch.Tensor
    hair_rgb: torch.Tensor
    blond_rgb: torch.Tensor
    iris_rgb: torch.Tensor
    lipstick_rgb: torch.Tensor
    makeup_rgb: torch.Tensor
    glasses: torch.Tensor
    frame_rgb: torch.Tensor
    hat: torch.Tensor
    hat_rgb: torch.Tensor
    jewel: torch.Tensor
    jewel_rgb: torch.Tensor
    cloth_rgb: torch.Tensor
    cloth: torch.Tensor
    background: torch.Tensor
    light: torch.Tensor
    noise_seed: torch.Tensor
    grain: torch.Tensor

    def __len__(self) -> int:
        return int(self.attributes.shape[0])

    def __getitem__(self, index: torch.Tensor | slice | int) -> FaceParams:
        """The faces at ``index`` (an int keeps the batch dimension)."""
        if not isinstance(index, slice | torch.Tensor) and hasattr(index, "__index__"):
            i = range(len(self))[index]  # negative ints count from the end, as usual
            index = slice(i, i + 1)
        return FaceParams(**{k: v[index] for k, v in self.as_dict().items()})

    def attribute(self, name: str) -> torch.Tensor:
        """Column ``name`` of the attributes, or the skin-tone group, shape (N,)."""
        if name == "skin_tone":
            return self.skin_tone
        return self.attributes[:, ATTRIBUTES.index(name)]

    def as_dict(self, prefix: str = "") -> dict[str, torch.Tensor]:
        """Flat ``{prefix + field: tensor}``, e.g. ``prefix="param."`` for ``FaceArrays.extras``."""
        return {prefix + f.name: getattr(self, f.name) for f in dataclasses.fields(self)}

    @classmethod
    def from_dict(cls, data: Mapping[str, torch.Tensor], prefix: str = "") -> FaceParams:
        """Inverse of :meth:`as_dict`; other keys in ``data`` are ignored."""
        names = [f.name for f in dataclasses.fields(cls)]
        missing = [n for n in names if prefix + n not in data]
        if missing:
            raise KeyError(f"missing face parameters: {', '.join(prefix + n for n in missing)}")
        return cls(**{n: data[prefix + n] for n in names})


def _attribute_index(name: str) -> int:
    if name not in ATTRIBUTES:
        raise ValueError(f"unknown attribute {name!r}; expected one of {ATTRIBUTES}")
    return ATTRIBUTES.index(name)


def hsv_to_rgb(h: torch.Tensor, s: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """Per-sample HSV (each (N,), hue in [0, 1)) to float RGB (N, 3)."""
    k = torch.tensor([5.0, 3.0, 1.0], dtype=h.dtype)
    k = (k + h[:, None] * 6.0) % 6.0
    f = torch.clamp(torch.minimum(k, 4.0 - k), 0.0, 1.0)
    return v[:, None] - v[:, None] * s[:, None] * f


def _pick(palette: list[tuple[float, ...]], n: int, gen: torch.Generator) -> torch.Tensor:
    table = torch.tensor(palette, dtype=torch.float32)
    return table[torch.randint(len(palette), (n,), generator=gen)]


def _jitter(rgb: torch.Tensor, amount: float, gen: torch.Generator) -> torch.Tensor:
    return (rgb + amount * torch.randn(rgb.shape, generator=gen)).clamp(0.0, 1.0)


_HAIR = [(0.07, 0.055, 0.05), (0.16, 0.10, 0.07), (0.30, 0.19, 0.11), (0.42, 0.27, 0.16),
         (0.45, 0.17, 0.08)]  # fmt: skip  # black, dark brown, brown, light brown, auburn
_BLOND = [(0.87, 0.74, 0.45), (0.80, 0.64, 0.34), (0.93, 0.84, 0.60)]
_IRIS = [(0.25, 0.15, 0.08), (0.12, 0.08, 0.05), (0.28, 0.42, 0.55), (0.30, 0.40, 0.22)]
_LIPSTICK = [(0.78, 0.05, 0.12), (0.66, 0.03, 0.10), (0.88, 0.14, 0.36), (0.64, 0.04, 0.24),
             (0.90, 0.22, 0.18)]  # fmt: skip  # red, crimson, pink, berry, coral
_SHADOW = [(0.45, 0.25, 0.50), (0.35, 0.22, 0.15), (0.25, 0.35, 0.60), (0.70, 0.55, 0.30)]
_FRAME = [(0.05, 0.05, 0.05), (0.18, 0.10, 0.06), (0.06, 0.08, 0.20), (0.25, 0.05, 0.07)]
_METAL = [(0.95, 0.80, 0.30), (0.90, 0.90, 0.95), (0.98, 0.93, 0.85)]  # gold, silver, pearl


def sample_params(n: int, seed: int, prevalence: Mapping[str, float] | None = None) -> FaceParams:
    """Draw ``n`` random faces, every attribute independent of every other.

    Args:
        n: number of faces.
        seed: the result is a deterministic function of ``(n, seed, prevalence)``.
        prevalence: per-attribute probability of 1, overriding ``DEFAULT_PREVALENCE``.

    Returns:
        The parameters of ``n`` faces.
    """
    probs = dict(DEFAULT_PREVALENCE)
    for name, p in (prevalence or {}).items():
        _attribute_index(name)
        if not 0.0 <= float(p) <= 1.0:
            raise ValueError(f"prevalence of {name!r} must lie in [0, 1], got {p}")
        probs[name] = float(p)
    gen = torch.Generator().manual_seed(int(seed))
    p_vec = torch.tensor([probs[a] for a in ATTRIBUTES])
    attributes = (torch.rand(n, len(ATTRIBUTES), generator=gen) < p_vec).to(torch.int8)

    def uniform(*shape: int, lo: float = 0.0, hi: float = 1.0) -> torch.Tensor:
        return lo + (hi - lo) * torch.rand(*shape, generator=gen)

    def latent(*shape: int) -> torch.Tensor:
        return torch.randn(*shape, generator=gen).clamp(-2.5, 2.5)

    rot = uniform(n, lo=-8.0, hi=8.0) * (math.pi / 180.0)
    pose = torch.stack(
        [rot, uniform(n, lo=0.92, hi=1.08), uniform(n, lo=-0.06, hi=0.06),
         uniform(n, lo=-0.06, hi=0.06)], dim=1,
    )  # fmt: skip
    style_cdf = torch.tensor([0.4, 0.7, 0.8])  # short 40%, long 30%, buzz 10%, bob 20%
    hair_style = torch.bucketize(uniform(n), style_cdf, right=True)
    hair = torch.stack([(uniform(n) < 0.4).float(), uniform(n), uniform(n)], dim=1)
    hat_rgb = hsv_to_rgb(uniform(n), uniform(n, lo=0.5, hi=0.9), uniform(n, lo=0.45, hi=0.9))
    band_rgb = hsv_to_rgb(uniform(n), uniform(n, lo=0.2, hi=0.8), uniform(n, lo=0.15, hi=0.9))
    cloth_rgb = hsv_to_rgb(uniform(n), uniform(n, lo=0.1, hi=0.7), uniform(n, lo=0.15, hi=0.85))
    bg = [hsv_to_rgb(uniform(n), uniform(n, lo=0.0, hi=0.35), uniform(n, lo=0.3, hi=0.9))
          for _ in range(2)]  # fmt: skip
    background = torch.cat(
        [bg[0], bg[1], uniform(n, lo=0.05, hi=0.3)[:, None], uniform(n, hi=2 * math.pi)[:, None]],
        dim=1,
    )
    sunglasses = uniform(n) < 0.12
    tint = torch.where(sunglasses, uniform(n, lo=0.15, hi=0.35), uniform(n, lo=0.82, hi=0.95))
    glasses = torch.stack([latent(n), latent(n), uniform(n), tint], dim=1)
    return FaceParams(
        attributes=attributes,
        skin_tone=torch.randint(len(SKIN_TONES), (n,), generator=gen),
        target_gain=torch.ones(n, len(TARGETS)),
        pose=pose,
        shape=latent(n, len(SHAPE_KEYS)),
        cues=latent(n, len(CUE_KEYS)),
        skin=latent(n, 2),
        hair_style=hair_style,
        hair=hair,
        hair_rgb=_jitter(_pick(_HAIR, n, gen), 0.02, gen),
        blond_rgb=_jitter(_pick(_BLOND, n, gen), 0.03, gen),
        iris_rgb=_jitter(_pick(_IRIS, n, gen), 0.03, gen),
        lipstick_rgb=_jitter(_pick(_LIPSTICK, n, gen), 0.03, gen),
        makeup_rgb=torch.cat(
            [
                _jitter(_pick(_SHADOW, n, gen), 0.04, gen),
                _jitter(torch.tensor([[0.88, 0.36, 0.40]]).expand(n, 3), 0.04, gen),
            ],
            dim=1,
        ),
        glasses=glasses,
        frame_rgb=_jitter(_pick(_FRAME, n, gen), 0.02, gen),
        hat=torch.stack([(uniform(n) < 0.35).float(), uniform(n)], dim=1),
        hat_rgb=torch.cat([hat_rgb, band_rgb], dim=1),
        jewel=torch.stack([(uniform(n) < 0.5).float(), uniform(n)], dim=1),
        jewel_rgb=torch.cat([_pick(_METAL, n, gen), _pick(_METAL, n, gen)], dim=1),
        cloth_rgb=cloth_rgb,
        cloth=uniform(n, 2),
        background=background,
        light=torch.stack([uniform(n, hi=2 * math.pi), uniform(n, lo=0.0, hi=0.25)], dim=1),
        noise_seed=torch.randint(0, 2**31 - 1, (n,), generator=gen),
        grain=torch.stack([uniform(n, lo=0.01, hi=0.035), torch.ones(n)], dim=1),
    )


def toggle(params: FaceParams, attribute: str, value: int | None = None) -> FaceParams:
    """The same faces with one attribute flipped (or set to ``value``), all else identical.

    Args:
        params: the faces.
        attribute: a name in ``ATTRIBUTES``, or ``"skin_tone"`` (then ``value`` is required).
        value: the new value for every face; ``None`` flips each face's current value.

    Returns:
        New parameters; noise seeds, pose and all other latents are shared. Toggling
        ``Male``/``Young`` also sets that target's cue gain to 1, so the cues show even on
        a canonical (neutral) face.
    """
    if attribute == "skin_tone":
        if value is None or not 0 <= int(value) < len(SKIN_TONES):
            raise ValueError(f"skin_tone needs a value in 0..{len(SKIN_TONES) - 1}")
        tone = torch.full_like(params.skin_tone, int(value))
        return dataclasses.replace(params, skin_tone=tone)
    col = _attribute_index(attribute)
    attributes = params.attributes.clone()
    if value is None:
        attributes[:, col] = 1 - attributes[:, col]
    elif int(value) in (0, 1):
        attributes[:, col] = int(value)
    else:
        raise ValueError(f"{attribute} takes 0 or 1, got {value}")
    changes: dict[str, torch.Tensor] = {"attributes": attributes}
    if attribute in TARGETS:
        gain = params.target_gain.clone()
        gain[:, TARGETS.index(attribute)] = 1.0
        changes["target_gain"] = gain
    return dataclasses.replace(params, **changes)


def canonical_params(attributes: Mapping[str, int] | None = None) -> FaceParams:
    """One mean face: centred, unrotated, neutral colours, no noise or texture.

    Args:
        attributes: attributes to switch on (or off), e.g. ``{"Eyeglasses": 1}``;
            ``"skin_tone"`` (0..3, default 1) is accepted too. ``Male``/``Young`` left
            out keep their cues neutral (gain 0) although their stored value reads 0.

    Returns:
        Parameters with N = 1.
    """
    attrs = torch.zeros(1, len(ATTRIBUTES), dtype=torch.int8)
    gain = torch.zeros(1, len(TARGETS))
    tone = 1
    for name, value in (attributes or {}).items():
        if name == "skin_tone":
            tone = int(value)
            continue
        attrs[0, _attribute_index(name)] = int(value)
        if name in TARGETS:
            gain[0, TARGETS.index(name)] = 1.0

    def row(*values: float) -> torch.Tensor:
        return torch.tensor([values], dtype=torch.float32)

    return FaceParams(
        attributes=attrs,
        skin_tone=torch.tensor([tone]),
        target_gain=gain,
        pose=row(0.0, 1.0, 0.0, 0.0),
        shape=torch.zeros(1, len(SHAPE_KEYS)),
        cues=torch.zeros(1, len(CUE_KEYS)),
        skin=torch.zeros(1, 2),
        hair_style=torch.tensor([0]),
        hair=row(0.0, 0.5, 0.5),
        hair_rgb=row(*_HAIR[1]),
        blond_rgb=row(*_BLOND[0]),
        iris_rgb=row(*_IRIS[0]),
        lipstick_rgb=row(*_LIPSTICK[0]),
        makeup_rgb=row(*_SHADOW[0], 0.88, 0.36, 0.40),
        glasses=row(0.0, 0.0, 0.5, 0.9),
        frame_rgb=row(*_FRAME[0]),
        hat=row(0.0, 0.5),
        hat_rgb=row(0.20, 0.35, 0.65, 0.85, 0.85, 0.85),
        jewel=row(0.0, 0.5),
        jewel_rgb=row(*_METAL[0], *_METAL[0]),
        cloth_rgb=row(0.30, 0.38, 0.50),
        cloth=row(0.5, 0.5),
        background=row(0.72, 0.72, 0.72, 0.72, 0.72, 0.72, 0.0, 0.0),
        light=row(0.0, 0.0),
        noise_seed=torch.tensor([0]),
        grain=row(0.0, 0.0),
    )
