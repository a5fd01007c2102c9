"""Model-parameter randomisation (Adebayo et al. 2018): known answers for the batched
Spearman, the cascade, determinism, and the two ends of the check (an explainer that
ignores the model scores 1; Grad-CAM falls well below)."""

from __future__ import annotations

import math

import pytest
import torch
from scipy.stats import spearmanr

from benchmark.catalogue import EXPLAINERS
from benchmark.data.synthetic import SyntheticFaces
from benchmark.models.archs import small_cnn
from benchmark.models.train import to_pixels
from metrics import MetricContext
from metrics.sanity import ModelRandomisation, parametrised_layers, spearman

CTX = MetricContext(("skin",))


def gradcam(model, x, y):
    return EXPLAINERS.get("gradcam")(model, batch_size=len(x), seed=0).explain(x, y)


def image_only(model, x, y):
    """Ignores the model: fails the sanity check by construction."""
    return x.mean(1)


@pytest.fixture(scope="module")
def faces():
    faces = SyntheticFaces(n=8, size=64).load("test", seed=0)
    return to_pixels(faces.images, torch.device("cpu")), faces.attribute("Male").long()


@pytest.fixture(scope="module")
def trained(faces):
    """A small CNN after a few Adam steps: weights and BatchNorm statistics are learned,
    so re-initialising any layer changes the model."""
    torch.set_num_threads(2)
    x, y = faces
    torch.manual_seed(0)
    model = small_cnn()
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    for _ in range(25):
        opt.zero_grad()
        torch.nn.functional.cross_entropy(model(x), y).backward()
        opt.step()
    return model.eval()


def scores(metric, model, x, y, a, fn):
    metric.update(x_batch=x, y_batch=y, a_batch=a, model=model, explain_fn=fn)
    return metric.compute()


def test_spearman_matches_scipy_with_ties():
    g = torch.Generator().manual_seed(0)
    quantised = torch.randint(0, 5, (6, 200), generator=g).float()  # 5 levels: many ties
    relu = torch.randn(6, 200, generator=g).clamp_min(0)  # about half exact zeros
    a = torch.cat([quantised, relu, torch.randn(4, 200, generator=g)])
    b = torch.cat([torch.randint(0, 5, (6, 200), generator=g).float(), relu.flip(0), a[-4:] ** 3])
    b[7] = a[7] + torch.randn(200, generator=g).clamp_min(0)  # correlated, ties in both
    got = spearman(a, b)
    want = [spearmanr(a[i].numpy(), b[i].numpy()).statistic for i in range(len(a))]
    assert got.shape == (len(a),) and got.dtype == torch.float32
    assert got.tolist() == pytest.approx(want, abs=1e-6)
    assert got[-4:].tolist() == [1.0] * 4  # monotone transform: exactly 1


def test_spearman_large_maps_with_ties_match_scipy():
    g = torch.Generator().manual_seed(1)
    a = torch.randint(0, 7, (2, 160, 160), generator=g).float()  # rank sums > 2^24
    b = (a + torch.randint(0, 3, (2, 160, 160), generator=g)).clamp_max(6)
    want = [spearmanr(a[i].flatten(), b[i].flatten()).statistic for i in range(2)]
    assert spearman(a, b).tolist() == pytest.approx(want, abs=1e-6)


def test_spearman_hand_worked():
    a = torch.tensor([[1.0, 2, 3, 4], [1, 2, 2, 3], [0, 0, 0, 1], [2, 2, 2, 2]])
    b = torch.tensor([[4.0, 3, 2, 1], [1, 3, 2, 4], [0, 0, 1, 2], [1, 2, 3, 4]])
    # Row 2: ranks (1, 2.5, 2.5, 4) and (1, 3, 2, 4): ρ = 4.5 / √(4.5·5) = √0.9.
    # Row 3: ranks (2, 2, 2, 4) and (1.5, 1.5, 3, 4): ρ = 3 / √(3·4.5) = √(2/3).
    # Row 4: constant, so ρ is undefined (NaN, as in scipy).
    rho = spearman(a, b)
    assert rho[:3].tolist() == pytest.approx([-1.0, math.sqrt(0.9), math.sqrt(2 / 3)], abs=1e-7)
    assert math.isnan(rho[3])


def test_model_independent_explainer_scores_exactly_one(trained, faces):
    x, y = faces
    res = scores(ModelRandomisation(CTX, layers=3), trained, x, y, x.mean(1), image_only)
    assert res.scores == {"model_randomisation": 1.0} and res.n == len(x)
    assert res.details["per_stage"] == [1.0, 1.0, 1.0] and res.details["n_constant"] == 0
    assert res.per_image.tolist() == [1.0] * len(x)


def test_gradcam_depends_on_the_model(trained, faces):
    x, y = faces
    a = gradcam(trained, x, y)
    res = scores(ModelRandomisation(CTX), trained, x, y, a, gradcam)
    assert res.scores["model_randomisation"] < 0.7  # |ρ| per image; 1.0 for no dependence
    signed = scores(ModelRandomisation(CTX, absolute=False), trained, x, y, a, gradcam)
    assert signed.scores["model_randomisation"] < 0.5
    assert res.details["per_stage"][-1] < 0.3  # the last 4 layers re-drawn: little is left
    # The control: Grad-CAM on the unchanged model reproduces its own maps.
    assert spearman(a, gradcam(trained, x, y)).tolist() == [1.0] * len(x)


