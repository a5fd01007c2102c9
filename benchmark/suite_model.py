"""The suite's ``model:`` block: where the model comes from, how it reads its input and
what its outputs mean (issue 12).

Sources (exactly one): ``arch`` (a registered architecture the benchmark trains or
loads from ``checkpoint``), ``factory`` (``package.module:attr`` returning an
``nn.Module``), ``torchscript`` (a file), ``onnx`` (a file, run by onnxruntime as a
black box or converted with onnx2torch), ``keras`` (a Keras 2 HDF5 file, converted to
PyTorch) and ``callable`` (``package.module:attr``, a black-box ``f(x_batch) ->
scores``). A file may be ``pkg:<package>/<path>``, a file
shipped inside an installed package.

Explainers always work on pixel-space RGB images in [0, 1] (METHODS.md); ``input``
declares what the model itself expects and the adapter converts inside the forward.
"""

from __future__ import annotations

import itertools
from typing import Annotated, Any, Literal

from pydantic import Field, StrictBool, field_validator, model_validator

from benchmark.suite_errors import custom, show
from benchmark.suite_types import Number, Params, PosInt, Spec, Str, interval

SOURCES = ("arch", "factory", "torchscript", "onnx", "keras", "callable")
#: Sources the benchmark cannot train (their weights are not parameters it owns).
FROZEN_SOURCES = ("torchscript", "onnx", "keras", "callable")
#: Fields that name a model file (a path or ``pkg:<package>/<path>``).
FILE_FIELDS = ("checkpoint", "onnx", "torchscript", "keras")
TARGET_PATTERN = r"^[A-Za-z_][\w.]*:[A-Za-z_][\w.]*$"
Target = Annotated[str, Field(strict=True, pattern=TARGET_PATTERN)]
Channels3 = Annotated[list[Number], Field(min_length=3, max_length=3)]


class IdentityRecipe(Spec):
    """Training an embedding on synthetic identities (``task: verification``): each
    training face and ``siblings`` part-swapped siblings are identities, each seen in
    ``views`` re-takes; CosFace loss with ``margin`` and ``scale``."""

    views: Annotated[int, Field(strict=True, ge=2)] = 5
    siblings: Annotated[int, Field(strict=True, ge=0)] = 3
    margin: Annotated[Number, interval(0, 1)] = 0.35
    scale: Annotated[Number, Field(gt=0)] = 30.0


class TrainRecipe(Spec):
    """The FaceX training recipe; ``milestones`` are fractions of the epochs.

    ``identity`` (verification only) trains an embedding on identities instead, with a
    one-cycle schedule peaking at ``lr`` (``milestones`` and ``gamma`` are unused).
    """

    epochs: PosInt = 20
    batch_size: PosInt = 128
    lr: Annotated[Number, Field(gt=0)] = 1.0e-3
    weight_decay: Annotated[Number, Field(ge=0)] = 1.0e-4
    optimizer: Literal["adam", "adamw", "sgd"] = "adam"
    milestones: list[Annotated[Number, interval(0, 1)]] = Field(
        default_factory=lambda: [1 / 3, 2 / 3]
    )
    gamma: Annotated[Number, interval(0, 1, hi_closed=True)] = 0.1
    hflip: StrictBool = False
    identity: IdentityRecipe | None = None

    @field_validator("milestones")
    @classmethod
    def _increasing(cls, value: list[float]) -> list[float]:
        if any(b <= a for a, b in itertools.pairwise(value)):
            raise custom(f"expected increasing fractions, got {show(value)}")
        return value


