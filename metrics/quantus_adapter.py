"""Any Quantus metric as a benchmark metric: ``quantus:<Class>`` in a suite's ``metrics``.

Quantus (Hedström et al., "Quantus: An Explainable AI Toolkit for Responsible Evaluation
of Neural Network Explanations and Beyond", JMLR 24(34), 2023) implements some forty
metrics on NumPy arrays. It is LGPL-3.0, so it is imported here as a library and none
of its code is copied. :func:`quantus_metric` builds, per Quantus class, a
:class:`QuantusMetric` whose ``direction`` is the class's ``score_direction``, whose
``needs`` follow its ``evaluation_category``, and whose parameters are the class's
constructor arguments (``call`` holds ``__call__`` arguments such as ``softmax``).

What Quantus is fed: ``x_batch`` (N, 3, H, W) pixels, ``y_batch`` the explained classes,
``a_batch`` the maps as (N, 1, H, W), for localisation metrics ``s_batch`` (N, 1, H, W)
the binary mask of the scenario's first bias attribute's regions (images without them
are left out, as in :class:`metrics.pointing.PointingGame`), the model and its device,
and for metrics that re-explain (randomisation, robustness) an ``explain_func`` built
from the scored explainer. Quantus prints nothing (``disable_warnings``, no progress
bar) and returns per-image values (``return_aggregate=False``).
"""

from __future__ import annotations

import functools
import importlib.metadata
import inspect
import random
import warnings
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from typing import Any, ClassVar

import numpy as np
import torch

from benchmark.errors import BenchError, UnknownNameError, close_matches, did_you_mean
from benchmark.registry import load_target
from metrics.base import ExplainFn, Metric, MetricContext, MetricResult
from metrics.regions import region_masks

PREFIX = "quantus"
#: Constructor arguments the adapter sets: quiet, one value per image.
FIXED = {"disable_warnings": True, "display_progressbar": False, "return_aggregate": False}
HIDDEN = {*FIXED, "aggregate_func", "default_plot_func"}
#: ``__call__`` arguments the adapter fills from the batch.
FED = {"model", "x_batch", "y_batch", "a_batch", "s_batch", "explain_func", "custom_batch"}
_BY_NAME = (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)
#: Options whose Quantus 0.6 code path uses what NumPy 2 removed (``np.trapz`` is gone in
#: 2.4: the adapter takes each curve's area itself; ``np.NaN`` in 2.0).
NUMPY_GONE = {"return_auc_per_sample": "trapz", "return_nan_when_prediction_changes": "NaN"}


def _quantus() -> Any:
    try:
        import quantus
    except ImportError as exc:
        raise BenchError(
            f"{PREFIX}:<Class> metrics need Quantus, which is not installed ({exc}); "
            "expected `pip install --no-deps quantus` with the [quantus] extra (README)"
        ) from None
    return quantus


def quantus_classes() -> dict[str, type]:
    """Every metric class Quantus exports, by class name."""
    q = _quantus()
    return {
        name: obj
        for name, obj in vars(q).items()
        if isinstance(obj, type) and issubclass(obj, q.Metric) and obj is not q.Metric
    }


class UnknownQuantusMetric(UnknownNameError):
    """An unknown ``quantus:<Class>``. Close matches are sought among the class names:
    the shared prefix would make every full name look close."""

    def __init__(self, class_name: str, classes: Mapping[str, type]):
        name = f"{PREFIX}:{class_name}"
        matches = [f"{PREFIX}:{m}" for m in close_matches(class_name, classes)]
        known = matches or sorted(classes)
        hint = did_you_mean(name, matches) or f"; expected {PREFIX}:<Class>, Class one of " + (
            ", ".join(known)
        )
        BenchError.__init__(self, f"unknown metric {name!r}{hint}")
        self.kind, self.name, self.known, self.matches = "metric", name, known, matches


def quantus_metric(class_name: str) -> type[QuantusMetric]:
    """The registry's factory for ``quantus:<class_name>`` (case-insensitive).

    Raises:
        UnknownNameError: no such Quantus metric (with close matches).
    """
    classes = quantus_classes()
    by_lower = {name.lower(): cls for name, cls in classes.items()}
    cls = classes.get(class_name) or by_lower.get(class_name.lower())
    if cls is None:
        raise UnknownQuantusMetric(class_name, classes)
    return _adapter(cls)


