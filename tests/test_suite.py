"""The suite schema: YAML → validated models, and one-line errors for every kind of mistake."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest
import yaml
from pydantic import ValidationError
from typer.testing import CliRunner

from benchmark.catalogue import DATASETS, EXPLAINERS, METRICS
from benchmark.cli import app
from benchmark.errors import BenchError
from benchmark.registry import Entry, Registry
from benchmark.suite import (
    ExplainSpec,
    Scenario,
    Suite,
    SuiteError,
    TrainRecipe,
    load_suite,
    suite_hash,
)

SUITES = Path(__file__).parent / "suites"
DELETE = "<delete>"

VALID: dict[str, Any] = {  # on the stand-in dataset "t_faces" (see below)
    "name": "t",
    "dataset": {
        "train": {"name": "t_faces", "params": {"n": 100, "size": 32}},
        "test": {"name": "t_faces", "params": {"n": 50, "size": 32}},
    },
    "model": {"arch": "small_cnn"},
    "scenarios": [
        {"name": "lipstick", "target": "Male", "attributes": ["Wearing_Lipstick"], "rho": 0.9}
    ],
    "explainers": ["gradcam"],
    "metrics": ["ranking_position"],
}


def mutate(data: dict[str, Any], dotted: str, value: Any) -> None:
    """Set (append at ``len``; remove with DELETE) ``a.b.0.c`` in nested dicts/lists."""
    *parents, last = [int(p) if p.isdigit() else p for p in dotted.split(".")]
    for part in parents:
        data = data[part]
    if value == DELETE:
        del data[last]
    elif isinstance(data, list) and last == len(data):
        data.append(value)
    else:
        data[last] = value


def write(path: Path, changes: dict[str, Any] | None = None, text: str | None = None) -> Path:
    """Write VALID with ``changes`` applied (or raw ``text``) to ``path``."""
    if text is None:
        data = copy.deepcopy(VALID)
        for dotted, value in (changes or {}).items():
            mutate(data, dotted, copy.deepcopy(value))
        text = yaml.safe_dump(data, sort_keys=False)
    path.write_text(text)
    return path


def error_of(path: Path) -> str:
    """The one-line message ``load_suite`` raises for ``path``."""
    with pytest.raises(BenchError) as info:
        load_suite(path)
    message = str(info.value)
    assert isinstance(info.value, SuiteError)
    assert "\n" not in message and "Traceback" not in message
    return message


def cli_error(path: Path) -> str:
    """``bench validate path``: exit code 2 and a single line of output, returned."""
    result = CliRunner().invoke(app, ["validate", str(path)])
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 1, result.output
    return lines[0]


class _Faces:
    """A stand-in dataset, so the checks do not depend on the real one importing."""

    attribute_names = ("Male", "Young", "Smiling", "Eyeglasses", "Wearing_Lipstick")
    attribute_names += ("Wearing_Hat", "Wearing_Earrings")
    group_names = ("skin_tone",)

    def __init__(self, n: int = 10, size: int = 8, prevalence: dict | None = None, root: str = ""):
        pass


@pytest.fixture(autouse=True)
def temp_component(monkeypatch: pytest.MonkeyPatch):
    """Register ``target`` under ``name`` in a registry for one test (``t_faces`` always)."""

    def register(registry: Registry, name: str, target: Any) -> None:
        registry.names()  # load plugins first, so they cannot shadow the test entry
        monkeypatch.setitem(registry._entries, name, Entry(name, target))
        monkeypatch.setitem(registry._lookup, name, name)

    register(DATASETS, "t_faces", _Faces)
    return register


# --- valid suites ---------------------------------------------------------------------------


def test_minimal_fixture_loads_with_defaults() -> None:
    suite = load_suite(SUITES / "minimal.yaml")
    assert isinstance(suite, Suite)
    assert suite.source == (SUITES / "minimal.yaml").resolve()
    assert (suite.seed, suite.device, suite.db, suite.cache_dir) == (0, "auto", None, None)
    assert suite.metadata == {} and suite.description is None
    train = suite.model.train
    assert (train.epochs, train.batch_size, train.lr, train.weight_decay) == (20, 128, 1e-3, 1e-4)
    assert (train.optimizer, train.gamma, train.hflip) == ("adam", 0.1, False)
    assert train.milestones == pytest.approx([1 / 3, 2 / 3])
    assert suite.model.params == {} and suite.model.checkpoint is None
    assert suite.model.train == TrainRecipe()
    assert suite.explain == ExplainSpec(target="label", batch_size=64, max_images=None)
    scenario = suite.scenarios[0]
    assert (scenario.direction, scenario.bias_regions, scenario.rho) == ("positive", None, 0.9)
    assert scenario.directions() == ["positive"]
    assert suite.explainers[0].name == "gradcam" and suite.explainers[0].params == {}
    assert suite.metrics[0].display_name == "ranking_position"
    with pytest.raises(ValidationError):
        suite.seed = 1  # frozen


def test_child_fixture_merges_over_include() -> None:
    suite = load_suite(SUITES / "child.yaml")
    assert (suite.name, suite.seed, suite.device) == ("child", 3, "cpu")
    assert suite.dataset.train.params == {"n": 200, "size": 32}  # inherited
    assert suite.dataset.test.name == "synthetic_faces"  # merged key by key
    assert suite.dataset.test.params == {"n": 50, "size": 32}
    assert suite.model.arch == "small_cnn"
    assert suite.model.train == TrainRecipe(epochs=2, hflip=True)  # other keys default
    assert [s.name for s in suite.scenarios] == ["lipstick_skin", "control"]  # list replaced
    assert suite.scenarios[0].directions() == ["negative", "positive"]
    assert suite.scenarios[0].bias_regions == {"Wearing_Lipstick": ["u_lip", "l_lip"]}
    assert suite.scenarios[1].attributes == [] and suite.scenarios[1].directions() == []
    assert [e.display_name for e in suite.explainers] == ["gradcam", "gradcam_b"]
    assert [m.name for m in suite.metrics] == ["ranking_position"]
    assert suite.explain.target == "prediction" and suite.explain.max_images == 16
    assert suite.metadata == {"paper": {"table": 2, "rp1": 1.4}}


def test_cli_validate_ok() -> None:
    result = CliRunner().invoke(app, ["validate", str(SUITES / "child.yaml")])
    assert result.exit_code == 0, result.output
    assert "OK" in result.output and "2 scenario(s)" in result.output


def test_suite_hash_is_stable_and_tracks_content(tmp_path: Path) -> None:
    h = suite_hash(load_suite(SUITES / "minimal.yaml"))
    assert len(h) == 64 and h == suite_hash(load_suite(SUITES / "minimal.yaml"))
    text = (SUITES / "minimal.yaml").read_text()
    copy_ = tmp_path / "elsewhere.yaml"
    copy_.write_text(text + "description: other\nmetadata: {note: 1}\n")
    assert suite_hash(load_suite(copy_)) == h  # source, description, metadata excluded
    copy_.write_text(text + "seed: 1\n")
    assert suite_hash(load_suite(copy_)) != h


def test_bare_strings_and_plugin_references(tmp_path: Path) -> None:
    changes = {
        "scenarios.0.attributes": "Wearing_Lipstick",
        "scenarios.0.rho": "9.9e-1",  # PyYAML reads this as a string
        "model.arch": "no_such_pkg.archs:net",  # plugin references are not imported
        "explainers": ["gradcam", {"name": "no_such_pkg.x:Explainer", "params": {"a": 1}}],
    }
    suite = load_suite(write(tmp_path / "s.yaml", changes))
    assert suite.scenarios[0].attributes == ["Wearing_Lipstick"]
    assert suite.scenarios[0].rho == 0.99
    assert suite.explainers[1].display_name == "no_such_pkg.x:Explainer"


def test_scenario_directions() -> None:
    s = Scenario(name="s", target="Male", attributes=["Smiling", "Young"], direction="negative")
    assert s.directions() == ["negative", "negative"]


# --- one-line errors ------------------------------------------------------------------------

CASES = yaml.safe_load((SUITES / "error_cases.yaml").read_text())


@pytest.mark.parametrize("case", CASES, ids=[c["expected"][2:50] for c in CASES])
def test_error_message_and_cli(tmp_path: Path, case: dict[str, Any]) -> None:
    expected = case["expected"]
    path = write(tmp_path / "suite.yaml", case["changes"])
    message = error_of(path)
    assert message.startswith(f"{path}: "), message
    assert expected in message, message
    assert cli_error(path) == f"error: {message}"


def test_missing_file(tmp_path: Path) -> None:
    path = tmp_path / "nope.yaml"
    assert error_of(path) == f"{path}: no such file"
    assert cli_error(path) == f"error: {path}: no such file"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("name: x\nseed: [1, 2\n", ":3:1: YAML syntax error: expected ',' or ']'"),
        ("name: x\n  seed: 1\n", ":2:7: YAML syntax error: mapping values are not allowed here"),
        ("name: a\nname: b\n", ":2:1: YAML syntax error: duplicate key 'name'"),
        ("- a\n- b\n", ": expected a mapping of suite keys at the top level, got a list"),
        ("", ": expected a mapping of suite keys at the top level, got an empty file"),
    ],
)
def test_yaml_problems(tmp_path: Path, text: str, expected: str) -> None:
    path = write(tmp_path / "s.yaml", text=text)
    assert error_of(path).startswith(f"{path}{expected}")
    assert cli_error(path).startswith(f"error: {path}{expected}")


# --- include and environment variables ------------------------------------------------------


def test_include_problems(tmp_path: Path) -> None:
    child = write(tmp_path / "child.yaml", text="include: missing.yaml\nseed: 1\n")
    shown = tmp_path / "missing.yaml"
    assert error_of(child) == (
        f"{child}: include: expected an existing suite file, got 'missing.yaml'"
        f" ({shown}: no such file)"
    )
    cli_error(child)
    a, b = tmp_path / "a.yaml", tmp_path / "b.yaml"
    a.write_text("include: b.yaml\nname: a\n")
    b.write_text("include: a.yaml\nname: b\n")
    assert error_of(a) == f"{b}: include: expected no include cycle, got {a} -> {b} -> {a}"
    a.write_text("include: ./a.yaml\n")
    assert error_of(a) == f"{a}: include: expected no include cycle, got {a} -> {a}"
    a.write_text("include: [b.yaml]\n")
    assert error_of(a) == f"{a}: include: expected a path to a suite file, got ['b.yaml']"


def test_include_overrides_and_blames_the_right_file(tmp_path: Path) -> None:
    base = write(tmp_path / "base.yaml", {"scenarios.0.rho": 2, "model.train": {"epochs": 5}})
    sub = tmp_path / "sub"
    sub.mkdir()
    child = sub / "child.yaml"
    child.write_text("include: ../base.yaml\nname: child\nmodel: {train: {lr: 0.01}}\n")
    assert error_of(child).startswith(f"{base}: scenarios[0].rho: expected a number strictly")
    child.write_text(child.read_text() + "scenarios: [{name: s, target: Male, attributes: []}]\n")
    suite = load_suite(child)
    assert (suite.name, suite.model.train.epochs, suite.model.train.lr) == ("child", 5, 0.01)
    assert suite.model.arch == "small_cnn" and suite.scenarios[0].name == "s"
    child.write_text(child.read_text() + "seed: -2\n")
    assert error_of(child) == f"{child}: seed: expected an integer >= 0, got -2"


def test_env_vars(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, temp_component) -> None:
    monkeypatch.setenv("BENCH_T_OUT", str(tmp_path / "out"))
    monkeypatch.setenv("BENCH_T_DIR", str(tmp_path))
    monkeypatch.delenv("BENCH_T_UNSET", raising=False)
    write(tmp_path / "base.yaml")
    data = copy.deepcopy(VALID)
    changes = {
        "include": "${BENCH_T_DIR}/base.yaml",
        "db": "${BENCH_T_OUT}/results.duckdb",
        "cache_dir": "$BENCH_T_OUT/cache",
        "model.checkpoint": "${BENCH_T_DIR}/w.pt",
        "dataset.train": {"name": "t_faces", "params": {"root": "${BENCH_T_DIR}/celeba"}},
        "dataset.test": {"name": "t_faces", "params": {"prevalence": {"Male": "$$5"}}},
    }
    for dotted, value in changes.items():
        mutate(data, dotted, value)
    path = tmp_path / "s.yaml"
    path.write_text(yaml.safe_dump(data))
    suite = load_suite(path)
    assert suite.db == tmp_path / "out" / "results.duckdb"
    assert suite.cache_dir == tmp_path / "out" / "cache"
    assert suite.model.checkpoint == str(tmp_path / "w.pt")
    assert suite.dataset.train.params == {"root": f"{tmp_path}/celeba", "n": 100, "size": 32}
    assert suite.dataset.test.params["prevalence"] == {"Male": "$5"}
    data["db"] = "${BENCH_T_UNSET}/results.duckdb"
    path.write_text(yaml.safe_dump(data))
    assert error_of(path) == (
        f"{path}: db: environment variable 'BENCH_T_UNSET' is not set"
        " (in '${BENCH_T_UNSET}/results.duckdb')"
    )
    assert cli_error(path).startswith("error: ")
    data["db"] = None
    data["dataset"]["train"]["params"]["root"] = "$BENCH_T_UNSET/x"
    path.write_text(yaml.safe_dump(data))
    assert "dataset.train.params.root: environment variable 'BENCH_T_UNSET'" in error_of(path)
    data["include"] = "$BENCH_T_UNSET/base.yaml"
    path.write_text(yaml.safe_dump(data))
    assert error_of(path).startswith(f"{path}: include: environment variable 'BENCH_T_UNSET'")
    # A shell-style default covers an unset (or empty) variable.
    del data["include"]
    data["dataset"]["train"]["params"]["root"] = "${BENCH_T_UNSET:-data}/celeba"
    path.write_text(yaml.safe_dump(data))
    assert load_suite(path).dataset.train.params["root"] == "data/celeba"


# --- component parameters -------------------------------------------------------------------


class _Metric:
    def __init__(self, context: object, *, ior: str = "soft", top_k: int = 3) -> None: ...


class _Explainer:
    def __init__(self, model: object, alpha: float = 0.5) -> None: ...


class _Open:
    def __init__(self, model: object, **params: object) -> None: ...


def test_unknown_component_params(tmp_path: Path, temp_component) -> None:
    temp_component(METRICS, "t_metric", _Metric)
    temp_component(EXPLAINERS, "t_explainer", _Explainer)
    temp_component(EXPLAINERS, "t_open", _Open)
    temp_component(METRICS, "t_unimportable", "no_such_pkg_for_tests.mod:Metric")
    ok = {
        "explainers": [
            {"name": "t_explainer", "params": {"alpha": 0.1}},
            {"name": "t_open", "params": {"anything": 1}},  # **params accepts all
        ],
        "metrics": [
            {"name": "t_metric", "params": {"ior": "soft", "top_k": 1}},
            {"name": "t_unimportable", "params": {"whatever": 1}},  # skipped, not importable
        ],
    }
    path = write(tmp_path / "s.yaml", ok)
    assert [e.display_name for e in load_suite(path).explainers] == ["t_explainer", "t_open"]
    write(path, {**ok, "metrics.0.params.ioor": "soft"})
    assert error_of(path) == (
        f"{path}: metrics[0].params: unknown parameter 'ioor' for metric 't_metric';"
        " did you mean 'ior'?"
    )
    write(path, {**ok, "explainers.0.params": {"model": 1}})  # the runtime argument is no param
    assert error_of(path).endswith(
        "explainers[0].params: unknown parameter 'model' for explainer 't_explainer';"
        " expected one of alpha"
    )
    assert cli_error(path).startswith("error: ")


def test_synthetic_faces_checks(tmp_path: Path) -> None:
    try:
        DATASETS.get("synthetic_faces")
    except BenchError:
        pytest.skip("benchmark.data.synthetic does not import (yet)")
    data = {"dataset.train.name": "synthetic_faces", "dataset.test.name": "synthetic_faces"}
    path = write(tmp_path / "s.yaml", {**data, "scenarios.0.target": "male"})
    assert error_of(path) == (
        f"{path}: scenarios[0].target: expected an attribute of dataset 'synthetic_faces',"
        " got 'male'; did you mean 'Male'?"
    )
    path = write(tmp_path / "s.yaml", {**data, "dataset.test.params.sizee": 3})
    assert error_of(path).endswith(
        "dataset.test.params: unknown parameter 'sizee' for dataset 'synthetic_faces';"
        " did you mean 'size'?"
    )


def test_ranking_position_params(tmp_path: Path) -> None:
    pytest.importorskip("metrics.facex")
    path = write(tmp_path / "s.yaml", {"metrics.0": {"name": "facex", "params": {"ioor": "soft"}}})
    assert error_of(path) == (
        f"{path}: metrics[0].params: unknown parameter 'ioor' for metric 'facex';"
        " did you mean 'ior'?"
    )


def test_explainer_params_checked_through_the_base_class(tmp_path):
    """GradCAM forwards **kw to Explainer: base keywords pass, a typo is caught."""
    text = (SUITES / "minimal.yaml").read_text()
    good = tmp_path / "good.yaml"
    good.write_text(text.replace("  - gradcam", "  - {name: gradcam, params: {batch_size: 8}}"))
    assert load_suite(good).explainers[0].params == {"batch_size": 8}
    bad = tmp_path / "bad.yaml"
    bad.write_text(text.replace("  - gradcam", "  - {name: gradcam, params: {layerr: x}}"))
    with pytest.raises(BenchError, match=r"unknown parameter 'layerr'.*did you mean 'layer'"):
        load_suite(bad)
