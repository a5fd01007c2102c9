"""The synthetic-faces dataset: a seeded pool per split, rendered once and cached on disk."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import uuid
from pathlib import Path
from typing import ClassVar

import numpy as np
import torch

from benchmark.data.base import FaceArrays
from benchmark.data.regions import REGION_NAMES
from benchmark.data.synthetic.identity import identity_views, retake, swap_part
from benchmark.data.synthetic.params import (
    ATTRIBUTES,
    DEFAULT_PREVALENCE,
    GROUPS,
    SKIN_TONES,
    FaceParams,
    sample_params,
    toggle,
)
from benchmark.data.synthetic.render import canonical_face, render

# Bump whenever rendering changes, so stale caches are never read.
GENERATOR_VERSION = "synthetic-faces-2"
RENDER_CHUNK = 1000
_BIG = ("images", "label_maps")  # stored as plain uint8 .npy, memory-mapped on load


def split_seed(split: str, seed: int) -> int:
    """The sampling seed of pool ``(split, seed)``: distinct splits never share faces."""
    digest = hashlib.sha256(f"{split}\x00{int(seed)}".encode()).digest()
    return int.from_bytes(digest[:8], "little") & 0x7FFF_FFFF_FFFF


class SyntheticFaces:
    """Procedurally rendered faces with exact region labels (DATASETS.md).

    Args:
        n: faces per split.
        size: image side in pixels.
        prevalence: per-attribute probability of 1 (others keep their defaults).
    """

    attribute_names: ClassVar[tuple[str, ...]] = ATTRIBUTES
    group_names: ClassVar[tuple[str, ...]] = GROUPS
    #: What :meth:`counterfactual` can change, with the values each takes.
    togglable: ClassVar[dict[str, tuple[int, ...]]] = {
        **{a: (0, 1) for a in ATTRIBUTES},
        "skin_tone": tuple(range(len(SKIN_TONES))),
    }

    #: Per-sample annotations every load returns.
    provides: ClassVar[frozenset[str]] = frozenset({"label_maps", "landmarks", "boxes"})

    def __init__(self, n: int = 2000, size: int = 64, prevalence: dict[str, float] | None = None):
        if n < 0 or size < 8:
            raise ValueError(f"need n >= 0 and size >= 8, got n={n}, size={size}")
        unknown = sorted(set(prevalence or {}) - set(DEFAULT_PREVALENCE))
        if unknown:
            raise ValueError(f"unknown attributes in prevalence: {unknown}")
        self.n, self.size = int(n), int(size)
        self.prevalence = {k: float(v) for k, v in sorted((prevalence or {}).items())}

    def cache_key(self, split: str, seed: int) -> str:
        """Hash of everything the pool depends on, the generator version included."""
        spec = {"version": GENERATOR_VERSION, "n": self.n, "size": self.size,
                "split": split, "seed": int(seed), "prevalence": self.prevalence}  # fmt: skip
        return hashlib.sha256(json.dumps(spec, sort_keys=True).encode()).hexdigest()[:20]

    def load(self, split: str, seed: int, cache_dir: Path | None = None) -> FaceArrays:
        """The pool of split ``split`` (e.g. "train", "test") for ``seed``.

        Args:
            split: any name; each (split, seed) pair is an independent pool.
            seed: base seed of the run.
            cache_dir: where rendered pools are kept; None renders without caching.

        Returns:
            The faces with all annotations (see :func:`render`). A cached pool is read
            back bit-identical, its images and label maps memory-mapped.
        """
        if cache_dir is None:
            return self._render_into(split, seed, None)
        folder = Path(cache_dir) / f"synthetic-{self.cache_key(split, seed)}"
        if not (folder / "meta.npz").exists():
            self._write(folder, split, seed)
        return _read(folder)

    def canonical(self, size: int) -> FaceArrays:
        """The canonical frontal face (N = 1) that canonical saliency maps are drawn on."""
        return canonical_face(size)

    def mates(self, faces: FaceArrays, seed: int, part: str | None = None) -> FaceArrays:
        """The same people photographed again (a verification pair's mated reference):
        every identity parameter kept; pose, lighting, noise, background and clothes
        drawn anew from ``seed``.

        With ``part`` (a key of ``PART_KEYS``), the inpainting game's nonmates instead:
        the very same re-takes with that face part's identity changed (``swap_part``).
        """
        params = retake(FaceParams.from_dict(faces.extras, "param."), split_seed("mates", seed))
        return render(params if part is None else swap_part(params, part), faces.size[0])

    def identities(
        self, faces: FaceArrays, views: int, n_siblings: int, seed: int
    ) -> tuple[FaceArrays, torch.Tensor]:
        """Identity-labelled images to train an embedding on (``identity_views``): each
        face and ``n_siblings`` part-swapped siblings, each photographed ``views`` times."""
        params = FaceParams.from_dict(faces.extras, "param.")
        every, labels = identity_views(params, views, n_siblings, split_seed("identities", seed))
        parts = [render(every[i : i + RENDER_CHUNK], faces.size[0])
                 for i in range(0, len(every), RENDER_CHUNK)]  # fmt: skip
        return _cat(parts), labels

    def counterfactual(self, faces: FaceArrays, attribute: str, value: int) -> torch.Tensor:
        """The same faces re-rendered with ``attribute`` set to ``value`` (METHODS §9).

        Args:
            faces: faces of this dataset (any subset; their render parameters travel in
                ``extras``).
            attribute: a key of :attr:`togglable`.
            value: the value every face gets.

        Returns:
            uint8 images (N, 3, H, W); faces that already had ``value`` come back
            identical to ``faces.images``, the others differ only in that attribute.
        """
        if attribute not in self.togglable:
            raise ValueError(f"cannot toggle {attribute!r}; togglable: {sorted(self.togglable)}")
        params = FaceParams.from_dict(faces.extras, "param.")
        return render(toggle(params, attribute, value), faces.size[0]).images

    def _render_into(self, split: str, seed: int, folder: Path | None) -> FaceArrays:
        params = sample_params(self.n, split_seed(split, seed), self.prevalence)
        shape = {"images": (self.n, 3, self.size, self.size),
                 "label_maps": (self.n, self.size, self.size)}  # fmt: skip
        maps: dict[str, np.memmap] = {}
        if folder is not None:
            for k, s in shape.items():
                maps[k] = np.lib.format.open_memmap(folder / f"{k}.npy", "w+", np.uint8, s)
        big = {k: torch.from_numpy(maps[k]) if maps else torch.empty(s, dtype=torch.uint8)
               for k, s in shape.items()}  # fmt: skip
        small: list[FaceArrays] = []
        for start in range(0, self.n, RENDER_CHUNK):
            part = render(params[start : start + RENDER_CHUNK], self.size)
            big["images"][start : start + len(part)] = part.images
            big["label_maps"][start : start + len(part)] = part.label_maps
            part.images, part.label_maps = part.images[:0], part.label_maps[:0]
            small.append(part)
        if not small:
            small.append(render(params, self.size))
        for m in maps.values():
            m.flush()
        return FaceArrays(
            images=big["images"],
            attributes=torch.cat([s.attributes for s in small]),
            attribute_names=ATTRIBUTES,
            label_maps=big["label_maps"],
            landmarks=torch.cat([s.landmarks for s in small]),
            boxes=torch.cat([s.boxes for s in small]),
            groups={k: torch.cat([s.groups[k] for s in small]) for k in small[0].groups},
            extras={k: torch.cat([s.extras[k] for s in small]) for k in small[0].extras},
            regions=REGION_NAMES,
        )

    def _write(self, folder: Path, split: str, seed: int) -> None:
        # Render into a private folder and rename it into place: concurrent loaders of the
        # same pool never see a half-written cache.
        tmp = folder.with_name(f".{folder.name}.{uuid.uuid4().hex[:8]}.tmp")
        tmp.mkdir(parents=True)
        try:
            faces = self._render_into(split, seed, tmp)
            meta = {"attributes": faces.attributes, "landmarks": faces.landmarks,
                    "boxes": faces.boxes}  # fmt: skip
            meta.update({f"group.{k}": v for k, v in faces.groups.items()})
            meta.update({f"extra.{k}": v for k, v in faces.extras.items()})
            np.savez(tmp / "meta.npz", **{k: v.numpy() for k, v in meta.items()})
            del faces
            try:
                os.replace(tmp, folder)
            except OSError:
                if not (folder / "meta.npz").exists():
                    raise
        finally:
            shutil.rmtree(tmp, ignore_errors=True)


def _cat(parts: list[FaceArrays]) -> FaceArrays:
    def cat(key: str) -> torch.Tensor:
        return torch.cat([getattr(f, key) for f in parts])

    first = parts[0]
    return FaceArrays(
        images=cat("images"), attributes=cat("attributes"), attribute_names=ATTRIBUTES,
        label_maps=cat("label_maps"), landmarks=cat("landmarks"), boxes=cat("boxes"),
        groups={k: torch.cat([f.groups[k] for f in parts]) for k in first.groups},
        extras={k: torch.cat([f.extras[k] for f in parts]) for k in first.extras},
        regions=REGION_NAMES,
    )  # fmt: skip


def _read(folder: Path) -> FaceArrays:
    big = {k: torch.from_numpy(np.load(folder / f"{k}.npy", mmap_mode="c")) for k in _BIG}
    with np.load(folder / "meta.npz") as meta:
        small = {k: torch.from_numpy(meta[k].copy()) for k in meta.files}
    return FaceArrays(
        images=big["images"],
        attributes=small["attributes"],
        attribute_names=ATTRIBUTES,
        label_maps=big["label_maps"],
        landmarks=small["landmarks"],
        boxes=small["boxes"],
        groups={k[6:]: v for k, v in small.items() if k.startswith("group.")},
        extras={k[6:]: v for k, v in small.items() if k.startswith("extra.")},
        regions=REGION_NAMES,
    )
