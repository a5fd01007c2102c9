"""`bench run`: suite → data → model → explainer → metric → store.

Everything that can fail on user input is resolved before the first write (imports,
component parameters, region names, device). Work is stored per (scenario, explainer),
so an interrupted run resumes where it stopped.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import torch
from rich.console import Console
from rich.markup import escape

from benchmark import provenance
from benchmark.allocator import tune_glibc_malloc
from benchmark.catalogue import DATASETS, EXPLAINERS, METRICS, MODELS, REGION_PROTOCOLS
from benchmark.data.base import FaceArrays
from benchmark.data.bias import BiasSplit, balanced_test
from benchmark.data.protocols import RegionProtocol
from benchmark.errors import BenchError
from benchmark.models.train import (
    CheckpointCache,
    load_user_checkpoint,
    predict,
    stable_hash,
    train_model,
)
from benchmark.progress import make_progress
from benchmark.reliance import measured_attributes, supports_counterfactuals, true_reliance
from benchmark.report import summary_table
from benchmark.scoring import explain_and_score
from benchmark.splits import accuracies, columns, describe_cells, test_target, train_split
from benchmark.store import Store
from benchmark.suite import Scenario, Suite, load_suite, suite_hash
from explainers.plugin import as_explainer
from metrics.base import MetricContext

DEFAULT_DB = Path("bench_results/results.duckdb")
DEFAULT_CACHE = Path(".bench/cache")
MODEL_CACHE_VERSION = 2  # 2: initial weights seeded from the key


@dataclass
class Plan:
    """A suite with every name resolved to code and every path decided."""

    suite: Suite
    device: torch.device
    db: Path
    cache: Path
    run_id: str
    git_sha: str | None
    datasets: dict[str, Any]
    explainers: list[tuple[str, type, dict[str, Any]]]
    metrics: list[tuple[str, type, dict[str, Any]]]
    protocol: RegionProtocol
    bias_regions: dict[str, tuple[tuple[str, ...], ...]] = field(default_factory=dict)
    fresh: bool = False

    def seed_for(self, *parts: Any) -> int:
        """A seed derived from the suite seed and a purpose."""
        return seed_for(self.suite.seed, *parts)


def seed_for(seed: int, *parts: Any) -> int:
    """A seed derived from the suite seed and a purpose, stable across runs."""
    return int(stable_hash([seed, *parts])[:8], 16)


def _bias_regions(sc: Scenario, protocol: RegionProtocol) -> tuple[tuple[str, ...], ...]:
    groups = []
    for attr in sc.ranked():
        custom = (sc.bias_regions or {}).get(attr)
        regions = tuple(custom) if custom else protocol.attribute_regions.get(attr)
        if not regions:
            raise BenchError(
                f"{sc.name}: scenario attribute {attr!r} has no default regions under "
                f"region protocol {type(protocol).__name__}; give scenarios[].bias_regions.{attr}"
            )
        groups.append(regions)
    return tuple(groups)


def plan(path: Path, db: Path | None, device: str | None, fresh: bool) -> Plan:
    """Load and resolve a suite; raises BenchError and writes nothing on bad input."""
    suite = load_suite(path)
    dev = provenance.resolve_device(device or suite.device)
    cache = Path(suite.cache_dir or os.environ.get("BENCH_CACHE") or DEFAULT_CACHE)
    sha = provenance.git_sha()
    datasets = {}
    for split in ("train", "test"):
        spec = getattr(suite.dataset, split)
        try:  # constructors only check their arguments; loading comes later
            datasets[split] = DATASETS.get(spec.name)(**spec.params)
        except (TypeError, ValueError) as exc:
            raise BenchError(f"{suite.source}: dataset.{split}.params: {exc}") from None
        missing = getattr(datasets[split], "missing", None)  # datasets read from disk
        if callable(missing) and (problems := missing()):
            raise BenchError(f"{suite.source}: dataset.{split}: " + "; ".join(problems))
    explainers = [
        (e.display_name, as_explainer(EXPLAINERS.get(e.name)), dict(e.params))
        for e in suite.explainers
    ]
    provides = getattr(datasets["test"], "provides", None)  # None: known once loaded
    for i, (label, cls, _) in enumerate(explainers):
        lacks = provides is not None and "landmarks" not in provides
        if "landmarks" in getattr(cls, "needs", ()) and lacks:
            raise BenchError(
                f"{suite.source}: explainers[{i}]: {label} needs face landmarks, which "
                f"dataset.test {suite.dataset.test.name!r} does not provide; expected a "
                "dataset with landmarks such as synthetic_faces"
            )
    metrics = [(m.display_name, METRICS.get(m.name), dict(m.params)) for m in suite.metrics]
    protocol = REGION_PROTOCOLS.get(suite.region_protocol)()
    needs: set[str] = set()
    for i, (name, cls, params) in enumerate(metrics):
        try:  # metrics are cheap to build: catch bad parameter values before any work
            metric_needs = cls(MetricContext(protocol.regions), **params).needs  # may use params
        except (TypeError, ValueError) as exc:
            raise BenchError(f"{suite.source}: metrics[{i}].params: {exc}") from None
        if "reliance" in metric_needs and not supports_counterfactuals(datasets["test"]):
            raise BenchError(
                f"{suite.source}: metrics[{i}]: {name} needs counterfactual renders, which "
                f"dataset.test {suite.dataset.test.name!r} cannot make; expected a dataset "
                "such as synthetic_faces"
            )
        if "masks" in metric_needs and provides is not None and protocol.needs not in provides:
            raise BenchError(
                f"{suite.source}: metrics[{i}]: {name} needs region masks; region protocol "
                f"{suite.region_protocol!r} makes them from {protocol.needs.replace('_', ' ')}, "
                f"which dataset.test {suite.dataset.test.name!r} does not provide; expected "
                "region_protocol: landmark11 for a dataset with landmarks only"
            )
        needs |= metric_needs
    regions = (
        {sc.name: _bias_regions(sc, protocol) for sc in suite.scenarios}
        if "bias_regions" in needs
        else {}
    )
    if suite.model.checkpoint and not Path(suite.model.checkpoint).is_file():
        raise BenchError(f"{suite.source}: model.checkpoint: no such file {suite.model.checkpoint}")
    return Plan(
        suite=suite,
        device=dev,
        db=Path(db or suite.db or DEFAULT_DB),
        cache=cache,
        run_id=run_id_for(suite, sha),
        git_sha=sha,
        datasets=datasets,
        explainers=explainers,
        metrics=metrics,
        protocol=protocol,
        bias_regions=regions,
        fresh=fresh,
    )


def load_split(p: Plan, split: str) -> FaceArrays:
    seed = seed_for(p.suite.seed, "data")
    return p.datasets[split].load(split=split, seed=seed, cache_dir=p.cache / "data")


def get_model(p: Plan, sc: Scenario, train: FaceArrays, split: BiasSplit, progress) -> tuple:
    """Build the arch; load the user checkpoint, the cached one, or train and cache."""
    m = p.suite.model
    recipe = m.train.model_dump()
    bias = {"target": sc.target, "attributes": list(sc.attributes), "rho": sc.rho,
            "directions": sc.directions()}  # fmt: skip
    if sc.bias is not None:  # only when set, so the keys of earlier models stay valid
        bias["distribution"] = sc.bias.model_dump()
    key = stable_hash({
        "version": MODEL_CACHE_VERSION,
        "data": p.suite.dataset.train.model_dump(),
        "data_seed": seed_for(p.suite.seed, "data"),
        "bias": bias,
        "arch": m.arch, "params": dict(m.params), "recipe": recipe, "seed": p.suite.seed,
    })  # fmt: skip
    # Initial weights are a function of the key, not of what ran earlier in the process.
    torch.manual_seed(seed_for(p.suite.seed, "init", key))
    model = MODELS.get(m.arch)(**m.params)
    if m.checkpoint:
        load_user_checkpoint(Path(m.checkpoint), model)
        return model.to(p.device).eval(), f"user:{Path(m.checkpoint).name}", 0.0, True
    cache = CheckpointCache(p.cache)
    if not p.fresh and cache.load(key, model) is not None:
        return model.to(p.device).eval(), key, 0.0, True
    task = progress.add_task(f"train {sc.name}", total=1)

    def on_step(step: int, total: int, loss: float) -> None:
        desc = f"train {sc.name}" + ("" if loss != loss else f" loss {loss:.3f}")
        progress.update(task, completed=step, total=total, description=desc)

    t0 = time.perf_counter()
    losses = train_model(
        model, train.images, train.attribute(sc.target)[split.index], recipe,
        seed_for(p.suite.seed, "train", key), p.device, on_step, rows=split.index,
    )  # fmt: skip
    seconds = time.perf_counter() - t0
    cache.save(key, model, {"losses": losses, "seconds": seconds, "n_train": len(split)})
    return model.eval(), key, seconds, False


def run_suite(
    path: Path,
    db: Path | None = None,
    device: str | None = None,
    fresh: bool = False,
    console: Console | None = None,
    leaderboard: bool = True,
) -> str:
    """Run a suite end to end, once per seed; returns the run id (the group id when
    the suite has several ``seeds``).

    With ``leaderboard``, the static site is rendered into ``site/`` beside the DB.
    """
    tune_glibc_malloc()
    return run_plan(plan(Path(path), db, device, fresh), console, leaderboard)


def run_plan(p: Plan, console: Console | None = None, leaderboard: bool = True) -> str:
    """Run a resolved suite (see :func:`run_suite`); returns the run or group id."""
    console = console or Console()
    seeds = p.suite.seeds or [p.suite.seed]
    group = group_id(p.suite, p.git_sha)
    with Store(p.db) as store:
        for seed in seeds:
            suite = p.suite.for_seed(seed)
            one = replace(p, suite=suite, run_id=run_id_for(suite, p.git_sha))
            if len(seeds) > 1:
                console.print(f"[bold]seed {seed}[/] ({seeds.index(seed) + 1} of {len(seeds)})")
            _run_one(one, group, store, console)
    if len(seeds) > 1:
        console.print(f"group {group}: runs of seeds {', '.join(map(str, seeds))}")
    if leaderboard:
        from leaderboard.site import build_site

        site = p.db.parent / "site"
        build_site(p.db, site)
        console.print(f"leaderboard: {site / 'index.html'}")
    return group if len(seeds) > 1 else one.run_id


def run_id_for(suite: Suite, git_sha: str | None) -> str:
    """A run's id: the resolved suite (one seed) and the code's commit."""
    return stable_hash({"suite": suite_hash(suite), "git": git_sha})


def group_id(suite: Suite, git_sha: str | None) -> str:
    """The id shared by the runs of one suite's seeds (one run: a group of one)."""
    seeds = suite.seeds or [suite.seed]
    return stable_hash({"suite": suite_hash(suite.for_seed(0)), "git": git_sha, "seeds": seeds})