def _init_params(qcls: type) -> dict[str, inspect.Parameter]:
    """The Quantus class's constructor arguments a suite may set."""
    params = inspect.signature(qcls.__init__).parameters.values()
    return {p.name: p for p in params if p.kind in _BY_NAME and p.name not in HIDDEN | {"self"}}


@functools.cache
def _adapter(qcls: type) -> type[QuantusMetric]:
    """One :class:`QuantusMetric` subclass per Quantus class (cached: one class per name)."""
    direction = getattr(getattr(qcls, "score_direction", None), "value", None)
    if direction not in ("higher", "lower"):
        raise BenchError(f"Quantus' {qcls.__name__} states no score direction")
    category = getattr(getattr(qcls, "evaluation_category", None), "value", "")
    takes = _init_params(qcls)
    needs = {"model"}  # Quantus wraps and calls it, even where the score ignores it
    if category == "Localisation":
        needs |= {"masks", "bias_regions"}
    if category in ("Randomisation", "Robustness"):
        needs.add("explainer")
    if "layer_order" in takes:  # the MPRT family re-initialises the model's layers
        needs.add("weights")

    def __init__(self, context: MetricContext, *, call: Mapping[str, Any] | None = None,
                 **params: Any) -> None:  # fmt: skip
        QuantusMetric.__init__(self, context, call=call, **params)

    kind = inspect.Parameter
    signature = [
        kind("self", kind.POSITIONAL_OR_KEYWORD),
        kind("context", kind.POSITIONAL_OR_KEYWORD),
        kind("call", kind.KEYWORD_ONLY, default=None),
        *(p.replace(kind=kind.KEYWORD_ONLY, annotation=kind.empty) for p in takes.values()),
    ]
    # The suite check reads the accepted ``params`` from this signature.
    __init__.__signature__ = inspect.Signature(signature)  # type: ignore[attr-defined]
    attrs = {
        "__init__": __init__,
        "__doc__": f"Quantus' {qcls.__name__} ({category or 'uncategorised'}) on our batches.",
        "__module__": __name__,
        "name": f"{PREFIX}:{qcls.__name__}",
        "direction": direction,
        "needs": frozenset(needs),
        "quantus_class": qcls,
    }
    return type(f"Quantus{qcls.__name__}", (QuantusMetric,), attrs)


def _resolve_funcs(params: Mapping[str, Any]) -> dict[str, Any]:
    """``*_func`` parameters given as text: a Quantus function name or ``module:attr``."""
    out = dict(params)
    for key, value in params.items():
        if key.endswith("_func") and isinstance(value, str):
            q = _quantus()
            out[key] = load_target(value) if ":" in value else getattr(q, value, None)
            if not callable(out[key]):
                raise ValueError(
                    f"{key}: expected a Quantus function or 'module:attr', got {value!r}"
                )
    return out


def quantus_explain_func(explain_fn: ExplainFn, device: torch.device) -> Callable[..., np.ndarray]:
    """Our ``explain_fn(model, x, y) -> (N, H, W)`` tensor as Quantus'
    ``explain_func(model, inputs, targets, **kwargs) -> (N, 1, H, W)`` array."""

    def explain_func(model: torch.nn.Module, inputs: Any, targets: Any, **_: Any) -> np.ndarray:
        x = torch.as_tensor(np.asarray(inputs), dtype=torch.float32, device=device)
        y = torch.as_tensor(np.asarray(targets), device=device).long().reshape(-1)
        a = explain_fn(model, x, y).detach().float()
        return (a[:, None] if a.dim() == 3 else a).cpu().numpy()

    return explain_func


@contextmanager
def _seeded(seed: int, device: torch.device) -> Iterator[None]:
    """Global NumPy, Python and torch RNGs seeded for one Quantus call, then restored
    (Quantus draws from them, and MPRT reseeds torch's)."""
    np_state, py_state = np.random.get_state(), random.getstate()
    devices = [device.index or 0] if device.type == "cuda" else []
    with torch.random.fork_rng(devices=devices):
        np.random.seed(seed)
        random.seed(seed)
        torch.manual_seed(seed)
        try:
            yield
        finally:
            np.random.set_state(np_state)
            random.setstate(py_state)


