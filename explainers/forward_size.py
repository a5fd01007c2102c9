"""How many images one forward of a perturbation method should hold, from the model.

A fixed count is wrong at both ends: the small CNN at 64 px runs as fast at 256 images
per forward as at 32 (6.5k img/s on 2 cores), while ResNet-18 at 112 px slows from 240
to 148 img/s between 32 and 256 as its 7.6 MB of activations per image outgrow the
caches. So the count is the activation budget over the model's activation bytes per
image, measured once per (model, image shape) by a forward of a copy of the model on
PyTorch's meta device: shapes only, no arithmetic, no memory, and none of the model's
own hooks (explainers' captures, forward counters) fire. Written here because neither
captum nor pytorch-grad-cam sizes its batches (both take a fixed user value).
"""

from __future__ import annotations

import copy
import weakref
from typing import Any

import torch
from torch import nn

#: Activation bytes one CPU forward may hold: the small CNN at 64 px (0.69 MB an
#: image) keeps its 256 images, ResNet-18 at 112 px gets 25 (1.6× its rate at 256).
CPU_BUDGET = 192 * 2**20
#: Share of a GPU's memory one forward's activations may take.
GPU_SHARE = 0.25
DEFAULT = {"cpu": 256, "cuda": 4096}
FLOOR = {"cpu": 8, "cuda": 64}

#: A module's hooks that run when it is called (forward and backward).
CALL_HOOK_DICTS = (
    "_forward_hooks", "_forward_pre_hooks", "_backward_hooks", "_backward_pre_hooks",
    "_forward_hooks_with_kwargs", "_forward_pre_hooks_with_kwargs", "_forward_hooks_always_called",
)  # fmt: skip
_HOOK_DICTS = (
    *CALL_HOOK_DICTS, "_state_dict_hooks", "_state_dict_pre_hooks", "_load_state_dict_pre_hooks",
    "_load_state_dict_post_hooks",
)  # fmt: skip
_CACHE: weakref.WeakKeyDictionary[nn.Module, dict[tuple, int | None]] = weakref.WeakKeyDictionary()


def _hookless_copy(model: nn.Module) -> nn.Module:
    """A deep copy without any hook: the hooks' closures (explainers, counters) are not
    copied, and nothing the copy runs reaches them."""
    memo: dict[int, Any] = {}
    for module in model.modules():
        for name in _HOOK_DICTS:
            hooks = getattr(module, name, None)
            if hooks is not None:
                memo[id(hooks)] = type(hooks)()
    return copy.deepcopy(model, memo)


def activation_bytes(model: Any, image_shape: tuple[int, ...]) -> int | None:
    """Bytes of the outputs of every leaf module for one image of ``image_shape``
    (C, H, W); None where the model cannot run on the meta device (a black box, a
    TorchScript file, NumPy inside the forward)."""
    if not isinstance(model, nn.Module) or getattr(model, "black_box", False):
        return None
    shape = tuple(int(s) for s in image_shape)
    per_model = _CACHE.setdefault(model, {})
    if shape not in per_model:
        per_model[shape] = _measure(model, shape)
    return per_model[shape]


def _measure(model: nn.Module, shape: tuple[int, ...]) -> int | None:
    if isinstance(model, torch.jit.ScriptModule):
        return None
    total = [0]

    def count(_module: nn.Module, _args: Any, out: Any) -> None:
        if torch.is_tensor(out):
            total[0] += out.numel() * out.element_size()

    try:
        clone = _hookless_copy(model).to("meta").eval()
        for module in clone.modules():
            if not any(True for _ in module.children()):
                module.register_forward_hook(count)
        with torch.no_grad():
            clone(torch.zeros(1, *shape, device="meta"))
    except Exception:  # any op without a meta kernel: keep the fixed default
        return None
    return total[0] or None


def images_per_forward(
    device: torch.device,
    requested: int | None = None,
    model: Any = None,
    image_shape: tuple[int, ...] | torch.Size | None = None,
) -> int:
    """Images per forward: ``requested`` where given, else the activation budget over
    the model's bytes per image (within [FLOOR, DEFAULT]), else the device's default."""
    if requested is not None:
        return max(1, int(requested))
    kind = "cuda" if device.type == "cuda" else "cpu"
    per = activation_bytes(model, tuple(image_shape)) if image_shape is not None else None
    if per is None:
        return DEFAULT[kind]
    if kind == "cuda":  # total, not free, memory: the same count on every run
        budget = GPU_SHARE * torch.cuda.get_device_properties(device).total_memory
    else:
        budget = CPU_BUDGET
    return int(max(FLOOR[kind], min(DEFAULT[kind], budget // per)))
