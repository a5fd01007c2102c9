"""Sanity check by cascading model-parameter randomisation (METHODS §7).

Adebayo et al., "Sanity Checks for Saliency Maps", NeurIPS 2018, §3.1: re-initialise
the model's layers one by one from the output down, re-explain each image on every
randomised model, and measure how much the maps still look like the original ones
(Spearman rank correlation). An explainer that reads the model should lose its maps as
the weights go; one that scores high is explaining the image, not the model.

Quantus' MPRT does this in NumPy with a loop per layer and per image; here every
correlation of a batch is one batched rank computation on the maps' device.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Iterator

import torch
from torch import nn

from metrics.base import ExplainFn, Metric, MetricContext, MetricResult


def _ranks(x: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """(B, N) → (B, N) 1-based ranks per row; tied values share their average rank."""
    b, n = x.shape
    values, order = x.sort(dim=1)
    starts = torch.ones_like(values, dtype=torch.bool)
    starts[:, 1:] = values[:, 1:] != values[:, :-1]
    group = starts.cumsum(1) - 1  # tie-group id of each sorted value
    pos = torch.arange(1, n + 1, device=x.device).expand(b, n)
    # Integer sums: exact, where float32 would round them beyond ~76×76 px (N²/2 > 2²⁴).
    total = torch.zeros_like(group).scatter_add_(1, group, pos)
    count = torch.zeros_like(group).scatter_add_(1, group, torch.ones_like(group))
    mean = (total.to(dtype) / count.clamp_min(1).to(dtype)).gather(1, group)
    return torch.empty_like(mean).scatter_(1, order, mean)


def spearman(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Spearman ρ between ``a[i]`` and ``b[i]`` (flattened) for every i, batched: (B,).

    Ties get average ranks (``scipy.stats.spearmanr``); a constant or non-finite row
    gives NaN, as in scipy.
    """
    a, b = a.flatten(1), b.flatten(1).to(a.device)
    dtype = torch.float32 if a.device.type == "mps" else torch.float64  # no fp64 on MPS
    ra, rb = _ranks(a, dtype), _ranks(b, dtype)
    ra, rb = ra - ra.mean(1, keepdim=True), rb - rb.mean(1, keepdim=True)
    va, vb = (ra * ra).sum(1), (rb * rb).sum(1)
    rho = ((ra * rb).sum(1) / (va * vb).sqrt()).clamp(-1.0, 1.0)
    bad = (va == 0) | (vb == 0) | ~torch.isfinite(a).all(1) | ~torch.isfinite(b).all(1)
    return torch.where(bad, torch.nan, rho).float()


def parametrised_layers(model: nn.Module) -> list[tuple[str, nn.Module]]:
    """Modules owning parameters directly (Conv, Linear, BatchNorm…), in registration
    order, which is taken as forward order (true of Sequential stacks and of torchvision's
    models up to residual shortcuts, registered after their block's convolutions)."""
    return [
        (name, m) for name, m in model.named_modules() if any(True for _ in m.parameters(False))
    ]


def _reinitialise(layer: nn.Module) -> None:
    if hasattr(layer, "reset_parameters"):
        layer.reset_parameters()  # BatchNorm: also running stats → mean 0, var 1
    elif hasattr(layer, "_reset_parameters"):  # nn.MultiheadAttention
        layer._reset_parameters()
    else:  # e.g. a class token: fresh values at the learned scale
        with torch.no_grad():
            for p in layer.parameters(False):
                p.normal_(0.0, float(p.std()) if p.numel() > 1 else 1.0)


