"""Named recipes: a few settings and the LoRAs they need, checked when the model loads.

``lightx2v``: LightX2V's 4-step distillation (Wan2.1 StepDistill-CfgDistill, Wan2.2 Lightning). The
distillation LoRA is given with ``--extra-lora`` (and ``--extra-lora-low`` for Wan2.2's low-noise
expert) and stacked on the Pusa LoRA; requests default to 4 steps, no classifier-free guidance
(cfg 1: one forward per step) and shift 5, LightX2V's sample shift (its step list 1000/750/500/250
shifted by 5 is exactly Pusa's 4-step schedule). A field the request sets itself wins.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from pusa.errors import InputError

from pusa.speed.names import PRESET_NAMES


@dataclass(frozen=True)
class Preset:
    name: str
    settings: dict[str, Any] = field(default_factory=dict)
    needs_extra_lora: bool = False


PRESETS = {"none": Preset("none"),
           "lightx2v": Preset("lightx2v", {"steps": 4, "cfg": 1.0, "shift": 5.0}, needs_extra_lora=True)}


def get_preset(name: str | None) -> Preset:
    if name is None:
        return PRESETS["none"]
    if name not in PRESETS:
        raise InputError(f"preset: {name!r} is not allowed; expected one of {', '.join(PRESET_NAMES)}")
    return PRESETS[name]


def check_preset_loras(preset: Preset, is_wan22: bool, extra_lora: Any, extra_lora_low: Any) -> None:
    """The distillation LoRA(s) must be given: one, or one per expert for Wan2.2."""
    if not preset.needs_extra_lora:
        return
    if extra_lora is None:
        raise InputError(f"extra_lora: --preset {preset.name} needs the distillation LoRA (--extra-lora FILE)")
    if is_wan22 and extra_lora_low is None:
        raise InputError(f"extra_lora_low: --preset {preset.name} on Wan2.2 needs the low-noise expert's "
                         f"distillation LoRA too (--extra-lora-low FILE)")


def apply_preset(settings, preset: Preset):
    """``settings`` with the preset's values for every field the request did not set itself."""
    updates = {k: v for k, v in preset.settings.items() if k not in settings.model_fields_set}
    return settings.model_copy(update=updates) if updates else settings
