"""What a result depends on beyond the suite text, so a stored result is never served
for a changed input (issue 12).

- **code**: a hash of the content of every ``.py`` file of the benchmark's packages as
  they are on disk: an uncommitted edit, another commit and an installed wheel (no git)
  all give their own value;
- **data**: per dataset, size and modification time of its index files (the files
  the loaders' preprocessing cache is keyed on) and of its folder;
- **model files**: sha256 of the content of checkpoints, ONNX and TorchScript files,
  and of the source file of a factory or callable;
- **packages**: versions of the libraries that compute the numbers.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from functools import lru_cache
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("benchmark", "explainers", "metrics", "leaderboard")
#: The code that determines a trained model (the model cache's key hashes only this,
#: so an edit to a metric or the leaderboard does not retrain anything).
MODEL_CODE = ("benchmark/models", "benchmark/data", "benchmark/splits.py")


@lru_cache(maxsize=256)
def _digest(path: str, stamp: tuple[int, ...]) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def file_digest(path: Path) -> str:
    """sha256 hex of a file's content, memoised on its path and stat, ctime included:
    no write (nor ``touch`` back to an old mtime) keeps ctime, so the memo is exact."""
    st = Path(path).stat()
    stamp = (st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)
    return _digest(str(Path(path).resolve()), stamp)


def code_fingerprint(parts: Iterable[str] = PACKAGES, root: Path | None = None) -> str:
    """sha256 (16 hex) of the path and content of every ``.py`` file under ``parts``
    (of the installed benchmark, or of ``root``)."""
    root = ROOT if root is None else root
    h = hashlib.sha256()
    for part in parts:
        base = root / part
        files = [base] if base.is_file() else sorted(base.rglob("*.py"))
        for f in files:
            if "__pycache__" in f.parts:
                continue
            h.update(str(f.relative_to(root)).encode() + b"\0")
            h.update(file_digest(f).encode())
    return h.hexdigest()[:16]


def _stamp(path: Path) -> list[int] | None:
    try:
        st = path.stat()
    except OSError:
        return None
    return [st.st_size, st.st_mtime_ns]


def data_fingerprint(dataset: Any) -> dict[str, Any]:
    """Size and mtime of a dataset's index files (``index_files()`` where it has one;
    else every file directly in its ``root``), and of its root folder itself."""
    root = getattr(dataset, "root", None)
    if root is None:
        return {}
    root = Path(root)
    index = getattr(dataset, "index_files", None)
    if callable(index):
        files = list(index())
    else:
        files = sorted(p for p in root.iterdir() if p.is_file()) if root.is_dir() else []
    stamps = {str(p): _stamp(Path(p)) for p in files}
    return {"root": str(root), "root_stamp": _stamp(root), "files": stamps}


def package_versions(names: Iterable[str]) -> dict[str, str | None]:
    """Installed versions of ``names`` (None where not installed)."""
    from importlib.metadata import PackageNotFoundError, version

    found: dict[str, str | None] = {}
    for name in names:
        try:
            found[name] = version(name)
        except PackageNotFoundError:
            found[name] = None
    return found
