"""Attention kernels through diffusers' dispatcher, and regional compilation.

``--attention``: ``auto`` leaves diffusers' default (PyTorch SDPA, which picks its own flash or
memory-efficient kernel on CUDA); ``sdpa`` names it explicitly; ``flash`` (flash-attn 2), ``flash3``
(FlashAttention-3, Hopper) and ``sage`` (SageAttention) need their packages, and asking for one that
is not installed is an input error before anything loads onto the GPU.

``--compile``: diffusers' ``compile_repeated_blocks`` compiles one Wan block and reuses it for all
40 (regional compilation: seconds instead of minutes of compile time). The per-frame hooks are
inside the block's forward, so they are compiled with it.
"""

from __future__ import annotations

import torch

from pusa.errors import InputError

ATTENTION_BACKENDS = {"auto": None, "sdpa": "native", "flash": "flash", "flash3": "_flash_3", "sage": "sage"}
_PACKAGES = {"flash": "flash-attn>=2.6.3", "flash3": "FlashAttention-3 (flash_attn_interface, built from source)",
             "sage": "sageattention"}


def check_attention(mode: str) -> str:
    """The mode, after checking diffusers can run its kernel here (raises ``InputError`` naming the package)."""
    if mode not in ATTENTION_BACKENDS:
        raise InputError(f"attention: {mode!r} is not allowed; expected one of {', '.join(ATTENTION_BACKENDS)}")
    backend = ATTENTION_BACKENDS[mode]
    if backend is None:
        return mode
    from diffusers.models.attention_dispatch import AttentionBackendName, _check_attention_backend_requirements

    try:
        _check_attention_backend_requirements(AttentionBackendName(backend))
    except (RuntimeError, ImportError) as e:
        raise InputError(f"attention: {mode!r} needs {_PACKAGES[mode]}, which is not installed here; use "
                         f"--attention sdpa (or auto) ({str(e).splitlines()[0]})") from None
    return mode


def set_attention(dit: torch.nn.Module, mode: str) -> None:
    backend = ATTENTION_BACKENDS[check_attention(mode)]
    if backend is not None:
        dit.set_attention_backend(backend)


def compile_blocks(dit: torch.nn.Module) -> None:
    """Compile the repeated Wan block once (``torch.compile`` on each block, one shared graph)."""
    dit.compile_repeated_blocks()
