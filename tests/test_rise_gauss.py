"""RISEgauss: generic checks and the Gaussian-blob masks."""

from __future__ import annotations

import pytest
import torch

from explainers.rise import RISE
from explainers.rise_gauss import RISEgauss, rise_gauss_masks
from tests.conftest import check_generic


@pytest.fixture
def batch():
    g = torch.Generator().manual_seed(1)
    return torch.rand(5, 3, 32, 32, generator=g), torch.tensor([1, 1, 0, 1, 0])


def make(model, **kw):
    return RISEgauss(model, batch_size=3, seed=0, n_masks=1000, **kw)


def test_generic_checks(patch_model, batch):
    x, y = batch
    maps = check_generic(make, patch_model, x, y)
    # a plain callable: the same maps up to the rounding of the module's folded forward
    torch.testing.assert_close(make(lambda t: patch_model(t)).explain(x, y), maps,
                               atol=1e-6, rtol=1e-4)  # fmt: skip


def test_masks_are_seeded_gaussian_blobs():
    n, s, p, size, sigma = 3, 4, 0.5, 24, 2.0
    masks = rise_gauss_masks(n, s, p, size, sigma, torch.Generator().manual_seed(5))
    assert masks.shape == (n, size, size) and masks.min() >= 0 and masks.max() <= 1
    same = rise_gauss_masks(n, s, p, size, sigma, torch.Generator().manual_seed(5))
    other = rise_gauss_masks(n, s, p, size, sigma, torch.Generator().manual_seed(6))
    assert torch.equal(masks, same) and not torch.equal(masks, other)
    # the documented construction, rebuilt blob by blob from the same draws
    g = torch.Generator().manual_seed(5)
    slots = round(s * s * (size + 4 * sigma) ** 2 / size**2)
    keep = torch.rand(n, slots, generator=g) < p
    cy = torch.rand(n, slots, generator=g) * (size + 4 * sigma) - 2 * sigma
    cx = torch.rand(n, slots, generator=g) * (size + 4 * sigma) - 2 * sigma
    r = torch.arange(size, dtype=torch.float32)
    for i in range(n):
        m = torch.zeros(size, size)
        for k in keep[i].nonzero()[:, 0]:
            d2 = (r[:, None] - cy[i, k]) ** 2 + (r[None, :] - cx[i, k]) ** 2
            m += torch.exp(-d2 / (2 * sigma**2))
        torch.testing.assert_close(masks[i], m.clamp(0, 1), rtol=1e-5, atol=1e-6)


def test_mask_coverage_is_even_and_p_sets_blob_count():
    g = torch.Generator().manual_seed(0)
    masks = rise_gauss_masks(2000, 8, 0.5, 32, 2.0, g)
    mean = masks.mean(0)
    assert (mean.max() - mean.min()) < 0.15  # borders covered like the centre
    assert rise_gauss_masks(4, 8, 0.0, 32, 2.0, g).eq(0).all()
    assert masks.mean() < rise_gauss_masks(2000, 8, 0.9, 32, 2.0, g).mean()


def test_is_rise_with_other_masks(patch_model, batch):
    x, _ = batch
    e = make(patch_model, s=6, p=0.4)
    assert isinstance(e, RISE) and e.name == "rise_gauss" and not e.needs_grad
    assert e.sigma == pytest.approx(0.5 / 6)
    assert e.masks(32, 32).shape == (1000, 32, 32) and e.masks(32, 32) is e.masks(32, 32)
    # a model that ignores its input: "coverage" saliency = its constant probability
    const = lambda t: torch.tensor([[0.0, 1.0]]).expand(len(t), 2)  # noqa: E731
    sal = make(const, normalize="coverage").explain(x, torch.ones(5, dtype=torch.long))
    torch.testing.assert_close(sal, torch.full_like(sal, torch.tensor([0.0, 1.0]).softmax(0)[1]))
    with pytest.raises(ValueError, match="sigma"):
        make(patch_model, sigma=0.0)
