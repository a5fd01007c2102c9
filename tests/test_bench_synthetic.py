"""Rendering speed of the synthetic faces (run with ``--benchmark-enable`` to time it)."""

from __future__ import annotations

import torch

from benchmark.data.synthetic import render, sample_params

N_FACES = 1000


def _sample_and_render() -> int:
    faces = render(sample_params(N_FACES, seed=0), 64)
    return len(faces)


def test_bench_render_1000_faces_64px(benchmark):
    torch.set_num_threads(2)
    n = benchmark.pedantic(_sample_and_render, rounds=3, iterations=1, warmup_rounds=1)
    assert n == N_FACES
    if benchmark.stats is not None:  # None when benchmarks are disabled (the default run)
        benchmark.extra_info["images_per_s"] = N_FACES / benchmark.stats.stats.mean