def _run_one(p: Plan, group: str, store: Store, console: Console) -> None:
    """One seed of a suite: data, every scenario, stored under ``p.run_id``."""
    s = p.suite
    timings: dict[str, float] = {}
    t_start = time.perf_counter()
    console.print(
        f"[bold]{s.name}[/]: {len(s.scenarios)} scenario(s), {len(p.explainers)} explainer(s), "
        f"{len(p.metrics)} metric(s) on {provenance.describe_device(p.device)} → {p.db}"
    )
    store.start_run({
        "run_id": p.run_id, "suite": s.name, "suite_path": str(s.source),
        "suite_hash": suite_hash(s), "seed": s.seed, "git_sha": p.git_sha,
        "packages": provenance.package_versions(),
        "device": provenance.describe_device(p.device), "group_id": group,
        "started_at": None, "suite_json": s.model_dump(mode="json", exclude={"source"}),
    })  # fmt: skip
    status = "failed"
    try:
        with console.status("loading data (rendered and cached on first use)"):
            t0 = time.perf_counter()
            train, test = load_split(p, "train"), load_split(p, "test")
            timings["data"] = time.perf_counter() - t0
        counts = {k: dict(getattr(d, "counts", {}) or {}) for k, d in p.datasets.items()}
        store.put_data_counts(p.run_id, counts)
        hygiene = "; ".join(
            f"{k}: " + ", ".join(f"{n} {v}" for n, v in c.items()) for k, c in counts.items() if c
        )
        console.print(
            f"data: {len(train)} train / {len(test)} test images "
            f"at {train.size[0]}×{train.size[1]} ({timings['data']:.1f}s)"
            + (escape(f" [{hygiene}]") if hygiene else ""),
            highlight=False,
        )
        with make_progress(console) as progress:
            for sc in s.scenarios:
                run_scenario(p, sc, train, test, store, progress, timings)
        status = "done"
    except KeyboardInterrupt:
        status = "interrupted"
        raise
    finally:
        timings["total"] = time.perf_counter() - t_start
        store.finish_run(p.run_id, status, timings)
    console.print(summary_table(store, p.run_id))
    console.print(f"done in {timings['total']:.1f}s; results in {p.db} (run {p.run_id})")


