"""What a run records about where it ran: code version, packages, device, seeds."""

from __future__ import annotations

import subprocess
from pathlib import Path

import torch

from benchmark.errors import BenchError

#: The libraries whose versions can change a number (part of every run's fingerprint).
PACKAGES = (
    "face-xai-bench", "torch", "torchvision", "captum", "duckdb", "numpy", "pydantic",
    "scipy", "scikit-image", "opencv-python-headless", "onnxruntime", "onnx2torch", "onnx",
)  # fmt: skip


def git_sha() -> str | None:
    """The commit of the benchmark's own source tree, or None outside a checkout."""
    here = Path(__file__).resolve().parent
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=here, capture_output=True, text=True, timeout=5
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    return out.stdout.strip() or None if out.returncode == 0 else None


def package_versions() -> dict[str, str | None]:
    """Versions of :data:`PACKAGES` (None where one is not installed)."""
    from benchmark.fingerprint import package_versions as versions

    return versions(PACKAGES)


def resolve_device(requested: str) -> torch.device:
    """``auto`` picks CUDA when present; ``cuda`` without a GPU is a user error."""
    if requested == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if requested == "cuda" and not torch.cuda.is_available():
        raise BenchError(
            "device: 'cuda' was requested but no CUDA device is available; use 'auto' or 'cpu'"
        )
    return torch.device(requested)


def describe_device(device: torch.device) -> str:
    if device.type == "cuda":
        return f"cuda:{torch.cuda.get_device_name(device)}"
    n = torch.get_num_threads()
    return f"cpu ({n} thread{'s' if n != 1 else ''})"
