"""The one denoising loop shared by every task: Euler steps over a per-frame sigma table.

Tasks differ only in the condition latents and per-frame multipliers they pass in; the loop knows
nothing about images or videos. A frame whose multiplier is 0 is never touched, so its clean
condition latent comes out bit-exact.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Protocol

import torch

from pusa.schedule import frame_sigmas, frame_timesteps


class VelocityModel(Protocol):
    """Predicts the flow velocity ``v = eps - x0`` for latents ``x`` at per-frame timesteps ``t``.

    ``x`` is ``(1, C, F, H, W)`` float32 and ``t`` is ``(F,)`` (integer-valued floats, 0..1000);
    ``step`` lets a caller pick an expert (Wan2.2) or report progress.
    """

    def __call__(self, x: torch.Tensor, t: torch.Tensor, step: int) -> torch.Tensor: ...


@dataclass(frozen=True)
class SamplerStep:
    """What a step callback learns: which step just finished, of how many, and its timesteps."""

    step: int
    total: int
    timesteps: torch.Tensor
    denoised: torch.Tensor | None = None  # the estimate of the clean latents this step made (x - sigma v)


def initial_latents(noise: torch.Tensor, cond: torch.Tensor | None, sigma0: torch.Tensor) -> torch.Tensor:
    """``x_f = (1 - s_{0,f}) c_f + s_{0,f} eps_f``; free frames (s = 1) are pure noise."""
    if cond is None:
        return noise.clone()
    s = sigma0.to(noise.dtype).view(1, 1, -1, 1, 1)
    x = (1.0 - s) * cond + s * noise
    exact = (sigma0 == 0).view(1, 1, -1, 1, 1)
    return torch.where(exact, cond, x)


@torch.no_grad()
def sample(model: VelocityModel, noise: torch.Tensor, sigmas: torch.Tensor, multipliers: torch.Tensor,
           cond: torch.Tensor | None = None,
           callback: Callable[[SamplerStep], None] | None = None) -> torch.Tensor:
    """Run the VTA Euler loop and return clean latents (same shape as ``noise``).

    ``sigmas`` are the global ``s_0..s_N``; ``multipliers`` one per latent frame; ``cond`` holds the
    clean condition latents at their frames (anything elsewhere is ignored since those frames
    start as noise).
    """
    table = frame_sigmas(sigmas, multipliers).to(noise.device)  # (N + 1, F), float64
    frozen = (multipliers == 0).to(noise.device).view(1, 1, -1, 1, 1)
    x = initial_latents(noise, cond, table[0])
    steps = table.shape[0] - 1
    for k in range(steps):
        t = frame_timesteps(table[k]).float()
        v = model(x, t, k).float()
        ds = (table[k + 1] - table[k]).to(x.dtype).view(1, 1, -1, 1, 1)
        if callback is not None:  # x0 = x - sigma v, before x moves on (frozen frames are clean already)
            denoised = torch.where(frozen, x, x - v * table[k].to(x.dtype).view(1, 1, -1, 1, 1))
        x = torch.where(frozen, x, x + v * ds)
        if callback is not None:
            callback(SamplerStep(step=k + 1, total=steps, timesteps=t, denoised=denoised))
    return x


def guided(forward: Callable[[torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor],
           context: torch.Tensor, negative_context: torch.Tensor | None, scale: float,
           ) -> Callable[[torch.Tensor, torch.Tensor], torch.Tensor]:
    """Classifier-free guidance ``v = v_neg + g (v_pos - v_neg)``; ``g = 1`` costs one forward."""

    def velocity(x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        v_pos = forward(x, t, context).float()
        if scale == 1.0 or negative_context is None:
            return v_pos
        v_neg = forward(x, t, negative_context).float()
        return v_neg + scale * (v_pos - v_neg)

    return velocity
