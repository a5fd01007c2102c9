"""IoR and ranking position on hand-made maps and masks, with hand-computed answers."""

from __future__ import annotations

import pytest
import torch

from metrics import MetricContext
from metrics.facex import RankingPosition
from metrics.regions import binarise, image_ior, minmax, rank_regions

# A 4×4 image: region 0 = left two columns, 1 = top-right 2×2, 2 = bottom-right 2×2.
MASK = torch.tensor([[0, 0, 1, 1], [0, 0, 1, 1], [0, 0, 2, 2], [0, 0, 2, 2]])
MAP = torch.tensor(
    [[0.0, 0.0, 4.0, 2.0], [0.0, 2.0, 2.0, 0.0], [1.0, 1.0, 8.0, 8.0], [0.0, 0.0, 8.0, 0.0]]
)


def test_minmax_and_constant_map():
    g = minmax(MAP[None])
    assert g.min() == 0 and g.max() == 1 and g[0, 0, 2] == 0.5
    assert torch.equal(minmax(torch.full((1, 3, 3), 7.0)), torch.zeros(1, 3, 3))


def test_soft_ior_by_hand():
    ior, present = image_ior(MAP[None], MASK[None], n_regions=4)
    # G = MAP / 8. Region 0: (0+0+0+2+1+1+0+0)/8 over 8 px = 4/64; region 1: 8/8/4 = 0.25;
    # region 2: 24/8/4 = 0.75; region 3 absent.
    assert ior[0].tolist() == pytest.approx([4 / 64, 0.25, 0.75, 0.0])
    assert present[0].tolist() == [True, True, True, False]


def test_thresholded_ior_by_hand():
    g = minmax(MAP[None])
    # Non-zero values of G: 4,2,2,2,1,1,8,8,8 (/8) → mean 36/9/8 = 0.5; kept: ≥ 0.5.
    assert binarise(g)[0].tolist() == [
        [0, 0, 1, 0], [0, 0, 0, 0], [0, 0, 1, 1], [0, 0, 1, 0]
    ]  # fmt: skip
    ior, _ = image_ior(MAP[None], MASK[None], n_regions=4, mode="thresholded", size=4)
    assert ior[0, :3].tolist() == pytest.approx([0.0, 0.25, 0.75])


def test_rank_regions_skips_invalid():
    ranks = rank_regions(torch.tensor([0.1, 0.9, 0.5, 0.7]), torch.tensor([1, 1, 1, 0]).bool())
    assert ranks.tolist() == [3, 1, 2, 0]


def ctx(groups=((2,),), attrs=("A",)) -> MetricContext:
    return MetricContext(("bg", "r1", "r2", "r3"), attrs, groups)


def test_ranking_position_over_a_set_averages_only_where_present():
    m = RankingPosition(ctx())
    # Image 2: only regions 0 and 3; region 3 carries all the attribution.
    mask2 = torch.tensor([[0, 0, 3, 3]] * 4)
    map2 = torch.tensor([[0.0, 0.0, 1.0, 1.0]] * 4)
    m.update(a_batch=MAP[None], s_batch=MASK[None])
    m.update(a_batch=map2[None], s_batch=mask2[None])
    res = m.compute()
    by = {r.region: r for r in res.regions}
    # IoR_0 = (4/64 + 0)/2, IoR_1 = 0.25/1, IoR_2 = 0.75/1, IoR_3 = 1.0/1.
    assert by["bg"].ior == pytest.approx(2 / 64) and by["bg"].n_present == 2
    assert [by[r].rank for r in ("r3", "r2", "r1", "bg")] == [1, 2, 3, 4]
    assert res.scores == {"ranking_position": 2.0} and res.n == 2


def test_two_attributes_give_rp1_and_rp2():
    m = RankingPosition(ctx(groups=((1,), (2,)), attrs=("A", "B")))
    m.update(a_batch=MAP[None], s_batch=MASK[None])
    res = m.compute()
    assert res.scores == {"ranking_position": 1.0, "ranking_position.rp2": 2.0}
    assert res.details["positions"] == {"A": 2, "B": 1}


def test_exclusion_and_best_region_of_a_group():
    m = RankingPosition(ctx(groups=((0, 1),)), exclude_regions=["r2"])
    m.update(a_batch=MAP[None], s_batch=MASK[None])
    res = m.compute()
    assert res.scores["ranking_position"] == 1.0  # r1 is first once r2 is excluded
    assert {r.region: r.rank for r in res.regions}["r2"] is None


def test_batched_equals_one_by_one():
    torch.manual_seed(0)
    maps, masks = torch.rand(6, 16, 16), torch.randint(0, 4, (6, 16, 16))
    whole, parts = RankingPosition(ctx()), RankingPosition(ctx())
    whole.update(a_batch=maps, s_batch=masks)
    for i in range(6):
        parts.update(a_batch=maps[i : i + 1], s_batch=masks[i : i + 1])
    a, b = whole.region_ior()[0], parts.region_ior()[0]
    assert torch.allclose(a, b)


def test_bad_parameters():
    with pytest.raises(ValueError, match="soft"):
        RankingPosition(ctx(), ior="hard")
    with pytest.raises(ValueError, match="unknown regions"):
        RankingPosition(ctx(), exclude_regions=["nose"])
    with pytest.raises(ValueError, match="masks"):
        RankingPosition(ctx()).update(a_batch=MAP[None])


def test_top_share_by_hand_ties_split():
    from metrics.regions import top_share

    ior = torch.tensor([[0.1, 0.7, 0.7, 0.9], [0.2, 0.5, 0.5, 0.0], [0.0, 0.0, 0.0, 0.0]])
    present = torch.tensor([[1, 1, 1, 0], [1, 1, 1, 1], [0, 0, 0, 0]]).bool()
    # Image 0: region 3 is absent, so 1 and 2 tie for the top; image 1: 1 and 2 tie;
    # image 2: nothing present, no winner.
    share = top_share(ior, present)
    assert share.flatten().tolist() == pytest.approx([0, 0.5, 0.5, 0, 0, 0.5, 0.5, 0] + [0] * 4)


def test_ranking_position_reports_top_shares():
    ctx = MetricContext(("a", "b", "c", "d"), ("Attr",), ((1, 2),))
    metric = RankingPosition(ctx)
    flat = torch.zeros(4, 4)
    flat[0, 0] = 1.0  # region 0 holds the only attribution
    # MAP's top region is 2 (IoR 0.75, see test_soft_ior_by_hand).
    metric.update(a_batch=torch.stack([MAP, flat]), s_batch=MASK.expand(2, 4, 4))
    result = metric.compute()
    assert [r.top_share for r in result.regions] == pytest.approx([0.5, 0, 0.5, 0])
    assert result.details["top_on_bias"] == pytest.approx({"Attr": 0.5})
