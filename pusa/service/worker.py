"""The one worker thread: runs queued jobs in order and survives anything a job or the disk throws.

Why a separate class: the worker's promises are about failure, not generation. Whatever happens
(an engine bug, a full disk under the job database, a failing output write), the thread keeps
running, a job it claimed ends in a terminal state as soon as the store accepts a write again (or
as "interrupted" at the next start), and :meth:`Worker.health` says what is wrong meanwhile.
"""

from __future__ import annotations

import logging
import shutil
import threading
import time
from pathlib import Path
from typing import Any, Callable

from pusa.errors import GenerationCancelled, InputError, SettingsError
from pusa.service.engine import FAILED as HOST_FAILED, ModelHost
from pusa.service.store import (CANCELLED, FAILED, INTERRUPTED, INTERRUPTED_REASON, SUCCEEDED, Job, JobStore,
                                as_storage_error)
from pusa.settings import GenerationSettings

log = logging.getLogger(__name__)

PREVIEW_NAME = "preview.png"  # the latest denoising estimate of a running job (GET /api/jobs/{id}/preview)

# Pauses between attempts of a store write that failed (seconds); the last one repeats until it works.
RETRY_DELAYS = (0.05, 0.2, 0.5, 1.0, 2.0, 5.0)

USER_CANCEL, SHUTDOWN = "user", "shutdown"

# A job's error is shown to clients: long enough to name the problem, never a whole echoed input.
MAX_ERROR_CHARS = 1000


def retry_delay(attempt: int) -> float:
    """Back-off before attempt ``attempt + 1`` (1-based failures)."""
    return RETRY_DELAYS[min(attempt, len(RETRY_DELAYS)) - 1]


def describe_failure(e: BaseException) -> str:
    """A job's error text for an unexpected exception: storage trouble said plainly, no server paths."""
    storage = as_storage_error(e)
    if storage is not None:
        hint = "; free space in the data dir and resubmit" if storage.full else "; resubmit when it is fixed"
        return f"storage error: {storage}{hint}"
    if isinstance(e, OSError):  # its str() names paths on the server
        return f"internal error: {type(e).__name__}: {e.strerror or 'input/output error'}"
    return f"internal error: {type(e).__name__}: {e}"


def public_error(text: str, data_dir: Path) -> str:
    """A job error as clients may see it: paths inside the data dir made relative, cut to a readable length."""
    for root in {str(data_dir), str(data_dir.resolve())}:
        text = text.replace(root + "/", "").replace(root, "<data dir>")
    return text if len(text) <= MAX_ERROR_CHARS else text[:MAX_ERROR_CHARS - 40] + f"... ({len(text)} chars)"


