"""What a generation reports while it runs (:class:`StepInfo`) and what it returns (:class:`GenerationResult`).

Shared by the one-window path (:mod:`pusa.pipeline`), the long-video chain (:mod:`pusa.long_video`)
and every edge that shows progress or writes results.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator

import numpy as np
import torch

from pusa.settings import GenerationSettings


@dataclass(frozen=True)
class StepInfo:
    """Progress of one request: phase ("lora", "text", "encode", "denoise", "decode"), step of total;
    a long video also says which window of how many (denoise steps then count over all windows)."""

    phase: str
    step: int
    total: int
    window: int = 1
    windows: int = 1
    denoised: torch.Tensor | None = None  # denoise steps: the current estimate of the clean latents


ProgressCallback = Callable[[StepInfo], None]
LoadProgress = Callable[[str, str], None]


@dataclass
class GenerationResult:
    """Decoded frames plus everything needed to reproduce them.

    A long video arrives as ``chunks`` (decoded while they are written, so memory follows one
    window); :meth:`iter_frames` streams either form once, :meth:`all_frames` holds them all.
    """

    frames: np.ndarray | None  # uint8 (T, H, W, 3); None while the frames are still a stream
    settings: GenerationSettings  # resolved: size, frames and the seed actually used
    timings: dict[str, float]
    model: str = ""
    loras: list[str] = field(default_factory=list)
    experts: list[str] = field(default_factory=list)  # which DiT ran at each step (Wan2.2: high/low)
    latents: torch.Tensor | None = None
    chunks: Iterator[np.ndarray] | None = None
    windows: list[dict[str, Any]] = field(default_factory=list)  # the long-video plan, one record per window
    output_frames: int | None = None  # frames written, when not settings.frames (an extension)
    stats: dict[str, int] = field(default_factory=lambda: {"forwards": 0, "skipped": 0})  # DiT forwards
    decoder: str = ""  # the --decoder's folder or file name when a light decoder made the pixels; "": the model's VAE

    def iter_frames(self) -> Iterator[np.ndarray]:
        """The frames as ``(t, H, W, 3)`` chunks; a stream can be read once."""
        if self.frames is not None:
            yield self.frames
            return
        if self.chunks is None:
            raise RuntimeError("the frames of this result were already streamed out")
        chunks, self.chunks = self.chunks, None
        yield from chunks

    def all_frames(self) -> np.ndarray:
        """Every frame in memory (reads the stream if there is one)."""
        if self.frames is None:
            self.frames = np.concatenate(list(self.iter_frames()), axis=0)
        return self.frames

    @property
    def fps(self) -> int:
        return int(self.settings.fps or 16)

    @property
    def seed(self) -> int:
        return int(self.settings.seed)

    def metadata(self) -> dict[str, Any]:
        """The sidecar JSON: settings, seed, model label, LoRA and light decoder names (never server paths)."""
        return {"settings": self.settings.to_public_dict(), "seed": self.seed, "model": self.model,
                "loras": [Path(p).name for p in self.loras],
                "timings": {k: round(v, 4) for k, v in self.timings.items()}, "generator": "pusa",
                "windows": self.windows, "frames": self.output_frames or self.settings.frames,
                "stats": dict(self.stats), "decoder": self.decoder or None}
