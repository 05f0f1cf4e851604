"""Devices, dtypes and memory modes, built on accelerate's and diffusers' own offloading."""

from __future__ import annotations

import logging

import torch
from torch import nn

from pusa.errors import InputError

log = logging.getLogger(__name__)

DEVICES = ("auto", "cuda", "mps", "cpu")
DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16, "fp32": torch.float32}
OFFLOAD_MODES = ("none", "model", "group")


def resolve_device(name: str = "auto") -> torch.device:
    """``auto`` picks cuda, then mps, then cpu; an unavailable explicit choice is an input error."""
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if getattr(torch.backends, "mps", None) and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    base = name.split(":")[0]
    if base not in DEVICES:
        raise InputError(f"device: {name!r} is not allowed; expected one of {', '.join(DEVICES)} (cuda:N works too)")
    if base == "cuda" and not torch.cuda.is_available():
        raise InputError("device: cuda was asked for but no CUDA GPU is available; use --device cpu")
    if base == "mps" and not (getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()):
        raise InputError("device: mps was asked for but is not available on this machine")
    return torch.device(name)


def resolve_dtype(name: str, device: torch.device) -> torch.dtype:
    """``auto``: bf16 on CUDA, fp16 on MPS, fp32 on CPU (CPU half-precision matmuls are slow)."""
    if name == "auto":
        return {"cuda": torch.bfloat16, "mps": torch.float16}.get(device.type, torch.float32)
    if name not in DTYPES:
        raise InputError(f"dtype: {name!r} is not allowed; expected auto, {', '.join(DTYPES)}")
    return DTYPES[name]


def check_offload(mode: str) -> str:
    if mode not in OFFLOAD_MODES:
        raise InputError(f"offload: {mode!r} is not allowed; expected one of {', '.join(OFFLOAD_MODES)}")
    return mode


def place(models: dict[str, nn.Module], device: torch.device, offload: str, keep_on_cpu: tuple[str, ...] = ()) -> None:
    """Put components on ``device`` or attach offload hooks.

    ``model``: accelerate's sequential hooks move each whole component to the GPU when it runs and
    back after (what diffusers' ``enable_model_cpu_offload`` does). ``group``: diffusers' block-level
    group offloading moves the DiT block by block; the other components use model offload.

    Group offloading runs without CUDA streams on purpose: with streams diffusers keeps separate
    pinned CPU copies of the weights, and a LoRA re-merge (an alpha change) written into the
    parameters would be silently replaced by those stale copies at the next onload.
    """
    check_offload(offload)
    if offload == "none" or device.type == "cpu":
        for name, m in models.items():
            m.to("cpu" if name in keep_on_cpu else device)
        return
    from accelerate import cpu_offload_with_hook

    hook = None
    for name, m in models.items():
        if name in keep_on_cpu:
            m.to("cpu")
            continue
        if offload == "group" and name.startswith("transformer"):
            m.enable_group_offload(onload_device=device, offload_device=torch.device("cpu"),
                                   offload_type="block_level", num_blocks_per_group=1,
                                   use_stream=False)
            continue
        m.to("cpu")
        _, hook = cpu_offload_with_hook(m, device, prev_module_hook=hook)
