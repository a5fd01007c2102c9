"""The reference rows with known answers: random is seeded chance, the oracle is the
bias-region mask, and through the runner the oracle ranks the shortcut first while
random ranks it near the middle of the 19 regions."""

from __future__ import annotations

import json

import pytest
import torch

from benchmark.catalogue import EXPLAINERS
from benchmark.runner import run_suite
from tests.conftest import PATCH, PatchModel, build
from tests.test_e2e import SUITE, quiet, rows


def test_random_is_seeded_noise_that_ignores_the_model():
    x = torch.rand(6, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    y = torch.ones(6, dtype=torch.long)
    cls = EXPLAINERS.get("random")
    a = build(cls, PatchModel(), batch_size=4, seed=1).explain(x, y)
    b = build(cls, PatchModel(), batch_size=4, seed=1).explain(x, y)
    c = build(cls, PatchModel(), batch_size=4, seed=2).explain(x, y)
    assert a.shape == (6, 32, 32) and torch.equal(a, b) and not torch.equal(a, c)
    assert not torch.equal(a[0], a[4])  # the second batch draws its own noise
    inside = a[:, PATCH[0], PATCH[1]].mean()
    assert abs(inside - 0.5) < 0.05 and abs(a.mean() - 0.5) < 0.02  # U[0, 1), no peak
    assert cls.reference and cls.black_box


def test_oracle_is_the_region_mask_and_needs_it():
    cls = EXPLAINERS.get("oracle")
    x, y = torch.rand(2, 3, 8, 8), torch.ones(2, dtype=torch.long)
    r = torch.zeros(2, 8, 8)
    r[0, 2:4, 5:7] = 1
    assert torch.equal(build(cls, PatchModel(8)).explain(x, y, None, r), r)
    with pytest.raises(ValueError, match="needs region masks"):
        build(cls, PatchModel(8)).explain(x, y)


def test_through_the_runner_the_oracle_ranks_the_shortcut_first(tmp_path):
    db = tmp_path / "r.duckdb"
    text = SUITE.format(db=db).replace("explainers: [gradcam]", "explainers: [random, oracle]")
    rp = "{name: ranking_position, params: {ior: soft}}"
    text = text.replace(f"metrics: [{rp}]", f"metrics: [{rp}, pointing_game]")
    path = tmp_path / "ref.yaml"
    path.write_text(text)
    run_suite(path, console=quiet(), leaderboard=False)
    got = {(s, e, m): v for s, e, m, v in rows(db, "SELECT scenario, explainer, metric, value "
                                                   "FROM scores")}  # fmt: skip
    for scenario in ("lipstick", "control"):
        assert got[(scenario, "oracle", "ranking_position")] == 1
        assert got[(scenario, "oracle", "pointing_game")] == 1.0
        assert 4 <= got[(scenario, "random", "ranking_position")] <= 16
        assert got[(scenario, "random", "pointing_game")] < 0.3
    (suite_json,) = rows(db, "SELECT suite_json FROM runs")[0]
    assert json.loads(suite_json)["explain"]["postprocess"] == "absolute"


def test_the_oracle_is_refused_where_there_are_no_bias_regions(tmp_path):
    import yaml

    from benchmark.errors import BenchError
    from benchmark.suite import load_suite

    spec = yaml.safe_load(SUITE.format(db=tmp_path / "r.duckdb"))
    spec["scenarios"] = [{"name": "plain", "target": "Male"}]
    spec["explainers"] = ["oracle"]
    path = tmp_path / "o.yaml"
    path.write_text(yaml.safe_dump(spec))
    expected = r"explainers\[0\]: oracle draws the scenario's bias regions; expected scenarios"
    with pytest.raises(BenchError, match=expected + r"\[0\] \(plain\)"):
        load_suite(path)


def test_the_gallery_shows_the_oracle_map_as_its_mask(tmp_path):
    """Gallery figures (image, map, bias-region mask) of the first faces: for the oracle
    the map panel is the mask panel, drawn blue → red over the grey face."""
    import cv2
    import numpy as np

    db = tmp_path / "r.duckdb"
    text = SUITE.format(db=db).replace("explainers: [gradcam]", "explainers: [oracle]")
    path = tmp_path / "g.yaml"
    path.write_text(text.replace("explain: {batch_size: 64}", "explain: {batch_size: 2}\n"
                                 "figures: {gallery: 3}"))  # fmt: skip
    run_suite(path, console=quiet(), leaderboard=False)
    kinds = [k for (k,) in rows(db, "SELECT kind FROM figures WHERE scenario = 'lipstick' "
                                    "AND kind LIKE 'gallery:%' ORDER BY kind")]  # fmt: skip
    assert kinds == ["gallery:000", "gallery:001", "gallery:002"]  # across batches of 2
    (png,) = rows(db, "SELECT png FROM figures WHERE scenario = 'lipstick' AND kind = "
                      "'gallery:000'")[0]  # fmt: skip
    fig = cv2.imdecode(np.frombuffer(png, np.uint8), cv2.IMREAD_COLOR)[..., ::-1]
    h, w, _ = fig.shape
    assert w > 3 * 128 and h > 128  # three 128 px panels


def test_gallery_figure_draws_the_map_hot_where_it_peaks_and_the_mask_white():
    import numpy as np

    from benchmark.figures import _scale, _title_height, gallery_figure

    size, pad = 128, 4
    mask = np.zeros((32, 32), bool)
    mask[8:16, 20:28] = True
    fig = gallery_figure(np.zeros((32, 32, 3), np.uint8), mask.astype(float), mask, "", size)
    top = _title_height("", _scale(size), pad)
    panel = lambda i: fig[top : top + size, pad + i * (size + pad) : pad + i * (size + pad) + size]  # noqa: E731
    inside, outside = (slice(36, 60), slice(84, 108)), (slice(90, 120), slice(4, 30))
    heat, drawn = panel(1).astype(int), panel(2)
    assert (heat[inside][..., 0] > heat[inside][..., 2] + 50).all()  # red where it peaks
    assert (heat[outside][..., 2] > heat[outside][..., 0] + 50).all()  # blue elsewhere
    assert (drawn[inside] == 255).all() and (drawn[outside] == 0).all()
