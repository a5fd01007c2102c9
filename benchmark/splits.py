"""A scenario's data: the training subset (correlated or skewed bias), the balanced test
set and its accuracies (METHODS §8)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import torch

from benchmark.data.base import FaceArrays
from benchmark.data.bias import BiasSplit, balanced_test, biased_subset, distribution_subset
from benchmark.errors import BenchError

if TYPE_CHECKING:
    from benchmark.runner import Plan
    from benchmark.suite import Scenario


def columns(pool: FaceArrays, sc: Scenario) -> tuple[torch.Tensor, torch.Tensor]:
    target = pool.attribute(sc.target).long()
    cols = [pool.attribute(a).long() for a in sc.attributes]
    attrs = torch.stack(cols, 1) if cols else torch.zeros(len(pool), 0, dtype=torch.long)
    return target, attrs


def accuracies(correct: torch.Tensor, aligned: torch.Tensor, has_bias: bool) -> dict[str, Any]:
    def acc(mask: torch.Tensor) -> float | None:
        return float(correct[mask].float().mean()) if bool(mask.any()) else None

    every = torch.ones_like(aligned)
    return {
        "accuracy": acc(every),
        "accuracy_aligned": acc(aligned) if has_bias else None,
        "accuracy_conflicting": acc(~aligned) if has_bias else None,
        "n_aligned": int(aligned.sum()) if has_bias else None,
        "n_conflicting": int((~aligned).sum()) if has_bias else None,
    }


def describe_cells(cells: dict[str, int]) -> str:
    """``Male/Wearing_Lipstick 0/0: 27, 0/1: 2709 …``: the cell names once, then values."""
    keys = list(cells)
    names = "/".join(part.split("=")[0] for part in keys[0].split(","))
    values = ", ".join(
        "/".join(part.split("=")[1] for part in k.split(",")) + f": {cells[k]}" for k in keys
    )
    return f"({names} {values})"


def train_split(p: Plan, sc: Scenario, train: FaceArrays) -> BiasSplit:
    """The training subset: skewed class shares, the ρ correlation, or (multi-class
    target, nothing injected) balanced classes."""
    seed = p.seed_for("bias")
    if sc.bias is not None:
        classes = list(p.datasets["train"].group_values[sc.bias.attribute])
        shares = {classes.index(k): v for k, v in sc.bias.proportions.items()}
        return distribution_subset(
            train.attribute(sc.bias.attribute), shares, seed, sc.bias.attribute
        )
    t_tr, a_tr = columns(train, sc)
    names = [sc.target, *sc.attributes]
    if len(t_tr) and int(t_tr.max()) > 1:
        if sc.attributes:
            raise BenchError(
                f"scenario {sc.name}: a correlated bias needs a binary target; "
                f"{sc.target!r} has more classes (use bias: {{kind: distribution}})"
            )
        return balanced_test(t_tr, a_tr, [], seed, names)
    return biased_subset(t_tr, a_tr, sc.directions(), sc.rho, seed, names)


def test_target(p: Plan, sc: Scenario, test: FaceArrays) -> tuple[torch.Tensor, bool]:
    """The test set's target column; a test set without it (RFW has no gender) is
    balanced over the attributes only and explained for the prediction."""
    target = test.attribute(sc.target).long()
    if bool((target >= 0).any()):
        return target, True
    if p.suite.explain.target != "prediction":
        raise BenchError(
            f"scenario {sc.name}: dataset.test {p.suite.dataset.test.name!r} has no "
            f"{sc.target!r} labels; expected explain.target: prediction"
        )
    return torch.zeros_like(target), False


def seeded_cap(chosen: torch.Tensor, cap: int | None, seed: int) -> torch.Tensor:
    """At most ``cap`` of the indices ``chosen``, drawn with ``seed``, in their order."""
    if cap is None or len(chosen) <= cap:
        return chosen
    g = torch.Generator().manual_seed(seed)
    return chosen[torch.randperm(len(chosen), generator=g)[:cap]].sort().values
