from __future__ import annotations

import json

import pytest

from benchmark.catalogue import DATASETS, EXPLAINERS, METRICS, MODELS, REGISTRIES
from benchmark.errors import BenchError, UnknownNameError
from benchmark.registry import Registry, load_target


def make() -> Registry:
    reg = Registry("explainer")
    reg.register("gradcam", "json:dumps", aliases=("grad-cam", "GradCAM"), summary="x")
    return reg


def test_lookup_by_name_alias_and_spelling():
    reg = make()
    assert reg.get("gradcam") is json.dumps
    assert reg.get("Grad-CAM") is json.dumps  # case and '-' vs '_' do not matter
    assert reg.canonical("GRAD_CAM") == "gradcam"
    assert "grad_cam" in reg and "occlusion" not in reg


def test_lazy_target_is_not_imported_until_used():
    reg = Registry("metric")
    reg.register("ghost", "no_such_module_xyz:thing")
    assert reg.names() == ["ghost"]  # listing does not import
    with pytest.raises(BenchError, match="cannot import 'no_such_module_xyz'"):
        reg.get("ghost")


def test_unknown_name_gives_close_matches():
    reg = make()
    with pytest.raises(UnknownNameError) as err:
        reg.get("gradcma")
    assert err.value.matches == ["gradcam"]
    assert str(err.value) == "unknown explainer 'gradcma'; did you mean 'gradcam'?"


def test_unknown_name_without_match_lists_known():
    with pytest.raises(UnknownNameError, match="known: gradcam"):
        make().get("zzzzzz")


def test_direct_module_attr_reference():
    assert make().get("json:loads") is json.loads
    assert load_target("os.path:join").__name__ == "join"
    with pytest.raises(BenchError, match="has no attribute"):
        load_target("json:nope")
    with pytest.raises(BenchError, match=r"expected 'package\.module:attr'"):
        load_target("json")


def test_decorator_registration_and_alias_clash():
    reg = Registry("model")

    @reg.register("tiny", aliases=("t",))
    def tiny():
        return 1

    assert reg.get("t") is tiny
    with pytest.raises(ValueError, match="taken"):
        reg.register("other", tiny, aliases=("tiny",))


def test_entry_point_plugins(monkeypatch):
    class EP:
        name, value, dist = "my_explainer", "json:dumps", None

    import benchmark.registry as registry_mod

    monkeypatch.setattr(
        registry_mod, "entry_points", lambda group: [EP()] if group == "g.explainers" else []
    )
    reg = Registry("explainer", group="g.explainers")
    reg.register("builtin", "json:loads")
    assert reg.get("my-explainer") is json.dumps
    assert {e.name: e.source for e in reg}["my_explainer"].startswith("plugin:")


def test_catalogue_has_the_five_registries():
    assert set(REGISTRIES) == {"datasets", "models", "explainers", "metrics", "region_protocols"}
    assert "synthetic_faces" in DATASETS and "small_cnn" in MODELS
    assert "gradcam" in EXPLAINERS and "ranking_position" in METRICS


@pytest.mark.parametrize(
    ("registry", "name"), [(r, e.name) for r in REGISTRIES.values() for e in r]
)
def test_every_builtin_target_imports(registry, name):
    assert registry.get(name) is not None
