"""Speed of every registered metric on one fixed batch (``--benchmark-enable`` to time).

Each benchmark records the model's forward passes and images per forward in
``extra_info``: the confidence metrics must send originals and explanation images
through one forward per batch, and share it through the per-batch cache.
"""

from __future__ import annotations

import pytest
import torch

from benchmark.catalogue import EXPLAINERS, METRICS
from benchmark.data.regions import ATTRIBUTE_REGIONS, REGION_NAMES
from benchmark.data.synthetic import SyntheticFaces
from benchmark.models.archs import small_cnn
from benchmark.models.train import to_pixels
from metrics import MetricContext

B, SIDE = 32, 64


@pytest.fixture(scope="module")
def batch():
    torch.manual_seed(0)
    faces = SyntheticFaces(n=B, size=SIDE).load("bench", seed=0)
    x = to_pixels(faces.images, torch.device("cpu"))
    g = torch.Generator().manual_seed(0)
    a = torch.rand(B, SIDE, SIDE, generator=g)
    y = faces.attribute("Male").long()
    lips = tuple(REGION_NAMES.index(r) for r in ATTRIBUTE_REGIONS["Wearing_Lipstick"])
    attrs = ("Wearing_Lipstick", "Wearing_Hat", "Blond_Hair")
    ctx = MetricContext(
        REGION_NAMES, ("Wearing_Lipstick",), (lips,),
        reliance={"Wearing_Lipstick": 0.5, "Wearing_Hat": 0.1, "Blond_Hair": 0.2},
        attribute_regions={k: tuple(REGION_NAMES.index(r) for r in ATTRIBUTE_REGIONS[k])
                           for k in attrs},
    )  # fmt: skip
    inputs = {"x_batch": x, "y_batch": y, "a_batch": a, "s_batch": faces.label_maps,
              "b_batch": faces.boxes}  # fmt: skip
    return ctx, inputs, small_cnn().eval()


def explain_fn(
    model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor, seed_offset: int = 0
) -> torch.Tensor:
    """Grad-CAM rebuilt on any model, for the metrics that re-explain (sanity checks)."""
    return EXPLAINERS.get("gradcam")(model, batch_size=B, seed=seed_offset).explain(x, y)


@pytest.mark.parametrize("name", METRICS.names())
def test_bench_metric(benchmark, batch, name):
    torch.set_num_threads(2)
    ctx, inputs, model = batch
    cls = METRICS.get(name)  # imports happen here, outside the timing
    sizes: list[int] = []
    handle = model.register_forward_hook(lambda m, i, o: sizes.append(len(i[0])))

    def score():
        metric = cls(ctx)
        metric.update(**inputs, model=model, cache={}, explain_fn=explain_fn)
        return metric, metric.compute()

    try:
        metric, result = benchmark.pedantic(score, rounds=1, iterations=1)
    finally:
        handle.remove()
    assert result.n > 0
    if metric.comparative:  # scored against other explainers: values per image instead
        assert result.scores == {} and result.per_image.shape == (B,)
    else:
        assert metric.name in result.scores or f"{metric.name}.top_hit" in result.scores
    if name in ("average_drop", "increase_in_confidence", "win_percent"):
        assert sizes == [2 * B]  # originals and explanation images in one forward
    elif "model" in metric.needs:  # every perturbation step batched, capped per forward
        assert sizes and max(sizes) <= 256
    else:
        assert sizes == []
    benchmark.extra_info.update(forwards=len(sizes), images_total=sum(sizes))
