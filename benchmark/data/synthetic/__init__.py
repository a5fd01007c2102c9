"""Synthetic faces (DATASETS.md, "The embedded default"): procedural faces with exact truth.

Faces are rendered with batched tensor maths from :class:`FaceParams`; every pixel carries
a CelebAMask-HQ region label, and any attribute can be toggled to render the same face
counterfactually (METHODS.md §9).
"""

from benchmark.data.synthetic.dataset import GENERATOR_VERSION, SyntheticFaces
from benchmark.data.synthetic.params import (
    ATTRIBUTES,
    GROUPS,
    FaceParams,
    canonical_params,
    sample_params,
    toggle,
)
from benchmark.data.synthetic.render import canonical_face, render

__all__ = [
    "ATTRIBUTES",
    "GENERATOR_VERSION",
    "GROUPS",
    "FaceParams",
    "SyntheticFaces",
    "canonical_face",
    "canonical_params",
    "render",
    "sample_params",
    "toggle",
]