def _as_values(result: Any) -> np.ndarray:
    """Quantus' per-image results as floats: numbers and booleans as they are (None as
    NaN); a curve (PixelFlipping, RegionPerturbation, Selectivity) as its area by the
    trapezoid rule with unit spacing, Quantus' own AUC (``utils.calculate_auc``, which
    calls ``np.trapz``, gone in NumPy 2.4)."""
    area = getattr(np, "trapezoid", None) or np.trapz  # NumPy < 2.0 has only trapz
    out = [area(np.asarray(v, float)) if np.ndim(v) else v for v in result]
    return np.asarray([np.nan if v is None else float(v) for v in out], float)


def _nanmean(values: np.ndarray, axis: int | None = None) -> Any:
    """NaN-ignoring mean; all NaN stays NaN, without NumPy's warning."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        return np.nanmean(values, axis=axis)


class QuantusMetric(Metric):
    """A Quantus metric on the benchmark's batches; built by :func:`quantus_metric`.

    Args:
        context: the scenario (its bias regions give localisation metrics' ``s_batch``).
        call: ``__call__`` arguments of the Quantus metric (``softmax``, ``batch_size``,
            ``explain_func_kwargs``…); ``channel_first`` is True, ``device`` the model's.
        **params: the Quantus class's constructor arguments; ``*_func`` ones may name a
            Quantus function (``similarity_func: correlation_pearson``) or a
            ``module:attr``.

    Scores the mean over images (NaN left out). A result per layer (MPRT, SmoothMPRT)
    scores each image's mean over the randomised layers, Quantus' "original" entry left
    out. A batch-level result (SensitivityN; ROAD's ``{percentage: value}``, as the mean
    of its values) scores the mean over batches and has no ``per_image``. Details: the
    Quantus class and version, ``params``, ``call``, ``n_nan`` (images left out or NaN),
    ``per_layer`` (mean per randomised layer).
    """

    quantus_class: ClassVar[type]

    def __init__(
        self, context: MetricContext, *, call: Mapping[str, Any] | None = None, **params: Any
    ):
        qcls = self.quantus_class
        takes = _init_params(qcls)
        for key in params:
            if key not in takes:
                hint = did_you_mean(key, takes) or "; expected one of " + ", ".join(takes)
                raise TypeError(f"unknown parameter {key!r} for metric {self.name!r}{hint}")
        calls = [p for p in inspect.signature(qcls.__call__).parameters.values()
                 if p.kind in _BY_NAME and p.name not in FED | {"self"}]  # fmt: skip
        for key in call or {}:
            if key not in {p.name for p in calls}:
                hint = did_you_mean(key, [p.name for p in calls])
                raise ValueError(f"{self.name}: unknown call argument {key!r}{hint}")
        for key, missing in NUMPY_GONE.items():
            if params.get(key) and not hasattr(np, missing):
                raise ValueError(f"{self.name}: {key} makes Quantus call np.{missing}, which "
                                 f"NumPy {np.__version__} lacks; leave it false")  # fmt: skip
        self.params, self.call = dict(params), dict(call or {})
        fixed = {k: v for k, v in FIXED.items() if k in inspect.signature(qcls.__init__).parameters}
        try:
            self._metric = qcls(**_resolve_funcs(params), **fixed)
        except (TypeError, ValueError, AssertionError) as exc:
            raise ValueError(f"{self.name}: {exc}") from None
        super().__init__(context)

    def reset(self) -> None:
        self._values: list[np.ndarray] = []  # per image, NaN where left out
        self._batches: list[float] = []  # batch-level results
        self._layers: dict[str, list[np.ndarray]] = {}
        self._calls = 0

    def update(
        self,
        *,
        x_batch: torch.Tensor,
        y_batch: torch.Tensor,
        a_batch: torch.Tensor,
        s_batch: torch.Tensor | None = None,
        model: torch.nn.Module | None = None,
        explain_fn: ExplainFn | None = None,
        **_: Any,
    ) -> None:
        if not isinstance(model, torch.nn.Module):
            raise ValueError(f"{self.name} needs the model as a torch module: Quantus calls it")
        n = len(x_batch)
        keep = torch.ones(n, dtype=torch.bool)
        s = None
        if "masks" in self.needs:
            if s_batch is None:
                raise ValueError(f"{self.name} needs region masks (s_batch)")
            if not self.context.bias_regions:
                raise ValueError(f"{self.name} needs a scenario with bias regions")
            inside = region_masks(s_batch, self.context.bias_regions[0])
            keep = inside.flatten(1).any(1).cpu()
            s = inside[keep.to(inside.device)][:, None].float().cpu().numpy()
        values = np.full(n, np.nan)
        if keep.any():
            values[keep.numpy()] = self._evaluate(x_batch, y_batch, a_batch, s, keep, model,
                                                  explain_fn)  # fmt: skip
        self._values.append(values)

    def _evaluate(
        self,
        x_batch: torch.Tensor,
        y_batch: torch.Tensor,
        a_batch: torch.Tensor,
        s: np.ndarray | None,
        keep: torch.Tensor,
        model: torch.nn.Module,
        explain_fn: ExplainFn | None,
    ) -> np.ndarray:
        """Quantus on the kept images of a batch: one value per kept image."""
        device = x_batch.device
        idx = keep.to(device)
        # The one place tensors leave the device: Quantus computes on NumPy arrays.
        x = x_batch[idx].detach().float().cpu().numpy()
        y = y_batch[idx].detach().long().cpu().numpy()
        a = a_batch.to(device)[idx].detach().float().cpu().numpy()[:, None]
        call: dict[str, Any] = {"channel_first": True, "device": str(device), "batch_size": len(x)}
        if getattr(model, "raw_scores", False):
            call["softmax"] = False  # its outputs are scores already (explainers.base)
        call.update(self.call)
        if explain_fn is not None:
            call["explain_func"] = quantus_explain_func(explain_fn, device)
        with _seeded(self._calls, device), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            result = self._metric(model=model, x_batch=x, y_batch=y, a_batch=a, s_batch=s, **call)
        self._calls += 1
        per_layer = isinstance(result, Mapping) and all(
            np.ndim(v) and len(v) == len(x) for v in result.values()
        )
        if isinstance(result, Mapping) and not per_layer:  # ROAD: {percentage: value}
            result = [np.mean(_as_values(list(result.values())))]
        if per_layer:  # one list per randomised layer
            layers = {str(k): _as_values(v) for k, v in result.items()}
            for k, v in layers.items():
                self._layers.setdefault(k, []).append(v)
            result = np.stack([v for k, v in layers.items() if k != "original"])
            return _nanmean(result, axis=0)
        values = _as_values(result)
        if len(values) != len(x):  # one value for the whole batch
            self._batches += values.tolist()
            return np.full(len(x), np.nan)
        return values

    def compute(self) -> MetricResult:
        if not self._values:
            raise ValueError("no batch seen")
        values = torch.from_numpy(np.concatenate(self._values))
        known = ~values.isnan()
        details: dict[str, Any] = {
            "quantus_class": self.quantus_class.__name__,
            "quantus_version": importlib.metadata.version("quantus"),
            "params": self.params,
            "call": self.call,
            # Localisation metrics score the bias regions: the leaderboard averages
            # them over the biased scenarios only, as it does ranking position.
            "bias_regions": "bias_regions" in self.needs,
        }
        if self._layers:
            means = {k: _nanmean(np.concatenate(v)) for k, v in self._layers.items()}
            details["per_layer"] = {k: None if np.isnan(m) else float(m) for k, m in means.items()}
        if self._batches:  # no value per image: the mean over batches
            batches = np.asarray(self._batches, float)
            finite = batches[~np.isnan(batches)]
            scores = {self.name: float(finite.mean())} if len(finite) else {}
            details["per"] = "batch"
            return MetricResult(scores, len(values), details=details)
        details["n_nan"] = int((~known).sum())
        scores = {self.name: float(values[known].mean())} if known.any() else {}
        return MetricResult(scores, int(known.sum()), details=details, per_image=values)
