"""Explainer plugins: plain functions and Explainer classes, from a suite or an entry point."""

from __future__ import annotations

import pytest
import torch
from typer.testing import CliRunner

from benchmark.cli import app
from benchmark.registry import Registry
from benchmark.runner import run_suite
from examples.edge_saliency import CentreBias, gradient_energy
from explainers.plugin import FunctionExplainer, as_explainer, function_params
from tests.conftest import PATCH
from tests.test_e2e import SUITE, quiet, rows


def noisy(model, x_batch, target, *, scale: float = 1.0):
    """Uses the global RNG: the wrapper must make it reproducible from the seed."""
    return scale * torch.rand(x_batch.shape[0], *x_batch.shape[2:])


def test_function_gets_the_template(patch_model):
    calls = []

    def spy(model, x_batch, target):
        calls.append(len(x_batch))
        return gradient_energy(model, x_batch, target)

    explainer = as_explainer(spy)(patch_model, batch_size=2, seed=0)
    assert isinstance(explainer, FunctionExplainer)
    x = torch.rand(5, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    maps = explainer.explain(x, torch.ones(5, dtype=torch.long))
    assert calls == [2, 2, 1] and maps.shape == (5, 32, 32)
    # The toy model reads one patch only: the gradient is zero elsewhere.
    assert maps[:, PATCH[0], PATCH[1]].sum() > 0
    outside = maps.clone()
    outside[:, PATCH[0], PATCH[1]] = 0
    assert outside.abs().max() == 0


def test_function_randomness_follows_the_seed_and_leaves_the_caller_alone(patch_model):
    x, y = torch.zeros(3, 3, 8, 8), torch.zeros(3, dtype=torch.long)
    torch.manual_seed(123)
    before = torch.random.get_rng_state()
    a = as_explainer(noisy)(patch_model, seed=4, scale=2.0).explain(x, y)
    assert torch.equal(torch.random.get_rng_state(), before)
    b = as_explainer(noisy)(patch_model, seed=4, scale=2.0).explain(x, y)
    c = as_explainer(noisy)(patch_model, seed=5, scale=2.0).explain(x, y)
    assert torch.equal(a, b) and not torch.equal(a, c) and a.max() <= 2.0


def test_classes_pass_through_and_parameters_are_read_from_the_signature():
    assert as_explainer(CentreBias) is CentreBias
    assert function_params(gradient_energy) == ["power"]
    assert function_params(lambda model, x, t, **kw: x) is None


def test_entry_point_function_plugin(monkeypatch, patch_model):
    class EP:
        name, value, dist = "gradient_energy", "examples.edge_saliency:gradient_energy", None

    import benchmark.registry as registry_mod

    monkeypatch.setattr(registry_mod, "entry_points", lambda group: [EP()])
    reg = Registry("explainer", group="g.explainers")
    explainer = as_explainer(reg.get("gradient-energy"))(patch_model, seed=0)
    x = torch.rand(2, 3, 32, 32)
    assert explainer.explain(x, torch.ones(2, dtype=torch.long)).shape == (2, 32, 32)


PLUGINS = SUITE.replace(
    "explainers: [gradcam]",
    'explainers: [gradcam, {{name: "examples.edge_saliency:gradient_energy", '
    "params: {{power: 1.0}}, label: energy}}, "
    '{{name: "examples.edge_saliency:CentreBias", params: {{width: 0.2}}}}]',
).replace(
    "metrics: [{{name: ranking_position, params: {{ior: soft}}}}]",
    "metrics: [ranking_position, win_percent]",
)


def test_the_worked_example_runs_from_a_suite(tmp_path):
    suite = tmp_path / "plugins.yaml"
    suite.write_text(PLUGINS.format(db=tmp_path / "r.duckdb"))
    run_suite(suite, console=quiet(), leaderboard=False)
    got = rows(
        tmp_path / "r.duckdb",
        "SELECT explainer, sum(value) FROM scores WHERE metric = 'win_percent' "
        "AND scenario = 'lipstick' GROUP BY 1 ORDER BY 1",
    )
    names = [e for e, _ in got]
    assert names == ["energy", "examples.edge_saliency:CentreBias", "gradcam"]
    assert sum(v for _, v in got) == pytest.approx(100.0)


def test_unknown_function_parameter_is_a_clean_error(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text(PLUGINS.format(db=tmp_path / "r.duckdb").replace("power: 1.0", "powr: 1.0"))
    result = CliRunner().invoke(app, ["validate", str(bad)])
    assert result.exit_code == 2
    assert "unknown parameter 'powr'" in result.output and "did you mean 'power'" in result.output
