"""Pixels <-> normalised latents through the Wan VAE, decoded frame by frame.

Why not just ``vae.decode``: diffusers' Wan decode already runs one latent frame at a time through
its causal cache, but only returns when the whole video is done. Driving the same loop here (same
modules, same cache, same order, so the output is bit-identical) gives a progress report and a
cancel point after every latent frame, and lets a caller stream pixel chunks to a file instead of
holding the whole video. Tiled decoding (``--vae-tiling``) keeps diffusers' own path.

Speed (``benchmarks/bench_decode.py``): on a CPU, PyTorch sends a float32 3-D convolution with batch
1 to its slow im2col kernel (``slow_conv3d``) unless ``N*C*T*H`` of the input exceeds 20480; the Wan
decoder keeps ``C*H`` nearly constant across its stages, so a small VAE (pusa-tiny, or base_dim 32
at 128 px) never crosses that line and spends most of its decode there, while a real Wan VAE at
480p always uses oneDNN. The RMS norms' ``F.normalize`` over the channel dimension is a strided
reduction that costs about 13x a plain sum of squares. ``fast_decode=True`` calls oneDNN's
convolution directly for the decoder's float32 convolutions and computes the channel RMS norms as
``x / sqrt(sum(x*x))`` during a decode: the same arithmetic in another summation order, so results
differ in the last float bits (a uint8 level at most, rarely; measured in the benchmark). It is
opt-in; the default keeps PyTorch's and diffusers' kernels and the pinned outputs.
"""

from __future__ import annotations

from contextlib import contextmanager, nullcontext
from functools import partial
from typing import Callable, Iterator

import numpy as np
import torch
from torch import nn

from pusa.errors import ModelLoadError

# Called after each decoded latent frame with (done, total); may raise to cancel.
FrameCallback = Callable[[int, int], None]
def _onednn_conv_forward(conv: nn.Conv3d, x: torch.Tensor, weight: torch.Tensor,
                         bias: torch.Tensor | None) -> torch.Tensor:
    return torch.mkldnn_convolution(x, weight, bias, conv.padding, conv.stride, conv.dilation, conv.groups)


_HALF = (torch.bfloat16, torch.float16)


