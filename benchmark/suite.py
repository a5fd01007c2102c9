"""Suites: a YAML file → validated, frozen pydantic objects.

``load_suite`` reads the file, follows ``include`` (deep merge, cycles refused), expands
environment variables in path fields and dataset params, validates the structure, then
checks component names against the catalogue, scenario attributes against the training
dataset, and ``params`` against the components' signatures. Any problem is one
``SuiteError`` line naming the file and the field (see ``benchmark.suite_errors``).
"""

from __future__ import annotations

import hashlib
import inspect
import itertools
import json
import os
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PrivateAttr,
    StrictBool,
    ValidationError,
    field_validator,
    model_validator,
)

from benchmark.catalogue import DATASETS, EXPLAINERS, METRICS, MODELS
from benchmark.data.regions import REGION_NAMES
from benchmark.errors import UnknownNameError, did_you_mean
from benchmark.registry import Registry
from benchmark.suite_errors import FileFor, Loc, SuiteError, custom, read, show, translate
from explainers.plugin import function_params, is_function_explainer

NAME_PATTERN = r"^[A-Za-z0-9_.-]+$"
DIRECTIONS = ("positive", "negative")


def _yaml_float(value: Any) -> Any:
    """PyYAML reads ``1e-3`` (no dot) as a string; take it as the number it means."""
    if isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            return value
    return value


def _interval(lo: float, hi: float, *, hi_closed: bool = False) -> BeforeValidator:
    what = f"in ({lo:g}, {hi:g}]" if hi_closed else f"strictly between {lo:g} and {hi:g}"

    def check(value: Any) -> Any:
        number = _yaml_float(value)
        numeric = isinstance(number, int | float) and not isinstance(number, bool)
        if numeric and not (lo < number <= hi if hi_closed else lo < number < hi):
            raise custom(f"expected a number {what}, got {show(value)}")
        return number

    return BeforeValidator(check)


Number = Annotated[float, BeforeValidator(_yaml_float), Field(strict=True, allow_inf_nan=False)]
PosInt = Annotated[int, Field(strict=True, ge=1)]
Str = Annotated[str, Field(strict=True, min_length=1)]
Name = Annotated[str, Field(strict=True, pattern=NAME_PATTERN)]
Params = Annotated[dict[str, Any], BeforeValidator(lambda v: {} if v is None else v)]
Names = Annotated[list[Str], BeforeValidator(lambda v: [v] if isinstance(v, str) else v)]
Direction = Literal["positive", "negative"]


