"""Suite checks against the catalogue: component names (with close matches), unique
labels, scenario attributes against the training dataset, the region protocol's region
names, and ``params`` against the components' signatures. Each problem is one
``SuiteError`` line naming the file and the field.
"""

from __future__ import annotations

import inspect
from typing import Any

from benchmark.catalogue import DATASETS, EXPLAINERS, METRICS, MODELS, REGION_PROTOCOLS
from benchmark.errors import UnknownNameError, did_you_mean
from benchmark.registry import Registry
from benchmark.suite import ComponentSpec, Suite
from benchmark.suite_errors import FileFor, Loc, SuiteError
from explainers.plugin import function_params, is_function_explainer


def explainer_is_black_box(target: Any, params: dict[str, Any]) -> bool:
    """Whether an explainer needs forward passes only (no gradients, no layer hooks).

    A class says so with ``black_box = True``; a function explainer with
    ``needs_grad: false`` in its suite params.
    """
    if is_function_explainer(target):
        return params.get("needs_grad", True) is False
    return bool(getattr(target, "black_box", False))


def _explainer_access(target: Any, params: dict[str, Any]) -> str:
    """What an explainer needs of the model: forward passes, input gradients, layers."""
    if explainer_is_black_box(target, params):
        return "forward"
    if is_function_explainer(target):
        return "gradients"  # a function receives the model, not hooks into it
    return "layers" if getattr(target, "layer_hooks", True) else "gradients"


ACCESS_ORDER = ("forward", "gradients", "layers")


def check_model_access(suite: Suite, file_for: FileFor) -> None:
    """Refuse explainers that need more of the model than its source gives (gradients
    of a black box, layer hooks of a TorchScript file), and metrics that re-initialise
    weights a black box or a TorchScript file does not expose."""
    model = suite.model
    access = model.access
    if access == "layers":
        return
    what = {
        "onnx": "an onnxruntime model (black box)",
        "callable": "a callable model (black box)",
        "torchscript": "a TorchScript model (its layers take no hooks)",
    }[model.source]
    fix = {"onnx": "use backend: onnx2torch, or ", "torchscript": "use factory: for a "
           "Python module, or "}.get(model.source, "use ")  # fmt: skip
    allowed = (
        "occlusion, rise, rise_gauss, rise_correlation, minplus, avg, lime, kernel_shap, cis, cms"
    )
    if access == "gradients":
        allowed = "saliency, smoothgrad, input_x_gradient, integrated_gradients, " + allowed
    for i, spec in enumerate(suite.explainers):
        target = _load(EXPLAINERS, spec.name)
        if target is None:
            continue
        need = _explainer_access(target, spec.params)
        if ACCESS_ORDER.index(need) <= ACCESS_ORDER.index(access):
            continue
        loc: Loc = ("explainers", i)
        needs = "gradients" if need == "gradients" else "hooks on the model's layers"
        msg = (
            f"{spec.display_name} needs {needs}, which {what} does not give; "
            f"{fix}an explainer that works with it ({allowed})"
        )
        raise SuiteError(file_for(loc), loc, msg)
    for i, spec in enumerate(suite.metrics):
        if "weights" in _metric_needs(spec):
            loc = ("metrics", i)
            msg = f"{spec.display_name} re-initialises the model's layers, which {what} "
            raise SuiteError(file_for(loc), loc, msg + "does not expose")


