"""Fast, exact building blocks for training a Wan VAE on a CPU.

Why: the Wan VAE is causal in time. A single picture (what every i2v condition is, and most of the
bundled VAE's training) is encoded and decoded as a first frame whose 3x3x3 convolutions see two
zero-padded frames before it: two thirds of their arithmetic multiply zeros, and PyTorch's 3-D
convolution kernels are slower than its 2-D ones besides. :func:`first_frames_as_2d` runs such a
frame through the last temporal slice of each kernel as a 2-D convolution: the same sum without the
zero terms (equal to float rounding, gradients included), 2.5x faster per training step on one core.

:func:`decode_unclamped` is diffusers' decode loop without its final ``clamp(-1, 1)``: a clamped
output has zero gradient wherever it overshoots, which stalls a fresh decoder.
"""

from __future__ import annotations

from contextlib import contextmanager
from functools import partial
from typing import Iterator

import torch
import torch.nn.functional as F
from torch import nn


def _causal_conv_forward(conv: nn.Module, original, x: torch.Tensor, cache_x: torch.Tensor | None = None) -> torch.Tensor:
    """``WanCausalConv3d.forward``; a lone first frame (no cache, no temporal stride) as a 2-D convolution."""
    if x.shape[2] == 1 and cache_x is None and conv.stride[0] == 1 and conv.padding_mode == "zeros":
        pad_w, pad_h = conv._padding[0], conv._padding[2]
        if conv._padding[1] == pad_w and conv._padding[3] == pad_h and conv._padding[4] == conv.kernel_size[0] - 1:
            y = F.conv2d(x[:, :, 0], conv.weight[:, :, -1], conv.bias, conv.stride[1:], (pad_h, pad_w),
                         conv.dilation[1:], conv.groups)
            return y.unsqueeze(2)
    return original(x, cache_x)


def _rms_norm_forward(norm: nn.Module, original, x: torch.Tensor) -> torch.Tensor:
    """``WanRMS_norm``: channel-first as the engine's fast decode computes it (``F.normalize`` is a slow strided reduction)."""
    from pusa.latent_codec import _direct_rms_norm_forward

    return _direct_rms_norm_forward(norm, x) if norm.channel_first else original(x)


@contextmanager
def first_frames_as_2d(vae: nn.Module) -> Iterator[None]:
    """While inside, ``vae``'s causal convolutions run a lone first frame as 2-D convolutions and its
    channel RMS norms use a direct sum of squares (module doc); other inputs are unchanged. Restored
    on exit."""
    patched = []
    for m in vae.modules():
        if "forward" in m.__dict__:
            continue
        name = type(m).__name__
        if name == "WanCausalConv3d":
            m.forward = partial(_causal_conv_forward, m, m.forward)
        elif name == "WanRMS_norm":
            m.forward = partial(_rms_norm_forward, m, m.forward)
        else:
            continue
        patched.append(m)
    try:
        yield
    finally:
        for m in patched:
            m.__dict__.pop("forward", None)


def decode_unclamped(vae: nn.Module, z: torch.Tensor) -> torch.Tensor:
    """``vae.decode(z).sample`` without the final clamp (module doc): the same causal loop, latent frame by frame."""
    from diffusers.models.autoencoders.autoencoder_kl_wan import unpatchify

    x = vae.post_quant_conv(z)
    vae.clear_cache()
    try:
        outs = []
        for i in range(x.shape[2]):
            vae._conv_idx = [0]
            outs.append(vae.decoder(x[:, :, i:i + 1], feat_cache=vae._feat_map, feat_idx=vae._conv_idx,
                                    first_chunk=i == 0))
        out = torch.cat(outs, 2)
    finally:
        vae.clear_cache()
    if vae.config.patch_size is not None:
        out = unpatchify(out, patch_size=vae.config.patch_size)
    return out
