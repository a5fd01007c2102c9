"""Speed of the explainers on one batch (run with ``--benchmark-enable`` to time them).

Each benchmark records the model's forward passes and images per forward (a forward
hook on the model) in ``extra_info``, so batching regressions show without timing.
"""

from __future__ import annotations

import pytest
import torch

from benchmark.catalogue import EXPLAINERS
from benchmark.models.archs import small_cnn

B, SIDE = 8, 64
# RISE at its default N=4000 pushes 32,000 images through the CNN (~20 s on 2 cores);
# 1000 masks keep the file fast while exercising the same chunked path (4 forwards).
CASES = {
    "gradcam": {},
    "integrated_gradients": {},
    "occlusion": {},
    "rise": {"n_masks": 1000},
}


@pytest.fixture(scope="module")
def setup():
    torch.manual_seed(0)
    model = small_cnn().eval()
    g = torch.Generator().manual_seed(0)
    return model, torch.rand(B, 3, SIDE, SIDE, generator=g), torch.randint(0, 2, (B,), generator=g)


@pytest.mark.parametrize("name", list(CASES))
def test_bench_explainer(benchmark, setup, name):
    torch.set_num_threads(2)
    model, x, y = setup
    explainer = EXPLAINERS.get(name)(model, batch_size=B, seed=0, **CASES[name])
    sizes: list[int] = []
    handle = model.register_forward_hook(lambda m, i, o: sizes.append(len(i[0])))
    try:
        maps = benchmark.pedantic(explainer.explain, args=(x, y), rounds=1, iterations=1)
    finally:
        handle.remove()
    assert maps.shape == (B, SIDE, SIDE) and torch.isfinite(maps).all()
    benchmark.extra_info.update(
        params=CASES[name],
        forwards=len(sizes),
        images_per_forward=max(sizes),
        images_total=sum(sizes),
    )
    if name == "rise":  # 256 images per CPU forward: 32 masks of each of the 8 images
        assert sizes == [B * 32] * 31 + [B * 8]  # 1000 = 31·32 + 8
    if name == "occlusion":  # the unoccluded forward, then the 225 windows, 32 per image
        assert sizes == [B] + [B * 32] * 7 + [B * 1]
