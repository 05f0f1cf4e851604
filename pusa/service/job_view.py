"""The JSON a job is shown as (API and studio): status, queue position, progress, settings, timings.

Progress is one 0..1 fraction over the engine's phases (denoising dominates the time); a long video's
denoise steps count over all its windows, so the window of how many follows from the request's steps.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from pusa.service.store import RUNNING, SUCCEEDED, Job

# How much of the progress bar each engine phase fills (denoising dominates the time).
PHASE_SPAN = {"waiting": (0.0, 0.0), "text": (0.0, 0.05), "encode": (0.05, 0.1), "denoise": (0.1, 0.95),
              "decode": (0.95, 1.0)}


def progress_dict(job: Job) -> dict[str, Any]:
    """Phase, step of total and fraction; a long video's denoise steps count over all its windows, so
    the window of how many follows from the request's steps."""
    out: dict[str, Any] = {"phase": job.phase, "step": job.step, "total": job.total,
                           "fraction": progress_fraction(job), "window": 1, "windows": 1}
    steps = (job.resolved or {}).get("steps")
    if job.phase == "denoise" and isinstance(steps, int) and steps and job.total and job.total > steps:
        out["windows"] = job.total // steps
        out["window"] = min((job.step or 0) // steps + 1, out["windows"])
    return out


def progress_fraction(job: Job) -> float:
    """Overall 0..1 progress from the phase and step the engine last reported."""
    if job.status == SUCCEEDED:
        return 1.0
    if job.status != RUNNING or not job.phase:
        return 0.0
    lo, hi = PHASE_SPAN.get(job.phase, (0.0, 0.0))
    if job.total:
        return round(lo + (hi - lo) * min(job.step or 0, job.total) / job.total, 4)
    return lo


def sidecar_windows(video: Path) -> list[dict[str, Any]] | None:
    """The window plan recorded in a finished video's JSON sidecar."""
    try:
        return json.loads(video.with_suffix(".json").read_text()).get("windows")
    except (OSError, ValueError):
        return None


def job_json(job: Job, queue_position: int | None, preview_url: str | None,
             windows: list[dict[str, Any]] | None) -> dict[str, Any]:
    resolved = job.resolved or {}
    return {
        "id": job.id,
        "status": job.status,
        "task": job.task,
        "queue_position": queue_position,
        "progress": progress_dict(job),
        "cancel_requested": job.cancel_requested,
        "settings": job.settings,
        "resolved_settings": job.resolved,
        "seed": resolved.get("seed"),
        "timings": job.timings,
        "error": job.error,
        "error_field": job.error_field,
        "inputs": {"images": len(job.images), "video": job.video is not None},
        "video_url": f"/api/jobs/{job.id}/video" if job.status == SUCCEEDED and job.output else None,
        "preview_url": preview_url,
        "created_at": job.created_at,
        "started_at": job.started_at,
        "finished_at": job.finished_at,
        "resubmitted_from": job.resubmitted_from,
        "group": job.group_id,  # the sweep this job is a cell of (GET /api/sweeps/{group})
        "windows": windows,
        "model": job.model,
    }
