"""The example GitHub Actions workflow: it parses, has its steps, and calls a real CLI."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest
import typer
import yaml
from typer.testing import CliRunner

from benchmark.cli import app

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
WORKFLOW = EXAMPLES / "github-actions.yml"


@pytest.fixture(scope="module")
def workflow() -> dict:
    return yaml.safe_load(WORKFLOW.read_text())


def _steps(workflow: dict) -> list[dict]:
    (job,) = workflow["jobs"].values()
    return job["steps"]


def _step(steps: list[dict], uses: str) -> tuple[int, dict]:
    hits = [(i, s) for i, s in enumerate(steps) if s.get("uses") == uses]
    assert len(hits) == 1, uses
    return hits[0]


def test_triggers_runner_and_steps(workflow):
    # YAML 1.1 reads the bare key `on` as the boolean True.
    assert set(workflow.get("on", workflow.get(True))) == {"push", "pull_request"}
    (job,) = workflow["jobs"].values()
    assert job["runs-on"] == "ubuntu-latest"
    steps = _steps(workflow)
    i_checkout, _ = _step(steps, "actions/checkout@v4")
    i_python, python = _step(steps, "actions/setup-python@v5")
    assert python["with"]["python-version"] == "3.11" and python["with"]["cache"] == "pip"
    assert python["with"]["cache-dependency-path"].split() == ["pyproject.toml", "constraints.txt"]
    i_cache, cache = _step(steps, "actions/cache@v4")
    assert cache["with"]["path"] == ".bench/cache/models"
    key = cache["with"]["key"]
    assert "hashFiles('suites/quickstart.yaml')" in key
    assert "hashFiles('benchmark/**', 'explainers/**')" in key
    restore = cache["with"]["restore-keys"].splitlines()
    assert restore and all(key.startswith(prefix) for prefix in restore)
    runs = [(i, s["run"]) for i, s in enumerate(steps) if "run" in s]
    check = "bench check suites/quickstart.yaml --baseline suites/quickstart.baseline.json"
    assert runs == [(i_cache + 1, "pip install -c constraints.txt -e ."), (i_cache + 2, check)]
    uploads = [(i, s) for i, s in enumerate(steps) if s.get("uses") == "actions/upload-artifact@v4"]
    assert [s["with"]["path"] for _, s in uploads] == [
        "bench_results/site",
        "bench_results/results.duckdb",
    ]
    assert all(s["if"] == "always()" for _, s in uploads)
    assert i_checkout < i_python < i_cache < runs[-1][0] < uploads[0][0]
    # Every step says what it is for: a comment line right above its `- ` line.
    lines = WORKFLOW.read_text().splitlines()
    starts = [i for i, line in enumerate(lines) if re.match(r"\s*- (uses|name):", line)]
    assert len(starts) == len(steps)
    assert all(lines[i - 1].strip().startswith("#") for i in starts)


def _commands() -> list[list[str]]:
    """Every `bench …` command line of the workflow and of the README's code blocks."""
    lines = [s["run"] for s in _steps(yaml.safe_load(WORKFLOW.read_text())) if "run" in s]
    readme = (EXAMPLES / "README.md").read_text()
    for block in re.findall(r"```bash\n(.*?)```", readme, re.S):
        lines += block.replace("\\\n", " ").splitlines()
    found = [shlex.split(line, comments=True) for line in lines]
    return [words for words in found if words and words[0] == "bench"]


def test_every_bench_command_exists_with_its_options():
    root, seen = typer.main.get_command(app), set()
    for words in _commands():
        cmd, path, rest = root, [], words[1:]
        while hasattr(cmd, "commands"):  # a group: the next word names a subcommand
            assert rest and rest[0] in cmd.commands, (
                f"no command {' '.join(words[: 2 + len(path)])}"
            )
            path.append(rest[0])
            cmd, rest = cmd.commands[rest[0]], rest[1:]
        options = {o for p in cmd.params for o in p.opts}
        used = {w for w in rest if w.startswith("--")}
        assert used <= options, f"{' '.join(words)}: unknown {sorted(used - options)}"
        result = CliRunner().invoke(app, [*path, "--help"])
        assert result.exit_code == 0, result.output
        seen.add(" ".join(path))
    assert seen == {"check", "baseline save", "compare", "export"}
