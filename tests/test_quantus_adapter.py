"""``quantus:<Class>`` metrics (Hedström et al. 2023): known answers on hand-made maps,
the cross-checks against our own deletion AUC, pointing game and sanity check, the
registry's prefix, and a suite that validates and runs."""

from __future__ import annotations

import math
import subprocess
import sys

import duckdb
import numpy as np
import pytest
import torch
from scipy.stats import spearmanr
from typer.testing import CliRunner

pytest.importorskip("quantus")

from benchmark.catalogue import EXPLAINERS, METRICS
from benchmark.cli import app
from benchmark.data.protocols import CelebAMaskRegions
from benchmark.data.synthetic import SyntheticFaces
from benchmark.errors import UnknownNameError
from benchmark.models.archs import small_cnn
from benchmark.models.train import to_pixels
from benchmark.registry import Registry
from benchmark.runner import run_suite
from metrics import MetricContext
from metrics.deletion import DeletionAUC, curve
from metrics.pointing import PointingGame
from metrics.quantus_adapter import QuantusMetric
from metrics.sanity import ModelRandomisation

SIDE = 24  # 3·24² values: Quantus' step (a divisor of 24²) can match ours pixel for pixel
LIPS = tuple(CelebAMaskRegions.regions.index(r) for r in ("u_lip", "l_lip"))
FACE_CTX = MetricContext(CelebAMaskRegions.regions, ("Wearing_Lipstick",), (LIPS,))
TOY_CTX = MetricContext(("background", "lips"), ("Wearing_Lipstick",), ((1,),))


#: Where the score ignores the model, Quantus still wraps it: any eval-mode module.
with torch.random.fork_rng(devices=[]):  # collecting this file leaves the RNG alone
    FLAT = torch.nn.Sequential(torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten(),
                               torch.nn.Linear(3, 2)).eval()  # fmt: skip


def score(name: str, ctx: MetricContext = TOY_CTX, params=None, call=None, **batch):
    """One batch through ``quantus:<Class>``; x, y and the model default to noise."""
    a = batch["a_batch"]
    if "x_batch" not in batch:
        batch["x_batch"] = torch.rand(len(a), 3, *a.shape[1:], generator=torch.Generator())
    batch.setdefault("y_batch", torch.zeros(len(a), dtype=torch.long))
    batch.setdefault("model", FLAT)
    metric = METRICS.get(name)(ctx, call=call, **(params or {}))
    metric.update(**batch)
    return metric.compute()


@pytest.fixture(scope="module")
def faces():
    f = SyntheticFaces(n=16, size=SIDE).load("test", seed=0)
    return to_pixels(f.images, torch.device("cpu")), f.attribute("Male").long(), f.label_maps


@pytest.fixture(scope="module")
def trained(faces):
    """A small CNN after a few Adam steps, so weights and BatchNorm statistics are learned."""
    torch.set_num_threads(2)
    x, y, _ = faces
    torch.manual_seed(0)
    model = small_cnn(width=8)
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    for _ in range(12):
        opt.zero_grad()
        torch.nn.functional.cross_entropy(model(x), y).backward()
        opt.step()
    return model.eval()


def gradcam(model, x, y, seed_offset=0):
    return EXPLAINERS.get("gradcam")(model, batch_size=len(x), seed=0).explain(x, y)


def image_only(model, x, y, seed_offset=0):
    """Ignores the model: fails the sanity check by construction."""
    return x.mean(1)


def test_prefixed_names_resolve_to_our_adapter_read_from_the_class():
    sparse = METRICS.get("quantus:Sparseness")
    assert issubclass(sparse, QuantusMetric) and sparse.name == "quantus:Sparseness"
    assert METRICS.get("quantus:sparseness") is sparse  # one class per Quantus class
    assert METRICS.canonical("Quantus:sparseness") == "quantus:Sparseness"
    assert not any(n.startswith("quantus") for n in METRICS.names())  # open-ended: unlisted
    want = {  # Quantus' score_direction; needs from its evaluation_category
        "Sparseness": ("higher", {"model"}),
        "PointingGame": ("higher", {"model", "masks", "bias_regions"}),
        "PixelFlipping": ("lower", {"model"}),
        "MPRT": ("lower", {"model", "weights", "explainer"}),
        "RandomLogit": ("lower", {"model", "explainer"}),
    }
    for cls, (direction, needs) in want.items():
        m = METRICS.get(f"quantus:{cls}")
        assert (m.direction, set(m.needs)) == (direction, needs), cls
    # Importing the catalogue imports no Quantus: the factory is a lazy target.
    code = "import sys, benchmark.catalogue; print('quantus' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.stdout.strip() == "False", out.stderr


