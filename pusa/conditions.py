"""Every task is only a way to build ``(condition latents, per-frame multipliers)`` for the sampler.

- t2v: no condition, every multiplier 1.
- i2v / keyframes: each image is encoded alone as a one-frame video (the causal VAE's first-frame
  latent) and placed at its latent position with its multiplier.
- v2v: the whole input video is encoded once and the latents at the chosen positions are kept.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np
import torch
from PIL import Image

from pusa.errors import MediaError
from pusa.media import fit_image
from pusa.schedule import frame_multipliers
from pusa.settings import GenerationSettings, latent_frames

# Encodes pixels (1, 3, T, H, W) in [-1, 1] into normalised latents (1, 16, (T-1)//4+1, H/8, W/8).
PixelEncoder = Callable[[torch.Tensor], torch.Tensor]


@dataclass
class Conditions:
    """Clean latents at the conditioned frames (``None`` for t2v) and one multiplier per latent frame."""

    latents: torch.Tensor | None
    multipliers: torch.Tensor


def pixels(frames: list[Image.Image]) -> torch.Tensor:
    """PIL frames -> (1, 3, T, H, W) float32 in [-1, 1]."""
    arr = np.stack([np.asarray(f, dtype=np.uint8) for f in frames])  # T, H, W, 3
    t = torch.from_numpy(arr).float().div_(127.5).sub_(1.0)
    return t.permute(3, 0, 1, 2).unsqueeze(0).contiguous()


def frames_needed(position: int) -> int:
    """Pixel frames a video must have for latent ``position`` to exist (4p + 1)."""
    return 4 * position + 1


def build_conditions(settings: GenerationSettings, encode: PixelEncoder, latent_shape: tuple[int, ...],
                     images: list[Image.Image] | None = None,
                     video: list[Image.Image] | None = None) -> Conditions:
    """Conditions for a resolved request; images/video are already decoded, not yet resized."""
    n_latent = latent_frames(settings.frames)
    positions = settings.cond_positions or []
    multipliers = frame_multipliers(n_latent, positions, settings.noise_multipliers)
    if settings.task == "t2v":
        return Conditions(None, multipliers)
    cond = torch.zeros(latent_shape, dtype=torch.float32)
    w, h, fit = settings.width, settings.height, settings.fit
    if settings.task in ("i2v", "keyframes"):
        for pos, img in zip(positions, images or [], strict=True):
            z = encode(pixels([fit_image(img, w, h, fit)]))
            cond[:, :, pos] = z[:, :, 0].float().cpu()
    elif settings.task == "v2v":
        frames = list(video or [])
        need = frames_needed(max(positions))
        if len(frames) < need:
            raise MediaError(f"video: position {max(positions)} needs at least {need} frames of the input video; "
                             f"it has {len(frames)}")
        # Encode only as much of the video as the output holds, cut to 4k+1 frames for the causal VAE.
        usable = min(len(frames), settings.frames)
        usable = (usable - 1) // 4 * 4 + 1
        z = encode(pixels([fit_image(f, w, h, fit) for f in frames[:usable]]))
        for pos in positions:
            cond[:, :, pos] = z[:, :, pos].float().cpu()
    return Conditions(cond, multipliers)
