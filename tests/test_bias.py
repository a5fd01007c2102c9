from __future__ import annotations

import torch

from benchmark.data.bias import aligned_mask, balanced_test, biased_subset, cell_counts


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
