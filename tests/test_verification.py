"""Verification scores as explained outputs (issue 13, first part): a toy embedding that
reads one patch, the contrastive triplet score, XAIface's correlation RISE, and dlib's
real face embedding on the four shared faces."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from benchmark.catalogue import EXPLAINERS
from benchmark.models.verification import PairScore
from explainers.base import build_explainer
from explainers.rise_correlation import CorrelationRISE
from tests.conftest import PATCH, REAL_EXPLAINERS, TOY_POINTS, toy_landmarks


class PatchEmbedding(nn.Module):
    """e(X) = (pixels of PATCH − 0.5, 0.5): only the patch moves the similarity."""

    def __init__(self):
        super().__init__()
        self.scale = nn.Parameter(torch.ones(1))  # a parameter, so the device is known

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        patch = x[:, :, PATCH[0], PATCH[1]].flatten(1) - 0.5
        return torch.cat([patch * self.scale, torch.full_like(patch[:, :8], 0.5)], 1)


def pairs(n: int = 3) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(4)
    probes = torch.rand(n, 3, 32, 32, generator=g)
    mates = torch.rand(n, 3, 32, 32, generator=g)  # different everywhere but the patch
    mates[:, :, PATCH[0], PATCH[1]] = probes[:, :, PATCH[0], PATCH[1]]
    return probes, mates


def test_pair_score_is_the_cosine_to_each_reference():
    probes, mates = pairs()
    model = PairScore(PatchEmbedding(), mates)
    s = model(probes)
    assert s.shape == (3, 3)
    assert torch.allclose(s.diagonal(), torch.ones(3), atol=1e-5)  # the patch matches
    ep = nn.functional.normalize(PatchEmbedding()(probes), dim=1)
    em = nn.functional.normalize(PatchEmbedding()(mates), dim=1)
    assert torch.allclose(s, ep @ em.T, atol=1e-6)
    assert (s.diagonal() > s.clone().fill_diagonal_(-1).amax(1)).all()


def test_contrastive_score_subtracts_the_nonmate():
    probes, mates = pairs()
    model = PairScore(PatchEmbedding(), mates, nonmates=probes)
    assert torch.allclose(model(probes).diagonal(), torch.zeros(3), atol=1e-5)


NO_GRAD_MODULES = {"guided_backprop", "guided_gradcam", "deeplift"}  # need ReLU modules
CAMS = {"gradcam", "gradcam_plusplus", "scorecam", "hirescam", "layercam"}
FAST = {
    "lime": {"n_segments": 64, "compactness": 1000.0, "n_samples": 200},
    "kernel_shap": {"n_segments": 64, "compactness": 1000.0, "n_samples": 200},
    "rise": {"n_masks": 1000},
    "rise_gauss": {"n_masks": 1000},
    "rise_correlation": {"n_masks": 1000},
}
EXPLAINED = [n for n in REAL_EXPLAINERS if n not in NO_GRAD_MODULES | CAMS]


@pytest.mark.parametrize("name", EXPLAINED)
def test_every_explainer_finds_the_patch_the_similarity_reads(name):
    probes, mates = pairs()
    model = PairScore(PatchEmbedding(), mates)
    from explainers.canonical import CanonicalFace

    toy = CanonicalFace(torch.tensor(TOY_POINTS), (32, 32))
    explainer = build_explainer(EXPLAINERS.get(name), model, canonical=toy, seed=0,
                                **FAST.get(name, {}))  # fmt: skip
    from explainers.base import fit_and_explain

    maps = fit_and_explain(explainer, probes, torch.arange(3), toy_landmarks(3))
    assert maps.shape == (3, 32, 32) and torch.isfinite(maps).all()
    for m in maps:
        r, c = divmod(int(m.abs().argmax()), 32)
        assert PATCH[0].start <= r < PATCH[0].stop and PATCH[1].start <= c < PATCH[1].stop


class Offset(nn.Module):
    """Raw scores: the mean of the patch, plus a constant."""

    raw_scores = True

    def __init__(self, offset: float):
        super().__init__()
        self.offset = offset

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        s = x[:, :, PATCH[0], PATCH[1]].mean((1, 2, 3))
        return torch.stack([s, s], 1) + self.offset


def test_correlation_rise_ignores_a_constant_score_and_peaks_on_the_patch():
    x = torch.rand(2, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    y = torch.ones(2, dtype=torch.long)
    a = CorrelationRISE(Offset(0.0), n_masks=2000, seed=1)(x, y)
    b = CorrelationRISE(Offset(10.0), n_masks=2000, seed=1)(x, y)
    assert torch.allclose(a, b, atol=1e-4)  # a correlation has no offset to carry
    inside = a[:, PATCH[0], PATCH[1]].mean()
    far = a[:, 24:, :8].mean()
    assert inside > 0.4 and far.abs() < 0.1 and a.max() <= 1.0 + 1e-6


def test_dlib_embedding_tells_the_four_real_faces_apart(tmp_path):
    from tests.model_zoo import needs_dlib_models

    needs_dlib_models()
    from benchmark.data.align import align_faces
    from benchmark.data.celebamask_hq import CelebAMaskHQ
    from benchmark.models.dlib_embedding import DlibFaceEmbedding
    from tests.test_celebamask_hq import SAMPLES

    if not SAMPLES.is_dir():
        pytest.skip("../shared samples absent")
    from tests.real_faces import real_samples_folder

    faces = CelebAMaskHQ(real_samples_folder(tmp_path), size=150, landmarks="masks").load(
        "test", 0, None
    )
    chips = align_faces(faces, "landmarks", 0.25)[0].images.float() / 255
    mates = chips.flip(-1) * 0.9  # the same face, mirrored and darker
    embed = DlibFaceEmbedding()
    s = PairScore(embed, mates)(chips)
    assert (s.argmax(1) == torch.arange(4)).all()  # each face is closest to its own mate
    # dlib's own test: Euclidean distance under 0.6 is the same person
    d = torch.cdist(embed(chips), embed(mates))
    off = d + torch.eye(4) * 10
    assert (d.diagonal() < 0.6).all() and (off.amin(1) > 0.6).all(), d


def test_best_threshold_accuracy_by_hand():
    from benchmark.verify import best_threshold_accuracy

    acc, cut = best_threshold_accuracy(torch.tensor([0.1, 0.2, 0.8, 0.9]),
                                       torch.tensor([False, False, True, True]))  # fmt: skip
    assert acc == 1.0 and cut == pytest.approx(0.5)
    acc, cut = best_threshold_accuracy(torch.tensor([0.1, 0.3, 0.5, 0.9]),
                                       torch.tensor([False, True, False, True]))  # fmt: skip
    assert acc == 0.75 and cut == pytest.approx(0.2)


VERIFY = {
    "name": "verify", "device": "cpu", "task": "verification",
    "dataset": {"test": {"name": "synthetic_faces", "params": {"n": 24, "size": 32}}},
    "model": {"factory": "tests.model_zoo:tiny_face", "params": {"n_classes": 16},
              "train": False},
    "scenarios": [{"name": "mated", "target": "mated"},
                  {"name": "nonmated", "target": "nonmated"}],
    "explainers": ["saliency", "gradcam",  # white box: a torch embedding's layers
                   {"name": "rise_correlation", "params": {"n_masks": 200}}],
    "metrics": ["average_drop", "win_percent", "deletion_auc"],
    "explain": {"batch_size": 8, "max_images": 6}, "figures": {"enabled": False},
}  # fmt: skip


def test_a_verification_suite_runs_end_to_end_and_resumes(tmp_path):
    import io
    import json

    import duckdb
    import yaml
    from rich.console import Console

    from benchmark.runner import run_suite

    path = tmp_path / "v.yaml"
    path.write_text(yaml.safe_dump({**VERIFY, "db": str(tmp_path / "r.duckdb")}))
    rid = run_suite(path, console=Console(file=io.StringIO()), leaderboard=False)
    with duckdb.connect(str(tmp_path / "r.duckdb"), read_only=True) as con:
        task = con.execute("SELECT task FROM runs").fetchone()[0]
        scen = con.execute("SELECT scenario, test_cells, n_explained, accuracy FROM scenarios "
                           "ORDER BY scenario").fetchall()  # fmt: skip
        n = con.execute("SELECT count(*) FROM scores").fetchone()[0]
    assert task == "verification"
    cells = {"mated": 24, "nonmated": 24}
    assert [(s, json.loads(c), e) for s, c, e, _ in scen] == [
        ("mated", cells, 6),
        ("nonmated", cells, 6),
    ]
    assert all(0.5 <= a <= 1.0 for *_, a in scen)  # the best threshold beats chance
    assert n == 2 * 3 * 3  # scenarios × explainers × metrics
    assert run_suite(path, console=Console(file=io.StringIO()), leaderboard=False) == rid


@pytest.mark.parametrize(
    ("over", "message"),
    [
        ({"scenarios": [{"name": "s", "target": "Male"}]},
         "scenarios[0].target: expected one of mated, nonmated, inpainting"),
        ({"metrics": ["ranking_position"]}, "metrics[0]: ranking_position needs bias_regions"),
        ({"model": {"factory": "tests.model_zoo:tiny_face", "train": {"epochs": 1}}},
         "dataset.train: expected a training dataset"),
        ({"dataset": {"test": {"name": "celebamask_hq", "params": {"root": "x"}}}},
         "expected a dataset with verification pairs"),
    ],
)  # fmt: skip
def test_verification_suites_refuse_what_has_no_meaning(tmp_path, over, message):
    import yaml

    from benchmark.errors import BenchError
    from benchmark.suite import load_suite

    path = tmp_path / "v.yaml"
    path.write_text(yaml.safe_dump({**VERIFY, **over}))
    with pytest.raises(BenchError) as info:
        load_suite(path)
    assert message in str(info.value)


def test_an_image_folder_with_a_pairs_csv_is_a_verification_set(tmp_path):
    """The generic folder: pairs listed by path; absent images drop their pairs."""
    from benchmark.data.folder import ImageFolder
    from tests.test_folder import build_replica

    build_replica(tmp_path, split=False)
    (tmp_path / "pairs.csv").write_text(
        "first,second,same\na/img1.jpg,a/img2.jpg,1\na/img1.jpg,img4.jpg,0\n"
        "img5.jpg,b/c/img3.jpg,1\nnot/there.jpg,img4.jpg,0\n"
    )
    data = ImageFolder(tmp_path, size=32, pairs="pairs.csv")
    faces = data.load("test", 0, tmp_path / "cache")
    index, same = data.pairs(faces)
    assert index.tolist() == [[0, 1], [0, 3], [4, 2]] and same.tolist() == [True, False, True]
    index, same = data.pairs(faces.subset(torch.tensor([4, 2, 0])))  # a subset: its rows
    assert index.tolist() == [[0, 1]] and same.tolist() == [True]
    (tmp_path / "pairs.csv").write_text("first,second,same\na/img1.jpg,a/img2.jpg,yes\n")
    from benchmark.errors import BenchError

    with pytest.raises(BenchError, match=r"pairs\.csv line 2: column 'same': expected 0 or 1"):
        data.pairs(faces)
