"""`bench datasets check SUITE`: readiness of every dataset a suite reads."""

from __future__ import annotations

from typer.testing import CliRunner

from benchmark.cli import app
from tests.test_celebamask_hq import build_replica

SUITE = """name: hq
seed: 0
dataset:
  train: {{name: synthetic_faces, params: {{n: 100, size: 32}}}}
  test: {{name: celebamask_hq, params: {{root: {root}, size: 32}}}}
model: {{arch: small_cnn}}
scenarios: [{{name: s, target: Male, attributes: [Wearing_Lipstick], rho: 0.9}}]
explainers: [gradcam]
metrics: [ranking_position]
"""


def test_missing_items_are_listed_and_exit_2_then_ready(tmp_path):
    suite = tmp_path / "s.yaml"
    root = tmp_path / "CelebAMask-HQ"
    suite.write_text(SUITE.format(root=root))
    result = CliRunner().invoke(app, ["datasets", "check", str(suite)])
    assert result.exit_code == 2
    assert result.output.count("expected") == 3  # images, masks, attribute file
    assert "3 missing item(s)" in result.output
    build_replica(root)
    result = CliRunner().invoke(app, ["datasets", "check", str(suite)])
    assert result.exit_code == 0 and result.output.count("ready") == 2