def run_scenario(p: Plan, sc: Scenario, train, test, store: Store, progress, timings) -> None:
    names = [sc.target, *sc.attributes]
    split = train_split(p, sc, train)
    t_te, labelled = test_target(p, sc, test)
    a_te = columns(test, sc)[1]
    test_seed = seed_for(p.suite.seed, "test")
    tsplit = balanced_test(t_te, a_te, sc.directions(), test_seed, names)
    # The explained images: the same cells, capped; with the same seed they are a
    # subset of the balanced test set the accuracies come from.
    esplit = balanced_test(
        t_te, a_te, sc.directions(), test_seed, names, p.suite.explain.max_images
    )
    n_out = int(p.suite.model.params.get("n_classes", 2))
    if len(split) and (classes := int(train.attribute(sc.target)[split.index].max()) + 1) > n_out:
        raise BenchError(
            f"scenario {sc.name}: target {sc.target!r} has {classes} classes; expected "
            f"model.params.n_classes: {classes} (the model has {n_out} outputs)"
        )
    if len(split) == 0 or len(tsplit) == 0:
        raise BenchError(
            f"scenario {sc.name}: the data has no samples for this bias "
            f"(train cells {split.cells}, test cells {tsplit.cells})"
        )
    progress.console.print(
        f"[bold]{sc.name}[/]: train {len(split)} {describe_cells(split.cells)}; "
        f"test {len(tsplit)} {describe_cells(tsplit.cells)}",
        highlight=False,
    )
    model, model_hash, seconds, cached = get_model(p, sc, train, split, progress)
    timings[f"train/{sc.name}"] = seconds
    sub = test.subset(tsplit.index)
    y = sub.attribute(sc.target).long().to(p.device)
    pred = predict(model, sub.images, p.device).argmax(-1)
    accs = accuracies(pred == y, tsplit.aligned.to(p.device), bool(sc.attributes))
    if not labelled:  # no labels: no accuracy, and "aligned" has no target to align with
        accs = dict.fromkeys(accs)
    store.put_scenario({
        "run_id": p.run_id, "scenario": sc.name, "target": sc.target,
        "attributes": list(sc.attributes), "rho": sc.rho, "directions": sc.directions(),
        "bias_regions": [list(g) for g in p.bias_regions.get(sc.name, ())],
        "model_hash": model_hash, "n_train": len(split), "n_test": len(tsplit),
        "train_cells": split.cells, "test_cells": tsplit.cells, **accs,
        "train_seconds": seconds, "cached": cached, "n_explained": len(esplit),
    })  # fmt: skip
    explained = test.subset(esplit.index)
    y = explained.attribute(sc.target).long().to(p.device)
    if p.suite.explain.target == "prediction":
        y = predict(model, explained.images, p.device).argmax(-1)
    t0 = time.perf_counter()
    reliance = scenario_reliance(p, sc, model, explained, y, store)
    timings[f"reliance/{sc.name}"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    explain_and_score(p, sc, model, explained, y, reliance, store, progress)
    timings[f"explain/{sc.name}"] = time.perf_counter() - t0


def scenario_reliance(
    p: Plan, sc: Scenario, model, explained: FaceArrays, y: torch.Tensor, store: Store
) -> dict[str, float]:
    """Ground-truth reliance of the scenario's model (METHODS §9), stored; {} when the
    test dataset cannot render counterfactuals."""
    dataset = p.datasets["test"]
    if not supports_counterfactuals(dataset) or len(explained) == 0:
        return {}
    if not p.fresh and (stored := store.reliance(p.run_id, sc.name)):
        return stored
    attrs = measured_attributes(dataset, exclude=[sc.target])
    with torch.no_grad():
        reliance = true_reliance(dataset, explained, model, y, attrs, p.suite.explain.batch_size)
    store.put_reliance(p.run_id, sc.name, [
        {"attribute": a, "regions": list(p.protocol.attribute_regions.get(a, ())),
         "reliance": r,
         "n": len(explained)}
        for a, r in reliance.items()
    ])  # fmt: skip
    return reliance
