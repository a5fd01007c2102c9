"""The model a scenario explains: its cache key and seeds, and the cached or freshly
trained weights (a classifier per scenario, or a verification suite's one embedding)."""

from __future__ import annotations

import time
from typing import Any

import torch

from benchmark.data.base import FaceArrays
from benchmark.data.bias import BiasSplit
from benchmark.fingerprint import MODEL_CODE, code_fingerprint
from benchmark.models.sources import build_model
from benchmark.models.train import CheckpointCache, stable_hash, train_model
from benchmark.models.train_identity import train_embedding
from benchmark.plan import Plan, seed_for
from benchmark.suite import Scenario
from benchmark.suite_model import IdentityRecipe
from benchmark.verify import crop_for_model

MODEL_CACHE_VERSION = 3  # 3: keyed on the model code, training data and torch versions
SEED_KEY_VERSION = 2  # the seeds' key is the model cache key of version 2: same weights


def _bias(sc: Scenario) -> dict[str, Any]:
    bias = {"target": sc.target, "attributes": list(sc.attributes), "rho": sc.rho,
            "directions": sc.directions()}  # fmt: skip
    if sc.bias is not None:  # only when set, so the seeds of earlier models stay valid
        bias["distribution"] = sc.bias.model_dump()
    return bias


def model_seed_key(p: Plan, sc: Scenario | None) -> str:
    """What a trained model's seeds derive from: the suite's data, bias, model, recipe
    and seed only, so that an edit of the code (a comment, a refactor) or another copy of
    the data leaves the initial weights, and so the numbers, as they were.

    ``sc`` None: the one embedding of a verification suite, trained on identities.
    """
    m = p.suite.model
    assert p.suite.dataset.train is not None and m.train is not None
    source = {"arch": m.arch} if m.arch is not None else {"factory": m.factory}
    bias = _bias(sc) if sc is not None else {"identities": identity_recipe(p)}
    return stable_hash({
        "version": SEED_KEY_VERSION,
        "data": p.suite.dataset.train.model_dump(),
        "data_seed": seed_for(p.suite.seed, "data"),
        "bias": bias,
        **source, "params": dict(m.params), "recipe": m.train.model_dump(exclude={"identity"}),
        "seed": p.suite.seed,
    })  # fmt: skip


def identity_recipe(p: Plan) -> dict[str, Any]:
    """The identity-training settings of a verification suite (defaults filled in)."""
    train = p.suite.model.train
    assert train is not None
    return (train.identity or IdentityRecipe()).model_dump()


def model_key(p: Plan, sc: Scenario | None) -> str:
    """The model cache's key: the seed key and everything else the trained weights
    depend on (the model block, the model and data code, the training data's files, a
    factory's source, torch's version)."""
    packages = p.fingerprint.get("packages", {})
    return stable_hash({
        "version": MODEL_CACHE_VERSION,
        "seeds": model_seed_key(p, sc),
        "model": p.suite.model.model_dump(mode="json", exclude={"train"}),
        "data_files": p.fingerprint.get("data", {}).get("train"),
        "code": code_fingerprint(MODEL_CODE),
        "model_code": p.fingerprint.get("model_code"),
        "torch": {k: packages.get(k) for k in ("torch", "torchvision")},
    })  # fmt: skip


def pretrained_hash(p: Plan) -> str:
    """The identity of a model explained as it is: its source and its files' content."""
    m = p.suite.model
    return f"{m.source}:" + stable_hash({
        "model": m.model_dump(mode="json"), "files": p.fingerprint.get("model_files"),
        "code": p.fingerprint.get("model_code"),
    })  # fmt: skip


def _step_reporter(progress, label: str):
    """A training ``on_step`` that moves a progress bar and shows the latest loss."""
    task = progress.add_task(label, total=1)

    def on_step(step: int, total: int, loss: float) -> None:
        desc = label + ("" if loss != loss else f" loss {loss:.3f}")
        progress.update(task, completed=step, total=total, description=desc)

    return on_step


def get_model(
    p: Plan, sc: Scenario, train: FaceArrays | None, split: BiasSplit | None, progress
) -> tuple:
    """The model explained in a scenario: the suite's own (``train: false``), the cached
    one, or one trained now (and cached)."""
    if p.model is not None:
        return p.model.to(p.device).eval(), pretrained_hash(p), 0.0, True
    assert train is not None and split is not None
    m = p.suite.model
    key, seeds = model_key(p, sc), model_seed_key(p, sc)
    # Initial weights are a function of the suite, not of what ran earlier in the process.
    torch.manual_seed(seed_for(p.suite.seed, "init", seeds))
    model = build_model(m, weights=False)
    cache = CheckpointCache(p.cache)
    if not p.fresh and cache.load(key, model) is not None:
        return model.to(p.device).eval(), key, 0.0, True
    on_step = _step_reporter(progress, f"train {sc.name}")
    t0 = time.perf_counter()
    losses = train_model(
        model, train.images, train.attribute(sc.target)[split.index], m.train.model_dump(),
        seed_for(p.suite.seed, "train", seeds), p.device, on_step, rows=split.index,
    )  # fmt: skip
    seconds = time.perf_counter() - t0
    cache.save(key, model, {"losses": losses, "seconds": seconds, "n_train": len(split)})
    return model.eval(), key, seconds, False


def get_embedding(p: Plan, train: FaceArrays, progress) -> tuple:
    """A verification suite's embedding: cached, or trained now on the training pool's
    identities (``SyntheticFaces.identities``) and cached."""
    m = p.suite.model
    assert m.train is not None
    key, seeds = model_key(p, None), model_seed_key(p, None)
    torch.manual_seed(seed_for(p.suite.seed, "init", seeds))
    embed = build_model(m, weights=False)
    cache = CheckpointCache(p.cache)
    if not p.fresh and cache.load(key, embed) is not None:
        return embed.to(p.device).eval(), key, 0.0, True
    ident = identity_recipe(p)
    views, labels = p.datasets["train"].identities(
        train, ident["views"], ident["siblings"], seed_for(p.suite.seed, "identities", seeds)
    )
    views = crop_for_model(p, views)
    on_step = _step_reporter(progress, "train embedding")
    progress.console.print(
        f"embedding: {int(labels.max()) + 1} identities × {ident['views']} views "
        f"({len(train)} faces, {ident['siblings']} siblings each)",
        highlight=False,
    )
    t0 = time.perf_counter()
    losses = train_embedding(
        embed, views.images, labels, m.train.model_dump(exclude={"identity"}), ident,
        seed_for(p.suite.seed, "train", seeds), p.device, on_step,
    )  # fmt: skip
    seconds = time.perf_counter() - t0
    cache.save(key, embed, {"losses": losses, "seconds": seconds, "n_train": len(labels)})
    return embed.eval(), key, seconds, False
