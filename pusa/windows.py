"""Window plans for videos longer than the model's native window.

Pusa makes one window at a time (21 latent frames for Wan: 81 frames, about 5 s). A longer video is
a chain of windows that overlap by a few latent frames: the next window starts from the previous
window's last latent frames as conditions (no VAE round trip), so the chain never re-encodes what it
generated. This module only plans; :mod:`pusa.long_video` runs the plan.
"""

from __future__ import annotations

from dataclasses import dataclass

from pusa.family import ModelFamily

MAX_WINDOWS = 100


@dataclass(frozen=True)
class Window:
    """One window: latent frames ``[start, stop)`` of the whole video, the first ``overlap`` of them
    handed on from the previous window, and the prompt it is generated with."""

    index: int
    start: int
    stop: int
    overlap: int
    prompt: str

    @property
    def length(self) -> int:
        return self.stop - self.start

    def describe(self, family: ModelFamily, pixel_offset: int = 0) -> dict:
        """The JSON record of this window (sidecar and API): latent range, pixel range, prompt."""
        first = family.pixel_range(self.start)[0] + pixel_offset
        last = family.pixel_range(self.stop - 1)[1] + pixel_offset
        return {"index": self.index, "latent_range": [self.start, self.stop - 1], "overlap": self.overlap,
                "pixel_range": [first, last], "prompt": self.prompt}


def default_overlap(window: int) -> int:
    """Latent frames handed on between windows by default: about a fifth of the window, at least 1
    (Wan: 4 of 21, 13 pixel frames; pusa-tiny: 2 of 9). Measured in docs/long-video.md."""
    return max(1, round(window / 5))


def count_windows(total: int, window: int, overlap: int) -> int:
    """How many windows a plan of ``total`` latent frames needs."""
    if total <= window:
        return 1
    step = window - overlap
    return 1 + -(-(total - window) // step)


def plan_windows(total: int, window: int, overlap: int, prompts: list[str]) -> list[Window]:
    """Windows of ``window`` latent frames covering ``total``, each overlapping the previous by
    ``overlap``; the last one may be shorter. Prompt ``i`` goes to window ``i`` (the last repeats)."""
    if window < 1 or not 0 <= overlap < window:
        raise ValueError(f"window {window} and overlap {overlap}: need 0 <= overlap < window")
    plan: list[Window] = []
    start = 0
    while True:
        stop = min(start + window, total)
        i = len(plan)
        plan.append(Window(i, start, stop, 0 if i == 0 else overlap, prompts[min(i, len(prompts) - 1)]))
        if stop == total:
            return plan
        start = stop - overlap
