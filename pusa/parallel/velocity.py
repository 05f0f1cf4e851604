"""The sampler's model on one rank: this rank's guidance branch, context-parallel inside the DiT,
both branches combined after one all-gather per step.

CFG-parallel: with ``cfg`` 2, the first half of the ranks runs the positive prompt and the second
half the negative one; each rank then all-gathers the velocity of its partner (the rank holding the
same tokens of the other branch) and forms ``v_neg + g (v_pos - v_neg)`` exactly as
:func:`pusa.sampler.guided` does, so every rank continues with the same latents. A request without
guidance (``cfg`` 1, possible in the service) runs the positive branch on both halves and gathers
nothing.

Context parallelism (diffusers' plan for the Wan DiT) splits the tokens, and the per-frame timestep
with them, evenly over the ring x Ulysses ranks. Per-frame modulation needs each rank to hold whole
runs of tokens that share a timestep: when the ranks do not divide the latent frames, each frame's
timestep is given ``k`` times (``k`` runs of ``tokens_per_frame / k`` tokens, same value), which is
the same computation cut finer.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch
import torch.distributed as dist

from pusa.velocity import WanVelocity

if TYPE_CHECKING:
    from pusa.parallel.runtime import RankGroup
    from pusa.pipeline import PusaPipeline


class ContextParallelVelocity(WanVelocity):
    """:class:`WanVelocity` whose per-frame timesteps split evenly over ``context`` ranks."""

    def __init__(self, *args, context_degree: int = 1, **kwargs):
        super().__init__(*args, **kwargs)
        self.context_degree = context_degree

    def timestep(self, t: torch.Tensor) -> torch.Tensor:
        from pusa.parallel.runtime import pseudo_frames

        ts = super().timestep(t)
        if self.context_degree > 1 and self.modulation == "per_frame" and ts.ndim == 2:
            ts = ts.repeat_interleave(pseudo_frames(ts.shape[1], self.context_degree), dim=1)
        return ts


class ParallelVelocity:
    """Callable ``(x, t, step) -> v`` like :class:`WanVelocity`, on one rank of a :class:`RankGroup`."""

    def __init__(self, pipe: "PusaPipeline", group: "RankGroup", context: torch.Tensor,
                 negative: torch.Tensor | None, cfg: float, latent_hw: tuple[int, int]):
        self.cfg = cfg
        self.timeout_s = group.timeout_s
        guided = cfg != 1.0 and negative is not None
        self.split_branches = group.degrees.cfg == 2 and guided
        self.cfg_group = group.cfg_group
        if self.split_branches:
            branch = negative if group.branch == "negative" else context
            context, negative, inner_cfg = branch, None, 1.0
        else:
            inner_cfg = cfg
        self.inner = ContextParallelVelocity(pipe.transformers, pipe.family, context, negative, inner_cfg, latent_hw,
                                             pipe.device, pipe.dtype, modulation=pipe.speed.modulation,
                                             context_degree=group.degrees.context)

    def __getattr__(self, name: str):
        """What the pipeline reads of its model (``experts``, ``stats``, ...) is the inner model's; with
        CFG-parallel, ``stats`` count this rank's branch."""
        if name == "inner":
            raise AttributeError(name)
        return getattr(self.inner, name)

    def __call__(self, x: torch.Tensor, t: torch.Tensor, step: int) -> torch.Tensor:
        from pusa.parallel.runtime import collective

        with collective(f"denoising step {step + 1}", self.timeout_s):  # the DiT's own all-to-alls too
            v = self.inner(x, t, step)
            if not self.split_branches:
                return v
            v = v.contiguous()
            parts = [torch.empty_like(v) for _ in range(2)]
            dist.all_gather(parts, v, group=self.cfg_group)  # [positive, negative]: cfg index order
        v_pos, v_neg = parts
        return v_neg + self.cfg * (v_pos - v_neg)