def _check_task(suite: Suite, file_for: FileFor) -> None:
    """Verification explains similarities: no counterfactual ground truth for a class,
    no bias regions except the inpainting game's parts, a test set that has pairs (or
    renders mates), and identities to train on when the embedding is trained."""
    if suite.task == "classification":
        return
    dataset = _load(DATASETS, suite.dataset.test.name)
    paired = hasattr(dataset, "pairs") or hasattr(dataset, "mates")
    if suite.task == "verification" and dataset is not None and not paired:
        loc: Loc = ("dataset", "test", "name")
        msg = (
            f"expected a dataset with verification pairs (lfw, rfw) or rendered mates "
            f"(synthetic_faces) for task verification, got {suite.dataset.test.name!r}"
        )
        raise SuiteError(file_for(loc), loc, msg)
    games = [i for i, sc in enumerate(suite.scenarios) if sc.target == "inpainting"]
    if games and dataset is not None and not hasattr(dataset, "mates"):
        loc = ("scenarios", games[0], "target")
        msg = (f"expected a dataset that renders mates (synthetic_faces) for the inpainting "
               f"game, got dataset.test {suite.dataset.test.name!r}")  # fmt: skip
        raise SuiteError(file_for(loc), loc, msg)
    trainer = _load(DATASETS, suite.dataset.train.name) if suite.dataset.train else None
    embeds = suite.task == "verification" and suite.model.trains
    if embeds and trainer is not None and not hasattr(trainer, "identities"):
        loc = ("dataset", "train", "name")
        msg = (f"expected a dataset that renders identities (synthetic_faces) to train "
               f"an embedding on, got {suite.dataset.train.name!r}")  # fmt: skip
        raise SuiteError(file_for(loc), loc, msg)
    # Only the inpainting game has regions to place: every scenario must be one.
    placed = len(games) == len(suite.scenarios) and suite.task == "verification"
    for i, spec in enumerate(suite.metrics):
        bad = {"reliance"} | (set() if placed else {"bias_regions"})
        bad &= _metric_needs(spec)
        if bad:
            loc = ("metrics", i)
            msg = (
                f"{spec.display_name} needs {' and '.join(sorted(bad))}, which task "
                f"{suite.task} does not have; expected average_drop, "
                "increase_in_confidence, win_percent, deletion_auc, insertion_auc, "
                "model_randomisation or bbox_ap with reference: face"
                + (
                    " (or scenarios that are all target: inpainting)"
                    if suite.task == "verification"
                    else ""
                )
            )
            raise SuiteError(file_for(loc), loc, msg)


def _check_oracle(suite: Suite, file_for: FileFor) -> None:
    """The oracle draws the scenarios' bias regions: every scenario must rank some, and
    a verification or detection suite has them only in the inpainting game."""
    for i, spec in enumerate(suite.explainers):
        target = _load(EXPLAINERS, spec.name)
        if target is None or "regions" not in getattr(target, "needs", ()):
            continue
        loc: Loc = ("explainers", i)
        games = all(sc.target == "inpainting" for sc in suite.scenarios)
        if suite.task != "classification" and not (suite.task == "verification" and games):
            msg = (f"{spec.display_name} draws bias regions, which task {suite.task} does "
                   "not have (only the inpainting game's parts); expected random as the "
                   "reference row")  # fmt: skip
            raise SuiteError(file_for(loc), loc, msg)
        for j, sc in enumerate(suite.scenarios):
            if not sc.ranked():
                msg = (f"{spec.display_name} draws the scenario's bias regions; expected "
                       f"scenarios[{j}] ({sc.name}) to name or observe attributes")  # fmt: skip
                raise SuiteError(file_for(loc), loc, msg)


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
    if suite.task != "classification":  # targets name pairs or "face": the schema checks
        return
    name = suite.dataset.attributes_from.name
    dataset = _load(DATASETS, name)
    if getattr(dataset, "attribute_names", None) is None:
        return
    attributes = list(dataset.attribute_names)
    groups = list(getattr(dataset, "group_names", None) or ())
    values = dict(getattr(dataset, "group_values", None) or {})
    # A categorical target needs its classes named (multi-class models, FairFace race).
    targets, what = attributes + list(values), "an attribute" + (" or group" if values else "")
    for i, scenario in enumerate(suite.scenarios):
        checks = [(("target",), what, scenario.target, targets)]
        checks += [
            (("attributes", j), "an attribute or group", attr, attributes + groups)
            for j, attr in enumerate(scenario.attributes)
        ]
        checks += [
            (("observe", j), "an attribute or group", attr, attributes + groups)
            for j, attr in enumerate(scenario.observe)
        ]
        if scenario.bias is not None:
            bias = scenario.bias
            checks.append((("bias", "attribute"), "a group", bias.attribute, list(values)))
            if bias.attribute in values:
                known = list(values[bias.attribute])
                checks += [
                    (("bias", "proportions", k), "a class", k, known) for k in bias.proportions
                ]
        for sub, what, value, known in checks:
            if value not in known:
                loc = ("scenarios", i, *sub)
                hint = did_you_mean(value, known) or "; known: " + ", ".join(known[:20])
                msg = f"expected {what} of dataset {name!r}, got {value!r}{hint}"
                raise SuiteError(file_for(loc), loc, msg)


