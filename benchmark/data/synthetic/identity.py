"""Who a synthetic face is, apart from how it was photographed: re-takes of the same
person (verification mates) and the inpainting game's nonmates, which differ from the
mate in one face part only.

The inpainting game (Mery-style region swaps; Williford et al., "Explainable Face
Recognition", ECCV 2020, §4) asks whether a map of the probe puts first the one region
in which the nonmate differs from the mate. Here the nonmate is rendered, not inpainted:
the same parameters as the mate, with one part's identity latents moved to the far side
of their range, so every other pixel is the mate's (up to a part's soft edge).
"""

from __future__ import annotations

import dataclasses
import hashlib

import torch

from benchmark.data.regions import PART_REGIONS
from benchmark.data.synthetic.params import _IRIS, SHAPE_KEYS, FaceParams, sample_params

#: Face parts the inpainting game changes: the shape latents each owns.
PART_KEYS: dict[str, tuple[str, ...]] = {
    "brows": ("brow_gap", "brow_thick", "brow_arch"),
    "eyes": ("eye_h", "eye_tilt"),
    "nose": ("nose_len", "nose_w"),
    "mouth": ("mouth_w", "lip_thick"),
}
assert set(PART_KEYS) == set(PART_REGIONS)
#: How far a swapped latent lands: the edge of the sampled range (latents are clipped
#: to ±2.5), on the side away from the mate's value, so each swap moves ≥ 2.5 σ.
FAR = 2.5


def retake(params: FaceParams, seed: int) -> FaceParams:
    """The same people photographed again: pose, lighting, noise, grain, background and
    clothes drawn anew from ``seed``; face, hair and accessories kept."""
    fresh = sample_params(len(params), seed)
    return dataclasses.replace(
        params, pose=fresh.pose, light=fresh.light, noise_seed=fresh.noise_seed,
        grain=fresh.grain, background=fresh.background, cloth_rgb=fresh.cloth_rgb,
        cloth=fresh.cloth,
    )  # fmt: skip


def swap_part(params: FaceParams, part: str) -> FaceParams:
    """The same faces with one part's identity changed: each of its latents moved to
    ``±FAR`` opposite its current sign, and for the eyes the iris colour too.

    Args:
        params: the faces (e.g. a mate's re-take).
        part: a key of ``PART_KEYS``.

    Returns:
        New parameters; everything outside the part (pose, noise, other latents) is shared.
    """
    if part not in PART_KEYS:
        raise ValueError(f"unknown face part {part!r}; expected one of {sorted(PART_KEYS)}")
    shape = params.shape.clone()
    cols = [SHAPE_KEYS.index(k) for k in PART_KEYS[part]]
    z = shape[:, cols]
    shape[:, cols] = torch.where(z > 0, -FAR, FAR).to(z.dtype)
    changes: dict[str, torch.Tensor] = {"shape": shape}
    if part == "eyes":
        # The palette iris farthest from each face's own: a colour change the eye shows.
        palette = torch.tensor(_IRIS, dtype=params.iris_rgb.dtype)
        far = torch.cdist(params.iris_rgb, palette).argmax(1)
        changes["iris_rgb"] = palette[far]
    return dataclasses.replace(params, **changes)


def siblings(params: FaceParams, seed: int) -> FaceParams:
    """People who share everything with ``params`` but their face parts: every part
    latent at ``±FAR`` with a random sign, a random iris colour. Training an embedding
    on them as separate identities teaches it that face parts carry identity, as hair,
    skin and accessories otherwise would on their own."""
    gen = torch.Generator().manual_seed(int(seed))
    cols = [SHAPE_KEYS.index(k) for keys in PART_KEYS.values() for k in keys]
    shape = params.shape.clone()
    signs = torch.rand(len(params), len(cols), generator=gen) < 0.5
    shape[:, cols] = torch.where(signs, -FAR, FAR).to(shape.dtype)
    iris = torch.tensor(_IRIS, dtype=params.iris_rgb.dtype)
    pick = torch.randint(len(_IRIS), (len(params),), generator=gen)
    return dataclasses.replace(params, shape=shape, iris_rgb=iris[pick])


def identity_views(
    params: FaceParams, views: int, n_siblings: int, seed: int
) -> tuple[FaceParams, torch.Tensor]:
    """An identity-labelled training set: each face and ``n_siblings`` siblings of it
    (each a new identity), every identity taken ``views`` times (``retake``).

    Returns:
        The parameters of all ``views × (1 + n_siblings) × N`` images and their int64
        identity labels.
    """
    people = [params] + [siblings(params, _seed("sibling", j, seed)) for j in range(n_siblings)]
    everyone = _concat(people)
    takes = [retake(everyone, _seed("view", k, seed)) for k in range(views)]
    labels = torch.arange(len(everyone)).repeat(views)
    return _concat(takes), labels


def _seed(tag: str, k: int, seed: int) -> int:
    digest = hashlib.sha256(f"{tag}\x00{k}\x00{int(seed)}".encode()).digest()
    return int.from_bytes(digest[:6], "little")


def _concat(parts: list[FaceParams]) -> FaceParams:
    return FaceParams(**{k: torch.cat([getattr(p, k) for p in parts]) for k in parts[0].as_dict()})