class ModelRandomisation(Metric):
    """Mean |Spearman ρ| between the maps and those of cascadingly randomised models (↓).

    Stage k re-initialises the last k parametrised layers (:func:`parametrised_layers`)
    with their ``reset_parameters()``; for BatchNorm that is not random but the identity
    (weight 1, bias 0, running mean 0, variance 1), which removes what it learned. Each
    layer's fresh weights are drawn once, on the CPU from ``seed`` (so they are the same
    on every batch, run and device), and loaded into one copy of the model per batch, in
    eval mode; the model given is never modified.

    Args:
        context: the scenario.
        layers: number of stages (None: every parametrised layer; clipped to their count).
        seed: seed of the re-initialisation.
        absolute: score |ρ| (default), the paper's "ABS" variant: a map whose sign flips
            with a re-drawn output layer keeps its structure, so it has not been
            randomised (signed ρ ≈ −1 would otherwise beat a map that really changed).

    Scores ``model_randomisation``: the mean over stages of the mean (|)ρ(|) over images.
    Details: ``per_stage`` (mean signed ρ per stage, None where undefined), ``layers`` (the
    layer each stage adds, output first), ``seed``, ``n_constant`` ((image, stage)
    pairs left out because a map is constant or non-finite, where ρ is undefined).
    ``per_image``: each image's mean ρ over its stages (NaN where none is defined).
    """

    name = "model_randomisation"
    tolerance = 0.05  # |Spearman ρ|
    direction = "lower"
    needs = frozenset({"model", "weights", "explainer"})

    def __init__(
        self,
        context: MetricContext,
        *,
        layers: int | None = 4,
        seed: int = 0,
        absolute: bool = True,
    ):
        if layers is not None and int(layers) < 1:
            raise ValueError(f"layers must be at least 1 (or None for all), got {layers!r}")
        self.layers, self.seed = (None if layers is None else int(layers)), int(seed)
        self.absolute = bool(absolute)
        super().__init__(context)

    def reset(self) -> None:
        self._rho: list[torch.Tensor] = []  # (B, stages) per batch
        self._names: list[str] | None = None
        self._states: list[dict[str, torch.Tensor]] = []

    def _fresh_states(self, model: nn.Module) -> None:
        chosen = parametrised_layers(model)[::-1][: self.layers]
        if not chosen:
            raise ValueError(f"{self.name}: the model has no parameters to randomise")
        if self._names is not None:
            if [n for n, _ in chosen] != self._names:
                raise ValueError(f"{self.name}: the model changed between batches")
            return
        g = torch.Generator().manual_seed(self.seed)
        for _, layer in chosen:
            # One seed per stage, drawn in turn: fewer stages give the same first layers.
            seed = int(torch.randint(2**62, (1,), generator=g))
            device = next(layer.parameters(False)).device
            fresh = copy.deepcopy(layer).cpu()
            with torch.random.fork_rng(devices=[]):  # the caller's RNG is left as it was
                torch.random.default_generator.manual_seed(seed)
                _reinitialise(fresh)
            self._states.append({k: v.to(device) for k, v in fresh.state_dict().items()})
        self._names = [n for n, _ in chosen]

    def cascade(self, model: nn.Module) -> Iterator[nn.Module]:
        """One copy of ``model`` in eval mode, yielded after each stage's randomisation."""
        self._fresh_states(model)
        assert self._names is not None
        # The copy keeps the original's hooks, so forward counters see its passes too.
        randomised = copy.deepcopy(model).eval()
        for name, state in zip(self._names, self._states, strict=True):
            randomised.get_submodule(name).load_state_dict(state)  # copies to its device
            yield randomised

    def update(
        self,
        *,
        x_batch: torch.Tensor,
        y_batch: torch.Tensor,
        a_batch: torch.Tensor,
        model: nn.Module | None = None,
        explain_fn: ExplainFn | None = None,
        **_,
    ) -> None:
        if model is None or explain_fn is None:
            raise ValueError(f"{self.name} needs the model and the explainer")
        rho = [
            spearman(a_batch, explain_fn(randomised, x_batch, y_batch))
            for randomised in self.cascade(model)
        ]
        self._rho.append(torch.stack(rho, dim=1))

    def compute(self) -> MetricResult:
        if not self._rho:
            raise ValueError("no batch seen")
        signed = torch.cat(self._rho)  # (images, stages)
        rho = signed.abs() if self.absolute else signed
        per_stage = rho.nanmean(0)
        known = per_stage[~per_stage.isnan()]
        # No finite ρ at all: no score, as GroundTruthAgreement does (NaN is not JSON).
        scores = {self.name: float(known.mean())} if len(known) else {}
        details = {
            "per_stage": [None if math.isnan(v) else v for v in signed.nanmean(0).tolist()],
            "layers": list(self._names or []),
            "seed": self.seed,
            "absolute": self.absolute,
            "n_constant": int(rho.isnan().sum()),
        }
        return MetricResult(scores, len(rho), details=details, per_image=rho.nanmean(1))
