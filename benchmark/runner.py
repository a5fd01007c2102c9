"""`bench run`: suite → data → model → explainer → metric → store.

Everything that can fail on user input is resolved before the first write (imports,
component parameters, region names, device). Work is stored per (scenario, explainer),
so an interrupted run resumes where it stopped.
"""

from __future__ import annotations

import time
from dataclasses import replace
from pathlib import Path

import torch
from rich.console import Console
from rich.markup import escape

from benchmark import provenance
from benchmark.allocator import tune_glibc_malloc
from benchmark.cells import by_run, plan_cells, shard_cells
from benchmark.data.align import align_faces, warp_images
from benchmark.data.base import FaceArrays
from benchmark.data.bias import balanced_test
from benchmark.detect import run_detection_scenario
from benchmark.errors import BenchError
from benchmark.models.train import predict
from benchmark.plan import (
    DEFAULT_CACHE,
    DEFAULT_DB,
    Plan,
    group_id,
    plan,
    run_id_for,
    seed_for,
)
from benchmark.progress import make_progress
from benchmark.reliance import measured_attributes, supports_counterfactuals, true_reliance
from benchmark.report import summary_table
from benchmark.scenario_models import get_embedding, get_model, pretrained_hash
from benchmark.scoring import explain_and_score
from benchmark.splits import accuracies, columns, describe_cells, test_target, train_split
from benchmark.store import Store
from benchmark.suite import Scenario, suite_hash
from benchmark.verify import run_verification_scenario

__all__ = ["DEFAULT_CACHE", "DEFAULT_DB", "Plan", "group_id", "plan", "run_id_for", "seed_for"]


def load_split(p: Plan, split: str) -> FaceArrays:
    """A split's faces (from ``p.data_memo`` when it holds them: a Ray worker's cells)."""
    seed = seed_for(p.suite.seed, "data")
    spec = getattr(p.suite.dataset, split)
    key = (split, spec.model_dump_json(), seed, str(p.cache))
    if p.data_memo is not None and key in p.data_memo:
        return p.data_memo[key]
    faces = p.datasets[split].load(split=split, seed=seed, cache_dir=p.cache / "data")
    if p.data_memo is not None:
        p.data_memo[key] = faces
    return faces


def run_suite(
    path: Path,
    db: Path | None = None,
    device: str | None = None,
    fresh: bool = False,
    console: Console | None = None,
    leaderboard: bool = True,
    shard: tuple[int, int] | None = None,
) -> str:
    """Run a suite end to end, once per seed; returns the run id (the group id when
    the suite has several ``seeds``).

    With ``leaderboard``, the static site is rendered into ``site/`` beside the DB.
    ``shard`` (k, n) runs only shard k of n of the suite's cells (``benchmark.cells``),
    into ``<db>.shard-k-of-n.duckdb`` unless ``db`` names the file.
    """
    tune_glibc_malloc()
    p = plan(Path(path), db, device, fresh)
    if shard is not None and shard[1] > 1:
        if db is None:
            p = replace(p, db=shard_db(p.db, *shard))
        p = replace(p, shard=shard, announce=True)
    return run_plan(p, console, leaderboard and p.shard[1] == 1)


def shard_db(db: Path, k: int, n: int) -> Path:
    """Shard k of n's default file: ``results.duckdb`` → ``results.shard-k-of-n.duckdb``."""
    return db.with_name(f"{db.stem}.shard-{k}-of-{n}{db.suffix}")


def run_plan(p: Plan, console: Console | None = None, leaderboard: bool = True) -> str:
    """Run a resolved suite (see :func:`run_suite`); returns the run or group id."""
    console = console or Console()
    seeds = p.suite.seeds or [p.suite.seed]
    group = group_id(p.suite, p.fingerprint)
    cells = shard_cells(plan_cells(p.suite), *p.shard)
    mine = by_run(cells)
    with Store(p.db) as store:
        runs = {seed: p.for_seed(seed) for seed in seeds}
        if p.shard[1] > 1:
            stored = sum(
                not p.fresh and store.is_done(runs[c.seed].run_id, c.scenario, c.explainer)
                for c in cells
                if c.explainer is not None
            )
            todo = sum(c.explainer is not None for c in cells)
            console.print(
                f"shard {p.shard[0]}/{p.shard[1]}: {todo} explain cell(s), {stored} stored, "
                f"{todo - stored} to run → {p.db}",
                highlight=False,
            )
        for seed in seeds:
            if seed not in mine:
                continue  # none of this shard's cells is of this seed
            one = runs[seed]
            if p.shard[1] > 1:
                one = replace(one, only=mine[seed])
            if len(seeds) > 1:
                console.print(f"[bold]seed {seed}[/] ({seeds.index(seed) + 1} of {len(seeds)})")
            run_seed(one, group, store, console)
    if len(seeds) > 1:
        console.print(f"group {group}: runs of seeds {', '.join(map(str, seeds))}")
    if p.shard[1] > 1:
        k, n = p.shard
        name = f"shard-{k}-of-{n}"
        files = f"SHARD_1.duckdb … SHARD_{n}.duckdb"  # a --db of the user's naming
        if name in p.db.name:
            files = str(p.db.parent / p.db.name.replace(name, f"shard-*-of-{n}"))
        console.print(
            f"shard {k}/{n} stored; once all {n} are: bench merge {files} --db MERGED.duckdb",
            highlight=False,
        )
    if leaderboard:
        from leaderboard.site import build_site

        site = p.db.parent / "site"
        build_site(p.db, site)
        console.print(f"leaderboard: {site / 'index.html'}")
    return group if len(seeds) > 1 else one.run_id


