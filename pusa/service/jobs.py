"""The job service: submission (validation + uploads), the worker thread, cancel and resubmit.

Both the HTTP API and the Gradio studio call this one class, so a job submitted from the page and
one submitted with curl go through the same checks, the same queue and the same worker.
"""

from __future__ import annotations

import fcntl
import logging
import os
import shutil
import sqlite3
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO, Iterator

from pusa.errors import ModelUnavailable, SettingsError
from pusa.service import uploads
from pusa.service.config import ServiceConfig
from pusa.service.engine import FAILED as HOST_FAILED, ModelHost
from pusa.service.job_view import job_json, sidecar_windows
from pusa.service.model_view import ModelView
from pusa.service.housekeeping import Housekeeper, RetentionPolicy, clean_leftovers
from pusa.service.switching import ModelSwitcher, model_switcher
from pusa.service.store import (QUEUED, RUNNING, SUCCEEDED, Job, JobStore, QueueFull, as_storage_error,
                                is_valid_job_id, new_job_id)
from pusa.service.worker import Worker
from pusa.settings import GenerationSettings, ModelDefaults
from pusa.settings_parsing import excerpt

log = logging.getLogger(__name__)

class DataDirBusy(RuntimeError):
    """Another live server holds this data dir; two workers on one queue would corrupt job states."""


class JobNotFound(KeyError):
    """No job with this id (HTTP 404)."""


class JobConflict(RuntimeError):
    """The job is in a state that does not allow the request (HTTP 409)."""


@dataclass
class Upload:
    """One incoming file: either an open stream (HTTP) or a path on disk (Gradio)."""

    field: str
    stream: BinaryIO | None = None
    path: Path | None = None
    filename: str | None = None


@contextmanager
def storage_errors() -> Iterator[None]:
    """Turn a full disk or a failing database under a request into StorageError (HTTP 507 / 503)."""
    try:
        yield
    except (OSError, sqlite3.Error) as e:
        err = as_storage_error(e)
        if err is None:
            raise
        raise err from e