class InputSpec(Spec):
    """What the model's forward expects, from pixel-space RGB [0, 1] NCHW images.

    Applied in this order: ``size`` (resize), ``channels`` (``gray``: one channel, the
    luma 0.299 R + 0.587 G + 0.114 B that OpenCV computes), ``range`` (``[lo, hi]``: the
    pixel value 0 becomes lo and 1 becomes hi), ``(x - mean) / std``, ``layout``.
    ``crop`` happens on the data instead (it needs each face's landmarks or box): the
    explained faces are aligned before anything sees them, masks and landmarks with them.
    """

    size: PosInt | Annotated[list[PosInt], Field(min_length=2, max_length=2)] | None = None
    interpolation: Literal["bilinear", "area", "nearest"] = "bilinear"
    channels: Literal["RGB", "BGR", "gray"] = "RGB"
    range: Annotated[list[Number], Field(min_length=2, max_length=2)] = Field(
        default_factory=lambda: [0.0, 1.0]
    )
    mean: Number | Channels3 = 0.0
    std: Number | Channels3 = 1.0
    layout: Literal["NCHW", "NHWC"] = "NCHW"
    crop: Literal["none", "landmarks", "box"] = "none"
    #: Margin around the face on each side, as a fraction of the face's size.
    padding: Annotated[Number, Field(ge=0, le=2)] = 0.0

    @field_validator("std")
    @classmethod
    def _positive(cls, value: Any) -> Any:
        if any(v <= 0 for v in (value if isinstance(value, list) else [value])):
            raise custom(f"expected positive numbers, got {show(value)}")
        return value

    @field_validator("range")
    @classmethod
    def _increasing(cls, value: list[float]) -> list[float]:
        if value[1] <= value[0]:
            raise custom(f"expected [low, high] with low < high, got {show(value)}")
        return value

    @model_validator(mode="after")
    def _gray_scalars(self) -> InputSpec:
        for key in ("mean", "std"):
            if self.channels == "gray" and isinstance(getattr(self, key), list):
                msg = f"expected one number for a gray input, got {show(getattr(self, key))}"
                raise custom(msg, key)
        return self

    def hw(self) -> tuple[int, int] | None:
        """The model's input (H, W), or None to take the data's size."""
        if self.size is None:
            return None
        return (self.size, self.size) if isinstance(self.size, int) else tuple(self.size)

    def is_identity(self) -> bool:
        """Nothing to convert: the model reads pixel-space RGB [0, 1] NCHW as it is."""
        return self == InputSpec(crop=self.crop, padding=self.padding)


class OutputSpec(Spec):
    """What the model returns and which output a label is explained with.

    ``kind``: ``logits`` or ``probabilities`` (B, C), or one value per image for the
    positive class, ``logit`` or ``probability``. Everything is turned into logits
    (B, C) (probabilities as their log, a single logit s as (-s/2, s/2)), reordered so
    that output k is the dataset's label k: with ``positive`` (a name of ``classes`` or
    an index), a binary target's label 1 is that output and label 0 the other one; a
    model with more than two classes becomes one-vs-rest, label 1 the log-probability
    of ``positive`` and label 0 that of any other class (happy vs not, for Smiling).
    """

    kind: Literal["logits", "probabilities", "logit", "probability"] = "logits"
    classes: Annotated[list[Str], Field(min_length=2)] | None = None
    positive: Str | Annotated[int, Field(strict=True, ge=0)] | None = None
    #: The graph output to read, for ONNX models with several outputs.
    name: Str | None = None

    @model_validator(mode="after")
    def _consistent(self) -> OutputSpec:
        single = self.kind in ("logit", "probability")
        if single and self.classes is not None and len(self.classes) != 2:
            msg = f"expected 2 class names (negative, positive) for kind {self.kind!r}"
            raise custom(f"{msg}, got {len(self.classes)}", "classes")
        if self.positive is None:
            return self
        if single:
            msg = f"expected no positive for kind {self.kind!r}: its one output is the positive"
            raise custom(msg, "positive")
        if isinstance(self.positive, str):
            if self.classes is None or self.positive not in self.classes:
                known = ", ".join(self.classes or []) or "none given"
                msg = f"expected a name among classes ({known}), got {self.positive!r}"
                raise custom(msg, "positive")
        elif self.classes is not None and self.positive >= len(self.classes):
            msg = f"expected an index below {len(self.classes)}, got {self.positive}"
            raise custom(msg, "positive")
        return self

    def positive_index(self) -> int | None:
        """The output explained for label 1 of a binary target, or None (identity)."""
        if isinstance(self.positive, str):
            assert self.classes is not None
            return self.classes.index(self.positive)
        return self.positive


