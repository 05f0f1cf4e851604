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

import math
import secrets
from typing import Any, Literal

from pydantic import (BaseModel, ConfigDict, Field, StrictBool, StrictFloat, StrictInt, StrictStr, ValidationError,
                      field_validator)

from pusa.errors import FieldProblem, SettingsError
from pusa.settings_parsing import excerpt, parse_list, parse_size, settings_error_from
from pusa.speed.names import PRESET_NAMES
from pusa.family import WAN21, ModelDefaults, ModelFamily
from pusa.windows import MAX_WINDOWS, count_windows, default_overlap
from pusa.tasks import TASKS, get_task

FitMode = Literal["crop", "letterbox"]


# Wan's default negative prompt, in English: it names the usual artefacts of video diffusion.
DEFAULT_NEGATIVE_PROMPT = (
    "bright colors, overexposed, static, blurred details, subtitles, style, artwork, painting, "
    "still picture, overall gray, worst quality, low quality, JPEG artifacts, ugly, deformed, "
    "extra fingers, poorly drawn hands, poorly drawn face, disfigured, malformed limbs, fused "
    "fingers, motionless frame, cluttered background, three legs, many people in the background, "
    "walking backwards"
)

MAX_SEED = 2**63 - 1
MAX_FRAMES = 1001  # the longest video a request may ask (62 s at 16 fps); longer ones are extended in steps
MAX_POSITION = 1000  # latent frames of the longest video settings allow, with room for long-video plans
# Pixel frames (width x height x frames) a request may ask of a model, as a multiple of its default
# window: 720p at 81 frames fits Wan (832x480x81 default), 128x128x33 fits pusa-tiny (64x64x33).
PIXEL_BUDGET_MARGIN = 4


def default_pixel_budget(family: ModelFamily) -> int:
    d = family.defaults
    return PIXEL_BUDGET_MARGIN * d.width * d.height * d.frames


