"""Suites: a YAML file → validated, frozen pydantic objects.

``load_suite`` reads the file, follows ``include`` (deep merge, cycles refused), expands
environment variables in path fields and dataset params, validates the structure, then
checks component names against the catalogue, scenario attributes against the training
dataset, and ``params`` against the components' signatures. Any problem is one
``SuiteError`` line naming the file and the field (see ``benchmark.suite_errors``).
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    Field,
    PrivateAttr,
    StrictBool,
    ValidationError,
    field_validator,
    model_validator,
)

from benchmark.data.regions import PART_REGIONS
from benchmark.suite_errors import SuiteError, custom, read, show, translate
from benchmark.suite_model import InputSpec, ModelSpec, OutputSpec, TrainRecipe
from benchmark.suite_types import (
    DIRECTIONS,
    Direction,
    Name,
    NamedSpec,
    Names,
    Number,
    Params,
    PosInt,
    Spec,
    Str,
    interval,
)

#: Verification targets: mated or nonmated pairs, or the inpainting game's triplets.
PAIR_KINDS = ("mated", "nonmated", "inpainting")

__all__ = ["InputSpec", "ModelSpec", "OutputSpec", "SuiteError", "TrainRecipe"]


class DatasetSpec(NamedSpec):
    """A dataset: a ``DATASETS`` name and its constructor kwargs."""

    name: Str
    params: Params = Field(default_factory=dict)


class DataSpec(Spec):
    """The training and the test dataset (no training set for a model used as it is)."""

    train: DatasetSpec | None = None
    test: DatasetSpec

    @property
    def attributes_from(self) -> DatasetSpec:
        """The dataset scenario attributes are checked against."""
        return self.train or self.test


class DistributionBias(Spec):
    """Seed 001's skewed class distribution: training shares of a categorical column,
    e.g. US-census race proportions (METHODS §8)."""

    kind: Literal["distribution"]
    attribute: Str
    proportions: Annotated[dict[Str, Annotated[Number, Field(ge=0)]], Field(min_length=2)]

    @field_validator("proportions")
    @classmethod
    def _some_share(cls, value: dict[str, float]) -> dict[str, float]:
        if sum(value.values()) <= 0:
            raise custom(f"expected shares with a positive sum, got {show(value)}")
        return value


class Scenario(Spec):
    """One injected bias: ``attributes`` aligned with ``target`` in a ``rho`` share, or
    (``bias.kind: distribution``) the training set drawn with skewed class shares."""

    name: Name
    target: Str
    attributes: Names = Field(default_factory=list)
    #: Attributes whose regions are ranked like the bias attributes' but neither
    #: injected nor balanced (FaceX Table 4: CelebA's own correlations); the target
    #: itself too, where it has a region.
    observe: Names = Field(default_factory=list)
    rho: Annotated[Number, interval(0, 1)] = 0.5
    direction: Direction | list[Direction] = "positive"
    bias_regions: dict[Str, Names] | None = None
    bias: DistributionBias | None = None

    @field_validator("direction", mode="before")
    @classmethod
    def _direction(cls, value: Any) -> Any:
        many = isinstance(value, list)
        for i, item in enumerate(value if many else [value]):
            if item not in DIRECTIONS:
                expected = "one of positive, negative" + ("" if many else " (or a list of those)")
                raise custom(f"expected {expected}, got {show(item)}", f"[{i}]" if many else "")
        return value

    @model_validator(mode="after")
    def _consistent(self) -> Scenario:
        for i, attr in enumerate(self.attributes):
            if attr == self.target:
                msg = f"expected an attribute other than the target {attr!r}, got {attr!r}"
                raise custom(msg, f"attributes[{i}]")
            if attr in self.attributes[:i]:
                first = self.attributes.index(attr)
                msg = f"expected distinct attributes, got {attr!r} again (attributes[{first}])"
                raise custom(msg, f"attributes[{i}]")
        if isinstance(self.direction, list) and len(self.direction) != len(self.attributes):
            n, got = len(self.attributes), len(self.direction)
            raise custom(f"expected {n} direction(s), one per attribute, got {got}", "direction")
        # The target itself may be observed: its own region (Smiling: the mouth) is where
        # a model that learned the task should look.
        for j, attr in enumerate(self.observe):
            if attr in self.attributes:
                msg = f"expected an attribute that is not injected, got {attr!r}"
                raise custom(msg, f"observe[{j}]")
            if attr in self.observe[:j]:
                msg = f"expected distinct attributes, got {attr!r} again"
                raise custom(msg, f"observe[{j}]")
        for key in self.bias_regions or {}:
            if key not in self.ranked():
                among = ", ".join(self.ranked()) or "none"
                msg = f"expected a key among the scenario's attributes ({among}), got {key!r}"
                raise custom(msg, "bias_regions")
        return self

    def ranked(self) -> list[str]:
        """The attributes whose regions the ranking metrics place: injected, then observed."""
        return [*self.attributes, *self.observe]

    def directions(self) -> list[str]:
        """One direction per attribute (a single ``direction`` applies to all)."""
        if isinstance(self.direction, list):
            return list(self.direction)
        return [self.direction] * len(self.attributes)


class ComponentSpec(NamedSpec):
    """An explainer or a metric: a registry name, its kwargs, an optional label."""

    name: Str
    params: Params = Field(default_factory=dict)
    label: Str | None = None
    _canonical: str | None = PrivateAttr(default=None)

    @property
    def display_name(self) -> str:
        """The label, else the canonical registry name (known once ``load_suite`` ran)."""
        return self.label or self._canonical or self.name


class ExplainSpec(Spec):
    """How explanations are computed: for the label or the prediction, in batches.

    ``postprocess``: what every explainer's map becomes before the region metrics
    (ranking position, pointing game, bbox AP, ground-truth agreement) and the FaceX
    figures read it: ``absolute`` (|map|: evidence for and against the class both
    count as relying on a region), ``positive`` (ReLU: evidence for it only) or
    ``signed`` (as the explainer gives it; min-max puts its zero mid-range).
    """

    target: Literal["label", "prediction"] = "label"
    postprocess: Literal["signed", "positive", "absolute"] = "absolute"
    batch_size: PosInt = 64
    max_images: PosInt | None = None


class FiguresSpec(Spec):
    """FaceX figures (METHODS §2); ``patch_size`` is the patch side, default side / 32."""

    enabled: StrictBool = True
    patch_size: PosInt | None = None
    top_k: PosInt = 20
    #: Explained faces per explainer drawn one by one (image, map, bias-region mask).
    gallery: Annotated[int, Field(strict=True, ge=0)] = 4


class CheckSpec(Spec):
    """How ``bench check`` and ``bench compare`` judge a difference (issue 6).

    ``tolerance`` per metric (score key), in the metric's own units, overrides the
    metric's default; a row is worse only when the difference's bootstrap CI at
    ``confidence`` (for all rows together under ``correction: bonferroni``) excludes
    zero and the difference exceeds the tolerance.
    """

    tolerance: dict[Str, Annotated[Number, Field(ge=0)]] = Field(default_factory=dict)
    confidence: Annotated[Number, interval(0, 1)] = 0.95
    correction: Literal["bonferroni", "none"] = "bonferroni"
    resamples: Annotated[int, Field(strict=True, ge=100)] = 2000


SeedInt = Annotated[int, Field(strict=True, ge=0)]


class Suite(Spec):
    """A whole benchmark suite, as loaded from YAML (``source`` is the file)."""

    name: Name
    description: str | None = None
    seed: SeedInt = 0
    #: Repeat the whole suite once per seed (data, training, explainers), for
    #: uncertainty; overrides ``seed``.
    seeds: Annotated[list[SeedInt], Field(min_length=1)] | None = None
    check: CheckSpec = Field(default_factory=CheckSpec)
    device: Literal["auto", "cpu", "cuda"] = "auto"
    db: Path | None = None
    cache_dir: Path | None = None
    metadata: Params = Field(default_factory=dict)
    #: ``classification`` explains a class score; ``verification`` explains the
    #: similarity of each probe to its pair's reference (the model is an embedding and
    #: each scenario's ``target`` is ``mated`` or ``nonmated``: the pairs explained).
    #: ``detection`` explains the score of the detection matching each image's top
    #: detection (the model is a detector; ``target: face``).
    task: Literal["classification", "verification", "detection"] = "classification"
    region_protocol: Str = "celebamask"
    dataset: DataSpec
    model: ModelSpec
    scenarios: Annotated[list[Scenario], Field(min_length=1)]
    explainers: Annotated[list[ComponentSpec], Field(min_length=1)]
    metrics: Annotated[list[ComponentSpec], Field(min_length=1)]
    explain: ExplainSpec = Field(default_factory=ExplainSpec)
    figures: FiguresSpec = Field(default_factory=FiguresSpec)
    source: Path = Field(default=Path("<memory>"), repr=False)

    @model_validator(mode="after")
    def _unique_scenarios(self) -> Suite:
        names = [s.name for s in self.scenarios]
        for i, name in enumerate(names):
            if name in names[:i]:
                msg = f"expected a unique scenario name, got {name!r} again"
                raise custom(f"{msg} (scenarios[{names.index(name)}])", f"scenarios[{i}].name")
        if self.task == "verification":
            self._check_verification()
        elif self.model.train is not None and self.model.train.identity is not None:
            msg = "expected no identity recipe: only task verification trains an embedding"
            raise custom(msg, "model.train.identity")
        if self.task == "detection":
            if self.model.train is not None:
                msg = "expected train: false: a detection suite explains a detector as it is"
                raise custom(msg, "model.train")
            if self.model.input.crop != "none":
                msg = "expected crop: none: a detector reads the whole image"
                raise custom(msg, "model.input.crop")
            for i, sc in enumerate(self.scenarios):
                if sc.target != "face" or sc.attributes:
                    msg = f"expected target: face and no attributes, got {sc.target!r}"
                    raise custom(msg, f"scenarios[{i}].target")
        if self.model.trains and self.dataset.train is None:
            msg = "expected a training dataset: the model is trained (or set model.train: false)"
            raise custom(msg, "dataset.train")
        if self.model.train is None:
            for i, sc in enumerate(self.scenarios):
                for key in ("rho", "bias"):
                    if key in sc.model_fields_set:
                        msg = f"expected no {key}: the model is used as it is, not trained"
                        raise custom(f"{msg} (model.train: false)", f"scenarios[{i}].{key}")
        for i, seed in enumerate(self.seeds or []):
            if seed in (self.seeds or [])[:i]:
                raise custom(f"expected distinct seeds, got {seed} again", f"seeds[{i}]")
        return self

    def _check_verification(self) -> None:
        train = self.model.train
        for key in ("milestones", "gamma"):
            if train is not None and self.model.trains and key in train.model_fields_set:
                msg = f"expected no {key}: an embedding trains with a one-cycle schedule"
                raise custom(msg, f"model.train.{key}")
        for i, sc in enumerate(self.scenarios):
            if sc.target not in PAIR_KINDS:
                kinds = ", ".join(PAIR_KINDS)
                msg = f"expected one of {kinds} (what is explained), got {sc.target!r}"
                raise custom(msg, f"scenarios[{i}].target")
            if sc.target == "inpainting":
                if len(sc.attributes) != 1 or sc.attributes[0] not in PART_REGIONS:
                    msg = (f"expected one face part the nonmate differs in, one of "
                           f"{', '.join(PART_REGIONS)}; got {show(sc.attributes)}")  # fmt: skip
                    raise custom(msg, f"scenarios[{i}].attributes")
            elif sc.attributes:
                msg = "expected no attributes: a verification pair has no injected bias"
                raise custom(msg, f"scenarios[{i}].attributes")

    def for_seed(self, seed: int) -> Suite:
        """This suite with one seed: what one run of a multi-seed suite runs."""
        return self.model_copy(update={"seed": seed, "seeds": None})


def suite_hash(suite: Suite) -> str:
    """sha256 hex of the resolved suite's canonical JSON.

    Leaves out what cannot change a result: where the suite, DB and cache live, its
    description, metadata and the check settings.
    """
    skip = {"source", "description", "metadata", "db", "cache_dir", "check"}
    data = suite.model_dump(mode="json", exclude=skip)
    text = json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


# --- entry points -------------------------------------------------------------------------


def load_suite(path: str | os.PathLike[str]) -> Suite:
    """Load, resolve and validate a suite file.

    Args:
        path: the suite YAML file.

    Returns:
        The validated suite, with ``source`` set to the file's absolute path.

    Raises:
        SuiteError: the first problem, as one line ``<file>: <field>: <detail>``.
    """
    data, file_for = read(Path(path))
    if "source" in data:
        raise SuiteError(file_for(("source",)), "", "unknown key 'source' (set by the loader)")
    try:
        suite = Suite.model_validate({**data, "source": Path(path).resolve()})
    except ValidationError as exc:
        raise translate(exc, file_for, Suite, extra_keys=("include",)) from None
    from benchmark.suite_checks import check_catalogue  # it reads the classes above

    check_catalogue(suite, file_for)
    return suite
