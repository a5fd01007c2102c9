"""Deterministic per-sample noise fields, identical however the batch is split.

A sample's noise is a window of a fixed random table, shifted by offsets hashed from its
noise seed. Lookups are pure integer indexing, so rendering a face alone or inside any
batch gives the same bits, and a counterfactual (same seed) gets the same noise.
"""

from __future__ import annotations

import functools

import torch

TABLE = 1024  # table side; sizes above this simply wrap around
_KNOT = 32  # table cells between the random knots of the smooth table
SMOOTH_SPAN = 320  # smooth-table cells spanned by one image side, whatever its size
_MASK32 = 0xFFFFFFFF


@functools.cache
def _tables() -> tuple[torch.Tensor, torch.Tensor]:
    """(fine, smooth) tables, float32 (TABLE*TABLE,), values roughly in [-1, 1]."""
    gen = torch.Generator().manual_seed(0x5EED)
    fine = torch.rand(TABLE, TABLE, generator=gen, dtype=torch.float64) * 2.0 - 1.0
    k = TABLE // _KNOT
    knots = torch.rand(k, k, generator=gen, dtype=torch.float64) * 2.0 - 1.0
    # Periodic smoothstep interpolation of the knots: seamless where offsets wrap around.
    pos = torch.arange(TABLE, dtype=torch.float64) / _KNOT
    i0 = pos.floor().long() % k
    i1 = (i0 + 1) % k
    t = pos - pos.floor()
    t = t * t * (3.0 - 2.0 * t)
    rows = knots[i0] * (1 - t)[:, None] + knots[i1] * t[:, None]  # (TABLE, k)
    smooth = rows[:, i0] * (1 - t)[None, :] + rows[:, i1] * t[None, :]
    smooth = smooth / smooth.abs().max()
    return fine.float().reshape(-1), smooth.float().reshape(-1)


def _mix(seed: torch.Tensor, salt: int) -> torch.Tensor:
    """A 32-bit integer hash of (seed, salt); int64 arithmetic that never overflows."""
    h = (seed.long() & 0x7FFFFFFF) * 2654435761 + salt * 40503
    h = h & _MASK32
    h = h ^ (h >> 16)
    h = (h * 73244475) & _MASK32
    return h ^ (h >> 16)


def _lookup(table: torch.Tensor, rows: torch.Tensor, cols: torch.Tensor) -> torch.Tensor:
    index = rows[:, :, None] * TABLE + cols[:, None, :]
    return table[index]


def fine_noise(seed: torch.Tensor, size: int, salt: int) -> torch.Tensor:
    """White noise in [-1, 1], float32 (N, size, size), one value per pixel."""
    h = _mix(seed, salt)
    pix = torch.arange(size)
    rows = (pix[None, :] + (h & 1023)[:, None]) % TABLE
    cols = (pix[None, :] + ((h >> 10) & 1023)[:, None]) % TABLE
    return _lookup(_tables()[0], rows, cols)


def _cells(size: int, span: int) -> torch.Tensor:
    return ((torch.arange(size, dtype=torch.float64) + 0.5) * (span / size)).long()


def smooth_noise(seed: torch.Tensor, size: int, salt: int, stretch: int = 1) -> torch.Tensor:
    """Smooth noise in [-1, 1], float32 (N, size, size); blobs scale with the image.

    ``stretch`` > 1 makes it vary that much faster across than down: vertical streaks,
    used for hair strands.
    """
    h = _mix(seed, salt)
    rows = (_cells(size, SMOOTH_SPAN // min(stretch, 2))[None, :] + (h & 1023)[:, None]) % TABLE
    cols = (_cells(size, SMOOTH_SPAN * stretch)[None, :] + ((h >> 10) & 1023)[:, None]) % TABLE
    return _lookup(_tables()[1], rows, cols)
