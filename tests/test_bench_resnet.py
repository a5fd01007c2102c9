"""Peer comparison at a real model size (issue 14): our Occlusion against captum's on
ResNet-18 at 112 px, the same window, stride and baseline, after checking that both
compute the same maps. ``--benchmark-enable`` times both (median of 3 rounds, ours
interleaved as the teardown) and puts ``ratio`` = captum's time / ours in
``extra_info``; disabled, each runs once as a test."""

from __future__ import annotations

import statistics

import pytest
import torch
from captum.attr import Occlusion as CaptumOcclusion

from benchmark.models.archs import resnet18
from explainers.occlusion import Occlusion
from tests.forward_floor import timed

SIDE, B = 112, 4


def captum_at(model: torch.nn.Module, side: int, ppe: int):
    window, stride, _ = Occlusion(model).geometry(side, side)

    def run(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return CaptumOcclusion(model).attribute(
            x, sliding_window_shapes=(3, window, window), strides=(3, stride, stride),
            baselines=0.0, target=y, perturbations_per_eval=ppe,
        )  # fmt: skip

    return run


@pytest.mark.parametrize("ppe", [1, 8])
def test_bench_resnet18_occlusion_vs_captum(benchmark, ppe):
    torch.manual_seed(0)
    model = resnet18().eval()
    g = torch.Generator().manual_seed(0)
    x, y = torch.rand(B, 3, SIDE, SIDE, generator=g), torch.tensor([0, 1, 0, 1])
    theirs = captum_at(model, SIDE, ppe)
    ours = Occlusion(model, batch_size=B)
    with torch.no_grad():
        ref = theirs(x[:1], y[:1]).sum(1)
    assert torch.allclose(ours.explain(x[:1], y[:1]), ref, atol=1e-4)
    ours_times: list[float] = []

    def teardown(*_):
        ours_times.append(timed(ours.explain, x, y)[0])

    with torch.no_grad():
        benchmark.pedantic(theirs, args=(x, y), rounds=1 if benchmark.disabled else 3,
                           teardown=None if benchmark.disabled else teardown)  # fmt: skip
    if ours_times:
        mean = benchmark.stats.stats.median
        benchmark.extra_info.update(ours_s=statistics.median(ours_times),
                                    ratio=mean / statistics.median(ours_times))  # fmt: skip
        print(f"\nppe={ppe}: captum {mean:.2f}s ours {statistics.median(ours_times):.2f}s "
              f"captum/ours {mean / statistics.median(ours_times):.2f}")  # fmt: skip
