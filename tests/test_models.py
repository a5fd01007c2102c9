from __future__ import annotations

import pytest
import torch

from benchmark.catalogue import MODELS
from benchmark.models.archs import resnet18
from benchmark.models.train import (
    CheckpointCache,
    load_user_checkpoint,
    predict,
    stable_hash,
    train_model,
)


@pytest.mark.parametrize("name", MODELS.names())
def test_arch_outputs_logits_and_declares_a_target_layer(name):
    import inspect

    factory = MODELS.get(name)
    width = "n_classes" if "n_classes" in inspect.signature(factory).parameters else "dim"
    model = factory(**{width: 2}).eval()  # classes, or an embedding's dimensions
    feats = {}
    model.target_layer.register_forward_hook(lambda m, i, o: feats.setdefault("a", o))
    with torch.no_grad():
        out = model(torch.rand(2, 3, 64, 64))
    assert out.shape == (2, 2)
    assert feats["a"].dim() == 4 and feats["a"].shape[-1] >= 2  # a spatial map for CAMs


def toy_data(n: int = 256):
    """Class 1 images have a bright top-left quadrant; trivially learnable."""
    g = torch.Generator().manual_seed(0)
    x = (torch.rand(n, 3, 16, 16, generator=g) * 120).to(torch.uint8)
    y = torch.randint(0, 2, (n,), generator=g)
    x[y == 1, :, :8, :8] += 120
    return x, y


def test_training_learns_and_is_seeded():
    x, y = toy_data()
    recipe = {"epochs": 3, "batch_size": 32, "lr": 3e-3}
    cpu = torch.device("cpu")
    m1, m2 = MODELS.get("small_cnn")(width=8), MODELS.get("small_cnn")(width=8)
    m2.load_state_dict(m1.state_dict())
    steps = []
    losses = train_model(
        m1, x, y, recipe, seed=5, device=cpu, on_step=lambda s, t, _: steps.append((s, t))
    )
    train_model(m2, x, y, recipe, seed=5, device=cpu)
    assert steps[-1] == (24, 24) and losses[-1] < losses[0]
    acc = (predict(m1, x, cpu).argmax(1) == y).float().mean()
    assert acc > 0.95
    for a, b in zip(m1.state_dict().values(), m2.state_dict().values(), strict=True):
        assert torch.equal(a, b)  # same seed, same weights, to the bit


def test_training_on_rows_of_a_split_equals_training_on_their_copy():
    x, y = toy_data()
    rows = torch.randperm(len(x), generator=torch.Generator().manual_seed(0))[:150].sort().values
    recipe = {"epochs": 2, "batch_size": 32, "hflip": True}
    cpu = torch.device("cpu")
    m1, m2 = MODELS.get("small_cnn")(width=8), MODELS.get("small_cnn")(width=8)
    m2.load_state_dict(m1.state_dict())
    a = train_model(m1, x[rows], y[rows], recipe, seed=2, device=cpu)
    b = train_model(m2, x, y[rows], recipe, seed=2, device=cpu, rows=rows)
    assert a == b
    for p1, p2 in zip(m1.state_dict().values(), m2.state_dict().values(), strict=True):
        assert torch.equal(p1, p2)


def test_lr_decays_at_thirds():
    x, y = toy_data(96)
    model = MODELS.get("small_cnn")(width=4)
    seen = []
    orig = torch.optim.Adam.step

    def spy(self, *a, **k):
        seen.append(self.param_groups[0]["lr"])
        return orig(self, *a, **k)

    torch.optim.Adam.step = spy
    try:
        train_model(model, x, y, {"epochs": 3, "batch_size": 32}, 0, torch.device("cpu"))
    finally:
        torch.optim.Adam.step = orig
    assert seen == pytest.approx([1e-3] * 3 + [1e-4] * 3 + [1e-5] * 3)


def test_checkpoint_cache_round_trip(tmp_path):
    cache = CheckpointCache(tmp_path)
    model = MODELS.get("small_cnn")(width=4)
    key = stable_hash({"a": 1})
    assert cache.load(key, model) is None
    cache.save(key, model, {"losses": [0.5]})
    other = MODELS.get("small_cnn")(width=4)
    assert cache.load(key, other) == {"losses": [0.5]}
    for a, b in zip(model.state_dict().values(), other.state_dict().values(), strict=True):
        assert torch.equal(a, b)
    assert not list(cache.root.glob("*.tmp"))


def test_installed_checkpoint_bytes_load_like_the_trained_model(tmp_path):
    """A Ray node without the shared cache installs the prepare cell's bytes."""
    trained, here = CheckpointCache(tmp_path / "a"), CheckpointCache(tmp_path / "b")
    model, key = MODELS.get("small_cnn")(width=4), stable_hash({"a": 2})
    blob = trained.save(key, model, {"losses": [0.25]}).read_bytes()
    here.install(key, blob)
    other = MODELS.get("small_cnn")(width=4)
    assert here.load(key, other) == {"losses": [0.25]}
    for a, b in zip(model.state_dict().values(), other.state_dict().values(), strict=True):
        assert torch.equal(a, b)
    here.install(key, b"not a checkpoint")  # a cached checkpoint is never replaced
    assert here.path(key).read_bytes() == blob and not list(here.root.glob(".*.tmp"))


def test_stable_hash_ignores_key_order():
    assert stable_hash({"a": 1, "b": [1, 2]}) == stable_hash({"b": [1, 2], "a": 1})
    assert stable_hash({"a": 1}) != stable_hash({"a": 2})


def test_user_checkpoint_bare_torchvision_state(tmp_path):
    src = resnet18()
    torch.save(src.backbone.state_dict(), tmp_path / "r18.pth")
    dst = resnet18()
    load_user_checkpoint(tmp_path / "r18.pth", dst)
    assert torch.equal(dst.backbone.fc.weight, src.backbone.fc.weight)