class GenerationSettings(BaseModel):
    """Everything that decides a generated video, except the input files themselves."""

    model_config = ConfigDict(extra="forbid", validate_assignment=False)

    task: StrictStr = Field("t2v", description=f"one of {', '.join(TASKS)}")
    prompt: StrictStr = Field(..., min_length=1, max_length=4000, description="What the video shows")
    negative_prompt: StrictStr = Field(DEFAULT_NEGATIVE_PROMPT, max_length=4000,
                                       description="What to steer away from (used when cfg > 1)")
    steps: StrictInt = Field(10, ge=1, le=50, description="Denoising steps: more gives detail, costs time linearly")
    lora_alpha: StrictFloat = Field(1.4, ge=0.0, le=5.0, allow_inf_nan=False,
                                    description="Pusa LoRA strength: higher is more temporally consistent but "
                                                "stiffer; too high freezes or collapses, too low loses consistency")
    lora_alpha_low: StrictFloat | None = Field(None, ge=0.0, le=5.0, allow_inf_nan=False,
                                               description="Wan2.2 only: alpha of the low-noise expert "
                                                           "(lora_alpha is then the high-noise one)")
    extra_lora_scale: StrictFloat = Field(1.0, ge=0.0, le=5.0, allow_inf_nan=False,
                                          description="Scale of the optional second LoRA (e.g. a step-distillation "
                                                      "LoRA)")
    cond_positions: list[StrictInt] | None = Field(None, description="Latent frame index of each condition, "
                                                                     "e.g. 0,20")
    noise_multipliers: list[StrictFloat] | None = Field(
        None, description="One per condition, 0..1: lower keeps the condition more faithful, higher gives freedom")
    cfg: StrictFloat = Field(5.0, ge=1.0, le=20.0, allow_inf_nan=False,
                             description="Classifier-free guidance scale; 1 = one forward per step")
    shift: StrictFloat = Field(5.0, gt=0.0, le=20.0, allow_inf_nan=False, description="Sigma schedule shift")
    width: StrictInt | None = Field(None, ge=16, le=4096, description="Multiple of 16; default: the model's")
    height: StrictInt | None = Field(None, ge=16, le=4096, description="Multiple of 16; default: the model's")
    frames: StrictInt | None = Field(None, ge=1, le=MAX_FRAMES, description="4k+1 pixel frames; default: the "
                                                                           "model's; beyond its window: chained "
                                                                           "windows")
    fps: StrictInt | None = Field(None, ge=1, le=120, description="Frames per second of the written video; "
                                                                  "default: the model's (16 for Wan2.1)")
    seed: StrictInt | None = Field(None, ge=0, le=MAX_SEED, description="Random when omitted; the used seed is "
                                                                        "reported")
    fit: FitMode = Field("crop", description="How inputs of another aspect are fitted: crop (center) or letterbox")
    prompts: list[StrictStr] | None = Field(None, max_length=MAX_WINDOWS,
                                            description="Long video: one prompt per window (the last repeats); "
                                                        "the API also takes a list as `prompt`")
    window: StrictInt | None = Field(None, ge=2, le=MAX_POSITION,
                                     description="Long video: latent frames per window (default: the model's "
                                                 "native window, 21 for Wan)")
    overlap: StrictInt | None = Field(None, ge=0, le=MAX_POSITION,
                                      description="Long video: latent frames each window takes over from the "
                                                  "previous one (default about a fifth of the window)")
    overlap_multipliers: list[StrictFloat] | None = Field(
        None, description="Long video: noise multiplier of each overlap frame, 0..1 (default 0: kept exactly)")
    color_match: StrictBool = Field(True, description="Long video: match each window's colour statistics to the "
                                                      "first window's (against drift)")
    preset: StrictStr | None = Field(None, description=f"Speed recipe for this job: {', '.join(PRESET_NAMES)} "
                                                       "(lightx2v needs the distillation LoRA loaded); "
                                                       "default: the one the model was loaded with")
    extend: StrictInt | None = Field(None, ge=4, le=MAX_FRAMES - 1,
                                     description="v2v: add this many new frames (a multiple of 4) after the whole "
                                                 "input video")

    @field_validator("steps", "width", "height", "frames", "fps", "seed", mode="before")
    @classmethod
    def _integral(cls, v: Any) -> Any:
        """JSON clients may write 10.0 for 10; a fraction (64.9) or a bool stays an error, never rounded."""
        if isinstance(v, float) and math.isfinite(v) and v.is_integer():
            return int(v)
        return v

    @field_validator("preset")
    @classmethod
    def _known_preset(cls, v: str | None) -> str | None:
        if v is not None and v not in PRESET_NAMES:
            raise ValueError(f"{excerpt(v)} is not allowed; expected one of {', '.join(PRESET_NAMES)}")
        return v

    @field_validator("task")
    @classmethod
    def _known_task(cls, v: str) -> str:
        if v not in TASKS:
            raise ValueError(f"{excerpt(v)} is not allowed; expected one of {', '.join(TASKS)}")
        return v

    @field_validator("cond_positions", mode="before")
    @classmethod
    def _positions(cls, v: Any) -> Any:
        return parse_list(v, int, "cond_positions")

    @field_validator("noise_multipliers", "overlap_multipliers", mode="before")
    @classmethod
    def _multipliers(cls, v: Any) -> Any:
        return parse_list(v, float, "noise_multipliers")

    @field_validator("noise_multipliers", "overlap_multipliers")
    @classmethod
    def _multiplier_range(cls, v: list[float] | None) -> list[float] | None:
        if v is not None:
            bad = [m for m in v if not 0.0 <= m <= 1.0]
            if bad:
                raise ValueError(f"{bad[0]} is outside the allowed range 0 to 1 (0 keeps the condition exact)")
        return v

    @field_validator("cond_positions")
    @classmethod
    def _positions_not_negative(cls, v: list[int] | None) -> list[int] | None:
        bad = [p for p in v or [] if p < 0]
        if bad:
            raise ValueError(f"position {bad[0]} is below 0; latent positions start at 0")
        huge = [p for p in v or [] if p > MAX_POSITION]
        if huge:
            raise ValueError(f"position {excerpt(huge[0])} is beyond any video's latent frames (at most {MAX_POSITION})")
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

    @field_validator("prompts")
    @classmethod
    def _prompts_not_blank(cls, v: list[str] | None) -> list[str] | None:
        for i, p in enumerate(v or []):
            if not p.strip():
                raise ValueError(f"prompt {i + 1} is blank")
            if len(p) > 4000:
                raise ValueError(f"prompt {i + 1} is too long ({len(p)}); the limit is 4000")
        return v

    @field_validator("extend")
    @classmethod
    def _extend_multiple(cls, v: int | None) -> int | None:
        if v is not None and v % 4:
            raise ValueError(f"{v} is not a multiple of 4 (nearest: {max(4, v // 4 * 4)} or {(v // 4 + 1) * 4})")
        return v

    # ------------------------------------------------------------------ construction

    @classmethod
    def parse(cls, data: dict[str, Any] | None = None, **kwargs: Any) -> "GenerationSettings":
        """Validate a plain dict (from JSON, a form or the CLI) into settings, or raise ``SettingsError``."""
        merged = dict(data or {})
        merged.update(kwargs)
        if isinstance(merged.get("prompt"), list):  # a prompt per window
            if merged.get("prompts") is not None:
                raise SettingsError.single("prompts", "give the prompts either as a list in prompt or in prompts")
            prompts = merged.pop("prompt")
            merged["prompts"] = prompts
            if prompts and isinstance(prompts[0], str):
                merged["prompt"] = prompts[0]
            elif not prompts:
                raise SettingsError.single("prompt", "an empty list; give at least one prompt")
        size = merged.pop("size", None)
        if size is not None:
            given = [k for k in ("width", "height") if merged.get(k) is not None]
            if given:
                raise SettingsError.single("size", f"give either size or {' and '.join(given)}, not both")
            try:
                merged["width"], merged["height"] = parse_size(size)
            except ValueError as e:
                raise SettingsError.single("size", str(e)) from None
        try:
            return cls.model_validate(merged)
        except ValidationError as e:
            raise settings_error_from(e, cls) from None

    # ------------------------------------------------------------------ cross-field checks

    def resolve(self, family: ModelFamily | ModelDefaults | None = None, *, n_images: int = 0,
                has_video: bool = False, wan22: bool | None = None,
                max_pixel_frames: int | None = None) -> "GenerationSettings":
        """Fill the model's defaults and the seed, then check the fields that depend on each other.

        ``family`` is the loaded model's (its geometry decides latent positions and size multiples);
        ``max_pixel_frames`` bounds width x height x frames (default: :data:`PIXEL_BUDGET_MARGIN`
        times the model's default window), so a request cannot ask a model for what it cannot do.
        """
        if family is None:
            family = WAN21
        elif isinstance(family, ModelDefaults):
            family = WAN21.with_defaults(width=family.width, height=family.height, frames=family.frames)
        wan22 = family.is_wan22 if wan22 is None else wan22
        spec = get_task(self.task)
        d = family.defaults
        s = self.model_copy(deep=True)
        s.width = s.width or d.width
        s.height = s.height or d.height
        s.frames = s.frames or d.frames
        s.fps = s.fps or d.fps
        if s.seed is None:
            s.seed = secrets.randbelow(2**32)
        problems: list[FieldProblem] = []
        multiple = family.size_multiple
        for name in ("width", "height"):
            if getattr(s, name) % multiple:
                problems.append(FieldProblem(name, f"{getattr(s, name)} is not a multiple of {multiple} "
                                                   f"(this model's VAE stride x patch)"))
        if not family.valid_frames(s.frames):
            problems.append(FieldProblem("frames", f"{s.frames} is not of the form {family.temporal_stride}k+1"))
        problems += s._resolve_windows(family, spec.takes_video)
        budget = max_pixel_frames or default_pixel_budget(family)
        window_frames = min(s.frames, family.pixel_frames(s.window))  # memory follows one window
        if s.width * s.height * window_frames > budget:
            problems.append(FieldProblem(
                "size", f"{s.width}x{s.height} x {window_frames} frames is {s.width * s.height * window_frames:,} "
                        f"pixel frames per window; this model allows at most {budget:,} (default {d.width}x"
                        f"{d.height} x {d.frames})"))
        n_latent = family.latent_frames(s.frames)
        if s.lora_alpha_low is not None and not wan22:
            problems.append(FieldProblem("lora_alpha_low", "only applies to a Wan2.2 (high/low noise) model; "
                                                            "use lora_alpha"))
        problems += spec.input_problems(n_images, has_video)
        problems += spec.fill(s, n_images, n_latent)
        if spec.conditioned and s.cond_positions is not None:
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

    def _resolve_windows(self, family: ModelFamily, takes_video: bool) -> list[FieldProblem]:
        """Fill the long-video plan's defaults (window, overlap, its multipliers; frames of an extension)
        and check them against each other and the number of prompts."""
        problems: list[FieldProblem] = []
        native = family.native_latent_frames
        self.window = self.window or native
        self.overlap = default_overlap(self.window) if self.overlap is None else self.overlap
        if self.overlap >= self.window:
            problems.append(FieldProblem("overlap", f"{self.overlap} latent frames is not less than the window "
                                                    f"({self.window}); allowed: 0 to {self.window - 1}"))
            return problems
        if self.overlap_multipliers is None:
            self.overlap_multipliers = [0.0] * self.overlap
        elif len(self.overlap_multipliers) != self.overlap:
            problems.append(FieldProblem("overlap_multipliers", f"{len(self.overlap_multipliers)} multipliers for "
                                                                f"an overlap of {self.overlap}; give one per frame"))
        if self.extend is not None:
            if not takes_video:
                problems.append(FieldProblem("extend", f"only v2v extends a video; {self.task} makes a new one"))
            elif self.cond_positions is not None and self.cond_positions != list(range(max(self.overlap, 1))):
                problems.append(FieldProblem("cond_positions", "an extension keeps the input's last frames itself; "
                                                               "leave cond_positions empty"))
            else:  # (resolving resolved settings again gives the same values)
                tail = max(self.overlap, 1)  # latent frames of the input the continuation starts from
                self.frames = family.pixel_frames(tail + self.extend // family.temporal_stride)
                self.cond_positions = list(range(tail))
                if self.noise_multipliers is None:
                    self.noise_multipliers = list(self.overlap_multipliers or [0.0]) or [0.0]
        if self.frames > MAX_FRAMES:
            problems.append(FieldProblem("frames", f"{self.frames} frames is over the limit of {MAX_FRAMES}"))
        windows = count_windows(family.latent_frames(self.frames), self.window, self.overlap)
        if self.prompts is not None and len(self.prompts) > windows:
            problems.append(FieldProblem("prompts", f"{len(self.prompts)} prompts for {windows} window(s) of "
                                                    f"{self.frames} frames; give at most {windows}"))
        if windows > MAX_WINDOWS:
            problems.append(FieldProblem("frames", f"{windows} windows; the limit is {MAX_WINDOWS} (use a larger "
                                                   f"window or overlap less)"))
        return problems

    def window_prompts(self) -> list[str]:
        """One prompt per window in order (the last repeats): ``prompts`` or just ``prompt``."""
        return list(self.prompts) if self.prompts else [self.prompt]

    def to_public_dict(self) -> dict[str, Any]:
        """Plain JSON-able dict, the form written beside outputs and returned by the API."""
        return self.model_dump(mode="json")
