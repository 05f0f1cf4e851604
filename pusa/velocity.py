"""The sampler's model for Wan DiTs: expert choice, per-frame timesteps and classifier-free guidance.

The sampler hands over one timestep per latent frame. The Wan DiT in diffusers takes either one
timestep for the whole video or one per token; Pusa needs more than one whenever frames differ (a
condition frame is less noisy). ``modulation="per_frame"`` (default) gives the DiT one timestep per
latent frame through our per-frame forward (``pusa.speed.modulation``: the time embedding and
modulation once per frame, same numbers, a fraction of the memory); ``"per_token"`` gives diffusers
each frame's value repeated over that frame's tokens, frame-major (``repeat_interleave``, never
``repeat``). Wan2.2's two experts are switched on the
step's largest timestep, so a clean condition frame never drags a noisy step onto the low-noise
expert.
"""

from __future__ import annotations

from contextlib import nullcontext
from functools import partial

import torch

from pusa.family import ModelFamily
from pusa.sampler import guided
from pusa.schedule import frame_sigmas
from pusa.schedule import frame_timesteps as schedule_timesteps
from pusa.speed.caching import has_cache, reset_cache
from pusa.speed.magcache import plan_steps as plan_magcache
from pusa.speed.modulation import block_runs, check_modulation, frame_timesteps, install_per_frame


class WanVelocity:
    """Callable ``(x, t, step) -> v`` over one or two Wan DiTs; records which expert ran at each step
    and how many DiT forwards a step cache skipped (``stats``). One instance per request: a step
    cache's state is reset when it is made."""

    def __init__(self, transformers: list[torch.nn.Module], family: ModelFamily, context: torch.Tensor,
                 negative: torch.Tensor | None, cfg: float, latent_hw: tuple[int, int], device: torch.device,
                 dtype: torch.dtype, modulation: str = "per_frame"):
        self.family = family
        self.modulation = check_modulation(modulation)
        if modulation == "per_frame":
            for dit in transformers:
                install_per_frame(dit)
        self.device = device
        self.dtype = dtype
        self.tokens_per_frame = family.tokens_per_frame(*latent_hw)
        self.boundary = (family.boundary or 0.0) * 1000.0
        self.experts: list[str] = []
        self.forwards = 0
        self.skipped = 0
        self.context = context
        for dit in transformers:
            reset_cache(dit)
        self._dits = list(transformers)
        self._models = [guided(partial(self.forward, dit), context, negative, cfg) for dit in transformers]

    def timestep(self, t: torch.Tensor) -> torch.Tensor:
        """One scalar when every frame agrees (cheaper for the DiT), else one value per frame or per token."""
        return frame_timesteps(t, self.modulation, self.tokens_per_frame).to(self.device)

    def forward(self, dit: torch.nn.Module, x: torch.Tensor, t: torch.Tensor, context: torch.Tensor) -> torch.Tensor:
        self.forwards += 1
        runs = block_runs(dit)
        branch = dit.cache_context("cond" if context is self.context else "uncond") if has_cache(dit) else nullcontext()
        with branch:
            out = dit(hidden_states=x.to(self.device, self.dtype), timestep=self.timestep(t),
                      encoder_hidden_states=context, return_dict=False)[0]
        if runs is not None and block_runs(dit) == runs:
            self.skipped += 1
        return out

    @property
    def stats(self) -> dict[str, int]:
        """DiT forwards asked for and how many of them a step cache answered without running the blocks."""
        return {"forwards": self.forwards, "skipped": self.skipped}

    def plan_steps(self, sigmas: torch.Tensor, multipliers: torch.Tensor) -> list[int]:
        """How many steps each expert runs in this request (the sampler's own timesteps), told to the
        step caches that plan per request (MagCache); returns the counts."""
        table = frame_sigmas(sigmas, multipliers)
        counts = [0] * len(self._models)
        for k in range(table.shape[0] - 1):
            counts[self.expert(schedule_timesteps(table[k]).float())] += 1
        for dit, n in zip(self._dits, counts):
            plan_magcache(dit, n)
        return counts

    def expert(self, t: torch.Tensor) -> int:
        """0 (high noise, or the only DiT) while the step's largest timestep is at or above the boundary."""
        return 0 if not self.family.is_wan22 or float(t.max()) >= self.boundary else 1

    def __call__(self, x: torch.Tensor, t: torch.Tensor, step: int) -> torch.Tensor:
        index = self.expert(t)
        self.experts.append(("high" if index == 0 else "low") if self.family.is_wan22 else "single")
        return self._models[index](x.to(self.device), t)
