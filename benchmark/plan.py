"""Planning a run: a suite with every name resolved to code, every component built
once with its parameters, every path decided and the run's identity fingerprinted.

Everything that can fail on user input fails here, before the first write and before
any training: ``bench validate`` and ``bench run`` plan the same way.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import torch
from torch import nn

from benchmark import provenance
from benchmark.catalogue import DATASETS, EXPLAINERS, METRICS, REGION_PROTOCOLS
from benchmark.data.align import TEMPLATE
from benchmark.data.protocols import RegionProtocol
from benchmark.data.regions import PART_REGIONS
from benchmark.errors import BenchError
from benchmark.fingerprint import code_fingerprint, data_fingerprint, file_digest
from benchmark.models.sources import build_model, model_files, n_outputs, source_identity
from benchmark.models.train import stable_hash
from benchmark.reliance import supports_counterfactuals
from benchmark.suite import Scenario, Suite, load_suite, suite_hash
from explainers.plugin import as_explainer
from metrics.base import MetricContext

DEFAULT_DB = Path("bench_results/results.duckdb")
DEFAULT_CACHE = Path(".bench/cache")


@dataclass
class Plan:
    """A suite with every name resolved to code and every path decided.

    ``model`` is the model explained as it is (``model.train: false``), loaded once;
    None when each scenario trains its own. ``fingerprint`` is what the run's results
    depend on beyond the suite (see ``benchmark.fingerprint``).
    """

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
    model: nn.Module | None = None
    n_classes: int = 2
    fingerprint: dict[str, Any] = field(default_factory=dict)
    #: scenario → explainer labels this process runs (``benchmark.cells``); None: all.
    only: dict[str, set[str]] | None = None
    #: (k, n) of ``bench run --shard k/n``; (1, 1) is the whole run.
    shard: tuple[int, int] = (1, 1)
    #: print one line per stored cell (shards and Ray workers: a log a scheduler keeps)
    announce: bool = False
    #: loaded splits kept between the cells one process runs (a Ray worker's)
    data_memo: dict[tuple, Any] | None = None

    def runs(self, scenario: str, explainer: str | None = None) -> bool:
        """Whether this process runs the scenario (or one of its explainers)."""
        if self.only is None:
            return True
        return scenario in self.only and (explainer is None or explainer in self.only[scenario])

    def for_seed(self, seed: int) -> Plan:
        """This plan for one seed of its suite: that seed's suite and run id."""
        suite = self.suite.for_seed(seed)
        return replace(self, suite=suite, run_id=run_id_for(suite, self.fingerprint))

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
        if not custom and sc.target == "inpainting":  # the changed face part's regions
            regions = PART_REGIONS.get(attr)
        if not regions:
            raise BenchError(
                f"{sc.name}: scenario attribute {attr!r} has no default regions under "
                f"region protocol {type(protocol).__name__}; give scenarios[].bias_regions.{attr}"
            )
        groups.append(regions)
    return tuple(groups)


def image_side(dataset: Any) -> int:
    """The side of a dataset's images, as its parameters say (64 when it does not)."""
    size = getattr(dataset, "size", None)
    return int(size) if isinstance(size, int) and size > 0 else 64


def fingerprint(suite: Suite, datasets: dict[str, Any]) -> dict[str, Any]:
    """Code, data, model files and package versions of a run (``benchmark.fingerprint``)."""
    files = model_files(suite.model)
    return {
        "code": code_fingerprint(),
        "data": {split: data_fingerprint(ds) for split, ds in datasets.items()},
        "model_files": {k: file_digest(path) for k, path in files.items()},
        "model_code": source_identity(suite.model),
        "packages": provenance.package_versions(),
    }


def _datasets(suite: Suite, check_data: bool) -> dict[str, Any]:
    datasets = {}
    for split in ("train", "test"):
        spec = getattr(suite.dataset, split)
        if spec is None:
            continue
        try:  # constructors only check their arguments; loading comes later
            datasets[split] = DATASETS.get(spec.name)(**spec.params)
        except (TypeError, ValueError) as exc:
            raise BenchError(f"{suite.source}: dataset.{split}.params: {exc}") from None
        missing = getattr(datasets[split], "missing", None)  # datasets read from disk
        if check_data and callable(missing) and (problems := missing()):
            raise BenchError(f"{suite.source}: dataset.{split}: " + "; ".join(problems))
    return datasets


