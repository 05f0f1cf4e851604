"""Sweeps in the service: one request at several values of one or two settings, as a group of jobs.

A sweep is ordinary jobs (the same checks, queue, worker, history and video URLs as any job) that
share a ``group`` id; the store keeps the sweep's axes and cells beside them, so the API and the
studio can show the labelled grid after a restart. The cells are expanded and checked by
:mod:`pusa.sweep` with the service's own settings check: a sweep either queues whole or not at all,
and the queue cap counts every cell.
"""

from __future__ import annotations

import logging
import os
import shutil
from pathlib import Path
from typing import Any

from pusa.errors import ModelUnavailable
from pusa.service import uploads
from pusa.service.engine import FAILED as HOST_FAILED
from pusa.service.jobs import JobConflict, JobNotFound, JobService, Upload, storage_errors
from pusa.service.store import QUEUED, RUNNING, TERMINAL, Job, QueueFull, is_valid_job_id, new_job_id
from pusa.settings import GenerationSettings, ModelDefaults
from pusa.sweep import describe, expand, parse_axes

log = logging.getLogger(__name__)


class SweepService:
    """Submit, read and cancel sweeps through the one :class:`JobService`."""

    def __init__(self, jobs: JobService):
        self.jobs = jobs

    # ------------------------------------------------------------------ submission

    def _conditions(self, settings: GenerationSettings, n_images: int, has_video: bool) -> int:
        """How many conditions the request has once resolved (a single multiplier applies to each)."""
        family = self.jobs.model_family
        if family is not None:
            resolved = settings.resolve(family, n_images=n_images, has_video=has_video, wan22=True,
                                        max_pixel_frames=10**12)
        else:  # still loading: as lenient as the service's own check meanwhile
            resolved = settings.resolve(ModelDefaults(frames=settings.frames or 1001), n_images=n_images,
                                        has_video=has_video, wan22=True, max_pixel_frames=10**12)
        return len(resolved.cond_positions or [])

    def submit(self, raw: dict[str, Any], axes: Any, images: list[Upload] | None = None,
               video: Upload | None = None) -> dict[str, Any]:
        """Queue one job per cell under a new group id; returns the sweep as :meth:`get` shows it.

        Raises SettingsError (a bad axis names ``sweep.<axis>``; a cell's bad setting its field),
        UploadRejected, QueueFull (the cells do not all fit), ModelUnavailable, StorageError.
        """
        if self.jobs.host.state == HOST_FAILED:
            raise ModelUnavailable(f"the model failed to load, so no job can run: {self.jobs.host.error}")
        images = images or []
        parsed_axes = parse_axes(axes)
        limits = self.jobs.config.limits
        if len(images) > limits.max_images:
            raise uploads.UploadRejected("images", f"{len(images)} images; the limit is {limits.max_images}", 413)
        n, has_video = len(images), video is not None
        base = self.jobs.validate(raw, n, has_video)
        cells = expand(raw, parsed_axes, conditions=self._conditions(base, n, has_video),
                       check=lambda cell: self.jobs.validate(cell, n, has_video))
        max_queued = self.jobs.config.max_queued
        if self.jobs.queue_counts()[QUEUED] + len(cells) > max_queued:  # before copying any upload
            raise QueueFull(max_queued)
        with storage_errors():
            group = self._queue(base, cells, parsed_axes, images, video)
        self.jobs.worker.wake()
        log.info("queued sweep %s (%s, %d cells)", group, base.task, len(cells))
        return self.get(group)

    def _queue(self, base: GenerationSettings, cells: list, axes: list, images: list[Upload],
               video: Upload | None) -> str:
        staged = self.jobs.stage_inputs(base, images, video)
        store = self.jobs.store
        group, ids = new_job_id(), [new_job_id() for _ in cells]
        stems = [f"image_{i:02d}" for i in range(len(images))] + (["video"] if video is not None else [])
        dirs = [store.uploads_dir / i for i in ids]
        data_dir = self.jobs.config.data_dir
        try:
            first = [p.relative_to(data_dir).as_posix() for p in uploads.commit(list(zip(staged, stems)), dirs[0])]
            files = [first] + [_link_inputs(first, data_dir, d) for d in dirs[1:]]
            rows = []
            for job_id, cell, rel in zip(ids, cells, files):
                requested = GenerationSettings.parse(cell.request).model_dump(mode="json", exclude_unset=True)
                image_rel, video_rel = (rel[:-1], rel[-1]) if video is not None else (rel, None)
                rows.append((job_id, requested, image_rel, video_rel))
            spec = describe(axes, cells)
            for c, job_id in zip(spec["cells"], ids):
                c["job"] = job_id
            store.create_group(group, base.task, spec, rows, self.jobs.config.max_queued)
        except BaseException:
            uploads.discard(staged)
            for d in dirs:
                shutil.rmtree(d, ignore_errors=True)
            raise
        return group

    # ------------------------------------------------------------------ queries and control

    def _sweep(self, group: str) -> tuple[dict[str, Any], dict[str, Job]]:
        sweep = self.jobs.store.get_sweep(group) if is_valid_job_id(group) else None
        if sweep is None:
            raise JobNotFound(f"no sweep with group id {group[:40]!r}")
        return sweep, {j.id: j for j in self.jobs.store.group_jobs(group)}

    def get(self, group: str) -> dict[str, Any]:
        """The sweep: its axes and grid shape, and per cell its label, values, settings and job (status,
        progress, video URL as ``GET /api/jobs/{id}`` shows it; None once the job was deleted)."""
        sweep, jobs = self._sweep(group)
        spec = sweep["spec"]
        cells = []
        for c in spec["cells"]:
            job = jobs.get(c["job"])
            cells.append({**c, "settings": job.settings if job else None,
                          "status": job.status if job else "deleted",
                          "job": self.jobs.job_dict(job) if job else None, "job_id": c["job"]})
        statuses = [c["status"] for c in cells]
        return {"group": group, "task": sweep["task"], "created_at": sweep["created_at"], "axes": spec["axes"],
                "rows": spec["rows"], "cols": spec["cols"], "cells": cells,
                "finished": all(s in TERMINAL or s == "deleted" for s in statuses),
                "counts": {s: statuses.count(s) for s in sorted(set(statuses))}}

    def cancel(self, group: str) -> dict[str, Any]:
        """Cancel every cell still queued or running; finished cells keep their videos."""
        _, jobs = self._sweep(group)
        actions: dict[str, str] = {}
        # the queued cells first: cancelling the running one first would let the worker start the next
        for job in sorted(jobs.values(), key=lambda j: j.status != QUEUED):
            if job.status in (QUEUED, RUNNING):
                try:
                    actions[job.id] = self.jobs.cancel_or_delete(job.id)
                except (JobConflict, JobNotFound):
                    actions[job.id] = "finished"  # it ended meanwhile: nothing to cancel
        return {"group": group, "actions": actions}

    def delete(self, group: str) -> dict[str, Any]:
        """Like ``DELETE /api/jobs/{id}`` for every cell: cancel the unfinished, delete the finished."""
        _, jobs = self._sweep(group)
        actions: dict[str, str] = {}
        for job in sorted(jobs.values(), key=lambda j: j.status != QUEUED):
            try:
                actions[job.id] = self.jobs.cancel_or_delete(job.id)
            except (JobConflict, JobNotFound):
                actions[job.id] = "changed"
        return {"group": group, "actions": actions}


def _link_inputs(files: list[str], data_dir: Path, job_dir: Path) -> list[str]:
    """Each cell's own copy of the inputs (a hard link where the file system allows, so a 9-cell sweep
    of a large video costs its size once); deleting one cell's files leaves the others'."""
    job_dir.mkdir(parents=True, exist_ok=True)
    out = []
    for rel in files:
        src, dest = data_dir / rel, job_dir / Path(rel).name
        try:
            os.link(src, dest)
        except OSError:
            shutil.copyfile(src, dest)
        out.append(dest.relative_to(data_dir).as_posix())
    return out
