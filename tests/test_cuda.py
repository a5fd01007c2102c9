"""The GPU paths: every explainer and metric on CUDA, and a suite run end to end there.

Skipped without a GPU (CI has none); run on a lent GPU machine. The toy checks of
tests/test_explainers.py hold on CUDA too, and deterministic methods give the CPU's maps.
"""

from __future__ import annotations

import pytest
import torch

from benchmark.catalogue import EXPLAINERS, METRICS
from explainers.base import fit_and_explain
from tests.conftest import REAL_EXPLAINERS, PatchModel, build, check_generic, toy_landmarks
from tests.test_explainers import TEST_PARAMS

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
CUDA = torch.device("cuda")
# Randomness drawn on the device (masks, noise, samples) differs between CPU and CUDA
# generators, so only these are compared with the CPU's maps.
RANDOM = {"rise", "rise_gauss", "rise_correlation", "smoothgrad", "lime", "kernel_shap"}
# Greedy steps pick the best window; the toy model's many exactly tied windows can break
# ties differently on the two devices, so these are compared by correlation.
GREEDY = {"minplus", "avg"}


def _make(name: str):
    return lambda m: build(
        EXPLAINERS.get(name), m, batch_size=3, seed=0, **TEST_PARAMS.get(name, {})
    )


@pytest.mark.parametrize("name", REAL_EXPLAINERS)
def test_every_explainer_on_cuda(name):
    g = torch.Generator().manual_seed(1)
    x, y = torch.rand(5, 3, 32, 32, generator=g), torch.tensor([1, 1, 0, 1, 0])
    model = PatchModel().eval().to(CUDA)
    maps = check_generic(_make(name), model, x.to(CUDA), y.to(CUDA))
    assert maps.device.type == "cuda"
    if name not in RANDOM:
        cpu = fit_and_explain(_make(name)(PatchModel().eval()), x, y, toy_landmarks(5))
        if name in GREEDY:
            r = torch.corrcoef(torch.stack([maps.cpu().flatten(), cpu.flatten()]))[0, 1]
            assert r > 0.95
        else:
            scale = cpu.abs().amax().clamp_min(1e-6)
            assert ((maps.cpu() - cpu).abs().amax() / scale) < 1e-3


@pytest.mark.parametrize("name", METRICS.names())
def test_every_metric_gives_the_cpu_value_on_cuda(name):
    from benchmark.data.regions import ATTRIBUTE_REGIONS, REGION_NAMES
    from benchmark.data.synthetic import SyntheticFaces
    from benchmark.models.archs import small_cnn
    from benchmark.models.train import to_pixels
    from metrics import MetricContext

    faces = SyntheticFaces(n=16, size=64).load("cuda", seed=0)
    lips = tuple(REGION_NAMES.index(r) for r in ATTRIBUTE_REGIONS["Wearing_Lipstick"])
    ctx = MetricContext(
        REGION_NAMES, ("Wearing_Lipstick",), (lips,),
        reliance={"Wearing_Lipstick": 0.5, "Wearing_Hat": 0.1},
        attribute_regions={k: tuple(REGION_NAMES.index(r) for r in ATTRIBUTE_REGIONS[k])
                           for k in ("Wearing_Lipstick", "Wearing_Hat")},
    )  # fmt: skip
    torch.manual_seed(0)
    model = small_cnn().eval()
    results = []
    for dev in (torch.device("cpu"), CUDA):
        m = model.to(dev)
        x = to_pixels(faces.images, dev)
        a = torch.rand(16, 64, 64, generator=torch.Generator().manual_seed(0)).to(dev)

        def explain_fn(mm, xb, yb, seed_offset=0):
            return EXPLAINERS.get("gradcam")(mm, batch_size=16, seed=seed_offset).explain(xb, yb)

        metric = METRICS.get(name)(ctx)
        metric.update(
            x_batch=x, y_batch=faces.attribute("Male").long().to(dev), a_batch=a,
            s_batch=faces.label_maps.to(dev), b_batch=faces.boxes.to(dev), model=m,
            cache={}, explain_fn=explain_fn,
        )  # fmt: skip
        res = metric.compute()
        results.append(res.scores if not metric.comparative else {"pi": res.per_image.sum()})
    cpu, gpu = results
    assert cpu.keys() == gpu.keys()
    for k in cpu:
        assert float(gpu[k]) == pytest.approx(float(cpu[k]), rel=1e-3, abs=1e-4), k


def test_a_suite_runs_on_cuda(tmp_path):
    import duckdb

    from benchmark.runner import run_suite
    from tests.test_e2e import SUITE, quiet

    text = SUITE.format(db=tmp_path / "r.duckdb").replace("device: cpu", "device: cuda")
    text = text.replace("explainers: [gradcam]", "explainers: [gradcam, rise, cms]")
    suite = tmp_path / "cuda.yaml"
    suite.write_text(text)
    run_suite(suite, console=quiet(), leaderboard=True)
    with duckdb.connect(str(tmp_path / "r.duckdb"), read_only=True) as con:
        (device,) = con.execute("SELECT device FROM runs").fetchone()
        n = con.execute("SELECT count(*) FROM scores WHERE value = value").fetchone()[0]
        kinds = {k for (k,) in con.execute("SELECT DISTINCT kind FROM figures").fetchall()}
    assert "cuda" in device.lower() or "nvidia" in device.lower()
    gallery = {f"gallery:{i:03d}" for i in range(4)}
    assert n == 2 * 3 and kinds == {"prototype", "patches", "canonical", *gallery}


def test_mtcnn_detects_on_the_gpu_as_on_the_cpu(tmp_path):
    """Moved to CUDA (as the runner moves every model), MTCNN runs there and finds the
    CPU's boxes on the four shared faces."""
    pytest.importorskip("facenet_pytorch")
    from benchmark.data.celebamask_hq import CelebAMaskHQ
    from benchmark.models.detection import MTCNNDetector, reference_detections
    from tests.real_faces import real_samples_folder
    from tests.test_celebamask_hq import SAMPLES

    if not SAMPLES.is_dir():
        pytest.skip("../shared samples absent")
    x = CelebAMaskHQ(real_samples_folder(tmp_path), size=160).load("test", 0, None).images
    x = x.float() / 255
    cpu_boxes, cpu_scores = reference_detections(MTCNNDetector(), x)
    detector = MTCNNDetector().to(CUDA)
    gpu_boxes, gpu_scores = reference_detections(detector, x.to(CUDA))
    assert next(detector.net.pnet.parameters()).device.type == "cuda"
    assert torch.allclose(gpu_boxes, cpu_boxes, atol=1.0)
    assert torch.allclose(gpu_scores, cpu_scores, atol=1e-3)