def test_unknown_class_and_params_say_what_is_close():
    with pytest.raises(UnknownNameError, match=r"did you mean 'quantus:Sparseness'\?$"):
        METRICS.get("quantus:Sparsness")
    with pytest.raises(UnknownNameError, match="Class one of AUC, AttributionLocalisation"):
        METRICS.get("quantus:Nothing")
    pixel = METRICS.get("quantus:PixelFlipping")
    with pytest.raises(TypeError, match="did you mean 'features_in_step'"):
        pixel(TOY_CTX, features_in_stp=4)
    with pytest.raises(ValueError, match="unknown call argument 'sofmax'; did you mean 'softmax'"):
        pixel(TOY_CTX, call={"sofmax": False})
    if not hasattr(np, "trapz"):  # NumPy ≥ 2.4: Quantus' own AUC would crash mid-run
        with pytest.raises(ValueError, match=r"np\.trapz"):
            pixel(TOY_CTX, return_auc_per_sample=True)


def test_registry_prefix_is_general():
    reg = Registry("thing")
    reg.prefix("demo", lambda rest: type("T", (), {"name": f"demo:{rest.upper()}"}))
    assert reg.canonical("Demo:abc") == "demo:ABC" and reg.names() == []
    assert reg.get("demo:abc") is reg.get("demo:abc")
    with pytest.raises(ValueError, match="taken"):
        reg.prefix("DEMO", print)
    assert reg.get("math:pi") == math.pi  # other colons stay module:attr targets


def test_pointing_game_and_attribution_localisation_known_answers():
    s = torch.zeros(4, 8, 8, dtype=torch.long)
    s[:, 2:6, 2:6] = 1  # the lips: 16 of 64 pixels
    s[2] = 0  # no lips: left out
    a = torch.rand(4, 8, 8, generator=torch.Generator().manual_seed(0)) * 0.5
    a[0, 3, 3] = a[2, 3, 3] = a[3, 5, 2] = 1.0  # peaks inside
    a[1, 7, 7] = 1.0  # peak outside
    pg = score("quantus:PointingGame", a_batch=a, s_batch=s)
    assert pg.per_image[[0, 1, 3]].tolist() == [1.0, 0.0, 1.0] and math.isnan(pg.per_image[2])
    assert pg.scores["quantus:PointingGame"] == pytest.approx(2 / 3) and pg.n == 3
    assert pg.details["n_nan"] == 1 and pg.details["quantus_class"] == "PointingGame"
    inside = (s == 1).float()
    inside[2] = 1.0
    uniform = torch.ones(4, 8, 8)
    al = score("quantus:AttributionLocalisation", a_batch=torch.cat([inside, uniform]),
               s_batch=torch.cat([s, s]))  # fmt: skip
    # Share of the attribution inside the mask: 1 for a map on the lips, the area for a flat one.
    got = al.per_image.tolist()
    assert got[:2] + got[3:6] + got[7:] == pytest.approx([1.0, 1.0, 1.0, 0.25, 0.25, 0.25])


def test_pointing_game_agrees_with_ours_on_face_masks(faces):
    _, _, masks = faces
    a = torch.rand(len(masks), SIDE, SIDE, generator=torch.Generator().manual_seed(1))
    ours = PointingGame(FACE_CTX)
    ours.update(a_batch=a, s_batch=masks)
    theirs = score("quantus:PointingGame", FACE_CTX, a_batch=a, s_batch=masks)
    want = ours.compute().per_image  # one peak per random map: a hit is 0 or 1 in both
    assert torch.equal(theirs.per_image.isnan(), want.isnan())
    assert theirs.per_image.nan_to_num(-1).tolist() == want.double().nan_to_num(-1).tolist()


def test_sparseness_of_one_hot_and_uniform_maps():
    a = torch.ones(2, 8, 8)
    a[0] = 0.0
    a[0, 4, 4] = 1.0
    res = score("quantus:Sparseness", a_batch=a)
    # Gini index of 64 values: (n − 1)/n for a single non-zero value, 0 for equal ones.
    assert res.per_image.tolist() == pytest.approx([63 / 64, 0.0], abs=1e-5)  # Quantus' ε
    assert res.scores["quantus:Sparseness"] == pytest.approx(63 / 128, abs=1e-5)


