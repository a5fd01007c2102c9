"""High-impact patches (FaceX, Sarridis et al., ICMR 2024, §3.3) and the FaceX figures."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
import torch

from benchmark.data.regions import REGION_ID, REGION_NAMES
from benchmark.figures import (
    encode_png,
    panel_labels,
    patch_grid_figure,
    prototype_figure,
    prototype_layout,
)
from metrics.patches import HighImpactPatches, PatchSet

NAMES = ("bg", "a", "b", "c")


def _hand_batch() -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Two 8×8 images, Z = 4: region a and b placed by hand, saliency with known peaks."""
    torch.manual_seed(0)
    x = torch.rand(2, 3, 8, 8)
    s = torch.zeros(2, 8, 8, dtype=torch.uint8)
    s[0, :4, :4] = 1  # a: top-left patch of image 0
    s[0, 4:, 4:] = 2  # b: bottom-right patch of image 0
    s[1, :, 4:] = 1  # a: right half of image 1 (two patches)
    a = torch.zeros(2, 8, 8)
    a[0, 1, 1], a[0, 5, 5] = 10.0, 5.0  # G = a / 10: V_a = 1.0 at (0,0), V_b = 0.5 at (4,4)
    a[1, 6, 6], a[1, 7, 7], a[1, 2, 5] = 4.0, 1.0, 2.0  # G = a / 4: V_a 1.25 at (4,4), 0.5
    return x, a - 3.0, s  # any range: min-max removes the shift


def test_patches_hand_computed():
    x, a, s = _hand_batch()
    hp = HighImpactPatches(NAMES, patch=4, top_k=5)
    hp.update(x, a, s, offset=10)
    res = hp.result()

    pa = res["a"]
    assert pa.images.tolist() == [11, 10]  # value descending, one patch per image
    assert pa.origins.tolist() == [[4, 4], [0, 0]]
    assert torch.allclose(pa.values, torch.tensor([1.25, 1.0]))
    expected = (x[1, :, 4:8, 4:8] * 255).round().to(torch.uint8)
    assert torch.equal(pa.pixels[0], expected)
    assert torch.equal(pa.pixels[1], (x[0, :, 0:4, 0:4] * 255).round().to(torch.uint8))

    pb = res["b"]
    assert pb.images.tolist() == [10] and pb.origins.tolist() == [[4, 4]]
    assert pb.values.tolist() == pytest.approx([0.5])
    # bg only covers pixels with G = 0 (V = 0 is never kept); c never appears.
    for name in ("bg", "c"):
        assert len(res[name]) == 0
        assert res[name].pixels.shape == (0, 3, 4, 4) and res[name].origins.shape == (0, 2)


def test_patches_top_k_and_dtypes():
    x, a, s = _hand_batch()
    hp = HighImpactPatches(NAMES, patch=4, top_k=1)
    hp.update(x, a, s, offset=0)
    pa = hp.result()["a"]
    assert pa.images.tolist() == [1] and pa.origins.tolist() == [[4, 4]]
    assert pa.values.dtype == torch.float32 and pa.images.dtype == torch.long
    assert pa.origins.dtype == torch.long and pa.pixels.dtype == torch.uint8


def test_patches_before_update_and_remainder():
    hp = HighImpactPatches(NAMES, patch=4)
    assert all(len(p) == 0 for p in hp.result().values())
    # 10×10 with Z = 4: rows and columns 8..9 are no patch, so region c there is never kept.
    s = torch.zeros(1, 10, 10, dtype=torch.long)
    s[0, 8:, :] = 3
    s[0, :4, :4] = 1
    a = torch.rand(1, 10, 10) + 0.1
    hp.update(torch.rand(1, 3, 10, 10), a, s, offset=0)
    res = hp.result()
    assert len(res["c"]) == 0 and len(res["a"]) == 1 and len(res["bg"]) == 1
    assert res["bg"].origins.tolist()[0] in ([0, 4], [4, 0], [4, 4])


def test_patches_batches_equal_one_call():
    gen = torch.Generator().manual_seed(1)
    n, side, regions = 10, 18, 5
    x = torch.rand(n, 3, side, side, generator=gen)
    blocks = torch.randint(0, regions, (n, 6, 6), generator=gen)
    s = blocks.repeat_interleave(3, 1).repeat_interleave(3, 2)  # blocky regions, 18×18
    a = torch.randint(0, 3, (n, side, side), generator=gen).float()  # few levels: many ties
    names = tuple(f"r{i}" for i in range(regions))

    whole = HighImpactPatches(names, patch=4, top_k=3)
    whole.update(x, a, s, offset=0)
    split = HighImpactPatches(names, patch=4, top_k=3)
    for lo, hi in ((0, 4), (4, 7), (7, 10)):
        split.update(x[lo:hi], a[lo:hi], s[lo:hi], offset=lo)
    one, many = whole.result(), split.result()
    for name in names:
        p, q = one[name], many[name]
        assert len(p) == 3
        assert len(set(p.images.tolist())) == 3  # at most one patch per image
        assert torch.equal(p.values, q.values) and torch.equal(p.images, q.images)
        assert torch.equal(p.origins, q.origins) and torch.equal(p.pixels, q.pixels)
        assert (p.values[:-1] >= p.values[1:]).all()


def _interior(mask: np.ndarray) -> np.ndarray:
    """Mask pixels away from region boundaries (the figure darkens those)."""
    return cv2.erode(mask.astype(np.uint8), np.ones((3, 3), np.uint8)).astype(bool)


def _panel(fig: np.ndarray, layout, name: str) -> np.ndarray:
    p = layout[name]
    return fig[p.y : p.y + p.side, p.x : p.x + p.side].astype(int)