def _metric_needs(spec: ComponentSpec, regions: tuple[str, ...] = ()) -> frozenset[str]:
    """What a suite's metric needs, as built with its params (they may change it); empty
    when it cannot be imported or built yet (the params check reports that)."""
    from metrics.base import MetricContext

    cls = _load(METRICS, spec.name)
    try:
        return frozenset(cls(MetricContext(regions), **spec.params).needs) if cls else frozenset()
    except Exception:
        return frozenset()


def _ranks_bias_regions(suite: Suite, regions: tuple[str, ...]) -> bool:
    """Whether a metric of the suite places the scenarios' bias regions."""
    return any("bias_regions" in _metric_needs(spec, regions) for spec in suite.metrics)


def _check_regions(suite: Suite, file_for: FileFor) -> None:
    """The region protocol is registered; ``bias_regions`` name its regions."""
    loc: Loc = ("region_protocol",)
    _canonical(REGION_PROTOCOLS, suite.region_protocol, file_for(loc), loc)
    protocol = _load(REGION_PROTOCOLS, suite.region_protocol)
    known = list(getattr(protocol, "regions", ()) or ())
    if not known:
        return
    defaults = getattr(protocol, "attribute_regions", {}) or {}
    placed = _ranks_bias_regions(suite, tuple(known))
    for i, scenario in enumerate(suite.scenarios):
        if scenario.target == "inpainting":  # a face part: its regions are PART_REGIONS'
            continue
        for field, attrs in (("attributes", scenario.attributes), ("observe", scenario.observe)):
            for j, attr in enumerate(attrs):
                if placed and attr not in (scenario.bias_regions or {}) and attr not in defaults:
                    loc = ("scenarios", i, field, j)
                    msg = (
                        f"expected an attribute with regions under region protocol "
                        f"{suite.region_protocol!r}, got {attr!r}, which has none by default; "
                        f"add scenarios[{i}].bias_regions.{attr}"
                    )
                    raise SuiteError(file_for(loc), loc, msg)
        for key, regions in (scenario.bias_regions or {}).items():
            for j, region in enumerate(regions):
                if region not in known:
                    loc = ("scenarios", i, "bias_regions", key, j)
                    hint = did_you_mean(region, known) or "; known: " + ", ".join(known)
                    msg = f"expected a region of protocol {suite.region_protocol!r}, "
                    raise SuiteError(file_for(loc), loc, msg + f"got {region!r}{hint}")


def check_catalogue(suite: Suite, file_for: FileFor) -> None:
    """Names against the registries, unique explainer labels, attributes, then params."""
    datasets = [(k, getattr(suite.dataset, k)) for k in ("train", "test")]
    checks: list[tuple[Registry, Any, Loc, str, int]] = [
        (DATASETS, spec, ("dataset", key), spec.name, 0) for key, spec in datasets if spec
    ]
    if suite.model.arch is not None:
        checks.append((MODELS, suite.model, ("model",), suite.model.arch, 0))
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
    _check_regions(suite, file_for)
    check_model_access(suite, file_for)
    _check_task(suite, file_for)
    _check_oracle(suite, file_for)
    for registry, spec, loc, name, skip in checks:
        params_loc = (*loc, "params")
        _check_params(registry, name, spec.params, skip, file_for(params_loc), params_loc)
