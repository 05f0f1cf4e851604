"""The task registry: one record per task, and every edge iterates over it.

A task is only (a) which inputs it takes, (b) how its missing settings are filled and checked, and
(c) how its inputs become clean latents at latent positions. The sampler never learns which task it
runs. Settings resolution, condition building, the CLI's subcommands, the studio's forms, the API
description and ``pusa eval`` all read :data:`TASKS`; adding a task is adding one entry here.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Callable, Literal

import torch

from pusa.errors import FieldProblem, MediaError, SettingsError

if TYPE_CHECKING:
    from PIL import Image

    from pusa.family import ModelFamily
    from pusa.settings import GenerationSettings

DEFAULT_IMAGE_MULTIPLIER = 0.2
DEFAULT_VIDEO_MULTIPLIER = 0.0

# Encodes pixels (1, 3, T, H, W) in [-1, 1] into normalised latents (1, C, latent T, h, w).
PixelEncoder = Callable[[torch.Tensor], torch.Tensor]
Form = Literal["image", "keyframes", "video", "text"]
Positions = Literal["none", "first", "spread", "required"]


def evenly_spaced(n: int, n_latent: int) -> list[int]:
    """``n`` latent positions spread from the first to the last slot (one image: the first slot)."""
    if n <= 1:
        return [0] * n
    return [round(i * (n_latent - 1) / (n - 1)) for i in range(n)]


@dataclass(frozen=True)
class TaskSpec:
    """What one task takes and how it turns its inputs into conditions.

    ``positions``: ``none`` (no conditions), ``first`` (default latent 0), ``spread`` (default:
    one per image, evenly spaced over the video) or ``required`` (the user must say which).
    """

    name: str
    summary: str
    form: Form
    min_images: int = 0
    max_images: int | None = 0
    takes_video: bool = False
    positions: Positions = "none"
    default_multiplier: float | None = None
    cli_example: str = ""

    @property
    def conditioned(self) -> bool:
        return self.positions != "none"

    @property
    def takes_images(self) -> bool:
        return self.max_images is None or self.max_images > 0

    # ------------------------------------------------------------------ settings

    def input_problems(self, n_images: int, has_video: bool) -> list[FieldProblem]:
        """Inputs present or absent against what this task takes."""
        problems = []
        if not self.takes_images and n_images:
            others = " or ".join(t.name for t in TASKS.values() if t.takes_images)
            use = "use keyframes" if self.takes_video else f"use {others}"
            what = "a video, not images" if self.takes_video else f"no image (got {n_images})"
            problems.append(FieldProblem("images", f"{self.name} takes {what}; {use}"))
        elif n_images < self.min_images or (self.max_images is not None and n_images > self.max_images):
            if self.max_images == self.min_images:
                msg = f"{self.name} takes exactly {self.min_images} image (got {n_images})"
            else:
                msg = f"{self.name} needs at least {self.min_images} image (usually 2 or more)"
            problems.append(FieldProblem("images", msg))
        if has_video and not self.takes_video:
            what = "images, not a video" if self.takes_images and self.max_images != 1 else "no video"
            problems.append(FieldProblem("video", f"{self.name} takes {what}; use v2v"))
        if self.takes_video and not has_video:
            problems.append(FieldProblem("video", f"{self.name} needs an input video"))
        return problems

    def fill(self, s: "GenerationSettings", n_images: int, n_latent: int) -> list[FieldProblem]:
        """Fill this task's default positions and multipliers into ``s``; return what is missing or extra."""
        problems = []
        if self.positions == "none":
            for name in ("cond_positions", "noise_multipliers"):
                if getattr(s, name):
                    problems.append(FieldProblem(name, f"{self.name} has no conditions; leave it empty"))
            return problems
        if self.positions == "required" and not s.cond_positions:
            problems.append(FieldProblem("cond_positions", "v2v needs the latent positions to keep from the video, "
                                                           "e.g. 0,1,2,3 (first 13 frames)"))
            return problems
        if self.positions == "spread" and n_images > n_latent:
            problems.append(FieldProblem("images", f"{n_images} images but {s.frames} frames have only {n_latent} "
                                                   f"latent positions; use at most {n_latent} images or more frames"))
            return problems
        if s.cond_positions is None:
            if self.positions == "first":
                s.cond_positions = [0]
            elif self.positions == "spread" and n_images >= 1:
                s.cond_positions = evenly_spaced(n_images, n_latent)
        if s.noise_multipliers is None and s.cond_positions:
            s.noise_multipliers = [float(self.default_multiplier or 0.0)] * len(s.cond_positions)
        if self.takes_images and s.cond_positions is not None and n_images and len(s.cond_positions) != n_images:
            problems.append(FieldProblem("cond_positions", f"{len(s.cond_positions)} positions for {n_images} images; "
                                                           f"give one position per image, in image order"))
        return problems

    # ------------------------------------------------------------------ conditions

    def condition_latents(self, s: "GenerationSettings", encode: PixelEncoder, family: "ModelFamily",
                          images: "list[Image.Image] | None" = None,
                          video: "list[Image.Image] | None" = None) -> dict[int, torch.Tensor]:
        """Clean latent frame ``(1, C, h, w)`` per latent position, from this task's inputs."""
        if not self.conditioned:
            return {}
        from pusa.media import fit_image, pixels

        positions = list(s.cond_positions or [])
        w, h, fit = s.width, s.height, s.fit
        if self.takes_images:
            # each image alone is a one-frame video: the causal VAE's first-frame latent
            return {pos: encode(pixels([fit_image(img, w, h, fit)]))[:, :, 0].float().cpu()
                    for pos, img in zip(positions, images or [], strict=True)}
        frames = list(video or [])
        need = family.frames_needed(max(positions))
        if len(frames) < need:
            raise MediaError(f"video: position {max(positions)} needs at least {need} frames of the input video; "
                             f"it has {len(frames)}")
        # Encode only as much of the video as the output holds, cut to whole latent frames (causal VAE).
        usable = min(len(frames), s.frames)
        usable = family.pixel_frames(family.latent_frames(usable))
        z = encode(pixels([fit_image(f, w, h, fit) for f in frames[:usable]]))
        return {pos: z[:, :, pos].float().cpu() for pos in positions}


