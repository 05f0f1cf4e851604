"""The speed options of one loaded pipeline, validated in one place and applied to the DiTs in order.

Order matters: the per-frame modulation hooks go on first (every later diffusers hook wraps them),
then the LoRA merge state is taken while weights are still in their loaded dtype, then the rest.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from pusa.errors import InputError, SettingsError
from pusa.speed.caching import check_cache, enable_cache
from pusa.speed.kernels import check_attention, compile_blocks, set_attention
from pusa.speed.modulation import check_modulation, install_per_frame
from pusa.speed.names import PRESET_NAMES
from pusa.speed.presets import apply_preset, check_preset_loras, get_preset
from pusa.speed.weights import check_weights, store_fp8


@dataclass(frozen=True)
class SpeedOptions:
    """What ``PusaPipeline.from_pretrained`` was asked for (CLI, service and trainer pass the same keywords)."""

    modulation: str = "per_frame"
    weights: str = "bf16"
    cache: str = "none"
    cache_threshold: float | None = None
    attention: str = "auto"
    compile: bool = False
    preset: str = "none"

    def __post_init__(self) -> None:
        check_modulation(self.modulation)
        check_weights(self.weights)
        _, threshold = check_cache(self.cache, self.cache_threshold)
        object.__setattr__(self, "cache_threshold", threshold)
        check_attention(self.attention)
        get_preset(self.preset)
        if not isinstance(self.compile, bool):
            raise InputError(f"compile: expected true or false, got {self.compile!r}")

    def prepare(self, transformers: list[torch.nn.Module]) -> None:
        """Hooks that must sit innermost, installed right after loading."""
        for dit in transformers:
            install_per_frame(dit)

    def apply(self, transformers: list[torch.nn.Module], compute_dtype: torch.dtype,
              mag_ratios: list[list[float]] | None = None) -> None:
        """Storage, caches, kernels: after the LoRA merge state is taken, before the models are placed."""
        for i, dit in enumerate(transformers):
            if self.weights == "fp8":
                store_fp8(dit, compute_dtype)
            enable_cache(dit, self.cache, self.cache_threshold, mag_ratios[i] if mag_ratios else None)
            set_attention(dit, self.attention)
            if self.compile:
                compile_blocks(dit)

    def check_loras(self, is_wan22: bool, extra_lora: object, extra_lora_low: object) -> None:
        """The preset's LoRAs are given (checked before anything loads)."""
        check_preset_loras(get_preset(self.preset), is_wan22, extra_lora, extra_lora_low)

    def available_presets(self, extra_lora_loaded: bool) -> list[str]:
        return [name for name in PRESET_NAMES if extra_lora_loaded or not get_preset(name).needs_extra_lora]

    def request_defaults(self, settings, extra_lora_loaded: bool):
        """The job's preset (its own, else the one loaded with) filled into every field it leaves unset.

        A job may pick its preset (API, studio), but the distillation LoRA is merged at load time, so
        a preset that needs one is refused when none was loaded. A job that turns the preset off on a
        model loaded for it gets the distillation LoRA at scale 0 unless it sets ``extra_lora_scale``:
        that LoRA makes 30-step CFG sampling worse, not better. The resolved settings name the preset.
        """
        name = settings.preset if settings.preset is not None else self.preset
        preset = get_preset(name)
        if preset.needs_extra_lora and not extra_lora_loaded:
            raise SettingsError.single("preset", f"{name} needs its distillation LoRA, and this model was loaded "
                                                 f"without it (start with --extra-lora FILE, and --extra-lora-low "
                                                 f"FILE for Wan2.2); allowed here: "
                                                 f"{', '.join(self.available_presets(extra_lora_loaded))}")
        updates: dict = {"preset": name}
        if (get_preset(self.preset).needs_extra_lora and not preset.needs_extra_lora
                and "extra_lora_scale" not in settings.model_fields_set):
            updates["extra_lora_scale"] = 0.0
        return apply_preset(settings.model_copy(update=updates), preset)