class Worker:
    """Runs jobs one at a time, oldest first, once the model is ready; see the module docstring."""

    def __init__(self, store: JobStore, host: ModelHost, data_dir: Path):
        self.store = store
        self.host = host
        self.data_dir = data_dir
        self.current_job: str | None = None
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._cancel: dict[str, str] = {}  # job id -> USER_CANCEL or SHUTDOWN
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._problem: str | None = None
        self._problem_since: float | None = None

    # ------------------------------------------------------------------ control

    def start(self) -> None:
        self._thread = threading.Thread(target=self._loop, name="pusa-worker", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 30.0) -> None:
        """Stop after the current job: it is interrupted at its next step and recorded as such."""
        self._stop.set()
        job_id = self.current_job
        if job_id:
            self.request_cancel(job_id, SHUTDOWN)
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout)

    def wake(self) -> None:
        """A job was queued: look at the queue now rather than at the next poll."""
        self._wake.set()

    def request_cancel(self, job_id: str, why: str = USER_CANCEL) -> None:
        with self._lock:
            self._cancel.setdefault(job_id, why)

    def _cancel_reason(self, job_id: str) -> str | None:
        with self._lock:
            return self._cancel.get(job_id)

    # ------------------------------------------------------------------ health

    def health(self) -> dict[str, Any]:
        """{"alive", "running_job", "problem"}: problem is None, or why jobs cannot move on now."""
        alive = self._thread is not None and self._thread.is_alive()
        problem = self._problem
        if self._thread is not None and not alive and not self._stop.is_set():
            problem = "the job worker has stopped; restart the server"
        out: dict[str, Any] = {"alive": alive, "running_job": self.current_job, "problem": problem}
        if problem is not None and self._problem_since is not None:
            out["problem_for_s"] = round(time.time() - self._problem_since, 1)
        return out

    def _set_problem(self, text: str) -> None:
        if self._problem != text:
            log.error("worker: %s", text)
        if self._problem is None:
            self._problem_since = time.time()
        self._problem = text

    def _clear_problem(self) -> None:
        if self._problem is not None:
            log.warning("worker: recovered (%s)", self._problem)
        self._problem = None
        self._problem_since = None

    # ------------------------------------------------------------------ the loop

    def _loop(self) -> None:
        failures = 0
        while not self._stop.is_set():
            try:
                self._step()
                failures = 0
            except Exception as e:  # noqa: BLE001 - the worker must outlive any error; health reports it
                failures += 1
                self._set_problem(f"cannot take the next job: {describe_failure(e)}")
                log.debug("worker step failed", exc_info=True)
                self._stop.wait(retry_delay(failures))

    def _step(self) -> None:
        if not self.host.done.wait(0.5):
            return
        if self.host.state == HOST_FAILED:
            n = self.store.fail_queued(f"the model failed to load: {self.host.error}")
            self._clear_problem()
            if n:
                log.error("failed %d queued job(s): model did not load", n)
            self._idle()
            return
        with self.host.in_use:  # a model switch waits for this job; no job starts on a model being switched
            if not self.host.ready:
                return
            job = self.store.claim_next()
            self._clear_problem()
            if job is not None:
                self.current_job = job.id
                try:
                    self._run(job)
                finally:
                    self.current_job = None
                    with self._lock:
                        self._cancel.pop(job.id, None)
        if job is None:
            self._idle()

    def _idle(self) -> None:
        self._wake.wait(1.0)
        self._wake.clear()

    # ------------------------------------------------------------------ one job

    def _run(self, job: Job) -> None:
        t0 = time.time()
        timings: dict[str, float] = {"queued": round(t0 - job.created_at, 3)}
        status, fields = self._execute(job, timings)
        if fields.get("error"):
            fields["error"] = public_error(fields["error"], self.data_dir)
        timings["total"] = round(time.time() - t0, 3)
        if status != SUCCEEDED:
            shutil.rmtree(self.store.outputs_dir / job.id, ignore_errors=True)
        if self._write(f"record the end of job {job.id}", self.store.finish, job.id, status, timings=timings,
                       **fields):
            log.info("job %s %s in %.1f s", job.id, status, timings["total"])
        else:  # stopping while the store refuses writes: the next start records it as interrupted
            log.error("job %s: its end (%s) could not be recorded before shutdown", job.id, status)

    def _execute(self, job: Job, timings: dict[str, float]) -> tuple[str, dict[str, Any]]:
        """Run the job; never raises (a claimed job must always get an end state)."""
        engine = self.host.engine
        try:
            assert engine is not None, "the worker ran a job before the model was ready"
            self.store.set_model(job.id, self.host.record())
            settings = GenerationSettings.parse(job.settings)
            resolved = engine.validate(settings, len(job.images), job.video is not None)
            self.store.set_resolved(job.id, resolved.to_public_dict())
            self._check_cancel(job.id)
            result = engine.generate(resolved, images=[self.data_dir / p for p in job.images],
                                     video=self.data_dir / job.video if job.video else None,
                                     callback=lambda info: self._progress(job.id, info))
            out = self.store.outputs_dir / job.id / f"{job.id}.mp4"
            out.parent.mkdir(parents=True, exist_ok=True)
            if out.exists():  # never overwrite a finished output
                raise RuntimeError(f"the output of job {job.id} already exists; refusing to overwrite it")
            engine.save(result, out)
            timings.update({k: round(float(v), 3) for k, v in (getattr(result, "timings", None) or {}).items()})
            final = getattr(result, "settings", None) or resolved
            return SUCCEEDED, {"output": out.relative_to(self.data_dir).as_posix(), "resolved": final.to_public_dict()}
        except GenerationCancelled:
            if self._cancel_reason(job.id) == SHUTDOWN:
                return INTERRUPTED, {"error": INTERRUPTED_REASON}
            return CANCELLED, {"error": "cancelled while running"}
        except SettingsError as e:
            return FAILED, {"error": str(e), "error_field": e.problems[0].field if e.problems else None}
        except InputError as e:
            return FAILED, {"error": str(e)}
        except Exception as e:  # noqa: BLE001 - any single job's failure ends that job, not the worker
            log.exception("job %s failed", job.id)
            return FAILED, {"error": describe_failure(e)}

    def _check_cancel(self, job_id: str) -> None:
        if self._cancel_reason(job_id) is not None:
            raise GenerationCancelled(f"job {job_id} cancelled")

    def _progress(self, job_id: str, info: Any) -> None:
        """Engine callback: record progress (best effort: a failed write must not end the job), then cancel."""
        try:
            self.store.set_progress(job_id, str(info.phase), int(info.step), int(info.total))
        except Exception as e:  # noqa: BLE001 - progress is informative; health reports the storage problem
            self._set_problem(f"cannot record the progress of job {job_id}: {describe_failure(e)}")
        else:
            self._clear_problem()
        if getattr(info, "denoised", None) is not None:
            self._write_preview(job_id, info.denoised)
        self._check_cancel(job_id)

    def _write_preview(self, job_id: str, latents: Any) -> None:
        """The current estimate as a small PNG (``outputs/<id>/preview.png``), best effort like progress."""
        preview = getattr(self.host.engine, "preview", None)
        if preview is None:
            return
        try:
            from PIL import Image

            from pusa.atomic import atomic_file

            path = self.store.outputs_dir / job_id / PREVIEW_NAME
            with atomic_file(path) as tmp:
                Image.fromarray(preview(latents)).save(tmp, format="PNG")
        except Exception as e:  # noqa: BLE001 - a preview is a nicety; the job goes on
            log.warning("job %s: preview not written (%s)", job_id, describe_failure(e))

    def _write(self, what: str, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> bool:
        """Call a store write until it succeeds (backing off); False only if the server stops meanwhile."""
        attempt = 0
        while True:
            try:
                fn(*args, **kwargs)
            except Exception as e:  # noqa: BLE001 - retried; health says why meanwhile
                attempt += 1
                self._set_problem(f"cannot {what} (attempt {attempt}): {describe_failure(e)}")
                if self._stop.wait(retry_delay(attempt)):
                    return False
                continue
            self._clear_problem()
            return True
