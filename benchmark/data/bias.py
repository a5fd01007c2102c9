"""Bias injection (METHODS.md §8; FaceX §4, seed 001).

The training subset balances the target 50/50 and makes a fraction ρ of each class
*aligned* (every bias attribute takes the value the direction ties to the target); the
test set is balanced over the cells (target, attribute…) as far as the data allows.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass

import torch


@dataclass
class BiasSplit:
    """Indices into the source pool, and the counts per (target, attributes) cell."""

    index: torch.Tensor
    cells: dict[str, int]
    aligned: torch.Tensor  # bool, per selected sample

    def __len__(self) -> int:
        return int(self.index.numel())


def aligned_mask(
    target: torch.Tensor, attrs: torch.Tensor, directions: Sequence[str]
) -> torch.Tensor:
    """True where every attribute equals the target (positive) or its opposite (negative)."""
    t = target.long()
    ok = torch.ones_like(t, dtype=torch.bool)
    for j, d in enumerate(directions):
        want = t if d == "positive" else 1 - t
        ok &= attrs[:, j].long() == want
    return ok


def _cell_key(names: Sequence[str], values: Sequence[int]) -> str:
    return ",".join(f"{n}={v}" for n, v in zip(names, values, strict=True))


def cell_counts(target: torch.Tensor, attrs: torch.Tensor, names: Sequence[str]) -> dict[str, int]:
    """Counts of every (target, attribute…) combination, all 2^(k+1) cells listed."""
    cols = torch.cat([target.view(-1, 1).long(), attrs.long()], dim=1)
    counts = {}
    for combo in itertools.product((0, 1), repeat=cols.shape[1]):
        hit = (cols == torch.tensor(combo)).all(dim=1)
        counts[_cell_key(names, combo)] = int(hit.sum())
    return counts


def _known(target: torch.Tensor, attrs: torch.Tensor) -> torch.Tensor:
    ok = target >= 0
    if attrs.numel():
        ok &= (attrs >= 0).all(dim=1)
    return ok


def biased_subset(
    target: torch.Tensor,
    attrs: torch.Tensor,
    directions: Sequence[str],
    rho: float,
    seed: int,
    names: Sequence[str],
) -> BiasSplit:
    """The largest target-balanced subset with a fraction ``rho`` aligned in each class.

    Args:
        target: (N,) 0/1 target labels of the pool (-1 unknown is skipped).
        attrs: (N, k) 0/1 bias attributes.
        directions: per attribute, "positive" or "negative".
        rho: aligned fraction in (0, 1).
        seed: sampling seed.
        names: names of the target and the k attributes, for the cell report.
    """
    gen = torch.Generator().manual_seed(seed)
    known = _known(target, attrs)
    al = aligned_mask(target, attrs, directions)
    pools = {}
    for t in (0, 1):
        cls = known & (target == t)
        pools[t] = (torch.nonzero(cls & al).flatten(), torch.nonzero(cls & ~al).flatten())
    if attrs.shape[1] == 0:
        per_class = min(len(pools[t][0]) for t in (0, 1))
        n_al, n_cf = per_class, 0
    else:
        # Each class needs n·ρ aligned and n·(1-ρ) conflicting samples.
        per_class = min(min(int(len(a) / rho), int(len(c) / (1 - rho))) for a, c in pools.values())
        n_al = round(per_class * rho)
        n_cf = per_class - n_al
    picked = []
    for t in (0, 1):
        a, c = pools[t]
        picked.append(a[torch.randperm(len(a), generator=gen)[:n_al]])
        picked.append(c[torch.randperm(len(c), generator=gen)[:n_cf]])
    index = torch.cat(picked).sort().values
    return BiasSplit(index, cell_counts(target[index], attrs[index], names), al[index])


def balanced_test(
    target: torch.Tensor,
    attrs: torch.Tensor,
    directions: Sequence[str],
    seed: int,
    names: Sequence[str],
    max_images: int | None = None,
) -> BiasSplit:
    """Equal counts in every (target, attribute…) cell; empty cells are reported, not filled."""
    gen = torch.Generator().manual_seed(seed)
    known = _known(target, attrs)
    cols = torch.cat([target.view(-1, 1).long(), attrs.long()], dim=1)
    members = []
    for combo in itertools.product((0, 1), repeat=cols.shape[1]):
        hit = known & (cols == torch.tensor(combo)).all(dim=1)
        members.append(torch.nonzero(hit).flatten())
    nonempty = [m for m in members if len(m)]
    per_cell = min((len(m) for m in nonempty), default=0)
    if max_images is not None and nonempty:
        per_cell = min(per_cell, max(1, max_images // len(members)))
    picked = [m[torch.randperm(len(m), generator=gen)[:per_cell]] for m in nonempty]
    index = torch.cat(picked).sort().values if picked else torch.zeros(0, dtype=torch.long)
    al = aligned_mask(target, attrs, directions)
    return BiasSplit(index, cell_counts(target[index], attrs[index], names), al[index])
