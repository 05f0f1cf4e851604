"""Videos of any length from chained Pusa windows, and extension of a real video.

A plan (:mod:`pusa.windows`) cuts the whole video's latent frames into windows of the model's native
length that overlap by a few latent frames. Each window is one ordinary Pusa request built from the
pipeline's public steps: ``prepare`` with anchors, ``denoise`` with that window's slice of the whole
video's noise. Its anchors are (a) the task's conditions that fall inside it (images, video frames
at positions of the whole timeline, with their own multipliers) and (b) the previous window's last
latent frames, handed on as latents with the overlap multipliers: no decode, no re-encode, so a seam
is only as visible as the model makes it. The finished latents are decoded in one pass through the
VAE's causal cache and streamed out, so memory follows one window, not the video.

Drift control: after each window, the per-channel mean of its new latent frames is moved to that of
the reference (the first window, or the window holding the nearest image anchor), ramped in over the
window's first new frames. Latent channel means carry a clip's colour and brightness, and correcting
before the next window takes its overlap keeps the chain itself from drifting.
"""

from __future__ import annotations

import time
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Iterator, Sequence

import numpy as np
import torch

from pusa.conditions import Anchor
from pusa.errors import MediaError
from pusa.pipeline import GenerationResult, StepInfo, seeded_noise
from pusa.settings import GenerationSettings
from pusa.tasks import get_task
from pusa.windows import Window, plan_windows

if TYPE_CHECKING:
    from PIL import Image

    from pusa.pipeline import ProgressCallback, PusaPipeline

COLOR_RAMP = 3  # latent frames over which a window's colour correction is ramped in


def is_long(pipe: "PusaPipeline", s: GenerationSettings) -> bool:
    """More than one window, or an extension: the chained path; else the ordinary one-window path."""
    return s.extend is not None or pipe.family.latent_frames(s.frames) > s.window


def generate_video(pipe: "PusaPipeline", settings: GenerationSettings, *,
                   images: Sequence["Image.Image | str | Path"] | None = None,
                   video: "str | Path | Sequence[Image.Image] | None" = None,
                   callback: "ProgressCallback | None" = None) -> GenerationResult:
    """Any length, any task: one window through ``pipe.generate``, longer videos as a chain of windows,
    ``extend`` as the input followed by new frames. The edges call this."""
    s = pipe.validate(settings, n_images=len(images or []), has_video=video is not None)
    if not is_long(pipe, s):
        result = pipe.generate(settings, images=images, video=video, callback=callback)
        result.windows = [plan_windows(pipe.family.latent_frames(s.frames), s.window, s.overlap,
                                       s.window_prompts())[0].describe(pipe.family)]
        return result
    if s.extend is not None:
        return _extend(pipe, s, video, callback)
    pil_images, frames_in = pipe.read_inputs(s, images, video)
    return _chain(pipe, s, pil_images, frames_in, callback)


def _chain(pipe: "PusaPipeline", s: GenerationSettings, images: list, frames_in: list | None,
           callback: "ProgressCallback | None", pixel_offset: int = 0, head: np.ndarray | None = None,
           skip: int = 0) -> GenerationResult:
    report = callback or (lambda info: None)
    family = pipe.family
    started = time.perf_counter()
    timings: dict[str, float] = {}
    shape = pipe.latent_shape(s)
    plan = plan_windows(shape[2], s.window, s.overlap, s.window_prompts())

    report(StepInfo("lora", 0, 1))
    timings["lora"] = pipe.apply_lora_scales(s)
    t0 = time.perf_counter()
    report(StepInfo("encode", 0, 1))
    encode = lambda px: pipe.codec.encode(px, lambda d, n: report(StepInfo("encode", d, n)))  # noqa: E731
    task_latents = get_task(s.task).condition_latents(s, encode, family, images, frames_in)
    task_mults = dict(zip(s.cond_positions or [], s.noise_multipliers or []))
    timings["encode"] = time.perf_counter() - t0

    noise = seeded_noise(shape, s.seed)  # the whole video's noise: a seed means one video at any window size
    latents = torch.zeros(shape, dtype=torch.float32)
    reference = _reference_means(plan, task_latents)
    experts: list[str] = []
    stats = {"forwards": 0, "skipped": 0}
    t0 = time.perf_counter()
    for w in plan:
        anchors = {p - w.start: Anchor(z, task_mults[p]) for p, z in task_latents.items()
                   if w.start + w.overlap <= p < w.stop}
        for j in range(w.overlap):  # the previous window's last latents, handed on as they are
            anchors[j] = Anchor(latents[:, :, w.start + j], s.overlap_multipliers[j])
        ws = replace_settings(s, frames=family.pixel_frames(w.length), prompt=w.prompt)
        window_report = _window_reporter(report, w, len(plan), s.steps)
        prepared = pipe.prepare(ws, anchors=anchors, callback=window_report, timings={})
        out, model = pipe.denoise(prepared, noise[:, :, w.start:w.stop], window_report)
        out = out.float().cpu()
        if s.color_match and w.index > 0 and reference is not None:
            _match_color(out, w.overlap, reference if isinstance(reference, torch.Tensor) else reference(w))
        elif s.color_match and w.index == 0 and reference is None:
            reference = out.mean(dim=(2, 3, 4), keepdim=True).squeeze(2)
        latents[:, :, w.start:w.stop] = out
        experts += model.experts
        stats = {k: stats[k] + model.stats[k] for k in stats}
    timings["denoise"] = time.perf_counter() - t0
    timings["per_step"] = timings["denoise"] / (s.steps * len(plan))
    timings["total"] = time.perf_counter() - started
    chunks = _decode_stream(pipe, latents, report, head, skip, timings)
    result = GenerationResult(frames=None, settings=s, timings=timings, model=pipe.label, loras=pipe.lora_paths,
                              experts=experts, latents=latents, chunks=chunks, stats=stats,
                              decoder=getattr(pipe, "decoder_name", ""))
    result.windows = [w.describe(family, pixel_offset) for w in plan]
    return result


