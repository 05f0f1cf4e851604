"""A narrower decoder for a model's own latent space: the opt-in way to a faster decode once the exact
decode's convolutions already run at the CPU's peak (docs/training.md, "Decode speed").

Why a whole VAE folder: diffusers' ``AutoencoderKLWan`` takes a ``decoder_base_dim`` apart from the
encoder's ``base_dim``, so a VAE whose encoder and latent statistics are the model's and whose decoder
is narrower is an ordinary diffusers VAE (``from_pretrained`` loads it, no code of ours needed). The
engine decodes with it (``--decoder DIR``) and keeps encoding every condition with the model's own
VAE, so the DiT sees exactly the latents it always did. Half the width is about a quarter of the
decoder's arithmetic: a base_dim 32 decoder at half width decoded 128x128x33 3.6x faster in float32
on one core. The pixels are the narrower decoder's, not the model's: a quality trade that
``python -m pusa.training.light_decoder`` measures per kind of picture when it trains one.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from pusa.errors import ModelInputError, ModelLoadError

# What makes two Wan VAEs decode the same latents: a decoder that differs in any of these reads
# another latent space (or lays the pixels out otherwise) and would turn the DiT's output into noise.
LATENT_SPACE_FIELDS = ("z_dim", "latents_mean", "latents_std", "scale_factor_spatial", "scale_factor_temporal",
                       "patch_size", "temperal_downsample", "out_channels")


def check_latent_space(model_vae: nn.Module, decoder_vae: nn.Module, where: str) -> None:
    """Raise ``ModelLoadError`` naming the first config field in which ``decoder_vae`` does not
    decode ``model_vae``'s latents (:data:`LATENT_SPACE_FIELDS`)."""
    for name in LATENT_SPACE_FIELDS:
        mine, theirs = _field(model_vae.config, name), _field(decoder_vae.config, name)
        if not _same(mine, theirs):
            raise ModelLoadError(f"decoder {where}: its {name} is {theirs!r} but the model's VAE has {mine!r}; "
                                 f"a decoder must read its model's latent space (the fields "
                                 f"{', '.join(LATENT_SPACE_FIELDS)} must match)")


def _field(config, name: str):
    value = config.get(name) if isinstance(config, dict) else getattr(config, name, None)
    return list(value) if isinstance(value, (list, tuple)) else value


def _same(a, b) -> bool:
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b))
    if isinstance(a, float) or isinstance(b, float):
        return a is not None and b is not None and abs(float(a) - float(b)) <= 1e-6 * max(1.0, abs(float(a)))
    return a == b


def decoder_only(vae: nn.Module) -> nn.Module:
    """Drop ``vae``'s encoder and ``quant_conv`` (the model's VAE encodes): a real Wan VAE's encoder
    is half its weights. diffusers counted their caches at construction, so decoding is unaffected."""
    vae.encoder = None
    vae.quant_conv = None
    return vae


def decoder_width(vae: nn.Module) -> int:
    """The decoder's ``base_dim`` (the channels of its last stage)."""
    return int(vae.config.decoder_base_dim or vae.config.base_dim)


def narrow_vae(vae: nn.Module, width: float) -> nn.Module:
    """A copy of ``vae`` (encoder, latent statistics, ``post_quant_conv``) whose decoder has ``width``
    times the channels, initialised from the first channels of ``vae``'s decoder.

    The initialisation is a starting point for training (:mod:`pusa.training.light_decoder`), not a
    usable decoder: a pruned network has lost the sum over the dropped channels.
    """
    from diffusers import AutoencoderKLWan

    if not isinstance(width, (int, float)) or isinstance(width, bool) or not 0 < width <= 1:
        raise ModelInputError(f"width: {width!r} is not allowed; expected a number in (0, 1], e.g. 0.5")
    dim = max(1, round(decoder_width(vae) * width))
    config = {k: v for k, v in dict(vae.config).items() if not k.startswith("_")}
    config["decoder_base_dim"] = dim
    light = AutoencoderKLWan.from_config(config).to(next(vae.parameters()).dtype)
    light.encoder.load_state_dict(vae.encoder.state_dict())
    light.quant_conv.load_state_dict(vae.quant_conv.state_dict())
    light.post_quant_conv.load_state_dict(vae.post_quant_conv.state_dict())
    source = vae.decoder.state_dict()
    light.decoder.load_state_dict({name: _first_channels(name, source[name], p.shape)
                                   for name, p in light.decoder.state_dict().items()})
    return light.eval()


def _first_channels(name: str, tensor: torch.Tensor, shape: torch.Size) -> torch.Tensor:
    """``tensor`` cut to ``shape`` by keeping the first entries of every axis; a temporal upsampler's
    ``time_conv`` stacks two frames' channels on its output axis, so each frame's half is cut alone."""
    if tensor.shape == shape:
        return tensor.clone()
    if ".time_conv." in name and tensor.shape[0] % 2 == 0 and shape[0] % 2 == 0:
        halves = tensor.reshape(2, tensor.shape[0] // 2, *tensor.shape[1:])
        cut = halves[(slice(None), slice(0, shape[0] // 2), *(slice(0, s) for s in shape[1:]))]
        return cut.reshape(shape).clone()
    return tensor[tuple(slice(0, s) for s in shape)].clone()


def load_decoder(path: str | Path, model_vae: nn.Module, dtype: torch.dtype) -> nn.Module:
    """The VAE at ``path`` (a diffusers ``vae/`` folder or a ``Wan2.1_VAE.pth``-style file) as a
    decoder of ``model_vae``'s latents, without its encoder; ``ModelLoadError`` if it reads another
    latent space."""
    from pusa.loading.components import load_vae

    path = Path(path).expanduser()
    if not path.exists():
        raise ModelInputError(f"decoder: {path} does not exist; expected a VAE folder (config.json + "
                              f"diffusion_pytorch_model.safetensors) or a Wan VAE .pth file")
    light = load_vae(path, dtype)
    check_latent_space(model_vae, light, str(path))
    return decoder_only(light).eval()
