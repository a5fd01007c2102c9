"""The preprocessing cache of datasets read from disk (issue 5, item 3).

The first load decodes and resizes every image (and merges masks); the result is kept
as uint8 ``.npy`` files that later runs memory-map, so they read at memory speed. The
key hashes the dataset's name, its parameters, the split, a transform version and the
size and modification time of its index files, so edited data or another size gets
its own entry. Entries are written into a private folder and renamed into place:
concurrent runs never see half of one.
"""

from __future__ import annotations

import json
import os
import shutil
import uuid
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch

from benchmark.data.base import FaceArrays
from benchmark.models.train import stable_hash

_BIG = ("images", "label_maps")  # memory-mapped; the rest is small enough to load
_SMALL = ("attributes", "landmarks", "boxes")


def cache_key(name: str, spec: Mapping[str, Any], files: Iterable[Path] = ()) -> str:
    """Hash of a dataset's identity and the state (size, mtime) of its index files."""
    stamps = {str(p): [p.stat().st_size, p.stat().st_mtime_ns] for p in files if p.is_file()}
    return stable_hash({"name": name, "spec": dict(spec), "files": stamps})


def save(folder: Path, faces: FaceArrays, info: Mapping[str, Any] | None = None) -> None:
    """Write ``faces`` (and JSON ``info``) as one cache entry at ``folder``."""
    tmp = folder.with_name(f".{folder.name}.{uuid.uuid4().hex[:8]}.tmp")
    tmp.mkdir(parents=True)
    try:
        for k in _BIG:
            t = getattr(faces, k)
            if t is not None:
                np.save(tmp / f"{k}.npy", t.numpy())
        small = {k: getattr(faces, k) for k in _SMALL if getattr(faces, k) is not None}
        small.update({f"group.{k}": v for k, v in faces.groups.items()})
        small.update({f"extra.{k}": v for k, v in faces.extras.items()})
        np.savez(tmp / "meta.npz", **{k: v.numpy() for k, v in small.items()})
        meta = {"attribute_names": list(faces.attribute_names), "regions": list(faces.regions),
                "info": dict(info or {})}  # fmt: skip
        (tmp / "meta.json").write_text(json.dumps(meta))  # written last: marks completion
        try:
            os.replace(tmp, folder)
        except OSError:
            if not (folder / "meta.json").exists():  # another run finished it first
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def load(folder: Path) -> tuple[FaceArrays, dict[str, Any]]:
    """A cache entry, its big arrays memory-mapped copy-on-write; and its info."""
    meta = json.loads((folder / "meta.json").read_text())
    big = {
        k: torch.from_numpy(np.load(folder / f"{k}.npy", mmap_mode="c"))
        for k in _BIG
        if (folder / f"{k}.npy").exists()
    }
    with np.load(folder / "meta.npz") as npz:
        small = {k: torch.from_numpy(npz[k].copy()) for k in npz.files}
    faces = FaceArrays(
        images=big["images"],
        attributes=small["attributes"],
        attribute_names=tuple(meta["attribute_names"]),
        label_maps=big.get("label_maps"),
        landmarks=small.get("landmarks"),
        boxes=small.get("boxes"),
        groups={k[6:]: v for k, v in small.items() if k.startswith("group.")},
        extras={k[6:]: v for k, v in small.items() if k.startswith("extra.")},
        regions=tuple(meta["regions"]),
    )
    return faces, meta["info"]


def cached(
    cache_dir: Path | None,
    key: str,
    build: Callable[[], tuple[FaceArrays, dict[str, Any]]],
) -> tuple[FaceArrays, dict[str, Any]]:
    """The entry ``key`` under ``cache_dir``, built (and stored) on first use."""
    if cache_dir is None:
        return build()
    folder = Path(cache_dir) / key
    if not (folder / "meta.json").exists():
        faces, info = build()
        save(folder, faces, info)
    return load(folder)
