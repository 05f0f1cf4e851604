"""Vectorized-timestep (VTA) flow-matching objective: the part of training that is Pusa's idea.

Choices (and why):

* Timestep table: 1000 training sigmas ``u = linspace(1, 0, 1001)[:-1]`` shifted like inference,
  ``s = shift * u / (1 + (shift - 1) * u)`` (shift 5 by default, as Wan/DiffSynth train), and
  ``t = 1000 * s``. Training and inference then agree on which noise levels matter most.
* Per-frame sampling (``mode="vta"``): every sample draws an *independent* index into that table
  for *every latent frame* (Pusa V1). ``mode="uniform"`` draws one index per sample and repeats it
  over frames: ordinary T2V training, used for the pusa-tiny base model.
* Optional condition-like draws (``cond_prob``, 0 by default): with that probability a sample's
  first frame, first few frames or first and last frame get their sigma multiplied by a random
  multiplier in [0, 0.6] (exactly 0 a quarter of the time) — the shapes that i2v, v2v and
  keyframe inference produce. This is our addition for tiny training budgets (documented in
  docs/training.md); with independent draws alone such configurations are rare.
* Loss weight per frame: DiffSynth's Wan "bell" weighting of the frame's timestep,
  ``w(t) = exp(-2 ((t - 500) / 1000)^2)``, minus its minimum over the table, normalised to mean 1
  over the table. Mid-noise frames, where the velocity is informative, count most; nearly clean
  and nearly pure-noise frames little. Frames at exactly sigma 0 get weight 0 (their target
  ``eps - x0`` cannot be predicted from a clean input and inference never updates them).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from pusa.schedule import NUM_TRAIN_TIMESTEPS, inference_sigmas



@dataclass(frozen=True)
class TimestepTable:
    """Shifted training sigmas, their DiT timesteps and their loss weights (all length 1000)."""

    sigmas: torch.Tensor
    timesteps: torch.Tensor
    weights: torch.Tensor

    @classmethod
    def create(cls, shift: float = 5.0, weighting: str = "bell") -> "TimestepTable":
        s = inference_sigmas(NUM_TRAIN_TIMESTEPS, shift)[:-1]  # the engine's own schedule, 1000 steps
        t = s * NUM_TRAIN_TIMESTEPS
        if weighting == "bell":
            y = torch.exp(-2.0 * ((t - NUM_TRAIN_TIMESTEPS / 2) / NUM_TRAIN_TIMESTEPS) ** 2)
            y = y - y.min()
            w = y * (NUM_TRAIN_TIMESTEPS / y.sum())
        elif weighting == "none":
            w = torch.ones_like(t)
        else:
            raise ValueError(f"weighting must be 'bell' or 'none', got {weighting!r}")
        return cls(s.float(), t.float(), w.float())

    def to_device(self, device: torch.device | str) -> "TimestepTable":
        return TimestepTable(self.sigmas.to(device), self.timesteps.to(device), self.weights.to(device))

    def weight_of(self, sigma: torch.Tensor) -> torch.Tensor:
        """Loss weight for arbitrary sigmas (interpolated over the table; 0 at sigma 0)."""
        t = sigma * NUM_TRAIN_TIMESTEPS
        # the table is decreasing in t; interpolate on the increasing reversed copy
        tt, ww = self.timesteps.flip(0), self.weights.flip(0)
        idx = torch.searchsorted(tt, t.clamp(tt[0], tt[-1]).contiguous()).clamp(1, len(tt) - 1)
        t0, t1 = tt[idx - 1], tt[idx]
        frac = ((t - t0) / (t1 - t0).clamp_min(1e-9)).clamp(0, 1)
        w = ww[idx - 1] + frac * (ww[idx] - ww[idx - 1])
        return torch.where(sigma <= 0, torch.zeros_like(w), w)


def sample_frame_sigmas(table: TimestepTable, batch: int, frames: int, *, mode: str, cond_prob: float,
                        generator: torch.Generator) -> torch.Tensor:
    """Per-sample, per-latent-frame sigmas ``(batch, frames)`` drawn as described in the module doc."""
    if mode == "vta":
        idx = torch.randint(0, NUM_TRAIN_TIMESTEPS, (batch, frames), generator=generator)
    elif mode == "uniform":
        idx = torch.randint(0, NUM_TRAIN_TIMESTEPS, (batch, 1), generator=generator).expand(batch, frames)
    else:
        raise ValueError(f"timestep mode must be 'vta' or 'uniform', got {mode!r}")
    sig = table.sigmas[idx].clone()
    if cond_prob > 0:
        for b in range(batch):
            if float(torch.rand((), generator=generator)) >= cond_prob:
                continue
            kind = int(torch.randint(0, 3, (), generator=generator))
            if kind == 0:
                frames_idx = [0]
            elif kind == 1:
                k = int(torch.randint(1, max(2, frames), (), generator=generator))
                frames_idx = list(range(min(k, frames - 1) or 1))
            else:
                frames_idx = sorted({0, frames - 1})
            for f in frames_idx:
                m = 0.0 if float(torch.rand((), generator=generator)) < 0.25 else \
                    0.6 * float(torch.rand((), generator=generator))
                sig[b, f] = sig[b, f] * m
    return sig


def noisy_input(x0: torch.Tensor, noise: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
    """``x_s = (1 - s) x0 + s eps`` with one sigma per (sample, latent frame); x0 is (B, C, F, H, W)."""
    s = sigma.to(x0.dtype).view(sigma.shape[0], 1, sigma.shape[1], 1, 1)
    return (1.0 - s) * x0 + s * noise


def token_timesteps(sigma: torch.Tensor, tokens_per_frame: int) -> torch.Tensor:
    """Per-token DiT timesteps ``(B, F * tokens_per_frame)``: each frame's ``1000 s`` over its tokens."""
    return (sigma * NUM_TRAIN_TIMESTEPS).repeat_interleave(tokens_per_frame, dim=1)


def vta_loss(pred: torch.Tensor, x0: torch.Tensor, noise: torch.Tensor, sigma: torch.Tensor,
             table: TimestepTable) -> torch.Tensor:
    """Weighted MSE to the flow target ``eps - x0``: per-frame MSE times the frame's timestep weight."""
    target = noise - x0
    per_frame = (pred.float() - target.float()).pow(2).mean(dim=(1, 3, 4))  # (B, F)
    w = table.weight_of(sigma.float())
    return (per_frame * w).sum() / w.numel()

