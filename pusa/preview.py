"""Live previews: the current estimate of the clean video, seen without calling the VAE.

After every denoising step the sampler knows its estimate of the clean latents
(``x0 = x - sigma * v``). A fixed linear map from latent channels to RGB, fitted once per model on
solid colours and gradients run through its own VAE encoder (least squares), turns that estimate
into a small picture in microseconds: enough to see after two steps that a run is going wrong and
cancel it. ComfyUI-style previews use the same idea with hand-published factors; fitting them makes
them right for any VAE, the bundled one included.
"""

from __future__ import annotations

import numpy as np
import torch

from pusa.family import ModelFamily
from pusa.latent_codec import LatentCodec

MAX_PREVIEW_FRAMES = 8


def _fit_images(size: int) -> list[np.ndarray]:
    """Solid colours (the corners and edges of the RGB cube, greys) and colour gradients, HxWx3 in [-1, 1]."""
    levels = (-1.0, 0.0, 1.0)
    solids = [np.full((size, size, 3), (r, g, b), np.float32) for r in levels for g in levels for b in levels]
    ramp = np.linspace(-1.0, 1.0, size, dtype=np.float32)
    grads = []
    for c in range(3):
        img = np.zeros((size, size, 3), np.float32)
        img[..., c] = ramp[None, :]
        img[..., (c + 1) % 3] = ramp[:, None]
        grads.append(img)
    return solids + grads


class LatentPreview:
    """``rgb = latent @ weight + bias`` per latent pixel (weight ``(C, 3)``), fitted for one VAE."""

    def __init__(self, weight: torch.Tensor, bias: torch.Tensor):
        self.weight = weight.float()
        self.bias = bias.float()

    @classmethod
    @torch.no_grad()
    def fit(cls, codec: LatentCodec, family: ModelFamily) -> "LatentPreview":
        size = family.size_multiple * max(1, 64 // family.size_multiple)
        feats, targets = [], []
        for img in _fit_images(size):
            px = torch.from_numpy(img).permute(2, 0, 1)[None, :, None]  # (1, 3, 1, H, W)
            z = codec.encode(px)[0, :, 0]  # (C, h, w), normalised
            h, w = z.shape[-2:]
            target = torch.nn.functional.adaptive_avg_pool2d(px[0, :, 0], (h, w))  # (3, h, w)
            feats.append(z.reshape(z.shape[0], -1).T)
            targets.append(target.reshape(3, -1).T)
        x = torch.cat(feats).double()
        y = torch.cat(targets).double()
        x1 = torch.cat([x, torch.ones(x.shape[0], 1, dtype=x.dtype)], dim=1)
        ridge = 1e-3 * torch.eye(x1.shape[1], dtype=x.dtype)
        solution = torch.linalg.solve(x1.T @ x1 + ridge, x1.T @ y)  # (C + 1, 3)
        return cls(solution[:-1], solution[-1])

    def image(self, latents: torch.Tensor, max_frames: int = MAX_PREVIEW_FRAMES) -> np.ndarray:
        """Up to ``max_frames`` evenly spaced latent frames side by side, uint8 ``(h, w * k, 3)``."""
        z = latents.detach().float().cpu()[0]  # (C, F, h, w)
        n = z.shape[1]
        picks = sorted({round(i * (n - 1) / max(1, min(max_frames, n) - 1)) for i in range(min(max_frames, n))})
        frames = []
        for f in picks:
            rgb = torch.einsum("chw,cd->hwd", z[:, f], self.weight) + self.bias
            frames.append(((rgb.clamp(-1, 1) + 1.0) * 127.5).round().to(torch.uint8).numpy())
        return np.concatenate(frames, axis=1)
