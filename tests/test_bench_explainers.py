"""Speed of every registered explainer on one batch, against its forward-pass floor.

Run with ``--benchmark-enable -s`` to time them and print the table; without it (the
default, see pyproject.toml) each benchmark body runs once as a test.

- Every explainer: forwards, images per forward and images in all, read by a forward hook
  on the model, go to ``extra_info``, so batching regressions show without timing.
- Perturbation explainers (``needs_grad = False``: forward passes only) must send the
  exact images-per-forward sequence of their method (every forward of a step full up to
  the per-forward cap, but its last), all without autograd. Their time is compared with
  their *floor*, plain ``model(x)`` forwards of that same sequence under ``no_grad``
  (``tests/forward_floor.py``), measured in the same test, interleaved with the
  explainer's rounds so that both see the same machine load. ``ratio`` = time / floor
  (target ≤ 1.3×, reported, not asserted: speed is measured with benchmarks, not with
  timed assertions); ``ratio_best`` compares with the same images at the model's best
  batched throughput.
- The same inputs through captum's Occlusion (its default ``perturbations_per_eval=1``
  and ours) and pytorch-grad-cam's Score-CAM (its default batch size and the largest it
  can use), after checking on two images that they compute our maps; ``ratio`` = ours /
  theirs.

On Linux, glibc hands out allocations above its mmap threshold as fresh pages, so the
~17 MB activations of a 256-image forward would page-fault layer after layer (up to 2×
slower); tests/conftest.py tunes glibc's malloc as the ``bench`` CLI does
(``benchmark/allocator.py``), so these timings are what users get.
"""

from __future__ import annotations

import contextlib
import io
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest
import torch
from captum.attr import Occlusion as CaptumOcclusion

from benchmark.catalogue import EXPLAINERS
from benchmark.data.synthetic import SyntheticFaces
from benchmark.models.archs import small_cnn
from benchmark.models.train import to_pixels
from explainers.base import build_explainer, fit_and_explain, images_per_forward, to_map
from explainers.cams import ScoreCAM
from explainers.canonical import CanonicalFace
from explainers.occlusion import Occlusion
from tests.conftest import REAL_EXPLAINERS
from tests.forward_floor import ForwardFloor, forward_log, throughput, timed

B, SIDE = 8, 64
CAP = images_per_forward(torch.device("cpu"))  # 256 images per forward on CPU
NAMES = REAL_EXPLAINERS
PERTURBATION = [n for n in NAMES if not EXPLAINERS.get(n).needs_grad]
# Where the default is too slow for CI or its forward count depends on the model:
# RISE at N=4000 pushes 32,000 images through the CNN; 1000 masks run the same chunked
# path. MinPlus/AVG stop their greedy runs when a step changes the probability by ≤ θ,
# which on a random model is at once; θ = −1 (a probability changes by more) makes every
# image run all t_max steps, so the greedy rounds are timed and their count is known.
PARAMS: dict[str, dict[str, Any]] = {
    "rise": {"n_masks": 1000},
    "rise_gauss": {"n_masks": 1000},
    "rise_correlation": {"n_masks": 1000},
    "minplus": {"t_max": 2, "theta": -1.0},
    "avg": {"t_max": 2, "theta": -1.0},
}
ROUNDS = 3  # timed rounds when benchmarks are enabled, after one warm-up round


@pytest.fixture(scope="module")
def setup():
    torch.manual_seed(0)
    model = small_cnn().eval()
    faces = SyntheticFaces(n=B, size=SIDE).load("bench", seed=0)
    x = to_pixels(faces.images, torch.device("cpu"))
    return model, x, faces.attribute("Male").long(), faces.landmarks.float()


def build(name: str, model: torch.nn.Module, landmarks: torch.Tensor) -> Any:
    """Explainer ``name`` with PARAMS; methods that need a canonical face get the mean
    landmark shape of the batch."""
    face = CanonicalFace.mean_of(landmarks, (SIDE, SIDE))
    params = {"batch_size": B, "seed": 0, **PARAMS.get(name, {})}
    return build_explainer(EXPLAINERS.get(name), model, canonical=face, **params)