def run_record(p: Plan, group: str) -> dict:
    """The ``runs`` row of one seed's run, as ``Store.start_run`` takes it."""
    s = p.suite
    return {
        "run_id": p.run_id, "suite": s.name, "suite_path": str(s.source),
        "suite_hash": suite_hash(s), "seed": s.seed, "git_sha": p.git_sha,
        "packages": p.fingerprint.get("packages") or provenance.package_versions(),
        "fingerprint": p.fingerprint, "task": s.task,
        "device": provenance.describe_device(p.device), "group_id": group,
        "started_at": None, "suite_json": s.model_dump(mode="json", exclude={"source"}),
    }  # fmt: skip


def shard_plan(p: Plan) -> dict:
    """What ``bench merge`` needs to finish a sharded run (see ``Store.put_shard``)."""
    s = p.suite
    return {
        "scenarios": [sc.name for sc in s.scenarios],
        "region_protocol": s.region_protocol,
        "explainers": [label for label, _, _ in p.explainers],
        "metrics": [[m.display_name, m.name, dict(m.params)] for m in s.metrics],
        "cells": [[sc.name, label] for sc in s.scenarios for label, _, _ in p.explainers
                  if p.runs(sc.name, label)],
    }  # fmt: skip


def run_seed(p: Plan, group: str, store: Store, console: Console) -> None:
    """One seed of a suite: data, every scenario (of this shard), stored under ``p.run_id``."""
    s = p.suite
    timings: dict[str, float] = {}
    t_start = time.perf_counter()
    console.print(
        f"[bold]{s.name}[/]: {len(s.scenarios)} scenario(s), {len(p.explainers)} explainer(s), "
        f"{len(p.metrics)} metric(s) on {provenance.describe_device(p.device)} → {p.db}"
    )
    store.start_run(run_record(p, group))
    status = "failed"
    try:
        with console.status("loading data (rendered and cached on first use)"):
            t0 = time.perf_counter()
            # A model explained as it is needs no training data.
            train = load_split(p, "train") if p.suite.model.trains else None
            test = load_split(p, "test")
            timings["data"] = time.perf_counter() - t0
        counts = {k: dict(getattr(d, "counts", {}) or {}) for k, d in p.datasets.items()}
        store.put_data_counts(p.run_id, counts)
        hygiene = "; ".join(
            f"{k}: " + ", ".join(f"{n} {v}" for n, v in c.items()) for k, c in counts.items() if c
        )
        n_train = f"{len(train)} train" if train is not None else "no training"
        console.print(
            f"data: {n_train} / {len(test)} test images "
            f"at {test.size[0]}×{test.size[1]} ({timings['data']:.1f}s)"
            + (escape(f" [{hygiene}]") if hygiene else ""),
            highlight=False,
        )
        embedding = None
        with make_progress(console) as progress:
            for sc in s.scenarios:
                if not p.runs(sc.name):
                    continue
                if s.task == "verification":
                    if embedding is None:
                        embedding = (
                            get_embedding(p, train, progress)
                            if train is not None
                            else (p.model, pretrained_hash(p), 0.0, True)
                        )
                        timings["train/embedding"] = embedding[2]
                    run_verification_scenario(p, sc, test, store, progress, timings, embedding)
                elif s.task == "detection":
                    run_detection_scenario(p, sc, test, store, progress, timings)
                else:
                    run_scenario(p, sc, train, test, store, progress, timings)
        # A shard's run is done once every cell of the run is stored (after bench merge).
        complete = all(
            store.is_done(p.run_id, sc.name, label)
            for sc in s.scenarios for label, _, _ in p.explainers
        )  # fmt: skip
        status = "done" if p.shard[1] == 1 or complete else "shard done"
    except KeyboardInterrupt:
        status = "interrupted"
        raise
    finally:
        timings["total"] = time.perf_counter() - t_start
        store.finish_run(p.run_id, status, timings)
        store.put_shard(p.run_id, group, p.shard, status, timings, shard_plan(p))
    console.print(summary_table(store, p.run_id))
    console.print(f"done in {timings['total']:.1f}s; results in {p.db} (run {p.run_id})")


