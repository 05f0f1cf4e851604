"""The speed options of one loaded pipeline, validated in one place and applied to the DiTs in order.

Order matters: the per-frame modulation hooks go on first (every later diffusers hook wraps them),
then the LoRA merge state is taken while weights are still in their loaded dtype, then the rest.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from pusa.speed.modulation import check_modulation, install_per_frame


@dataclass(frozen=True)
class SpeedOptions:
    """What ``PusaPipeline.from_pretrained`` was asked for (CLI, service and trainer pass the same keywords)."""

    modulation: str = "per_frame"

    def __post_init__(self) -> None:
        check_modulation(self.modulation)

    def prepare(self, transformers: list[torch.nn.Module]) -> None:
        """Hooks that must sit innermost, installed right after loading."""
        for dit in transformers:
            install_per_frame(dit)

    def public(self) -> dict:
        """The options as the MP4 sidecar records them."""
        return {"modulation": self.modulation}
