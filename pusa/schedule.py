"""Per-frame sigma schedules for vectorized-timestep (VTA) sampling.

Pusa's one idea at inference is that each latent frame has its own noise level: the global
schedule is scaled per frame by a multiplier (1 for frames to generate, the user's noise
multiplier for condition frames). Everything else is ordinary flow matching.
"""

from __future__ import annotations

import torch

NUM_TRAIN_TIMESTEPS = 1000


def inference_sigmas(steps: int, shift: float = 5.0) -> torch.Tensor:
    """Shifted sigmas ``s_0 .. s_N`` (float64, ``s_0 = 1``, ``s_N = 0``) as in Pusa V1 inference."""
    if steps < 1:
        raise ValueError(f"steps must be >= 1, got {steps}")
    u = torch.linspace(1.0, 0.0, steps + 1, dtype=torch.float64)[:-1]
    s = shift * u / (1.0 + (shift - 1.0) * u)
    return torch.cat([s, torch.zeros(1, dtype=torch.float64)])


def frame_sigmas(sigmas: torch.Tensor, multipliers: torch.Tensor) -> torch.Tensor:
    """The table ``s_{k,f} = s_k * m_f`` of shape ``(steps + 1, frames)``."""
    return sigmas.to(torch.float64)[:, None] * multipliers.to(torch.float64)[None, :]


def frame_timesteps(sigma_row: torch.Tensor) -> torch.Tensor:
    """DiT timesteps ``t_f = 1000 * s_f`` truncated to integers, as the reference implementation does."""
    return torch.trunc(sigma_row * NUM_TRAIN_TIMESTEPS)


def frame_multipliers(latent_frames: int, positions: list[int] | None,
                      multipliers: list[float] | None) -> torch.Tensor:
    """Multiplier per latent frame: 1 where the model generates, the condition's multiplier elsewhere."""
    m = torch.ones(latent_frames, dtype=torch.float64)
    for p, v in zip(positions or [], multipliers or [], strict=True):
        m[p] = float(v)
    return m
