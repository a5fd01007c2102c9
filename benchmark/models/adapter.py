"""A user's face model behind the benchmark's interface (issue 12).

Explainers and metrics call every model on pixel-space RGB images in [0, 1], NCHW, and
read logits (B, C) whose output k is the dataset's label k. :class:`FaceModel` wraps
any model to that interface: it applies the model's own preprocessing (size, channel
order, value range, mean/std, layout) inside the forward, where it is differentiable,
and turns the model's outputs (logits, probabilities, one score) into such logits.
Black-box cores (an onnxruntime session, a plain function) run without autograd.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from benchmark.errors import BenchError, did_you_mean
from benchmark.suite_model import InputSpec, OutputSpec

TINY = 1e-12  # floor of probabilities before their log: a 0 would give -inf logits


def check_output_name(path: str, names: list[str], name: str | None) -> None:
    """Refuse an ``output.name`` the ONNX graph at ``path`` does not have."""
    if name is not None and name not in names:
        raise BenchError(
            f"model.output.name: expected an output of {path} ({', '.join(names)}), "
            f"got {name!r}{did_you_mean(name, names)}"
        )


class OnnxRuntimeCore(nn.Module):
    """An ONNX model run by onnxruntime: a black box returning its output as a tensor.

    Args:
        path: the ``.onnx`` file.
        output: name of the graph output to return (default: the first).
        threads: intra-op threads (default: onnxruntime's choice).
    """

    black_box = True

    def __init__(self, path: str, output: str | None = None, threads: int | None = None):
        super().__init__()
        import onnxruntime as ort  # optional dependency, imported on use

        options = ort.SessionOptions()
        if threads:
            options.intra_op_num_threads = int(threads)
        available = ort.get_available_providers()
        providers = [p for p in ("CUDAExecutionProvider", "CPUExecutionProvider") if p in available]
        self.session = ort.InferenceSession(str(path), options, providers=providers)
        self.input_name = self.session.get_inputs()[0].name
        names = [o.name for o in self.session.get_outputs()]
        check_output_name(path, names, output)
        self.output_name = output or names[0]

    @torch.no_grad()
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # onnxruntime reads host memory: one copy out and one back per batch.
        feed = {self.input_name: x.detach().float().cpu().numpy()}
        out = self.session.run([self.output_name], feed)[0]
        return torch.from_numpy(np.ascontiguousarray(out)).to(x.device)


class CallableCore(nn.Module):
    """A plain function ``f(x_batch) -> scores`` as a black-box module."""

    black_box = True

    def __init__(self, fn: Callable[[torch.Tensor], Any]):
        super().__init__()
        self.fn = fn

    @torch.no_grad()
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.fn(x)
        return torch.as_tensor(np.asarray(out) if not torch.is_tensor(out) else out).to(x.device)


def _channels(value: float | list[float]) -> torch.Tensor:
    return torch.tensor(value if isinstance(value, list) else [value] * 3).view(1, 3, 1, 1)


class FaceModel(nn.Module):
    """``core`` with its declared input conversion and output interpretation.

    Args:
        core: the user's model (an ``nn.Module``; black-box cores are modules too).
        input: what the core expects (see ``InputSpec``).
        output: what the core returns (see ``OutputSpec``).
        target_layer: dotted path of the CAM layer inside ``core``; None: the core's
            own ``target_layer``, else the last layer with a spatial output.
    """

    def __init__(
        self,
        core: nn.Module,
        input: InputSpec | None = None,
        output: OutputSpec | None = None,
        target_layer: str | None = None,
    ):
        super().__init__()
        self.core = core
        self.input_spec = input or InputSpec()
        self.output_spec = output or OutputSpec()
        self.target_layer_name = target_layer
        lo, hi = self.input_spec.range
        std = _channels(self.input_spec.std)
        # range then (x - mean) / std, folded into one scale and shift per channel
        self.register_buffer("scale", (hi - lo) / std, persistent=False)
        self.register_buffer(
            "shift", (lo - _channels(self.input_spec.mean)) / std, persistent=False
        )
        # ITU-R BT.601 luma, as OpenCV's RGB2GRAY (what gray face models were fed)
        luma = torch.tensor([0.299, 0.587, 0.114]).view(1, 3, 1, 1)
        self.register_buffer("luma", luma, persistent=False)
        self.black_box = bool(getattr(core, "black_box", False))
        self._auto_layer: str | None = None
        #: Outputs the last :meth:`probe` saw (None before one ran).
        self.probed_outputs: int | None = None

    # -- the forward the explainers see -------------------------------------------------
    def preprocess(self, x: torch.Tensor) -> torch.Tensor:
        """Pixel-space RGB [0, 1] NCHW → what the core reads."""
        spec = self.input_spec
        size = spec.hw()
        if size is not None and tuple(x.shape[-2:]) != size:
            mode = spec.interpolation
            if mode == "area":
                x = F.adaptive_avg_pool2d(x, size)
            elif mode == "nearest":
                x = F.interpolate(x, size=size, mode="nearest")
            else:  # antialiased when shrinking, as image libraries resize
                x = F.interpolate(x, size=size, mode="bilinear", align_corners=False,
                                  antialias=True)  # fmt: skip
        if spec.channels == "BGR":
            x = x.flip(1)
        if spec.channels == "gray":
            x = (x * self.luma).sum(1, keepdim=True) * self.scale[:, :1] + self.shift[:, :1]
        else:
            x = x * self.scale + self.shift
        return x.permute(0, 2, 3, 1).contiguous() if spec.layout == "NHWC" else x

    def logits(self, out: torch.Tensor) -> torch.Tensor:
        """The core's outputs as logits (B, C), output k for label k."""
        kind = self.output_spec.kind
        out = out.float()
        if kind in ("logit", "probability"):
            s = out.reshape(len(out), -1)
            if s.shape[1] != 1:
                raise BenchError(f"model.output.kind {kind!r}: expected one value per image, "
                                 f"got shape {tuple(out.shape)}")  # fmt: skip
            s = s[:, 0]
            if kind == "logit":
                return torch.stack([-s / 2, s / 2], 1)
            p = s.clamp(TINY, 1 - TINY)
            return torch.stack([torch.log1p(-p), torch.log(p)], 1)
        if out.dim() != 2:
            raise BenchError(f"model.output.kind {kind!r}: expected (batch, classes), "
                             f"got shape {tuple(out.shape)}")  # fmt: skip
        if kind == "probabilities":
            out = out.clamp_min(TINY).log()
        pos = self.output_spec.positive_index()
        if pos is None:
            return out
        n = out.shape[1]
        if pos >= n:
            raise BenchError(f"model.output.positive: expected an index below the model's "
                             f"{n} outputs, got {pos}")  # fmt: skip
        if n == 2:
            return out[:, [1 - pos, pos]]
        # One-vs-rest: log p(positive) against log p(any other class), both of the softmax.
        logp = out.log_softmax(1)
        rest = torch.cat([logp[:, :pos], logp[:, pos + 1 :]], 1).logsumexp(1)
        return torch.stack([rest, logp[:, pos]], 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.logits(self.pick(self.core(self.preprocess(x))))

    def pick(self, out: Any) -> torch.Tensor:
        """The scored output of a core that returns several (a tuple: the first, or the
        one ``output.name`` names by position; a dict: by ``output.name``)."""
        name = self.output_spec.name
        if isinstance(out, dict):
            if name is None or name not in out:
                keys = ", ".join(map(str, out))
                raise BenchError(f"model.output.name: expected one of the model's outputs "
                                 f"({keys}), got {name!r}")  # fmt: skip
            return out[name]
        if isinstance(out, tuple | list):
            names = getattr(self.core, "output_names", None)
            return out[names.index(name)] if name and names and name in names else out[0]
        return out

    # -- what CAMs read ------------------------------------------------------------------
    @property
    def target_layer(self) -> nn.Module:
        """The CAM layer: declared, the core's own, or the last spatial layer found."""
        if self.target_layer_name is not None:
            return self.core.get_submodule(self.target_layer_name)
        own = getattr(self.core, "target_layer", None)
        if isinstance(own, nn.Module):
            return own
        if self._auto_layer is None:
            raise BenchError(
                "model.target_layer: the model declares no CAM layer and none was found; "
                "set model.target_layer to a layer name"
            )
        return self.core.get_submodule(self._auto_layer)

    def probe(self, size: tuple[int, int]) -> int:
        """One forward on a black batch at ``size``: checks the outputs, finds the CAM
        layer when none is declared, and returns the number of classes."""
        device = self.scale.device
        spatial: list[str] = []
        hooks = []
        scripted = isinstance(self.core, torch.jit.ScriptModule)  # no hooks there
        find = self.target_layer_name is None and not self.black_box and not scripted
        if find and not isinstance(getattr(self.core, "target_layer", None), nn.Module):
            for name, module in self.core.named_modules():
                if name and not any(True for _ in module.children()):
                    hooks.append(module.register_forward_hook(_spatial_hook(name, spatial)))
        try:
            with torch.no_grad():
                out = self(torch.zeros(2, 3, *size, device=device))
        except BenchError:
            raise
        except Exception as exc:
            raise BenchError(f"model: a forward on 2 images of {size[0]}×{size[1]} px failed: "
                             f"{type(exc).__name__}: {exc}") from None  # fmt: skip
        finally:
            for h in hooks:
                h.remove()
        if spatial and self.input_spec.layout == "NCHW":
            self._auto_layer = spatial[-1]
        if self.target_layer_name is not None:
            names = [n for n, _ in self.core.named_modules() if n]
            if self.target_layer_name not in names:
                hint = (
                    did_you_mean(self.target_layer_name, names)
                    or f"; known: {', '.join(names[:12])}"
                )
                raise BenchError(
                    f"model.target_layer: no layer {self.target_layer_name!r} in the model{hint}"
                )
        self.probed_outputs = int(out.shape[1])
        return self.probed_outputs


def _spatial_hook(name: str, found: list[str]) -> Callable[..., None]:
    def hook(module: nn.Module, args: Any, out: Any) -> None:
        if torch.is_tensor(out) and out.dim() == 4 and min(out.shape[-2:]) > 1:
            found.append(name)

    return hook