def test_prototype_main_face_has_every_region_but_hat_and_glasses():
    present = set(np.unique(panel_labels("main", 256)).tolist())
    assert present == set(range(len(REGION_NAMES))) - {REGION_ID["hat"], REGION_ID["eye_g"]}
    assert REGION_ID["hat"] in panel_labels("hat", 128)
    assert REGION_ID["eye_g"] in panel_labels("eye_g", 128)


def test_prototype_colours():
    ior: dict[str, float | None] = {r: 0.5 for r in REGION_NAMES}
    ior.update(l_lip=0.9, hair=0.1, cloth=None, hat=0.8)
    fig = prototype_figure(ior, title="test", size=256)
    assert fig.dtype == np.uint8 and fig.ndim == 3 and fig.shape[2] == 3
    layout = prototype_layout(256, "test")
    main = _panel(fig, layout, "main")
    labels = panel_labels("main", 256)

    lip = main[_interior(labels == REGION_ID["l_lip"])]
    hair = main[_interior(labels == REGION_ID["hair"])]
    cloth = main[_interior(labels == REGION_ID["cloth"])]
    assert len(lip) and (lip[:, 0] > lip[:, 2]).all()  # max → red
    assert len(hair) and (hair[:, 2] > hair[:, 0]).all()  # min → blue
    assert len(cloth) and (cloth == 220).all()  # None → light grey

    side = _panel(fig, layout, "hat")
    side_labels = panel_labels("hat", layout["hat"].side)
    hat = side[_interior(side_labels == REGION_ID["hat"])]
    others = side[_interior(side_labels == REGION_ID["skin"])]
    assert len(hat) and (hat != 220).any(axis=1).all() and (hat[:, 0] > hat[:, 2]).all()
    assert (others == 220).all()  # only the hat is coloured on its panel

    ior["hat"] = None
    fig = prototype_figure(ior, title="test", size=256)
    side = _panel(fig, layout, "hat")
    assert (side[_interior(side_labels == REGION_ID["hat"])] == 220).all()


def test_prototype_without_values_is_grey():
    fig = prototype_figure({}, size=64)
    layout = prototype_layout(64)
    labels = panel_labels("main", 64)
    main = _panel(fig, layout, "main")
    assert (main[_interior(labels == REGION_ID["skin"])] == 220).all()


def _patch_set(gen: torch.Generator, k: int, z: int) -> PatchSet:
    return PatchSet(
        values=torch.linspace(1.0, 0.5, k),
        images=torch.arange(k),
        origins=torch.zeros(k, 2, dtype=torch.long),
        pixels=torch.randint(0, 256, (k, 3, z, z), generator=gen, dtype=torch.uint8),
    )


def _find(fig: np.ndarray, tile: np.ndarray) -> list[tuple[int, int]]:
    windows = np.lib.stride_tricks.sliding_window_view(fig, tile.shape)[:, :, 0]
    ys, xs = np.nonzero((windows == tile).all(axis=(2, 3, 4)))
    return list(zip(ys.tolist(), xs.tolist(), strict=True))


def test_patch_grid_layout():
    gen = torch.Generator().manual_seed(2)
    patches = {"l_lip": _patch_set(gen, 3, 4), "hair": _patch_set(gen, 2, 4)}
    patches["nose"] = PatchSet.empty(4)
    fig = patch_grid_figure(patches, ["l_lip", "nose", "hair", "hat"], cell=16, title="t")
    assert fig.dtype == np.uint8 and fig.shape[2] == 3
    assert (fig[-1, -1] == 255).all()  # white background (the last gap)

    def tile(name: str, j: int) -> np.ndarray:
        px = patches[name].pixels[j].permute(1, 2, 0).numpy()
        return px.repeat(4, axis=0).repeat(4, axis=1)  # nearest neighbour ×4

    [(y0, x0)] = _find(fig, tile("l_lip", 0))  # each tile drawn exactly once
    [(y1, x1)] = _find(fig, tile("l_lip", 1))
    [(_, x3)] = _find(fig, tile("l_lip", 2))
    [(y2, x2)] = _find(fig, tile("hair", 0))
    assert y1 == y0 and x1 == x0 + 16 + 2 and x3 == x1 + 16 + 2  # by value, 2-px gaps
    assert y2 == y0 + 16 + 2 and x2 == x0  # next row: the empty nose row is skipped
    assert fig.shape[0] == y2 + 16 + 2  # no row for nose or hat
    assert (fig[y0 : y0 + 16, x0 + 16 : x0 + 18] == 255).all()


def test_encode_png_round_trip():
    rng = np.random.default_rng(3)
    img = rng.integers(0, 256, (7, 9, 3), dtype=np.uint8)
    decoded = cv2.imdecode(np.frombuffer(encode_png(img), np.uint8), cv2.IMREAD_COLOR)
    assert np.array_equal(decoded[:, :, ::-1], img)  # PNG holds BGR; back to RGB
    with pytest.raises(ValueError):
        encode_png(img.astype(np.float32))


def test_patches_reject_unknown_label_ids():
    hp = HighImpactPatches(NAMES, patch=4)
    s = torch.full((1, 8, 8), len(NAMES), dtype=torch.long)
    with pytest.raises(ValueError, match="label ids"):
        hp.update(torch.rand(1, 3, 8, 8), torch.rand(1, 8, 8), s, offset=0)


def test_prototype_small_and_unknown_region():
    fig = prototype_figure({"l_lip": 0.9, "hair": 0.1, "skin": 0.5}, size=64)
    assert fig.shape[0] > 64 and fig.dtype == np.uint8  # legend below the bar still fits
    with pytest.raises(ValueError, match="forehead"):
        prototype_figure({"forehead": 0.5})