def _check_classes(p: Plan, sc: Scenario, labels: torch.Tensor, where: str) -> None:
    labels = labels[labels >= 0]
    if len(labels) and (classes := int(labels.max()) + 1) > p.n_classes:
        fix = "model.params.n_classes" if p.suite.model.trains else "model.output.classes"
        raise BenchError(
            f"scenario {sc.name}: target {sc.target!r} has {classes} classes in the {where} "
            f"data; expected {fix}: {classes} (the model has {p.n_classes} outputs)"
        )


def run_scenario(p: Plan, sc: Scenario, train, test, store: Store, progress, timings) -> None:
    names = [sc.target, *sc.attributes]
    split = train_split(p, sc, train) if train is not None else None
    t_te, labelled = test_target(p, sc, test)
    a_te = columns(test, sc)[1]
    test_seed = seed_for(p.suite.seed, "test")
    tsplit = balanced_test(t_te, a_te, sc.directions(), test_seed, names)
    # The explained images: the same cells, capped; with the same seed they are a
    # subset of the balanced test set the accuracies come from.
    esplit = balanced_test(
        t_te, a_te, sc.directions(), test_seed, names, p.suite.explain.max_images
    )
    if split is not None and len(split):
        _check_classes(p, sc, train.attribute(sc.target)[split.index], "training")
    elif labelled:
        _check_classes(p, sc, t_te, "test")
    if (split is not None and len(split) == 0) or len(tsplit) == 0:
        raise BenchError(
            f"scenario {sc.name}: the data has no samples for this bias "
            f"(train cells {split.cells if split else {}}, test cells {tsplit.cells})"
        )
    trained = f"train {len(split)} {describe_cells(split.cells)}; " if split else ""
    progress.console.print(
        f"[bold]{sc.name}[/]: {trained}test {len(tsplit)} {describe_cells(tsplit.cells)}",
        highlight=False,
    )
    model, model_hash, seconds, cached = get_model(p, sc, train, split, progress)
    timings[f"train/{sc.name}"] = seconds
    sub = _as_model_reads(p, test.subset(tsplit.index))[0]
    y = sub.attribute(sc.target).long().to(p.device)
    pred = predict(model, sub.images, p.device).argmax(-1)
    accs = accuracies(pred == y, tsplit.aligned.to(p.device), bool(sc.attributes))
    if not labelled:  # no labels: no accuracy, and "aligned" has no target to align with
        accs = dict.fromkeys(accs)
    store.put_scenario({
        "run_id": p.run_id, "scenario": sc.name, "target": sc.target,
        "attributes": list(sc.attributes), "rho": sc.rho if split else None,
        "directions": sc.directions(),
        "bias_regions": [list(g) for g in p.bias_regions.get(sc.name, ())],
        "model_hash": model_hash, "n_train": len(split) if split else 0, "n_test": len(tsplit),
        "train_cells": split.cells if split else {}, "test_cells": tsplit.cells, **accs,
        "train_seconds": seconds, "cached": cached, "n_explained": len(esplit),
    })  # fmt: skip
    explained, transforms = _as_model_reads(p, test.subset(esplit.index))
    y = explained.attribute(sc.target).long().to(p.device)
    if p.suite.explain.target == "prediction":
        y = predict(model, explained.images, p.device).argmax(-1)
    t0 = time.perf_counter()
    reliance = scenario_reliance(p, sc, model, explained, y, store, transforms)
    timings[f"reliance/{sc.name}"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    explain_and_score(p, sc, model, explained, y, reliance, store, progress)
    timings[f"explain/{sc.name}"] = time.perf_counter() - t0


def _as_model_reads(p: Plan, faces: FaceArrays) -> tuple[FaceArrays, torch.Tensor | None]:
    """The faces cropped and aligned as ``model.input.crop`` says (and the transforms),
    or as they are."""
    spec = p.suite.model.input
    if spec.crop == "none" or len(faces) == 0:
        return faces, None
    return align_faces(faces, spec.crop, spec.padding)


def scenario_reliance(
    p: Plan,
    sc: Scenario,
    model,
    explained: FaceArrays,
    y: torch.Tensor,
    store: Store,
    transforms: torch.Tensor | None = None,
) -> dict[str, float]:
    """Ground-truth reliance of the scenario's model (METHODS §9), stored; {} when the
    test dataset cannot render counterfactuals."""
    dataset = p.datasets["test"]
    if not supports_counterfactuals(dataset) or len(explained) == 0:
        return {}
    if not p.fresh and (stored := store.reliance(p.run_id, sc.name)):
        return stored
    attrs = measured_attributes(dataset, exclude=[sc.target])
    prepare = None
    if transforms is not None:  # counterfactual renders are cropped like the originals

        def prepare(images: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
            return warp_images(images, transforms[index.cpu()], min(explained.size))

    with torch.no_grad():
        reliance = true_reliance(
            dataset, explained, model, y, attrs, p.suite.explain.batch_size, prepare
        )
    store.put_reliance(p.run_id, sc.name, [
        {"attribute": a, "regions": list(p.protocol.attribute_regions.get(a, ())),
         "reliance": r,
         "n": len(explained)}
        for a, r in reliance.items()
    ])  # fmt: skip
    return reliance