def test_deterministic_seeded_and_original_untouched(trained, faces):
    x, y = faces
    before = {k: v.clone() for k, v in trained.state_dict().items()}
    seen: list[tuple[bool, bool]] = []

    def spy(model, xb, yb):
        seen.append((model.training, model is trained))
        return gradcam(model, xb, yb)

    a = gradcam(trained, x, y)
    trained.train()  # the copies are explained in eval mode whatever the original's mode
    try:
        first = ModelRandomisation(CTX, seed=3)
        for _ in range(2):
            first.update(x_batch=x, y_batch=y, a_batch=a, model=trained, explain_fn=spy)
        assert trained.training
    finally:
        trained.eval()
    assert seen == [(False, False)] * 8  # 4 stages × 2 batches, never the original
    assert all(torch.equal(v, trained.state_dict()[k]) for k, v in before.items())
    per_image = first.compute().per_image
    assert torch.equal(per_image[: len(x)], per_image[len(x) :])  # same weights every batch
    again = scores(ModelRandomisation(CTX, seed=3), trained, x, y, a, gradcam)
    assert torch.equal(again.per_image, per_image[: len(x)])

    def last_layer(seed: int) -> torch.Tensor:
        randomised = next(iter(ModelRandomisation(CTX, seed=seed).cascade(trained)))
        return randomised.backbone[6].weight.detach().clone()

    assert torch.equal(last_layer(0), last_layer(0))
    assert not torch.equal(last_layer(0), last_layer(1))
    assert not torch.equal(last_layer(0), trained.backbone[6].weight)
    other = scores(ModelRandomisation(CTX, seed=4), trained, x, y, a, gradcam)
    assert not torch.equal(other.per_image, again.per_image)
    assert all(torch.equal(v, trained.state_dict()[k]) for k, v in before.items())


def test_cascade_randomises_the_last_layers_in_turn(trained):
    names = [n for n, m in trained.named_modules() if any(True for _ in m.parameters(False))]
    assert [n for n, _ in parametrised_layers(trained)] == names
    metric = ModelRandomisation(CTX, layers=2)
    original = dict(trained.named_parameters())
    for k, copy in enumerate(metric.cascade(trained), start=1):
        changed = {
            n.rsplit(".", 1)[0]
            for n, p in copy.named_parameters()
            if not torch.equal(p, original[n])
        }
        assert changed == set(names[-k:])
    every = ModelRandomisation(CTX, layers=None)
    more = ModelRandomisation(CTX, layers=100)  # more stages than layers: clipped
    assert len(list(every.cascade(trained))) == len(list(more.cascade(trained))) == len(names)


def test_details_name_the_randomised_layers(trained, faces):
    x, y = faces
    res = scores(ModelRandomisation(CTX, layers=2, seed=5), trained, x, y, x.mean(1), image_only)
    names = [n for n, m in trained.named_modules() if any(True for _ in m.parameters(False))]
    assert res.details["layers"] == names[-2:][::-1] == ["backbone.6", "backbone.3.1"]
    assert res.details["seed"] == 5 and len(res.details["per_stage"]) == 2


def test_constant_maps_are_left_out_and_counted(trained, faces):
    x, y = faces
    zeros = lambda m, xb, yb: torch.zeros(len(xb), *xb.shape[-2:])  # noqa: E731
    res = scores(ModelRandomisation(CTX, layers=2), trained, x, y, x.mean(1), zeros)
    assert res.scores == {} and res.n == len(x)
    assert res.details["n_constant"] == 2 * len(x) and res.details["per_stage"] == [None, None]
    assert res.per_image.isnan().all()


def test_rejects_bad_parameters_and_missing_inputs(trained, faces):
    x, y = faces
    with pytest.raises(ValueError, match="layers must be at least 1"):
        ModelRandomisation(CTX, layers=0)
    metric = ModelRandomisation(CTX)
    with pytest.raises(ValueError, match="needs the model and the explainer"):
        metric.update(x_batch=x, y_batch=y, a_batch=x.mean(1), model=trained)
    with pytest.raises(ValueError, match="needs the model and the explainer"):
        metric.update(x_batch=x, y_batch=y, a_batch=x.mean(1), explain_fn=image_only)
    with pytest.raises(ValueError, match="no batch seen"):
        metric.compute()


def test_a_map_that_only_flips_sign_fails_the_absolute_check(trained, faces):
    """|ρ| (default): a sign flip keeps the map's structure, so it scores 1, not −1."""
    x, y = faces
    a = x.mean(1)

    def flips(model, xb, yb):  # the image's map, negated on any other model
        same = model is trained
        return xb.mean(1) if same else -xb.mean(1)

    res = scores(ModelRandomisation(CTX, layers=2), trained, x, y, a, flips)
    assert res.scores == {"model_randomisation": 1.0} and res.details["per_stage"] == [-1.0, -1.0]
    signed = scores(ModelRandomisation(CTX, layers=2, absolute=False), trained, x, y, a, flips)
    assert signed.scores == {"model_randomisation": -1.0}
