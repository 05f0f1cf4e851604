"""fp8 weight storage: the DiT's big linear layers kept as float8_e4m3fn, computed in the pipeline dtype.

diffusers' layerwise casting does the work: each Linear is stored in fp8 and upcast for its own
forward only (one layer's bf16 copy alive at a time). Its skip list keeps what diffusers keeps at
full precision: the patch embedding, the condition (time/text) embedder, the norms and the
modulation tables (``_keep_in_fp32_modules``). The LoRA is merged in float32 from the original
weights and the sum is cast to fp8 once per merge (``MergedLoras`` writes into the stored dtype), so
an alpha change re-merges exactly as in bf16.
"""

from __future__ import annotations

import torch

from pusa.errors import InputError

from pusa.speed.names import WEIGHT_MODES
FP8 = torch.float8_e4m3fn


def check_weights(mode: str) -> str:
    if mode not in WEIGHT_MODES:
        raise InputError(f"weights: {mode!r} is not allowed; expected one of {', '.join(WEIGHT_MODES)}")
    return mode


def store_fp8(dit: torch.nn.Module, compute_dtype: torch.dtype) -> None:
    """Store ``dit``'s castable layers in fp8, upcast to ``compute_dtype`` around each layer's forward."""
    dit.enable_layerwise_casting(storage_dtype=FP8, compute_dtype=compute_dtype)


def parameter_bytes(module: torch.nn.Module) -> int:
    """Bytes held by the module's parameters and buffers as stored."""
    tensors = [*module.parameters(), *module.buffers()]
    return sum(t.numel() * t.element_size() for t in tensors)