def _check_crop(suite: Suite, provides: frozenset[str] | None) -> None:
    crop = suite.model.input.crop
    need = {"landmarks": "landmarks", "box": "boxes"}.get(crop)
    if need and provides is not None and need not in provides:
        raise BenchError(
            f"{suite.source}: model.input.crop: {crop} needs face {need}, which dataset.test "
            f"{suite.dataset.test.name!r} does not provide; expected a dataset with {need} "
            "(celebamask_hq: landmarks: masks) or crop: none"
        )


def _build_explainers(
    suite: Suite, explainers: list[tuple[str, Any, dict[str, Any]]], model: nn.Module, side: int
) -> None:
    """Construct every explainer with its parameters on ``model`` (untrained where the
    suite trains), so a bad value is one line now, not a traceback after training."""
    from explainers.base import build_explainer
    from explainers.canonical import CanonicalFace

    # a stand-in canonical face for construction: the crop's mean-face template
    toy = CanonicalFace(torch.tensor(TEMPLATE) * side, (side, side))
    for i, (label, cls, params) in enumerate(explainers):
        try:
            explainer = build_explainer(cls, model, canonical=toy, **params)
        except BenchError as exc:
            raise BenchError(f"{suite.source}: explainers[{i}]: {label}: {exc}") from None
        except Exception as exc:
            detail = (
                f"{type(exc).__name__}: {exc}"
                if not isinstance(exc, TypeError | ValueError)
                else exc
            )
            raise BenchError(f"{suite.source}: explainers[{i}].params: {label}: {detail}") from None
        remove = getattr(explainer, "remove_hooks", None)
        if callable(remove):
            remove()


def plan(
    path: Path, db: Path | None, device: str | None, fresh: bool, check_data: bool = True
) -> Plan:
    """Load and resolve a suite; raises BenchError and writes nothing on bad input.

    Args:
        check_data: refuse datasets whose files are missing (``bench validate`` checks
            the suite without the data).
    """
    suite = load_suite(path)
    dev = provenance.resolve_device(device or suite.device)
    cache = Path(suite.cache_dir or os.environ.get("BENCH_CACHE") or DEFAULT_CACHE)
    sha = provenance.git_sha()
    datasets = _datasets(suite, check_data)
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
    _check_crop(suite, provides)
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
    side = image_side(datasets["test"])
    spec = suite.model
    try:
        # The model as it is explained, or (trained per scenario) as initialised.
        model = build_model(spec, (side, side), weights=not spec.trains)
    except BenchError as exc:
        raise BenchError(f"{suite.source}: {exc}") from None
    n_classes = n_outputs(model, spec, (side, side))
    _build_explainers(suite, explainers, model, side)
    prints = fingerprint(suite, datasets)
    return Plan(
        suite=suite,
        device=dev,
        db=Path(db or suite.db or DEFAULT_DB),
        cache=cache,
        run_id=run_id_for(suite, prints),
        git_sha=sha,
        datasets=datasets,
        explainers=explainers,
        metrics=metrics,
        protocol=protocol,
        bias_regions=regions,
        fresh=fresh,
        model=None if spec.trains else model,
        n_classes=n_classes,
        fingerprint=prints,
    )


def run_id_for(suite: Suite, prints: dict[str, Any]) -> str:
    """A run's id: the resolved suite (one seed) and everything else it depends on."""
    return stable_hash({"suite": suite_hash(suite), "fingerprint": prints})


def group_id(suite: Suite, prints: dict[str, Any]) -> str:
    """The id shared by the runs of one suite's seeds (one run: a group of one)."""
    seeds = suite.seeds or [suite.seed]
    return stable_hash(
        {"suite": suite_hash(suite.for_seed(0)), "fingerprint": prints, "seeds": seeds}
    )
