"""MinPlus and AVG: generic checks, hand-computed maps, batching and greedy stopping."""

from __future__ import annotations

import math

import pytest
import torch

from explainers.minplus import AVG, MinPlus, gaussian_windows, minmax
from tests.conftest import check_generic

CLASSES = (MinPlus, AVG)


@pytest.fixture
def batch():
    g = torch.Generator().manual_seed(1)
    return torch.rand(5, 3, 32, 32, generator=g), torch.tensor([1, 1, 0, 1, 0])


class Counting:
    """A plain callable model that records the size of every forward."""

    def __init__(self, model):
        self.model, self.sizes = model, []

    def __call__(self, x):
        self.sizes.append(len(x))
        return self.model(x)


class RegionLinear:
    """Callable: class 1 logit = w · Σ of the pixels in REGION (all channels), class 0 = 0."""

    REGION = (slice(9, 14), slice(22, 27))

    def __init__(self, w: float = 0.05):
        self.w = w

    def __call__(self, x):
        s = self.w * x[:, :, self.REGION[0], self.REGION[1]].sum(dim=(1, 2, 3))
        return torch.stack([torch.zeros_like(s), s], 1)


@pytest.mark.parametrize("cls", CLASSES)
def test_generic_checks(cls, patch_model, batch):
    x, y = batch
    make = lambda model: cls(model, batch_size=3, seed=0, t_max=3)  # noqa: E731
    maps = check_generic(make, patch_model, x, y)
    assert maps.min() >= 0 and maps.max() <= 1
    # a plain callable (no nn.Module) gives the same maps, up to the float rounding of
    # the module's folded channels-last forward (explainers.inference)
    torch.testing.assert_close(make(lambda t: patch_model(t)).explain(x, y), maps,
                               atol=1e-6, rtol=1e-4)  # fmt: skip


def test_windows_grid_and_peak():
    win, centres = gaussian_windows(32, 32, step=2.0, sigma=2.4)
    assert win.shape == (256, 32, 32) and centres.shape == (256, 2)
    assert centres[:16, 1].tolist() == list(range(1, 32, 2))  # centre of each 2-px cell
    assert torch.allclose(win.amax(dim=(1, 2)), torch.ones(256))
    r, c = centres[37].tolist()
    assert win[37, r, c] == 1.0
    assert math.isclose(float(win[37, r + 3, c - 1]), math.exp(-10 / (2 * 2.4**2)), rel_tol=1e-5)
    win, centres = gaussian_windows(112, 112, step=7.0, sigma=8.4)
    assert win.shape == (256, 112, 112) and centres[:3, 1].tolist() == [3, 10, 17]


def _hand_window(r0, c0, sigma, size=32):
    rows = torch.arange(size, dtype=torch.float32)
    return torch.exp(-((rows[:, None] - r0) ** 2 + (rows[None, :] - c0) ** 2) / (2 * sigma**2))


@pytest.mark.parametrize("score", ["logit", "softmax"])
def test_h0_maps_match_hand_formula(score, batch):
    x, _ = batch
    x = x[:2]
    y = torch.ones(2, dtype=torch.long)
    model = RegionLinear()
    e = MinPlus(model, batch_size=3, t_max=0, score=score)
    maps = e.grid_maps(x, y)
    assert maps["h0_minus"].shape == (2, 16, 16)
    gi, gj = 5, 12  # grid point: centre pixel (11, 25), inside REGION
    g = _hand_window(2 * gi + 1, 2 * gj + 1, 0.075 * 32)
    f = (lambda t: model(t)[:, 1]) if score == "logit" else (lambda t: model(t).softmax(1)[:, 1])
    h0m = f(x) - f(x * (1 - g))  # one forward of the removed image
    h0p = f(x * g) - f(torch.zeros_like(x))
    torch.testing.assert_close(maps["h0_minus"][:, gi, gj], h0m, rtol=1e-5, atol=1e-7)
    torch.testing.assert_close(maps["h0_plus"][:, gi, gj], h0p, rtol=1e-5, atol=1e-7)
    if score == "logit":  # linear model: H0⁻ = w Σ_REGION x·G exactly
        r = RegionLinear.REGION
        lin = model.w * (x[:, :, r[0], r[1]] * g[r[0], r[1]]).sum(dim=(1, 2, 3))
        torch.testing.assert_close(maps["h0_minus"][:, gi, gj], lin, rtol=1e-5, atol=1e-7)
    assert not maps["h1_minus"].any() and not maps["h1_plus"].any()  # t_max = 0


def _reference_greedy(f, x, win, t_max, theta, reveal):
    """Algorithms 2 and 4, one forward per position, for one image (C, H, W)."""
    src = x if reveal else torch.zeros_like(x)
    cur = torch.zeros_like(x) if reveal else x.clone()
    prev, h1 = float(f(cur[None])), torch.zeros(len(win))
    for _ in range(t_max):
        cand = [float(f((cur * (1 - g) + src * g)[None])) for g in win]
        best = max(range(len(win)), key=lambda p: cand[p] if reveal else -cand[p])
        delta = cand[best] - prev if reveal else prev - cand[best]
        h1[best] += delta
        cur = cur * (1 - win[best]) + src * win[best]
        prev = cand[best]
        if delta <= theta:
            break
    return h1