def replace_settings(s: GenerationSettings, **changes) -> GenerationSettings:
    """A window's request: the same settings with its own length and prompt, and no task conditions
    (they arrive as anchors at the window's own positions)."""
    return s.model_copy(update={"task": "t2v", "cond_positions": None, "noise_multipliers": None, "extend": None,
                                "prompts": None, **changes})


def _window_reporter(report, w: Window, n: int, steps: int):
    def inner(info: StepInfo) -> None:
        if info.phase == "denoise":  # one bar over every window's steps
            report(StepInfo("denoise", w.index * steps + info.step, n * steps, window=w.index + 1, windows=n,
                            denoised=info.denoised))
        elif info.phase in ("text", "encode"):
            report(replace(info, window=w.index + 1, windows=n))
    return inner


def _reference_means(plan: list[Window], task_latents: dict[int, torch.Tensor]):
    """What each window's colour is matched to: the first window (``None``: taken once it exists), or,
    when images are pinned, the channel means of the nearest pinned latent."""
    if not task_latents:
        return None
    positions = sorted(task_latents)

    def nearest(w: Window) -> torch.Tensor:
        centre = (w.start + w.stop) / 2
        p = min(positions, key=lambda q: abs(q - centre))
        return task_latents[p].float().mean(dim=(2, 3), keepdim=True)

    return nearest


def _match_color(out: torch.Tensor, overlap: int, reference: torch.Tensor) -> None:
    """Shift the per-channel mean of a window's new frames to ``reference``, ramped in (in place)."""
    new = out[:, :, overlap:]
    if new.shape[2] == 0:
        return
    delta = reference.view(1, -1, 1, 1) - new.mean(dim=(2, 3, 4)).view(1, -1, 1, 1)
    for j in range(new.shape[2]):
        weight = min(1.0, (j + 1) / COLOR_RAMP)
        new[:, :, j] += weight * delta


def _decode_stream(pipe: "PusaPipeline", latents: torch.Tensor, report, head: np.ndarray | None, skip: int,
                   timings: dict[str, float]) -> Iterator[np.ndarray]:
    """Frames of the whole video, chunk by chunk: ``head`` first (an extended input's own pixels), then
    the decoded frames without the first ``skip`` (the re-decoded tail of that input)."""
    if head is not None:
        yield head
    t0 = time.perf_counter()
    dropped = 0
    for chunk in pipe.codec.decode_chunks(latents, lambda d, n: report(StepInfo("decode", d, n))):
        if dropped < skip:
            cut = min(skip - dropped, chunk.shape[0])
            dropped += cut
            chunk = chunk[cut:]
        if chunk.shape[0]:
            yield chunk
    timings["decode"] = time.perf_counter() - t0


def _extend(pipe: "PusaPipeline", s: GenerationSettings, video, callback) -> GenerationResult:
    """The whole input (its own pixels), then ``s.extend`` new frames continuing from its last frames."""
    from pusa.media import read_video_frames

    family = pipe.family
    if video is None:
        raise MediaError("video: extend needs an input video")
    fit = (s.width, s.height, s.fit)
    frames_in = (read_video_frames(video, max_frames=None, fit=fit) if isinstance(video, (str, Path))
                 else [im.convert("RGB") for im in video])
    tail_latents = len(s.cond_positions or [])
    tail_frames = family.pixel_frames(tail_latents)
    if len(frames_in) < tail_frames:
        raise MediaError(f"video: extending from {tail_latents} latent frames needs at least {tail_frames} input "
                         f"frames; it has {len(frames_in)}")
    head = np.stack([np.asarray(f, dtype=np.uint8) for f in frames_in])
    tail = frames_in[-tail_frames:]
    offset = len(frames_in) - tail_frames
    result = _chain(pipe, replace_settings(s, task="v2v", cond_positions=s.cond_positions,
                                           noise_multipliers=s.noise_multipliers, prompts=s.prompts),
                    [], tail, callback, pixel_offset=offset, head=head, skip=tail_frames)
    result.settings = s
    result.output_frames = len(frames_in) + s.extend
    return result