class JobService(ModelView):
    """Owns the store, the model host and the single worker thread for this process's device."""

    def __init__(self, config: ServiceConfig, host: ModelHost, loader_factory: Any = None):
        self.config = config
        self.host = host
        # the model picker (--models-dir): listing, current model, switching; None without a models dir
        self.models: ModelSwitcher | None = model_switcher(config, host, loader_factory)
        self.store = JobStore(config.data_dir)
        self.staging_dir = self.store.uploads_dir / ".staging"
        self.worker = Worker(self.store, host, config.data_dir)
        self.housekeeper = Housekeeper(self.store, RetentionPolicy(config.retention_days, config.retention_max_gb,
                                                                   config.cache_retention_hours),
                                       config.studio_cache_dir, config.housekeeping_interval_s)
        self._lock_file: Any = None

    @property
    def current_job(self) -> str | None:
        """Id of the job the worker runs now, if any."""
        return self.worker.current_job

    # ------------------------------------------------------------------ lifecycle

    def start(self) -> None:
        """Lock the data dir, fail jobs a dead process left running, start loading and the worker."""
        self._acquire_dir_lock()
        recovered = self.store.recover_interrupted()
        if recovered:
            log.warning("%d job(s) were running when the last server stopped; marked interrupted: %s",
                        len(recovered), ", ".join(recovered))
        shutil.rmtree(self.staging_dir, ignore_errors=True)
        removed = clean_leftovers(self.store, recovered)
        if removed:
            log.warning("removed %d leftover(s) of an interrupted server: %s", len(removed), ", ".join(removed[:20]))
        self.housekeeper.run_once()
        self.host.start()
        self.worker.start()
        self.housekeeper.start()

    def stop(self, timeout: float = 30.0) -> None:
        """Stop the worker (its job is interrupted at the next step) and release the data dir."""
        self.housekeeper.stop()
        self.worker.stop(timeout)
        self.store.close()
        if self._lock_file is not None:
            fcntl.flock(self._lock_file, fcntl.LOCK_UN)
            self._lock_file.close()
            self._lock_file = None

    def _acquire_dir_lock(self) -> None:
        f = open(self.config.data_dir / ".lock", "w")
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            f.close()
            raise DataDirBusy(f"another pusa server is using the data dir {self.config.data_dir}; stop it or "
                              f"choose another --data-dir") from None
        f.write(str(os.getpid()))
        f.flush()
        self._lock_file = f

    # ------------------------------------------------------------------ submission

    def validate(self, raw: dict[str, Any], n_images: int, has_video: bool) -> GenerationSettings:
        """Validate at the edge with the engine's own rules (raises SettingsError).

        With the model loaded this is exactly the engine's check. While it still loads, the
        model's default frame count is unknown, so positions are checked against the largest
        allowed length and Wan2.2-only fields are let through; the worker re-validates with the
        loaded model before running, and a job that fails then ends 'failed' with the field named.
        """
        settings = GenerationSettings.parse(raw)
        engine = self.host.engine
        if engine is not None:
            engine.validate(settings, n_images, has_video)
        else:
            settings.resolve(ModelDefaults(frames=settings.frames or 1001), n_images=n_images,
                             has_video=has_video, wan22=True, max_pixel_frames=self.config.max_pixel_frames)
        return settings

    def submit(self, raw: dict[str, Any], images: list[Upload] | None = None, video: Upload | None = None,
               *, resubmitted_from: str | None = None) -> Job:
        """Validate, check and store the inputs, and queue the job.

        Raises SettingsError / UploadRejected (the request), ModelUnavailable, StorageError (the
        server's disk); on any failure nothing of the request stays on disk.
        """
        with storage_errors():
            return self._submit(raw, images, video, resubmitted_from)

    def _submit(self, raw: dict[str, Any], images: list[Upload] | None, video: Upload | None,
                resubmitted_from: str | None) -> Job:
        if self.host.state == HOST_FAILED:
            raise ModelUnavailable(f"the model failed to load, so no job can run: {self.host.error}")
        images = images or []
        limits = self.config.limits
        self._check_queue_room()
        if len(images) > limits.max_images:
            raise uploads.UploadRejected("images", f"{len(images)} images; the limit is {limits.max_images}", 413)
        settings = self.validate(raw, len(images), video is not None)
        staged = self.stage_inputs(settings, images, video)
        job_id = new_job_id()
        job_dir = self.store.uploads_dir / job_id
        stems = [f"image_{i:02d}" for i in range(len(images))] + (["video"] if video is not None else [])
        # what the user asked for (seed left open stays open on "reuse"), not the filled-in values
        requested = settings.model_dump(mode="json", exclude_unset=True)
        try:
            paths = uploads.commit(list(zip(staged, stems)), job_dir)
            rel = [p.relative_to(self.config.data_dir).as_posix() for p in paths]
            image_rel, video_rel = (rel[:-1], rel[-1]) if video is not None else (rel, None)
            job = self.store.create(job_id, settings.task, requested, image_rel, video_rel,
                                    resubmitted_from=resubmitted_from, max_queued=self.config.max_queued)
        except BaseException:
            uploads.discard(staged)
            shutil.rmtree(job_dir, ignore_errors=True)
            raise
        log.info("queued job %s (%s)", job_id, settings.task)
        self.worker.wake()
        return job

    def stage_inputs(self, settings: GenerationSettings, images: list[Upload], video: Upload | None
                     ) -> list[uploads.StagedFile]:
        """Copy the uploads into staging and check them (pixels, duration, the video against the
        positions); on a refusal nothing stays. A job (or a sweep's cells) then commits them."""
        limits = self.config.limits
        staged: list[uploads.StagedFile] = []
        path: Path | None = None
        try:
            for up in images:
                path = self._stage(up)
                staged.append(uploads.check_image(path, up.field, limits))
                path = None
            if video is not None:
                path = self._stage(video)
                staged.append(uploads.check_video(path, video.field, limits, video.filename))
                self._check_video_positions(settings, path)
                path = None
        except BaseException:
            uploads.discard(staged)
            if path is not None:  # copied but refused by the check
                path.unlink(missing_ok=True)
            raise
        return staged

    def _check_video_positions(self, settings: GenerationSettings, path: Path) -> None:
        """Refuse, before queueing, positions the input video is too short for (the job would fail later).

        Only with the model loaded (its family maps positions to frames); an extension keeps the
        input's own last frames and needs no positions of it.
        """
        family = self.model_family
        positions = settings.cond_positions or []
        if family is None or not positions or settings.extend is not None:
            return
        from pusa.media import video_info

        have = int(video_info(path)["frames"])
        need = family.frames_needed(max(positions))
        if have < need:
            last = family.latent_frames(have) - 1
            raise SettingsError.single("cond_positions", f"position {max(positions)} needs at least {need} frames of "
                                                         f"the input video; it has {have} (positions 0 to {last})")

    def _check_queue_room(self) -> None:
        """Refuse early (before copying uploads) when the queue is full; store.create checks again atomically."""
        if self.store.counts()[QUEUED] >= self.config.max_queued:
            raise QueueFull(self.config.max_queued)

    def _stage(self, up: Upload) -> Path:
        if up.stream is not None:
            return uploads.copy_limited(up.stream, self.staging_dir, up.field, self.config.limits)
        assert up.path is not None
        return uploads.stage_path(Path(up.path), self.staging_dir, up.field, self.config.limits)

    def resubmit(self, job_id: str) -> Job:
        """Queue a copy of a finished job: same settings (and seed, if one was used) and inputs."""
        old = self.get(job_id)
        if not old.finished:
            raise JobConflict(f"job {job_id} is {old.status}; only a finished job can be resubmitted")
        raw = dict(old.settings)
        if "seed" not in raw and old.resolved and old.resolved.get("seed") is not None and old.status != SUCCEEDED:
            # an interrupted or failed run: reproduce the exact attempt
            raw["seed"] = old.resolved["seed"]
        self._check_queue_room()
        new_id = new_job_id()
        job_dir = self.store.uploads_dir / new_id
        with storage_errors():
            try:
                files = uploads.copy_inputs(old.images + ([old.video] if old.video else []), self.config.data_dir,
                                            job_dir)
                image_rel, video_rel = (files[:-1], files[-1]) if old.video else (files, None)
                job = self.store.create(new_id, old.task, raw, image_rel, video_rel, resubmitted_from=job_id,
                                        max_queued=self.config.max_queued)
            except FileNotFoundError:
                shutil.rmtree(job_dir, ignore_errors=True)
                raise JobConflict(f"the inputs of job {job_id} are no longer available") from None
            except BaseException:
                shutil.rmtree(job_dir, ignore_errors=True)
                raise
        self.worker.wake()
        return job

    # ------------------------------------------------------------------ queries and control

    def get(self, job_id: str) -> Job:
        """The job with this id; raises JobNotFound (also for ids that could never be ours)."""
        job = self.store.get(job_id) if is_valid_job_id(job_id) else None
        if job is None:
            raise JobNotFound(f"no job with id {excerpt(job_id)}")
        return job

    def list_jobs(self, limit: int = 20, offset: int = 0, status: str | None = None) -> tuple[list[Job], int]:
        """A page of jobs, newest first, and the number of jobs matching ``status``."""
        return self.store.list(limit, offset, status)

    def queue_counts(self) -> dict[str, int]:
        """How many jobs are in each status (every status present, zeros included)."""
        return self.store.counts()

    def health(self) -> dict[str, Any]:
        """Liveness of the parts that must keep running: status "ok" or "error", with the reason.

        Not ok when the worker thread has died or cannot move on (e.g. the job database refuses
        writes); the model's own state is reported beside it (a model still loading is ok).
        """
        worker = self.worker.health()
        reason = worker["problem"]
        try:
            queue: dict[str, int] | None = self.queue_counts()
        except Exception as e:  # noqa: BLE001 - health must answer even when the store does not
            queue = None
            reason = reason or f"the job database cannot be read ({type(e).__name__})"
        return {"status": "ok" if reason is None else "error", "reason": reason, "worker": worker,
                "model": self.model_snapshot(), "queue": queue, "running_job": worker["running_job"]}

    def keep_in_studio_cache(self, paths: list[Path]) -> None:
        """Files in the studio cache that retention must leave alone (the page's example inputs)."""
        self.housekeeper.keep_files(paths)

    def output_path(self, job: Job) -> Path | None:
        """The job's video, only if it lies inside the data dir's outputs (nothing else is served)."""
        if job.status != SUCCEEDED or not job.output:
            return None
        path = (self.config.data_dir / job.output).resolve()
        if not path.is_relative_to(self.store.outputs_dir.resolve()) or not path.is_file():
            return None
        return path

    def cancel_or_delete(self, job_id: str) -> str:
        """Cancel a queued/running job, delete a finished one. Returns 'cancelled', 'cancelling' or 'deleted'."""
        job = self.get(job_id)
        if job.status == QUEUED and self.store.cancel_queued(job_id):
            shutil.rmtree(self.store.uploads_dir / job_id, ignore_errors=True)
            return "cancelled"
        job = self.get(job_id)
        if job.status == RUNNING:
            self.worker.request_cancel(job_id)  # first: the worker stops even if the store refuses the flag
            self.store.request_cancel(job_id)
            return "cancelling"
        if job.finished and self.store.delete(job_id):
            shutil.rmtree(self.store.uploads_dir / job_id, ignore_errors=True)
            shutil.rmtree(self.store.outputs_dir / job_id, ignore_errors=True)
            return "deleted"
        raise JobConflict(f"job {job_id} changed state ({job.status}); try again")

    # ------------------------------------------------------------------ presentation

    def job_dict(self, job: Job) -> dict[str, Any]:
        """The API's JSON for a job (the studio shows the same fields)."""
        preview = f"/api/jobs/{job.id}/preview" if self.preview_path(job) is not None else None
        return job_json(job, self.store.queue_position(job), preview, self._windows(job))

    def preview_path(self, job: Job) -> Path | None:
        """The job's latest preview image, if one was written (inside the outputs folder only)."""
        from pusa.service.worker import PREVIEW_NAME

        path = (self.store.outputs_dir / job.id / PREVIEW_NAME).resolve()
        if not path.is_relative_to(self.store.outputs_dir.resolve()) or not path.is_file():
            return None
        return path

    def _windows(self, job: Job) -> list[dict[str, Any]] | None:
        """The long-video plan the finished video was made with, from its sidecar (None before)."""
        path = self.output_path(job)
        return sidecar_windows(path) if path is not None else None