class ModelSpec(Spec):
    """The model: one source, its builder kwargs, weights, input, output, the recipe.

    ``train: false`` (the default for torchscript, ONNX and callables, and implied by
    a ``checkpoint``) explains the model as it is: no bias is injected, scenarios
    rank the attributes they name, accuracy is reported where the data has labels.
    """

    arch: Str | None = None
    factory: Target | None = None
    torchscript: Str | None = None
    onnx: Str | None = None
    #: A Keras 2 HDF5 model file (``model.save``), converted to a PyTorch module.
    keras: Str | None = None
    callable: Target | None = None
    #: How an ONNX model runs: a black box in onnxruntime, or converted to PyTorch by
    #: onnx2torch so that gradient and CAM explainers work too.
    backend: Literal["onnxruntime", "onnx2torch"] | None = None
    params: Params = Field(default_factory=dict)
    checkpoint: Str | None = None
    #: Dotted path of the CAM layer in the model (default: the arch's own, else the last
    #: layer with a spatial output).
    target_layer: Str | None = None
    input: InputSpec = Field(default_factory=InputSpec)
    output: OutputSpec = Field(default_factory=OutputSpec)
    train: TrainRecipe | None = Field(default_factory=TrainRecipe)

    @model_validator(mode="before")
    @classmethod
    def _train_switch(cls, value: Any) -> Any:
        if not isinstance(value, dict):
            return value
        value = dict(value)
        if "train" in value:
            if value["train"] is False:
                value["train"] = None
            elif value["train"] is True:
                value["train"] = {}
        elif any(value.get(k) for k in FROZEN_SOURCES):
            value["train"] = None
        return value

    @model_validator(mode="after")
    def _one_source(self) -> ModelSpec:
        given = [k for k in SOURCES if getattr(self, k) is not None]
        if not given:
            raise custom(f"expected one model source: {', '.join(SOURCES)}; got none")
        if len(given) > 1:
            raise custom(f"expected one model source, got {' and '.join(given)}", given[1])
        source = given[0]
        if self.backend is not None and source != "onnx":
            raise custom(f"expected backend only with onnx, got it with {source}", "backend")
        if source in FROZEN_SOURCES:
            if self.train is not None:
                msg = f"expected train: false (a {source} model is not trained here)"
                raise custom(f"{msg}, got a training recipe", "train")
            for key in ("checkpoint", "params"):
                if getattr(self, key):
                    raise custom(f"expected no {key} for a {source} model", key)
        return self

    @property
    def source(self) -> str:
        """Which source key is set."""
        return next(k for k in SOURCES if getattr(self, k) is not None)

    @property
    def trains(self) -> bool:
        """The benchmark trains this model (with the scenario's bias) before explaining it."""
        return self.train is not None and self.checkpoint is None

    @property
    def black_box(self) -> bool:
        """Only forward passes are possible: no gradients, no layers to hook."""
        return self.source == "callable" or (
            self.source == "onnx" and (self.backend or "onnxruntime") == "onnxruntime"
        )

    @property
    def access(self) -> Literal["forward", "gradients", "layers"]:
        """What explainers can use: forward passes only (a black box), input gradients
        too (TorchScript: its layers take no hooks), or everything (a Python module)."""
        if self.black_box:
            return "forward"
        return "gradients" if self.source == "torchscript" else "layers"

    def n_outputs(self) -> int | None:
        """Outputs (classes) as declared, or None when only the model can say."""
        if self.output.kind in ("logit", "probability") or self.output.positive is not None:
            return 2
        if self.output.classes is not None:
            return len(self.output.classes)
        n = self.params.get("n_classes")
        return int(n) if isinstance(n, int) else (2 if self.source == "arch" else None)