def _direct_rms_norm_forward(norm: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """diffusers' channel-first ``WanRMS_norm`` with the norm as a plain sum of squares (in float32
    for a half-precision input, as diffusers normalises it)."""
    xf = x.float() if x.dtype in _HALF else x
    normalized = (xf / (xf * xf).sum(1, keepdim=True).sqrt().clamp_min(1e-12)).to(x.dtype)
    return normalized * norm.scale * norm.gamma + norm.bias


@contextmanager
def _fast_kernels(module: nn.Module) -> Iterator[None]:
    """While inside: ``module``'s float32 CPU zero-padded Conv3d layers run on oneDNN and its
    channel-first RMS norms use a direct sum of squares (see the module doc); restored on exit.

    A bfloat16 decoder's convolutions already go to oneDNN (and on a CPU with AVX512-BF16 or AMX
    run about twice as fast as float32 ones); its norms, diffusers' strided ``F.normalize`` in
    float32, were then a fifth of a mid-size decode, so they are replaced too."""
    patched = []
    for m in module.modules():
        if "_conv_forward" in m.__dict__ or "forward" in m.__dict__:
            continue
        if isinstance(m, nn.Conv3d) and m.padding_mode == "zeros" and m.weight.device.type == "cpu" \
                and m.weight.dtype == torch.float32:
            m._conv_forward = partial(_onednn_conv_forward, m)
            patched.append((m, "_conv_forward"))
        elif type(m).__name__ == "WanRMS_norm" and m.channel_first and m.gamma.device.type == "cpu" \
                and m.gamma.dtype in (torch.float32, *_HALF):
            m.forward = partial(_direct_rms_norm_forward, m)
            patched.append((m, "forward"))
    try:
        yield
    finally:
        for m, name in patched:
            m.__dict__.pop(name, None)


class LatentCodec:
    """The VAE of one model with its per-channel latent normalisation (mean/std from its config)."""

    def __init__(self, vae: nn.Module, device: torch.device, fast_decode: bool = False,
                 decoder: nn.Module | None = None):
        if not isinstance(fast_decode, bool):
            raise ValueError(f"fast_decode: {fast_decode!r} is not allowed; expected True or False")
        self.vae = vae
        # a narrower VAE of the same latent space that decodes in vae's place (pusa.light_decoder);
        # encoding always stays with vae, whose latents the DiT was trained on
        self.decoder = decoder
        self.device = device
        self.fast_decode = fast_decode  # faster small-VAE decode on CPU, not bit-exact (module doc)
        cfg = vae.config
        self.mean = torch.tensor(cfg.latents_mean, dtype=torch.float32).view(1, -1, 1, 1, 1)
        self.std = torch.tensor(cfg.latents_std, dtype=torch.float32).view(1, -1, 1, 1, 1)
        if self.mean.shape[1] != cfg.z_dim or self.std.shape[1] != cfg.z_dim:
            raise ModelLoadError(f"VAE config: latents_mean/latents_std have {self.mean.shape[1]}/{self.std.shape[1]} "
                                 f"values for {cfg.z_dim} latent channels")

    @property
    def dtype(self) -> torch.dtype:
        return next(self.vae.parameters()).dtype

    @torch.no_grad()
    def encode(self, px: torch.Tensor, callback: FrameCallback | None = None) -> torch.Tensor:
        """Pixels ``(1, 3, T, H, W)`` in [-1, 1] -> normalised latents (float32, CPU).

        Runs diffusers' causal encode loop (first frame, then chunks of ``stride`` frames) with a
        report and a cancel point after each chunk; the result is the posterior mode, as
        ``vae.encode(...).latent_dist.mode()`` gives it.
        """
        from diffusers.models.autoencoders.autoencoder_kl_wan import patchify

        vae = self.vae
        x = px.to(self.device, self.dtype)
        if vae.config.patch_size is not None:
            x = patchify(x, patch_size=vae.config.patch_size)
        if getattr(vae, "use_tiling", False) and (x.shape[-1] > vae.tile_sample_min_width
                                                  or x.shape[-2] > vae.tile_sample_min_height):
            z = vae.encode(px.to(self.device, self.dtype)).latent_dist.mode()
            if callback is not None:
                callback(1, 1)
            return (z.float().cpu() - self.mean) / self.std
        hook = getattr(vae, "_hf_hook", None)
        if hook is not None and hasattr(hook, "pre_forward"):
            hook.pre_forward(vae)
        stride = vae.config.scale_factor_temporal or 4
        chunks = [x[:, :, :1]] + [x[:, :, 1 + stride * i:1 + stride * (i + 1)]
                                  for i in range((x.shape[2] - 1) // stride)]
        vae.clear_cache()
        try:
            outs = []
            for i, chunk in enumerate(chunks):
                vae._enc_conv_idx = [0]
                outs.append(vae.encoder(chunk, feat_cache=vae._enc_feat_map, feat_idx=vae._enc_conv_idx))
                if callback is not None:
                    callback(i + 1, len(chunks))
            moments = vae.quant_conv(torch.cat(outs, 2))
        finally:
            vae.clear_cache()
        z = torch.chunk(moments, 2, dim=1)[0]  # the posterior's mean: its mode
        return (z.float().cpu() - self.mean) / self.std

    @property
    def decoding_vae(self) -> nn.Module:
        """The VAE that decodes: the light decoder when one is loaded, else the model's own."""
        return self.decoder if self.decoder is not None else self.vae

    def _tiled(self, latents: torch.Tensor) -> bool:
        vae = self.decoding_vae
        if not getattr(vae, "use_tiling", False):
            return False
        ratio = vae.spatial_compression_ratio
        return (latents.shape[-1] > vae.tile_sample_min_width // ratio
                or latents.shape[-2] > vae.tile_sample_min_height // ratio)

    @torch.no_grad()
    def decode_chunks(self, latents: torch.Tensor, callback: FrameCallback | None = None) -> Iterator[np.ndarray]:
        """Yield uint8 pixel frames ``(t, H, W, 3)`` chunk by chunk, one latent frame at a time."""
        vae = self.decoding_vae
        z = (latents.float().cpu() * self.std + self.mean).to(self.device, next(vae.parameters()).dtype)
        n = z.shape[2]
        if self._tiled(z):
            yield _to_uint8(vae.decode(z, return_dict=False)[0])
            if callback is not None:
                callback(n, n)
            return
        hook = getattr(vae, "_hf_hook", None)
        if hook is not None and hasattr(hook, "pre_forward"):
            hook.pre_forward(vae)  # accelerate's offload hook, as diffusers' decode would call it
        vae.clear_cache()
        fast = self.fast_decode and torch.backends.mkldnn.is_available()
        try:
            with _fast_kernels(vae.decoder) if fast else nullcontext():
                yield from self._decode_frames(z, n, callback)
        finally:
            vae.clear_cache()

    def _decode_frames(self, z: torch.Tensor, n: int, callback: FrameCallback | None) -> Iterator[np.ndarray]:
        """diffusers' causal decode loop, one latent frame per iteration (cache reset by the caller)."""
        from diffusers.models.autoencoders.autoencoder_kl_wan import unpatchify

        vae = self.decoding_vae
        x = vae.post_quant_conv(z)
        for i in range(n):
            vae._conv_idx = [0]
            out = vae.decoder(x[:, :, i:i + 1], feat_cache=vae._feat_map, feat_idx=vae._conv_idx,
                              **({"first_chunk": True} if i == 0 else {}))
            if vae.config.patch_size is not None:
                out = unpatchify(out, patch_size=vae.config.patch_size)
            yield _to_uint8(torch.clamp(out, min=-1.0, max=1.0))
            if callback is not None:
                callback(i + 1, n)

    def decode(self, latents: torch.Tensor, callback: FrameCallback | None = None) -> np.ndarray:
        """Normalised latents -> uint8 frames ``(T, H, W, 3)``."""
        return np.concatenate(list(self.decode_chunks(latents, callback)), axis=0)


def _to_uint8(video: torch.Tensor) -> np.ndarray:
    video = ((video.float().cpu().clamp(-1, 1) + 1.0) * 127.5).round().to(torch.uint8)
    return video[0].permute(1, 2, 3, 0).numpy()
