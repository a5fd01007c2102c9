from __future__ import annotations

import torch

from benchmark.data.bias import (
    aligned_mask,
    balanced_test,
    biased_subset,
    cell_counts,
    distribution_subset,
)


def pool(n: int = 8000, k: int = 1, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    return torch.randint(0, 2, (n,), generator=g), torch.randint(0, 2, (n, k), generator=g)


def test_aligned_mask_directions():
    t = torch.tensor([0, 0, 1, 1])
    a = torch.tensor([[0], [1], [0], [1]])
    assert aligned_mask(t, a, ["positive"]).tolist() == [True, False, False, True]
    assert aligned_mask(t, a, ["negative"]).tolist() == [False, True, True, False]


def test_biased_subset_proportions():
    t, a = pool()
    split = biased_subset(t, a, ["negative"], 0.99, seed=0, names=["Male", "Lip"])
    st = t[split.index]
    # Target balanced 50/50, and 99% aligned in each class.
    assert int((st == 1).sum()) == int((st == 0).sum())
    for c in (0, 1):
        frac = split.aligned[st == c].float().mean().item()
        assert abs(frac - 0.99) < 1 / (st == c).sum().item()
    # Aligned for "negative": lipstick exactly when not male.
    assert split.cells["Male=1,Lip=0"] == split.cells["Male=0,Lip=1"]
    assert split.cells["Male=1,Lip=1"] == split.cells["Male=0,Lip=0"]
    assert split.cells["Male=1,Lip=1"] == round(len(split) / 2 * 0.01)
    # As large as the pool allows: one aligned cell is used up entirely.
    avail = cell_counts(t, a, ["Male", "Lip"])
    used = min(avail["Male=1,Lip=0"], avail["Male=0,Lip=1"])
    assert max(split.cells["Male=1,Lip=0"], split.cells["Male=0,Lip=1"]) <= used
    assert used - split.cells["Male=1,Lip=0"] <= 100
    assert len(torch.unique(split.index)) == len(split)


def test_biased_subset_is_seeded():
    t, a = pool()
    one = biased_subset(t, a, ["positive"], 0.9, seed=1, names=["T", "A"]).index
    two = biased_subset(t, a, ["positive"], 0.9, seed=1, names=["T", "A"]).index
    other = biased_subset(t, a, ["positive"], 0.9, seed=2, names=["T", "A"]).index
    assert torch.equal(one, two) and not torch.equal(one, other)


def test_two_attributes_and_unknowns():
    t, a = pool(k=2)
    a[:100, 0] = -1  # unknown labels are never sampled
    split = biased_subset(t, a, ["positive", "negative"], 0.95, seed=0, names=["T", "A", "B"])
    assert (split.index >= 100).all()
    sa, st = a[split.index], t[split.index]
    aligned = (sa[:, 0] == st) & (sa[:, 1] == 1 - st)
    assert torch.equal(aligned, split.aligned)
    assert abs(aligned.float().mean().item() - 0.95) < 0.005


def test_balanced_test_cells_equal():
    t, a = pool(k=2, seed=3)
    split = balanced_test(t, a, ["positive", "positive"], seed=0, names=["T", "A", "B"])
    counts = set(split.cells.values())
    assert len(split.cells) == 8 and len(counts) == 1
    assert len(split) == 8 * counts.pop()
    assert split.aligned.float().mean().item() == 2 / 8  # 2 of the 8 cells are aligned
    capped = balanced_test(t, a, ["positive"] * 2, seed=0, names=["T", "A", "B"], max_images=80)
    assert len(capped) == 80 and set(capped.cells.values()) == {10}


def test_control_without_attributes_balances_target():
    t, _ = pool()
    empty = torch.zeros(len(t), 0, dtype=torch.long)
    split = biased_subset(t, empty, [], 0.5, seed=0, names=["T"])
    assert split.cells["T=0"] == split.cells["T=1"] == min(int((t == 0).sum()), int(t.sum()))
    test = balanced_test(t, empty, [], seed=0, names=["T"])
    assert test.cells["T=0"] == test.cells["T=1"]


def test_distribution_subset_follows_the_shares_by_hand():
    # 100, 50 and 30 samples of classes 0, 1, 2 (and 5 unknown) at shares 60/30/10:
    # n = min(100/0.6, 50/0.3, 30/0.1) = 166.7 → 100, 50 and ⌊16.7⌋ = 16.
    values = torch.tensor([0] * 100 + [1] * 50 + [2] * 30 + [-1] * 5)
    split = distribution_subset(values, {0: 6, 1: 3, 2: 1}, seed=0, name="race")
    assert split.cells == {"race=0": 100, "race=1": 50, "race=2": 16}
    assert (values[split.index] >= 0).all() and split.index.unique().numel() == 166
    again = distribution_subset(values, {0: 6, 1: 3, 2: 1}, seed=0, name="race")
    assert torch.equal(split.index, again.index)
    # A share of 0 leaves the class out; equal shares balance the classes.
    only = distribution_subset(values, {0: 1, 2: 0}, seed=0, name="r")
    assert len(only) == 100 and (values[only.index] == 0).all()
    assert set(distribution_subset(values, {0: 1, 1: 1, 2: 1}, 0, "r").cells.values()) == {30}


def test_a_multi_class_target_is_balanced_over_every_class():
    target = torch.tensor([0] * 40 + [1] * 25 + [2] * 12 + [3] * 9)
    split = balanced_test(target, torch.zeros(len(target), 0, dtype=torch.long), [], 0, ["race"])
    assert split.cells == {"race=0": 9, "race=1": 9, "race=2": 9, "race=3": 9}
