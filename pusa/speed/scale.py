"""Memory and FLOPs of a DiT forward at model scale without weights or a GPU (benchmarks, tests).

The DiT is built through the engine's loader (``build_model`` with the checkpoint's dtypes, fp32
kept where diffusers keeps it) and the pipeline's speed options, on the meta device: every tensor
has its shape, dtype and storage size but no memory, so a 14B forward at 720p runs on a laptop in
seconds (torch's ``FakeTensorMode`` would do the same, but diffusers' layerwise casting cannot
re-cast fake parameters). ``PeakBytes`` counts the bytes of every storage an
operator creates and frees them when Python drops the storage (the same accounting as
``torch.distributed._tools.mem_tracker.MemTracker``'s activation figure, which the tests check, at a
tenth of its run time); FLOPs come from ``FlopCounterMode`` with CPU attention counted too.
"""

from __future__ import annotations

import weakref
from contextlib import contextmanager
from typing import Any, Iterator

import torch
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_flatten

from pusa.speed.options import SpeedOptions


class PeakBytes(TorchDispatchMode):
    """Peak bytes of live storages while active, above the ``known`` ones (weights, inputs) held at entry.

    Known storages count until Python frees them, so a weight that diffusers' layerwise casting
    re-casts (a new fp8 storage replacing the old one) is not counted twice.
    """

    def __init__(self) -> None:
        super().__init__()
        self.current = 0
        self.baseline = 0
        self.peak_total = 0
        self._live: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()

    @property
    def peak(self) -> int:
        """Peak bytes above what was held at the start (the activation peak)."""
        return self.peak_total - self.baseline

    def known(self, *tensors: torch.Tensor) -> "PeakBytes":
        for t in tensors:
            self.baseline += self._add(t.untyped_storage())
        self.peak_total = max(self.peak_total, self.current)
        return self

    def _add(self, storage) -> int:
        if storage in self._live:
            return 0
        nbytes = storage.nbytes()
        self._live[storage] = nbytes
        self.current += nbytes
        weakref.finalize(storage, self._free, nbytes)
        return nbytes

    def _free(self, nbytes: int) -> None:
        self.current -= nbytes

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        for t in tree_flatten(out)[0]:
            if isinstance(t, torch.Tensor):
                self._add(t.untyped_storage())
        self.peak_total = max(self.peak_total, self.current)
        return out


def flop_counter():
    """``FlopCounterMode`` (it counts the flash-attention operator ``gpu_attention`` routes SDPA to)."""
    from torch.utils.flop_counter import FlopCounterMode

    return FlopCounterMode(display=False)


@contextmanager
def gpu_attention() -> Iterator[None]:
    """SDPA as a GPU runs it: the flash kernel, which keeps no tokens x tokens score matrix. On the
    meta device torch would pick the math kernel (about 80 GiB of scores at 480p), so for the
    measurement ``scaled_dot_product_attention`` calls the flash operator, which has a meta kernel."""
    import torch.nn.functional as F

    original = F.scaled_dot_product_attention

    def flash(query, key, value, attn_mask=None, dropout_p=0.0, is_causal=False, scale=None, enable_gqa=False):
        if attn_mask is not None or query.device.type != "meta":
            return original(query, key, value, attn_mask=attn_mask, dropout_p=dropout_p, is_causal=is_causal,
                            scale=scale, enable_gqa=enable_gqa)
        return torch.ops.aten._scaled_dot_product_flash_attention(query, key, value, dropout_p, is_causal,
                                                                   scale=scale)[0]

    F.scaled_dot_product_attention = flash
    try:
        yield
    finally:
        F.scaled_dot_product_attention = original


def meta_dit(config: dict, options: SpeedOptions, dtype: torch.dtype = torch.bfloat16) -> torch.nn.Module:
    """A Wan DiT of ``config`` on the meta device as ``from_pretrained`` leaves it: an fp32 checkpoint
    loaded as ``dtype`` (fp32 kept where diffusers keeps it) and the speed options applied."""
    from diffusers import WanTransformer3DModel

    from pusa.loading.components import _meta_init, build_model

    shapes = {k: tuple(v.shape) for k, v in _meta_init(WanTransformer3DModel, **config).state_dict().items()}
    state = {k: torch.empty(shape, device="meta") for k, shape in shapes.items()}
    dit = build_model(WanTransformer3DModel, config, state, "transformer", dtype,
                      tuple(WanTransformer3DModel._keep_in_fp32_modules)).to("meta")  # rope tables too
    options.prepare([dit])
    options.apply([dit], dtype)
    return dit


def measure_forward(dit: torch.nn.Module, latent_shape: tuple[int, ...], timestep: torch.Tensor,
                    text_tokens: int = 512, dtype: torch.dtype = torch.bfloat16) -> dict[str, Any]:
    """Activation peak (bytes) and FLOPs of one ``no_grad`` forward of a meta-device DiT; ``timestep`` as
    the DiT receives it (``WanVelocity.timestep``: one value, one per frame or one per token)."""
    x = torch.empty(latent_shape, dtype=dtype, device="meta")
    context = torch.empty(1, text_tokens, dit.config.text_dim, dtype=dtype, device="meta")
    timestep = timestep.to("meta")
    peak = PeakBytes().known(*dit.parameters(), *dit.buffers(), x, context, timestep)
    with torch.no_grad(), gpu_attention(), peak:
        dit(hidden_states=x, timestep=timestep, encoder_hidden_states=context, return_dict=False)
    flops = flop_counter()
    with torch.no_grad(), gpu_attention(), flops:
        dit(hidden_states=x, timestep=timestep, encoder_hidden_states=context, return_dict=False)
    return {"peak_activation_bytes": int(peak.peak), "flops_per_forward": int(flops.get_total_flops())}