def test_pixel_flipping_is_our_deletion_curve(faces, trained):
    """Quantus' PixelFlipping and our deletion_auc, set up alike: black = 0.0 (Quantus'
    "black" is each image's minimum), its features are channel values, so a step of
    3·H·W/K values removes H·W/K whole pixels (each pixel's 3 tied values sort next to
    each other), the same ones as our K steps; both read softmax probabilities. What
    still differs is the area: Quantus' curve leaves out the intact image and is
    integrated with unit spacing, ours runs over [0, 1] from the intact image."""
    x, y, _ = faces
    k = 48
    params = {"features_in_step": 3 * SIDE * SIDE // k, "perturb_baseline": 0.0}
    noise = torch.rand(len(x), SIDE, SIDE, generator=torch.Generator().manual_seed(0))
    theirs = score("quantus:PixelFlipping", a_batch=noise, x_batch=x, y_batch=y,
                   model=trained, params=params).per_image  # fmt: skip
    steps = curve(trained, x, y, noise, x, torch.zeros_like(x), k)  # (N, k + 1)
    assert theirs.numpy() == pytest.approx(np.trapezoid(steps[:, 1:].numpy(), axis=1), abs=1e-4)
    # Grad-CAM maps (ties from upsampling: the orders may differ there): per image, the
    # two AUCs rank the faces alike.
    maps = gradcam(trained, x, y)
    ours = DeletionAUC(TOY_CTX, steps=k)
    ours.update(x_batch=x, y_batch=y, a_batch=maps, model=trained)
    theirs = score("quantus:PixelFlipping", a_batch=maps, x_batch=x, y_batch=y,
                   model=trained, params=params).per_image  # fmt: skip
    assert spearmanr(ours.compute().per_image, theirs).statistic > 0.95


def test_mprt_and_our_sanity_check_agree_on_the_two_ends(faces, trained):
    """Quantus' MPRT re-initialises every layer from the top (its own seeds) and we the
    same layers with ours; it correlates the signed Spearman of |maps| and we |ρ|. Both
    find that Grad-CAM depends on the weights and that a map of the image scores 1."""
    x, y, _ = faces
    x, y = x[:8], y[:8]
    rng = torch.get_rng_state()
    got = {}
    for name, fn in (("gradcam", gradcam), ("image_only", image_only)):
        a = fn(trained, x, y)
        ours = ModelRandomisation(TOY_CTX, layers=None)
        ours.update(x_batch=x, y_batch=y, a_batch=a, model=trained, explain_fn=fn)
        theirs = score("quantus:MPRT", a_batch=a, x_batch=x, y_batch=y, model=trained,
                       explain_fn=fn)  # fmt: skip
        got[name] = (ours.compute().scores["model_randomisation"], theirs.scores["quantus:MPRT"])
        assert len(theirs.details["per_layer"]) == len(ours.compute().details["layers"]) + 1
    assert max(got["gradcam"]) < 0.6, got
    assert min(got["image_only"]) > 0.99, got
    assert torch.equal(torch.get_rng_state(), rng)  # the caller's RNG is left as it was


SUITE = """
name: tiny_quantus
seed: 3
device: cpu
dataset:
  test: {{name: synthetic_faces, params: {{n: 160, size: 32}}}}
model: {{arch: small_cnn, params: {{width: 8}}, train: false}}  # explained as initialised
scenarios:
  - {{name: lipstick, target: Male, attributes: [Wearing_Lipstick]}}
explainers: [gradcam]
metrics:
  - {{name: "{name}", params: {params}}}
  - {{name: "quantus:PointingGame", label: quantus_pg}}
explain: {{batch_size: 16, max_images: 16}}
figures: {{enabled: false}}
db: {db}
"""


def test_a_suite_validates_refuses_typos_and_runs(tmp_path):
    db = tmp_path / "out" / "r.duckdb"

    def write(name: str, params: str) -> str:
        path = tmp_path / f"{abs(hash((name, params)))}.yaml"
        path.write_text(SUITE.format(name=name, params=params, db=db))
        return str(path)

    good = write("quantus:Sparseness", "{abs: true}")
    cli = CliRunner()
    assert cli.invoke(app, ["validate", good]).exit_code == 0
    typo = cli.invoke(app, ["validate", write("quantus:Sparsness", "{}")])
    assert typo.exit_code == 2 and "did you mean 'quantus:Sparseness'" in typo.output
    param = cli.invoke(app, ["validate", write("quantus:Sparseness", "{abss: true}")])
    assert param.exit_code == 2 and "did you mean 'abs'" in param.output
    run_suite(good, leaderboard=False)
    with duckdb.connect(str(db), read_only=True) as con:
        rows = con.execute("SELECT metric, value, n, direction FROM scores ORDER BY 1").fetchall()
    assert [(r[0], r[3]) for r in rows] == [
        ("quantus:Sparseness", "higher"), ("quantus_pg", "higher"),
    ]  # fmt: skip
    assert all(math.isfinite(r[1]) and r[2] > 0 for r in rows)
    assert 0.0 < rows[0][1] < 1.0  # a Gini index
