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
from explainers.rise import RISE
from tests.forward_floor import timed

SIDE, B = 112, 4


def peer_ratio(benchmark, label: str, theirs, ours, args: tuple = ()) -> None:
    """Time the peer (median of 3) with ours interleaved as the teardown, and record
    ``ratio`` = peer ÷ ours in ``extra_info``; nothing with benchmarks disabled (as a
    test, the agreement check before the call is the point)."""
    if benchmark.disabled:
        return
    ours_times: list[float] = []

    def teardown(*_):
        ours_times.append(timed(ours, *args)[0])

    benchmark.pedantic(theirs, args=args, rounds=3, teardown=teardown)
    t_theirs, t_ours = benchmark.stats.stats.median, statistics.median(ours_times)
    benchmark.extra_info.update(ours_s=t_ours, ratio=t_theirs / t_ours)
    print(f"\n{label}: peer {t_theirs:.2f}s ours {t_ours:.2f}s peer/ours {t_theirs / t_ours:.2f}")


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
    if benchmark.disabled and ppe != 1:
        pytest.skip("timing only (--benchmark-enable): batching leaves captum's maps as they are")
    torch.manual_seed(0)
    model = resnet18().eval()
    g = torch.Generator().manual_seed(0)
    x, y = torch.rand(B, 3, SIDE, SIDE, generator=g), torch.tensor([0, 1, 0, 1])
    theirs = captum_at(model, SIDE, ppe)
    ours = Occlusion(model, batch_size=B)
    with torch.no_grad():
        ref = theirs(x[:1], y[:1]).sum(1)
    assert torch.allclose(ours.explain(x[:1], y[:1]), ref, atol=1e-4)
    with torch.no_grad():
        peer_ratio(benchmark, f"occlusion ppe={ppe} vs captum", theirs, ours.explain, (x, y))


def test_bench_resnet18_deletion_vs_quantus_pixel_flipping(benchmark):
    """Our deletion curve against Quantus' PixelFlipping on ResNet-18 at 112 px, set up
    alike (black baseline, whole pixels per step, softmax): the same per-image areas
    (tests/test_quantus_adapter.py explains the offsets), then the time of each."""
    quantus = pytest.importorskip("quantus")
    import numpy as np

    from metrics.deletion import curve

    torch.manual_seed(0)
    model = resnet18().eval()
    g = torch.Generator().manual_seed(0)
    x, y = torch.rand(B, 3, SIDE, SIDE, generator=g), torch.tensor([0, 1, 0, 1])
    a = torch.rand(B, SIDE, SIDE, generator=g)
    k = 48  # Quantus counts channel values: 3·H·W/k must divide H·W, so k is a multiple of 3
    metric = quantus.PixelFlipping(
        features_in_step=3 * SIDE * SIDE // k, perturb_baseline=0.0, disable_warnings=True,
        display_progressbar=False, return_aggregate=False,
    )  # fmt: skip

    def theirs():
        return np.asarray(metric(model=model, x_batch=x.numpy(), y_batch=y.numpy(),
                                 a_batch=a[:, None].numpy(), device="cpu", softmax=True,
                                 channel_first=True))  # fmt: skip

    def ours():
        return curve(model, x, y, a, x, torch.zeros_like(x), k)

    steps = ours()
    area = np.trapezoid(steps[:, 1:].numpy(), axis=1)
    curves = theirs()
    got = np.trapezoid(curves, axis=1) if curves.ndim == 2 else curves
    assert got == pytest.approx(area, rel=1e-3)  # float32 sums in another order
    peer_ratio(benchmark, "deletion vs quantus", theirs, ours)


def test_bench_resnet18_rise_vs_xaitk_saliency(benchmark):
    """Our RISE against xaitk-saliency's RISEStack on ResNet-18 at 112 px: the same
    number of masks, grid and keep probability, each scoring its masks in forwards of
    the size ours picks. The masks differ (each draws its own), so maps cannot agree
    value for value; the check is one map per image at the input size, then the time."""
    pytest.importorskip("xaitk_saliency")
    import numpy as np
    from smqtk_classifier.interfaces.classify_image import ClassifyImage
    from xaitk_saliency.impls.gen_image_classifier_blackbox_sal.rise import RISEStack

    from explainers.forward_size import images_per_forward as sized

    torch.manual_seed(0)
    model = resnet18().eval()
    n, b = 200, 2
    g = torch.Generator().manual_seed(0)
    x, y = torch.rand(b, 3, SIDE, SIDE, generator=g), torch.tensor([0, 1])
    per = sized(torch.device("cpu"), None, model, (3, SIDE, SIDE))

    class Blackbox(ClassifyImage):
        def get_labels(self):
            return [0, 1]

        def get_config(self):
            return {}

        def classify_images(self, img_iter):
            chunk = []
            for img in img_iter:
                chunk.append(img)
                if len(chunk) == per:
                    yield from self._score(chunk)
                    chunk = []
            if chunk:
                yield from self._score(chunk)

        def _score(self, chunk):
            t = torch.from_numpy(np.stack(chunk)).permute(0, 3, 1, 2).float()
            with torch.no_grad():
                probs = model(t).softmax(1).numpy()
            return [dict(enumerate(p)) for p in probs]

    stack = RISEStack(n=n, s=8, p1=0.5, seed=0, debiased=False)

    def theirs():
        return np.stack([stack(x[i].permute(1, 2, 0).numpy(), Blackbox())[int(y[i])]
                         for i in range(b)])  # fmt: skip

    ours = RISE(model, n_masks=n, s=8, p=0.5, batch_size=b)
    assert theirs().shape == tuple(ours.explain(x, y).shape) == (b, SIDE, SIDE)
    peer_ratio(benchmark, "rise vs xaitk-saliency", theirs, ours.explain, (x, y))


def test_bench_resnet18_scorecam_vs_pytorch_grad_cam(benchmark):
    """Our Score-CAM against pytorch-grad-cam's on ResNet-18 at 112 px (its default 16
    masked images per forward; layer4's 512 channels, so 512 forwards' worth of images
    per face): the same CAM before scaling, then the time of each."""
    if benchmark.disabled:  # 512 forwards' worth per face, twice: timing runs only
        pytest.skip("timing only (--benchmark-enable); agreement: test_bench_explainers")
    from explainers.cams import ScoreCAM
    from tests.test_bench_explainers import check_scorecam_agrees, gradcam_scorecam

    torch.manual_seed(0)
    model = resnet18().eval()
    g = torch.Generator().manual_seed(0)
    x, y = torch.rand(1, 3, SIDE, SIDE, generator=g), torch.tensor([1])
    check_scorecam_agrees(model, None, x, y)
    theirs, ours = gradcam_scorecam(model, None), ScoreCAM(model, batch_size=1)
    peer_ratio(benchmark, "score-cam vs pytorch-grad-cam", theirs, ours.explain, (x, y))
