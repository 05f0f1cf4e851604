"""Elapsed time and the time left of a job, from the step times measured while it runs.

The engine reports phase and step (denoise steps over all windows, then decode per latent frame).
A tab following a job notes when each step was first seen; the seconds per step of the current
phase, measured so, give the time left of that phase. While denoising, the decode still to come is
estimated from the last finished job's decode seconds per latent frame (0 before the first job),
and replaced by its own measurement once decoding starts.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pusa.family import ModelFamily
from pusa.service.store import QUEUED, RUNNING, SUCCEEDED, Job


@dataclass
class Times:
    """What the status line shows: seconds elapsed, seconds left (None: not measured yet), bar fraction."""

    elapsed: float
    left: float | None
    fraction: float


@dataclass
class StepClock:
    """Measures one job's step times while a tab follows it (one clock per followed job)."""

    decode_per_latent: float | None = None
    _marks: dict[str, tuple[float, int, float, int]] = field(default_factory=dict)
    _shown: float = 0.0

    def rate(self, phase: str) -> float | None:
        """Seconds per step of ``phase`` as measured so far (None before two distinct steps were seen)."""
        m = self._marks.get(phase)
        if m is None or m[3] <= m[1]:
            return None
        return (m[2] - m[0]) / (m[3] - m[1])

    def observe(self, job: Job, family: ModelFamily | None, progress_fraction: float,
                now: float | None = None) -> Times:
        """Note the job's step now and say its elapsed time, time left and the bar's fraction."""
        now = time.time() if now is None else now
        if job.status == QUEUED:
            return Times(max(0.0, now - job.created_at), None, 0.0)
        if job.status != RUNNING:
            end = job.finished_at or now
            return Times(max(0.0, end - (job.started_at or job.created_at)), 0.0,
                         1.0 if job.status == SUCCEEDED else progress_fraction)
        elapsed = max(0.0, now - (job.started_at or now))
        phase, step, total = job.phase, job.step or 0, job.total or 0
        if phase:
            m = self._marks.get(phase)
            if m is None:
                self._marks[phase] = (now, step, now, step)
            elif step != m[3]:
                self._marks[phase] = (m[0], m[1], now, step)
        left = self._left(job, family, phase, step, total)
        frac = progress_fraction  # the engine's phase spans until a rate is measured, then by time
        if left is not None and elapsed + left > 0:
            frac = elapsed / (elapsed + left)
        self._shown = max(self._shown, min(frac, 0.999))  # never backwards while it runs
        return Times(elapsed, left, self._shown)

    def _left(self, job: Job, family: ModelFamily | None, phase: str | None, step: int, total: int) -> float | None:
        if phase == "decode":
            r = self.rate("decode") or self.decode_per_latent
            return None if r is None else max(0, total - step) * r
        if phase != "denoise":
            return None
        r = self.rate("denoise")
        if r is None:
            return None
        left = max(0, total - step) * r
        frames = (job.resolved or {}).get("frames")
        if self.decode_per_latent is not None and family is not None and isinstance(frames, int):
            left += self.decode_per_latent * family.latent_frames(frames)
        return left


def decode_per_latent(jobs: list[Job], family: ModelFamily | None) -> float | None:
    """Decode seconds per latent frame of the most recent succeeded job that recorded it."""
    if family is None:
        return None
    for job in jobs:
        frames = (job.resolved or {}).get("frames")
        secs = job.timings.get("decode")
        if job.status == SUCCEEDED and isinstance(frames, int) and secs:
            return float(secs) / family.latent_frames(frames)
    return None


def clock_text(seconds: float) -> str:
    """``42 s`` or ``3 min 05 s``."""
    s = int(round(seconds))
    return f"{s} s" if s < 60 else f"{s // 60} min {s % 60:02d} s"