@pytest.fixture(scope="module")
def best_rate(setup):
    """The model's best images/s over batch sizes, and that size (measured on first use)."""
    model, x = setup[:2]
    rates: dict[int, float] = {}

    def get() -> tuple[float, int]:
        if not rates:
            rates.update(throughput(model, x.shape[1:]))
            print("\nsmall_cnn img/s by batch size:", {b: round(r) for b, r in rates.items()})
        size = max(rates, key=rates.__getitem__)
        return rates[size], size

    return get


@pytest.fixture(scope="module")
def table():
    """Rows of the printed summary (shown with ``-s``)."""
    rows: list[str] = []
    yield rows
    if rows:
        print("\n" + "\n".join(rows))


def chunks(total: int, size: int) -> list[int]:
    """Images per forward when ``total`` images go through in forwards of ``size``."""
    return [size] * (total // size) + ([total % size] if total % size else [])


def run_lengths(sizes: list[int]) -> str:
    """[8, 256, 256, 8] → '8 + 2×256 + 8'."""
    out: list[list[int]] = []
    for n in sizes:
        if out and out[-1][0] == n:
            out[-1][1] += 1
        else:
            out.append([n, 1])
    return " + ".join(f"{k}×{n}" if k > 1 else str(n) for n, k in out)


def expected_sizes(name: str, explainer: Any, model: torch.nn.Module, x: torch.Tensor):
    """The images-per-forward sequence a perturbation method must send for ``x``."""
    b, _, h, w = x.shape
    if name == "occlusion":  # the unoccluded batch, then every window, per_eval per image
        _, _, windows = explainer.geometry(h, w)
        return [b, *chunks(b * windows, b * explainer.per_eval(x))]
    if name in ("rise", "rise_gauss", "rise_correlation"):  # B·k per forward, k = cap // B
        return chunks(b * explainer.n_masks, b * (CAP // b))
    if name == "scorecam":  # the batch (capturing A), then its B·K masked images
        k = model.target_layer[0].out_channels
        return [b, *chunks(b * k, CAP)]
    if name in ("minplus", "avg"):  # f(X), f(black); H0⁻, H0⁺; t_max − 1 greedy rounds each
        p = len(explainer.windows(h, w)[0])
        rounds = 2 + 2 * (explainer.t_max - 1)
        return chunks(b + 1, CAP) + chunks(b * p, CAP) * rounds
    if name in ("lime", "kernel_shap"):  # every image's n_samples perturbations, across images
        return chunks(b * explainer.n_samples, explainer.per_forward((3, h, w)))
    return None  # others: every forward but the first and the last holds the cap


@pytest.mark.parametrize("name", NAMES)
def test_bench_explainer(benchmark, setup, best_rate, table, name):
    model, x, y, landmarks = setup
    explainer = build(name, model, landmarks)  # imports happen here, outside the timing
    perturbation = name in PERTURBATION
    runs: list[tuple[float, list[tuple[int, bool]]]] = []
    floor = ForwardFloor(model, x.shape[1:])
    floor_times: list[float] = []

    def explain() -> torch.Tensor:
        with forward_log(model) as log:
            # model-level methods (CMS) fit on the batch first: part of their cost
            seconds, maps = timed(fit_and_explain, explainer, x, y, landmarks)
        runs.append((seconds, log))
        return maps

    def floor_round(*_: Any) -> None:  # after each round of the explainer, same load
        if perturbation:
            floor_times.append(floor.once([n for n, _ in runs[-1][1]]))

    # Disabled (the default), pedantic runs the body once and no teardown: no floor.
    maps = benchmark.pedantic(explain, rounds=ROUNDS, warmup_rounds=1, teardown=floor_round)

    assert maps.shape == (B, SIDE, SIDE) and torch.isfinite(maps).all()
    log = runs[0][1]
    sizes = [n for n, _ in log]
    assert all(r[1] == log for r in runs)  # the same forwards every round
    info: dict[str, Any] = {
        "params": PARAMS.get(name, {}),
        "forwards": len(sizes),
        "images_per_forward": max(sizes),
        "images_total": sum(sizes),
        "forward_sizes": run_lengths(sizes),
    }
    t = min(s for s, _ in runs)
    row = f"{name:22s} {len(sizes):5d} {sum(sizes):6d} {max(sizes):5d} {t:8.3f}s"
    if name == "rise":  # 256 images per CPU forward: 32 masks of each of the 8 images
        assert sizes == [B * 32] * 31 + [B * 8]  # 1000 = 31·32 + 8
    if name == "occlusion":  # the unoccluded forward, then the 225 windows, 32 per image
        assert sizes == [B] + [B * 32] * 7 + [B * 1]
    if perturbation:
        assert not any(grad for _, grad in log), "a perturbation method ran with autograd"
        assert max(sizes) <= CAP
        expected = expected_sizes(name, explainer, model, x)
        if expected is not None:
            assert sizes == expected
        else:
            assert all(n == CAP for n in sizes[1:-1])
        if floor_times:
            f = min(floor_times)
            rate, best = best_rate()
            best_floor = sum(sizes) / rate
            info.update(
                time_s=t, time_first_s=runs[0][0], floor_s=f, ratio=t / f,
                floor_best_s=best_floor, best_batch=best, ratio_best=t / best_floor,
            )  # fmt: skip
            row += f" {runs[0][0]:8.3f}s {f:8.3f}s {t / f:6.2f}×"
            row += f" {best_floor:8.3f}s {t / best_floor:6.2f}×"
    benchmark.extra_info.update(info)
    if not table:
        table.append(
            f"{'explainer':22s} {'fwd':>5s} {'images':>6s} {'max':>5s} {'time':>9s}"
            f" {'1st call':>9s} {'floor':>9s} {'ratio':>7s} {'floor@best':>9s} {'ratio':>7s}"
        )
    table.append(row)


# -- the same inputs through captum's Occlusion and pytorch-grad-cam's Score-CAM -----------


def captum_occlusion(model: torch.nn.Module, ppe: int | None) -> Callable:
    """captum's Occlusion with our defaults' window, stride and baseline; ``ppe=None``
    leaves captum's default ``perturbations_per_eval`` (1)."""
    window, stride, _ = Occlusion(model).geometry(SIDE, SIDE)
    kw = {} if ppe is None else {"perturbations_per_eval": ppe}

    def run(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return CaptumOcclusion(model).attribute(
            x, sliding_window_shapes=(3, window, window), strides=(3, stride, stride),
            baselines=0.0, target=y, **kw,
        )  # fmt: skip

    return run


def gradcam_scorecam(model: torch.nn.Module, batch_size: int | None, raw: bool = False):
    """pytorch-grad-cam's Score-CAM at the model's target layer, as a user calls it (its
    progress bars silenced); ``raw``: its CAM at the layer's resolution before scaling."""
    pgc = pytest.importorskip("pytorch_grad_cam")
    from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget

    layer = model.target_layer

    def run(x: torch.Tensor, y: torch.Tensor) -> np.ndarray:
        targets = [ClassifierOutputTarget(int(c)) for c in y]
        with (
            contextlib.redirect_stderr(io.StringIO()),
            pgc.ScoreCAM(model=model, target_layers=[layer]) as cam,
        ):
            if batch_size is not None:
                cam.batch_size = batch_size
            if not raw:
                return cam(input_tensor=x, targets=targets)
            cam.activations_and_grads(x)
            acts = cam.activations_and_grads.activations[0].numpy()
            return np.maximum(cam.get_cam_image(x, layer, targets, acts, None, False), 0)

    return run


def check_occlusion_agrees(model: torch.nn.Module, theirs: Callable, x, y) -> None:
    ours = Occlusion(model, batch_size=len(x)).explain(x, y)
    assert torch.allclose(ours, to_map(theirs(x, y), x.shape[-2:]), atol=1e-5)


def check_scorecam_agrees(model: torch.nn.Module, batch_size: int | None, x, y) -> None:
    raw = gradcam_scorecam(model, batch_size, raw=True)(x, y)
    explainer = ScoreCAM(model, batch_size=len(x))
    with torch.no_grad():
        ours = explainer.attribute(x, y).numpy()
    explainer.remove_hooks()
    scale = max(float(raw.max()), 1e-12)
    assert ours.shape == raw.shape and np.abs(ours - raw).max() / scale < 1e-4


# case → (our explainer, their method given the model, agreement check)
REFERENCES: dict[str, tuple[str, Callable, Callable]] = {
    "captum_occlusion_ppe1": (
        "occlusion",
        lambda m: captum_occlusion(m, None),
        lambda m, x, y: check_occlusion_agrees(m, captum_occlusion(m, None), x, y),
    ),
    "captum_occlusion_ppe_ours": (
        "occlusion",
        lambda m: captum_occlusion(m, CAP // B),
        lambda m, x, y: check_occlusion_agrees(m, captum_occlusion(m, CAP // B), x, y),
    ),
    "gradcam_scorecam_bs16": (  # its default batch size (16 masked images per forward)
        "scorecam",
        lambda m: gradcam_scorecam(m, None),
        lambda m, x, y: check_scorecam_agrees(m, None, x, y),
    ),
    "gradcam_scorecam_bs64": (  # one image at a time: all its K = 64 channels per forward
        "scorecam",
        lambda m: gradcam_scorecam(m, 64),
        lambda m, x, y: check_scorecam_agrees(m, 64, x, y),
    ),
}


@pytest.mark.parametrize("case", list(REFERENCES))
def test_bench_reference(benchmark, setup, table, case):
    model, x, y, landmarks = setup
    ours_name, make_theirs, check = REFERENCES[case]
    check(model, x[:2], y[:2])  # apples to apples: the same maps on two images
    ours = build(ours_name, model, landmarks)
    theirs = make_theirs(model)
    if ours_name == "occlusion":
        assert ours.per_eval(x) == CAP // B
    runs: list[tuple[float, list[tuple[int, bool]]]] = []
    ours_times: list[float] = []

    def run_theirs() -> Any:
        with forward_log(model) as log:
            seconds, out = timed(theirs, x, y)
        runs.append((seconds, log))
        return out

    def ours_round(*_: Any) -> None:
        ours_times.append(timed(ours.explain, x, y)[0])

    # Disabled, pedantic runs theirs once and no teardown: ours is not timed.
    benchmark.pedantic(run_theirs, rounds=ROUNDS, warmup_rounds=1, teardown=ours_round)

    sizes = [n for n, _ in runs[0][1]]
    t_theirs = min(s for s, _ in runs)
    info = {"ours": ours_name, "forwards": len(sizes), "images_total": sum(sizes),
            "forward_sizes": run_lengths(sizes), "time_s": t_theirs}  # fmt: skip
    row = f"{case:26s} {len(sizes):4d} fwd {sum(sizes):5d} img  theirs {t_theirs:7.3f}s"
    if ours_times:
        t_ours = min(ours_times)
        info.update(ours_s=t_ours, ratio=t_ours / t_theirs)
        row += f"  {ours_name} {t_ours:7.3f}s  ours/theirs {t_ours / t_theirs:5.2f}"
    benchmark.extra_info.update(info)
    table.append(row)


def test_floor_runs_exactly_the_sizes_it_is_given():
    """The floor's fidelity: the forwards it times are the sequence asked, without grad."""
    model = small_cnn().eval()
    with forward_log(model) as log:
        ForwardFloor(model, (3, 16, 16)).once([3, 5, 3])
    assert log == [(3, False), (5, False), (3, False)]
