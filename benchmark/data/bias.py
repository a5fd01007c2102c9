"""Bias injection (METHODS.md §8; FaceX §4, seed 001).

The training subset balances the target 50/50 and makes a fraction ρ of each class
*aligned* (every bias attribute takes the value the direction ties to the target); the
test set is balanced over the cells (target, attribute…) as far as the data allows.
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping, Sequence
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


def _target_values(target: torch.Tensor) -> tuple[int, ...]:
    """The target's classes: 0 and 1 for a binary one, every known value otherwise."""
    known = sorted({int(v) for v in target.unique().tolist() if v >= 0})
    return tuple(sorted({0, 1} | set(known)))


def _combos(target: torch.Tensor, k: int) -> list[tuple[int, ...]]:
    return [(t, *a) for t in _target_values(target) for a in itertools.product((0, 1), repeat=k)]


def cell_counts(target: torch.Tensor, attrs: torch.Tensor, names: Sequence[str]) -> dict[str, int]:
    """Counts of every (target, attribute…) combination; a multi-class target lists each
    of its classes."""
    cols = torch.cat([target.view(-1, 1).long(), attrs.long()], dim=1)
    counts = {}
    for combo in _combos(target, attrs.shape[1]):
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


def distribution_subset(
    values: torch.Tensor, proportions: Mapping[int, float], seed: int, name: str
) -> BiasSplit:
    """The largest subset whose classes follow ``proportions`` (seed 001's skewed race
    distribution; METHODS §8): n = min over classes of count_c / p_c, then ⌊n·p_c⌋ each.

    Args:
        values: (N,) class of each pool sample (-1 unknown is skipped).
        proportions: class → share; shares are normalised to sum to 1.
        seed: sampling seed.
        name: the column's name, for the cell report.
    """
    gen = torch.Generator().manual_seed(seed)
    total = sum(proportions.values())
    share = {c: p / total for c, p in proportions.items() if p > 0}
    pools = {c: torch.nonzero(values == c).flatten() for c in share}
    n = min(len(pools[c]) / p for c, p in share.items())
    picked = [
        pools[c][torch.randperm(len(pools[c]), generator=gen)[: int(n * p + 1e-9)]]
        for c, p in share.items()
    ]
    index = torch.cat(picked).sort().values
    cells = cell_counts(values[index], torch.zeros(len(index), 0, dtype=torch.long), [name])
    return BiasSplit(index, cells, torch.ones(len(index), dtype=torch.bool))


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
    for combo in _combos(target[known], attrs.shape[1]):
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