def test_greedy_maps_match_the_papers_loops(patch_model, batch):
    x, _ = batch
    x, y = x[:2], torch.tensor([1, 0])
    e = MinPlus(patch_model, step=1 / 4, t_max=4, theta=0.002)
    maps = e.grid_maps(x, y)
    win, _ = e.windows(32, 32)
    assert e.last_steps.tolist() == [[4, 4], [1, 1]]  # class 0: the first drop is negative
    for i in range(2):
        f = lambda t, i=i: patch_model(t).detach().softmax(1)[0, y[i]]  # noqa: E731
        for key, reveal in (("h1_minus", False), ("h1_plus", True)):
            ref = _reference_greedy(f, x[i], win, 4, 0.002, reveal)
            torch.testing.assert_close(maps[key][i].flatten(), ref, rtol=1e-4, atol=1e-6)


def test_forwards_are_batched_and_capped(patch_model, batch):
    x, y = batch
    cap, t_max = 10, 4
    model = Counting(patch_model)
    e = MinPlus(model, batch_size=3, step=1 / 4, t_max=t_max, theta=0.0, max_images_per_forward=cap)
    e.explain(x[:3], y[:3])
    p = 16  # 4×4 grid
    assert model.sizes and max(model.sizes) <= cap
    assert len(model.sizes) == e.last_forwards == sum(n for _, _, n in e.last_rounds)
    rounds = {}
    for phase, n_img, n_fwd in e.last_rounds:
        rounds.setdefault(phase, []).append(n_img)
        per = n_img if phase == "base" else n_img * p
        assert n_fwd == math.ceil(per / cap)
    assert rounds["base"] == [4]  # 3 images + one black image, one forward
    assert rounds["h0-"] == rounds["h0+"] == [3]  # ceil(3·16 / 10) = 5 forwards each
    assert sum(n for ph, _, n in e.last_rounds if ph == "h0-") == 5
    steps = e.last_steps
    for col, phase in ((0, "h1-"), (1, "h1+")):
        actives = rounds.get(phase, [])
        assert len(actives) <= t_max - 1  # step 1 reuses the H0 scores
        assert sum(actives) == int((steps[:, col] - 1).sum())  # active images per round
        assert actives == sorted(actives, reverse=True)
    assert e.last_images == sum(model.sizes)


def test_default_cap_on_cpu(patch_model, batch):
    x, y = batch
    model = Counting(patch_model)
    e = MinPlus(model, batch_size=3, t_max=1)
    e.explain(x[:3], y[:3])
    # 16×16 grid: 3·256 = 768 images per H0 map in ceil(768 / 256) = 3 forwards
    assert max(model.sizes) == 256
    assert len(model.sizes) == 1 + 3 + 3 and e.last_steps.eq(1).all()


def test_greedy_stops_on_theta_and_t_max(patch_model, batch):
    x, y = batch
    e = MinPlus(patch_model, batch_size=5, step=1 / 4, t_max=5, theta=10.0)
    maps = e.grid_maps(x, y)
    assert e.last_steps.eq(1).all()  # one step recorded, then Δs ≤ θ stops
    assert not any(ph in ("h1-", "h1+") for ph, _, _ in e.last_rounds)
    assert (maps["h1_minus"].flatten(1) != 0).sum(1).le(1).all()
    assert (maps["h1_plus"].flatten(1) != 0).sum(1).le(1).all()
    e = MinPlus(patch_model, batch_size=5, step=1 / 4, t_max=3, theta=float("-inf"))
    e.grid_maps(x, y)
    assert e.last_steps.eq(3).all()
    assert [n for ph, n, _ in e.last_rounds if ph == "h1-"] == [5, 5]


def test_combinations(patch_model, batch):
    x, y = batch
    kw = dict(batch_size=5, step=1 / 4, t_max=2)
    mp, avg = MinPlus(patch_model, **kw), AVG(patch_model, **kw)
    maps = mp.grid_maps(x, y)
    win, _ = mp.windows(32, 32)
    stack = torch.stack([m.flatten(1) for m in maps.values()])  # (4, B, P)
    fills = torch.einsum("kbp,phw->kbhw", stack, win)
    torch.testing.assert_close(mp.explain(x, y), minmax(fills.mean(0)))
    torch.testing.assert_close(avg.explain(x, y), minmax(fills).mean(0))
    out = mp.explain(x, y).flatten(1)
    assert torch.allclose(out.min(1).values, torch.zeros(5))
    assert torch.allclose(out.max(1).values, torch.ones(5))
    assert mp.forwards == 3 * mp.last_forwards  # grid_maps + two explains, same work


def test_bad_arguments(patch_model):
    with pytest.raises(ValueError, match="score"):
        MinPlus(patch_model, score="prob")
    with pytest.raises(ValueError):
        MinPlus(patch_model, t_max=-1)
    assert MinPlus.name == "minplus" and AVG.name == "avg" and not MinPlus.needs_grad