TASKS: dict[str, TaskSpec] = {t.name: t for t in (
    TaskSpec("i2v", "image to video (the image pinned at latent frame 0)", "image", min_images=1, max_images=1,
             positions="first", default_multiplier=DEFAULT_IMAGE_MULTIPLIER,
             cli_example='pusa generate i2v --image start.png --prompt "the camera slowly pans right" '
                         '--noise-multipliers 0.2'),
    TaskSpec("keyframes", "several images pinned at latent positions (start/end frames, transitions)", "keyframes",
             min_images=1, max_images=None, positions="spread", default_multiplier=DEFAULT_IMAGE_MULTIPLIER,
             cli_example='pusa generate keyframes --image first.png --image last.png --cond-positions 0,8 '
                         '--noise-multipliers 0.2,0.5 --prompt "a red ball rolls to the right"'),
    TaskSpec("v2v", "keep chosen latent frames of a video (extension, completion)", "video", takes_video=True,
             positions="required", default_multiplier=DEFAULT_VIDEO_MULTIPLIER,
             cli_example='pusa generate v2v --video input.mp4 --cond-positions 0,1,2,3 --noise-multipliers 0,0,0,0 '
                         '--prompt "the car keeps driving down the road"'),
    TaskSpec("t2v", "text to video", "text",
             cli_example='pusa generate t2v --prompt "a red ball bouncing on a wooden floor" --steps 10 --seed 42'),
)}


def get_task(name: str) -> TaskSpec:
    """The registry entry for ``name``, or a settings error naming the allowed tasks."""
    try:
        return TASKS[name]
    except KeyError:
        raise SettingsError.single("task", f"{name!r} is not allowed; expected one of {', '.join(TASKS)}") from None