class _Spec(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class _Named(_Spec):
    """A spec that may be written as a bare name instead of a mapping."""

    @model_validator(mode="before")
    @classmethod
    def _bare_name(cls, value: Any) -> Any:
        if isinstance(value, str):
            return {"name": value}
        if not isinstance(value, dict):
            keys = ", ".join(cls.model_fields)
            raise custom(f"expected a name or a mapping with {keys}, got {show(value)}")
        return value


class DatasetSpec(_Named):
    """A dataset: a ``DATASETS`` name and its constructor kwargs."""

    name: Str
    params: Params = Field(default_factory=dict)


class DataSpec(_Spec):
    """The training and the test dataset."""

    train: DatasetSpec
    test: DatasetSpec


class TrainRecipe(_Spec):
    """The FaceX training recipe; ``milestones`` are fractions of the epochs."""

    epochs: PosInt = 20
    batch_size: PosInt = 128
    lr: Annotated[Number, Field(gt=0)] = 1.0e-3
    weight_decay: Annotated[Number, Field(ge=0)] = 1.0e-4
    optimizer: Literal["adam", "adamw", "sgd"] = "adam"
    milestones: list[Annotated[Number, _interval(0, 1)]] = Field(
        default_factory=lambda: [1 / 3, 2 / 3]
    )
    gamma: Annotated[Number, _interval(0, 1, hi_closed=True)] = 0.1
    hflip: StrictBool = False

    @field_validator("milestones")
    @classmethod
    def _increasing(cls, value: list[float]) -> list[float]:
        if any(b <= a for a, b in itertools.pairwise(value)):
            raise custom(f"expected increasing fractions, got {show(value)}")
        return value


class ModelSpec(_Spec):
    """The model: a ``MODELS`` arch, its builder kwargs, optional weights, the recipe."""

    arch: Str
    params: Params = Field(default_factory=dict)
    checkpoint: Path | None = None
    train: TrainRecipe = Field(default_factory=TrainRecipe)


class Scenario(_Spec):
    """One injected bias: ``attributes`` aligned with ``target`` in a ``rho`` share."""

    name: Name
    target: Str
    attributes: Names
    rho: Annotated[Number, _interval(0, 1)] = 0.5
    direction: Direction | list[Direction] = "positive"
    bias_regions: dict[Str, Names] | None = None

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
        for key, regions in (self.bias_regions or {}).items():
            if key not in self.attributes:
                among = ", ".join(self.attributes) or "none"
                msg = f"expected a key among the scenario's attributes ({among}), got {key!r}"
                raise custom(msg, "bias_regions")
            for j, region in enumerate(regions):
                if region not in REGION_NAMES:
                    known = "; known: " + ", ".join(REGION_NAMES)
                    hint = did_you_mean(region, REGION_NAMES) or known
                    msg = f"expected a region name, got {region!r}{hint}"
                    raise custom(msg, f"bias_regions.{key}[{j}]")
        return self

    def directions(self) -> list[str]:
        """One direction per attribute (a single ``direction`` applies to all)."""
        if isinstance(self.direction, list):
            return list(self.direction)
        return [self.direction] * len(self.attributes)


class ComponentSpec(_Named):
    """An explainer or a metric: a registry name, its kwargs, an optional label."""

    name: Str
    params: Params = Field(default_factory=dict)
    label: Str | None = None
    _canonical: str | None = PrivateAttr(default=None)

    @property
    def display_name(self) -> str:
        """The label, else the canonical registry name (known once ``load_suite`` ran)."""
        return self.label or self._canonical or self.name


class ExplainSpec(_Spec):
    """How explanations are computed: for the label or the prediction, in batches."""

    target: Literal["label", "prediction"] = "label"
    batch_size: PosInt = 64
    max_images: PosInt | None = None


class FiguresSpec(_Spec):
    """FaceX figures (METHODS §2); ``patch_size`` is the patch side, default side / 32."""

    enabled: StrictBool = True
    patch_size: PosInt | None = None
    top_k: PosInt = 20


class Suite(_Spec):
    """A whole benchmark suite, as loaded from YAML (``source`` is the file)."""

    name: Name
    description: str | None = None
    seed: Annotated[int, Field(strict=True, ge=0)] = 0
    device: Literal["auto", "cpu", "cuda"] = "auto"
    db: Path | None = None
    cache_dir: Path | None = None
    metadata: Params = Field(default_factory=dict)
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
        return self


def suite_hash(suite: Suite) -> str:
    """sha256 hex of the resolved suite's canonical JSON.

    Leaves out what cannot change a result: where the suite, DB and cache live, its
    description and metadata.
    """
    skip = {"source", "description", "metadata", "db", "cache_dir"}
    data = suite.model_dump(mode="json", exclude=skip)
    text = json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


# --- checks against the catalogue ---------------------------------------------------------


def _canonical(registry: Registry, name: str, file: str, loc: Loc) -> str:
    try:
        return registry.entry(name).name
    except UnknownNameError as exc:
        hint = did_you_mean(name, exc.known) or "; known: " + ", ".join(exc.known)
        msg = f"expected a registered {registry.kind}, got {name!r}{hint}"
        raise SuiteError(file, loc, msg) from None


def _load(registry: Registry, name: str) -> Any:
    """The component, or None when it cannot be imported yet (the run reports that)."""
    try:
        return registry.get(name)
    except Exception:
        return None


def _accepted_params(target: Any, skip: int) -> list[str] | None:
    """Keyword names ``target`` takes, or None when it takes anything.

    A class whose ``__init__`` forwards ``**kwargs`` to its base (explainers do, for
    ``batch_size``/``seed``/``device``) also accepts the base's keywords: walk the MRO.
    """
    kind = inspect.Parameter
    by_name = (kind.POSITIONAL_OR_KEYWORD, kind.KEYWORD_ONLY)
    is_class = isinstance(target, type)
    inits = [c.__init__ for c in target.__mro__ if "__init__" in vars(c)] if is_class else []
    accepted: list[str] = []
    for func in inits if is_class else [target]:
        try:
            parameters = list(inspect.signature(func).parameters.values())
        except (TypeError, ValueError):
            return None
        if is_class:
            parameters = parameters[1:]  # self
        runtime = [p for p in parameters if p.kind is not kind.KEYWORD_ONLY][:skip]
        accepted += [p.name for p in parameters if p.kind in by_name and p not in runtime]
        if not any(p.kind is kind.VAR_KEYWORD for p in parameters):
            return list(dict.fromkeys(accepted))
    return None


def _check_params(
    registry: Registry, name: str, params: dict, skip: int, file: str, loc: Loc
) -> None:
    """Refuse ``params`` keys the component's signature lacks (after ``skip`` runtime args)."""
    if not params or (target := _load(registry, name)) is None:
        return
    if registry is EXPLAINERS and is_function_explainer(target):  # fn(model, x, target, **p)
        accepted = function_params(target, extra=("needs_grad", "batch_size", "seed", "device"))
    else:
        accepted = _accepted_params(target, skip)
    if accepted is None:
        return
    for key in (k for k in params if k not in accepted):
        hint = did_you_mean(str(key), accepted) or "; expected one of " + ", ".join(accepted)
        msg = f"unknown parameter {key!r} for {registry.kind} {name!r}"
        raise SuiteError(file, loc, msg + (hint if accepted else "; it takes none"))


def _check_attributes(suite: Suite, file_for: FileFor) -> None:
    """Scenario targets and attributes must be the training dataset's (when it says)."""
    name = suite.dataset.train.name
    dataset = _load(DATASETS, name)
    if getattr(dataset, "attribute_names", None) is None:
        return
    attributes = list(dataset.attribute_names)
    groups = list(getattr(dataset, "group_names", None) or ())
    for i, scenario in enumerate(suite.scenarios):
        checks = [(("target",), "an attribute", scenario.target, attributes)]
        checks += [
            (("attributes", j), "an attribute or group", attr, attributes + groups)
            for j, attr in enumerate(scenario.attributes)
        ]
        for sub, what, value, known in checks:
            if value not in known:
                loc = ("scenarios", i, *sub)
                hint = did_you_mean(value, known) or "; known: " + ", ".join(known[:20])
                msg = f"expected {what} of dataset {name!r}, got {value!r}{hint}"
                raise SuiteError(file_for(loc), loc, msg)


def _check_catalogue(suite: Suite, file_for: FileFor) -> None:
    """Names against the registries, unique explainer labels, attributes, then params."""
    train, test = suite.dataset.train, suite.dataset.test
    checks: list[tuple[Registry, Any, Loc, str, int]] = [
        (DATASETS, train, ("dataset", "train"), train.name, 0),
        (DATASETS, test, ("dataset", "test"), test.name, 0),
        (MODELS, suite.model, ("model",), suite.model.arch, 0),
    ]
    for key, registry in (("explainers", EXPLAINERS), ("metrics", METRICS)):
        checks += [(registry, s, (key, i), s.name, 1) for i, s in enumerate(getattr(suite, key))]
    for registry, spec, loc, name, _ in checks:
        name_loc = (*loc, "arch" if registry is MODELS else "name")
        canonical = _canonical(registry, name, file_for(name_loc), name_loc)
        if isinstance(spec, ComponentSpec):
            spec._canonical = canonical
    for key in ("explainers", "metrics"):
        labels = [spec.display_name for spec in getattr(suite, key)]
        for i, label in enumerate(labels):
            if label in labels[:i]:
                loc = (key, i)
                msg = f"expected a unique label, got {label!r} again"
                msg += f" ({key}[{labels.index(label)}]); add `label:` to tell them apart"
                raise SuiteError(file_for(loc), loc, msg)
    _check_attributes(suite, file_for)
    for registry, spec, loc, name, skip in checks:
        params_loc = (*loc, "params")
        _check_params(registry, name, spec.params, skip, file_for(params_loc), params_loc)


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
    _check_catalogue(suite, file_for)
    return suite
