"""The one settings object every edge (CLI, studio, HTTP API, trainer samples) validates into.

Validation happens in two stages, both here so no edge writes its own rules:

1. ``GenerationSettings.parse(dict)`` checks each field on its own (types, ranges, 4k+1 frames,
   multiples of 16, position strings such as ``"0,20"``).
2. ``settings.resolve(defaults, n_images=..., has_video=...)`` fills what the model decides (size
   and frames of the loaded model, a random seed) and checks what depends on several fields:
   positions inside the latent frame range, one multiplier per position and per image, the task's
   inputs present.

Nothing is silently dropped, clamped or rounded: a value outside its range is an error naming the
field, the value and the allowed values.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from pusa.errors import FieldProblem, SettingsError

TASKS = ("t2v", "i2v", "keyframes", "v2v")
Task = Literal["t2v", "i2v", "keyframes", "v2v"]
FitMode = Literal["crop", "letterbox"]

SIZE_PRESETS: dict[str, tuple[int, int]] = {"480p": (832, 480), "720p": (1280, 720)}

# Wan's default negative prompt, in English: it names the usual artefacts of video diffusion.
DEFAULT_NEGATIVE_PROMPT = (
    "bright colors, overexposed, static, blurred details, subtitles, style, artwork, painting, "
    "still picture, overall gray, worst quality, low quality, JPEG artifacts, ugly, deformed, "
    "extra fingers, poorly drawn hands, poorly drawn face, disfigured, malformed limbs, fused "
    "fingers, motionless frame, cluttered background, three legs, many people in the background, "
    "walking backwards"
)

DEFAULT_IMAGE_MULTIPLIER = 0.2
DEFAULT_VIDEO_MULTIPLIER = 0.0
MAX_SEED = 2**63 - 1


@dataclass(frozen=True)
class ModelDefaults:
    """What a model folder decides when a request leaves size or frames open."""

    width: int = 832
    height: int = 480
    frames: int = 81


def latent_frames(frames: int) -> int:
    """Latent frames of the Wan VAE for ``frames`` pixel frames (causal 4x: 81 -> 21)."""
    return (frames - 1) // 4 + 1


def pixel_frames_of_latent(position: int) -> tuple[int, int]:
    """Pixel frame range ``[first, last]`` a latent slot stands for (slot 0 is the first frame alone)."""
    if position == 0:
        return (0, 0)
    return (4 * position - 3, 4 * position)


def _parse_list(value: Any, kind: type, field: str) -> Any:
    """Accept "0,20", "0 20", [0, 20] or a single number; reject anything that is not exact."""
    if value is None:
        return None
    if isinstance(value, str):
        parts = [p for p in value.replace(";", ",").replace(" ", ",").split(",") if p.strip()]
        if not parts:
            return None
        out = []
        for p in parts:
            p = p.strip()
            try:
                if kind is int:
                    out.append(int(p))
                else:
                    out.append(float(p))
            except ValueError:
                noun = "an integer" if kind is int else "a number"
                raise ValueError(f"{p!r} in {value!r} is not {noun}; write a comma-separated list such as "
                                 f"{'0,20' if kind is int else '0.2,0.5'}") from None
        return out
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return [value]
    return value


class GenerationSettings(BaseModel):
    """Everything that decides a generated video, except the input files themselves."""

    model_config = ConfigDict(extra="forbid", validate_assignment=False)

    task: Task = Field("t2v", description="t2v, i2v, keyframes or v2v")
    prompt: str = Field(..., min_length=1, max_length=4000, description="What the video shows")
    negative_prompt: str = Field(DEFAULT_NEGATIVE_PROMPT, max_length=4000,
                                 description="What to steer away from (used when cfg > 1)")
    steps: int = Field(10, ge=1, le=50, description="Denoising steps: more gives detail, costs time linearly")
    lora_alpha: float = Field(1.4, ge=0.0, le=5.0,
                              description="Pusa LoRA strength: higher is more temporally consistent but stiffer; "
                                          "too high freezes or collapses, too low loses consistency")
    lora_alpha_low: float | None = Field(None, ge=0.0, le=5.0,
                                         description="Wan2.2 only: alpha of the low-noise expert "
                                                     "(lora_alpha is then the high-noise one)")
    extra_lora_scale: float = Field(1.0, ge=0.0, le=5.0,
                                    description="Scale of the optional second LoRA (e.g. a step-distillation LoRA)")
    cond_positions: list[int] | None = Field(None, description="Latent frame index of each condition, e.g. 0,20")
    noise_multipliers: list[float] | None = Field(
        None, description="One per condition, 0..1: lower keeps the condition more faithful, higher gives freedom")
    cfg: float = Field(5.0, ge=1.0, le=20.0, description="Classifier-free guidance scale; 1 = one forward per step")
    shift: float = Field(5.0, gt=0.0, le=20.0, description="Sigma schedule shift")
    width: int | None = Field(None, ge=16, le=4096, description="Multiple of 16; default: the model's")
    height: int | None = Field(None, ge=16, le=4096, description="Multiple of 16; default: the model's")
    frames: int | None = Field(None, ge=1, le=1001, description="4k+1 pixel frames; default: the model's")
    fps: int = Field(16, ge=1, le=120, description="Frames per second of the written video")
    seed: int | None = Field(None, ge=0, le=MAX_SEED, description="Random when omitted; the used seed is reported")
    fit: FitMode = Field("crop", description="How inputs of another aspect are fitted: crop (center) or letterbox")

    @field_validator("cond_positions", mode="before")
    @classmethod
    def _positions(cls, v: Any) -> Any:
        return _parse_list(v, int, "cond_positions")

    @field_validator("noise_multipliers", mode="before")
    @classmethod
    def _multipliers(cls, v: Any) -> Any:
        return _parse_list(v, float, "noise_multipliers")

    @field_validator("noise_multipliers")
    @classmethod
    def _multiplier_range(cls, v: list[float] | None) -> list[float] | None:
        if v is not None:
            bad = [m for m in v if not 0.0 <= m <= 1.0]
            if bad:
                raise ValueError(f"{bad[0]} is outside the allowed range 0 to 1 (0 keeps the condition exact)")
        return v

    @field_validator("width", "height")
    @classmethod
    def _multiple_of_16(cls, v: int | None) -> int | None:
        if v is not None and v % 16:
            raise ValueError(f"{v} is not a multiple of 16 (nearest: {max(16, v // 16 * 16)} or {(v // 16 + 1) * 16})")
        return v

    @field_validator("frames")
    @classmethod
    def _four_k_plus_one(cls, v: int | None) -> int | None:
        if v is not None and (v - 1) % 4:
            lo = (v - 1) // 4 * 4 + 1
            raise ValueError(f"{v} is not of the form 4k+1 (nearest: {lo} or {lo + 4})")
        return v

    @field_validator("prompt")
    @classmethod
    def _prompt_not_blank(cls, v: str) -> str:
        if not v.strip():
            raise ValueError("must not be blank")
        return v

    # ------------------------------------------------------------------ construction

    @classmethod
    def parse(cls, data: dict[str, Any] | None = None, **kwargs: Any) -> "GenerationSettings":
        """Validate a plain dict (from JSON, a form or the CLI) into settings, or raise ``SettingsError``."""
        merged = dict(data or {})
        merged.update(kwargs)
        size = merged.pop("size", None)
        if size is not None:
            try:
                merged["width"], merged["height"] = parse_size(size)
            except ValueError as e:
                raise SettingsError.single("size", str(e)) from None
        try:
            return cls.model_validate(merged)
        except ValidationError as e:
            raise settings_error_from(e) from None

    # ------------------------------------------------------------------ cross-field checks

    def resolve(self, defaults: ModelDefaults | None = None, *, n_images: int = 0, has_video: bool = False,
                wan22: bool = False) -> "GenerationSettings":
        """Fill model defaults and the seed, then check the fields that depend on each other."""
        defaults = defaults or ModelDefaults()
        s = self.model_copy(deep=True)
        s.width = s.width or defaults.width
        s.height = s.height or defaults.height
        s.frames = s.frames or defaults.frames
        if s.seed is None:
            s.seed = secrets.randbelow(2**32)
        problems: list[FieldProblem] = []
        n_latent = latent_frames(s.frames)
        if s.lora_alpha_low is not None and not wan22:
            problems.append(FieldProblem("lora_alpha_low", "only applies to a Wan2.2 (high/low noise) model; "
                                                            "use lora_alpha"))

        if s.task == "t2v":
            if n_images:
                problems.append(FieldProblem("images", f"t2v takes no image (got {n_images}); use i2v or keyframes"))
            if has_video:
                problems.append(FieldProblem("video", "t2v takes no video; use v2v"))
            if s.cond_positions:
                problems.append(FieldProblem("cond_positions", "t2v has no conditions; leave it empty"))
            if s.noise_multipliers:
                problems.append(FieldProblem("noise_multipliers", "t2v has no conditions; leave it empty"))
        elif s.task == "i2v":
            if n_images != 1:
                problems.append(FieldProblem("images", f"i2v takes exactly 1 image (got {n_images})"))
            if has_video:
                problems.append(FieldProblem("video", "i2v takes no video; use v2v"))
            s.cond_positions = s.cond_positions or [0]
            s.noise_multipliers = s.noise_multipliers or [DEFAULT_IMAGE_MULTIPLIER]
        elif s.task == "keyframes":
            if n_images < 1:
                problems.append(FieldProblem("images", "keyframes needs at least 1 image (usually 2 or more)"))
            if has_video:
                problems.append(FieldProblem("video", "keyframes takes images, not a video; use v2v"))
            if s.cond_positions is None and n_images >= 1:
                s.cond_positions = _evenly_spaced(n_images, n_latent)
            if s.noise_multipliers is None and s.cond_positions:
                s.noise_multipliers = [DEFAULT_IMAGE_MULTIPLIER] * len(s.cond_positions)
            if s.cond_positions is not None and n_images and len(s.cond_positions) != n_images:
                problems.append(FieldProblem(
                    "cond_positions", f"{len(s.cond_positions)} positions for {n_images} images; give one "
                                      f"position per image, in image order"))
        elif s.task == "v2v":
            if not has_video:
                problems.append(FieldProblem("video", "v2v needs an input video"))
            if n_images:
                problems.append(FieldProblem("images", "v2v takes a video, not images; use keyframes"))
            if not s.cond_positions:
                problems.append(FieldProblem("cond_positions", "v2v needs the latent positions to keep from the "
                                                               "video, e.g. 0,1,2,3 (first 13 frames)"))
            elif s.noise_multipliers is None:
                s.noise_multipliers = [DEFAULT_VIDEO_MULTIPLIER] * len(s.cond_positions)

        if s.task != "t2v" and s.cond_positions is not None:
            bad = [p for p in s.cond_positions if not 0 <= p < n_latent]
            if bad:
                problems.append(FieldProblem(
                    "cond_positions", f"{bad[0]} is outside 0 to {n_latent - 1} (latent frames of {s.frames} "
                                      f"pixel frames: {n_latent})"))
            dup = sorted({p for p in s.cond_positions if s.cond_positions.count(p) > 1})
            if dup:
                problems.append(FieldProblem("cond_positions", f"{dup[0]} appears more than once; positions "
                                                               f"must be unique"))
            if s.noise_multipliers is not None and len(s.noise_multipliers) != len(s.cond_positions):
                problems.append(FieldProblem(
                    "noise_multipliers", f"{len(s.noise_multipliers)} multipliers for {len(s.cond_positions)} "
                                         f"positions; give exactly one per position"))
        if problems:
            raise SettingsError(problems)
        return s

    def to_public_dict(self) -> dict[str, Any]:
        """Plain JSON-able dict, the form written beside outputs and returned by the API."""
        return self.model_dump(mode="json")


def _evenly_spaced(n: int, n_latent: int) -> list[int]:
    if n == 1:
        return [0]
    return [round(i * (n_latent - 1) / (n - 1)) for i in range(n)]


def parse_size(value: Any) -> tuple[int, int]:
    """Parse ``"832x480"``, a preset name (``480p``, ``720p``) or a ``(w, h)`` pair."""
    if isinstance(value, (tuple, list)) and len(value) == 2:
        return int(value[0]), int(value[1])
    text = str(value).strip().lower()
    if text in SIZE_PRESETS:
        return SIZE_PRESETS[text]
    parts = text.replace("*", "x").split("x")
    if len(parts) == 2:
        try:
            return int(parts[0]), int(parts[1])
        except ValueError:
            pass
    raise ValueError(f"{value!r} is not a size; write WIDTHxHEIGHT such as 832x480, or one of "
                     f"{', '.join(SIZE_PRESETS)}")


def settings_error_from(err: ValidationError) -> SettingsError:
    """Turn pydantic's errors into field problems that say the value and the allowed values."""
    problems = []
    for e in err.errors():
        field = ".".join(str(p) for p in e["loc"] if not isinstance(p, int)) or "settings"
        value = e.get("input")
        ctx = e.get("ctx") or {}
        kind = e["type"]
        if kind == "extra_forbidden":
            allowed = ", ".join(GenerationSettings.model_fields)
            msg = f"unknown setting; allowed settings are: {allowed}"
        elif kind == "missing":
            msg = "is required"
        elif kind in ("greater_than_equal", "less_than_equal", "greater_than", "less_than"):
            info = GenerationSettings.model_fields.get(field)
            lo = hi = None
            for m in getattr(info, "metadata", []):
                lo = getattr(m, "ge", None) if getattr(m, "ge", None) is not None else lo
                lo = getattr(m, "gt", None) if getattr(m, "gt", None) is not None else lo
                hi = getattr(m, "le", None) if getattr(m, "le", None) is not None else hi
            rng = f"from {lo} to {hi}" if lo is not None and hi is not None else str(ctx)
            msg = f"{value!r} is not allowed; expected a value {rng}"
        elif kind == "literal_error":
            msg = f"{value!r} is not allowed; expected one of {ctx.get('expected')}"
        elif kind == "value_error":
            msg = str(ctx.get("error", e["msg"]))
        else:
            msg = f"{value!r} is not allowed: {e['msg']}"
        problems.append(FieldProblem(field, msg))
    return SettingsError(problems)
