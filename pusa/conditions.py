"""Conditions: clean latents at latent positions plus one noise multiplier per latent frame.

Every task only produces ``{position: clean latent frame}`` (see :mod:`pusa.tasks`); this module
places them into one latent tensor with the per-frame multipliers the sampler needs. Latents may
also come in directly as :class:`Anchor`\\ s, already encoded (the previous window of a long video,
a cached encoding), so a caller never has to decode and re-encode them.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from pusa.errors import InputError
from pusa.schedule import frame_multipliers


@dataclass(frozen=True)
class Anchor:
    """An already encoded clean latent frame ``(1, C, h, w)`` and its noise multiplier (0 keeps it exact)."""

    latent: torch.Tensor
    multiplier: float


@dataclass
class Conditions:
    """Clean latents at the conditioned frames (``None`` when nothing is conditioned) and one
    multiplier per latent frame (1 where the model generates)."""

    latents: torch.Tensor | None
    multipliers: torch.Tensor


def place_conditions(latent_shape: tuple[int, ...], placed: dict[int, torch.Tensor], positions: list[int] | None,
                     multipliers: list[float] | None, anchors: dict[int, Anchor] | None = None) -> Conditions:
    """Put each clean latent frame at its position; positions without a latent stay free.

    ``placed`` holds the task's encoded inputs at ``positions`` (with ``multipliers`` in the same
    order); ``anchors`` add pre-encoded latents at other positions with their own multipliers.
    """
    anchors = anchors or {}
    clash = sorted(set(anchors) & set(positions or []))
    if clash:
        raise InputError(f"cond_positions: position {clash[0]} is already held by an anchor latent")
    n_latent = latent_shape[2]
    out_of_range = [p for p in anchors if not 0 <= p < n_latent]
    if out_of_range:
        raise InputError(f"anchors: position {out_of_range[0]} is outside 0 to {n_latent - 1}")
    all_positions = list(positions or []) + list(anchors)
    all_multipliers = list(multipliers or []) + [a.multiplier for a in anchors.values()]
    mult = frame_multipliers(n_latent, all_positions, all_multipliers)
    if not placed and not anchors:
        return Conditions(None, mult)
    cond = torch.zeros(latent_shape, dtype=torch.float32)
    for pos, z in placed.items():
        cond[:, :, pos] = z
    for pos, a in anchors.items():
        cond[:, :, pos] = a.latent.float().cpu()
    return Conditions(cond, mult)
