"""Keeping the data dir bounded: leftovers of a killed process, and retention of old jobs and caches.

Why it exists: without it, every job's inputs and video, every studio upload and every partial
file of a killed write stay on disk forever. What it removes, and when:

- at start (the data dir lock is held, no worker runs): hidden ``.*.part`` files and folders of an
  interrupted write, ``.tmp-*`` copies, and ``uploads/<id>`` / ``outputs/<id>`` folders whose job
  no longer exists (a kill between storing the files and recording the job);
- at start and then periodically: finished jobs older than ``retention_days`` and, oldest first,
  finished jobs while the jobs' files exceed ``retention_max_gb`` (queued and running jobs are
  never touched); files in Gradio's studio cache older than ``cache_retention_hours``.
"""

from __future__ import annotations

import logging
import shutil
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Collection

from pusa.service.store import JobStore, is_valid_job_id

log = logging.getLogger(__name__)

GB = 1024 ** 3


@dataclass(frozen=True)
class RetentionPolicy:
    """How long finished jobs and cached studio uploads are kept (None: no limit of that kind)."""

    days: float | None = None            # finished jobs older than this are deleted
    max_gb: float | None = None          # the oldest finished jobs go while uploads + outputs exceed this
    cache_hours: float | None = 24.0     # studio-cache files older than this are deleted (on by default)


@dataclass
class SweepReport:
    """What one pass removed (logged, and returned for tests)."""

    leftovers: list[str] = field(default_factory=list)
    jobs: list[str] = field(default_factory=list)
    cache_files: int = 0


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        path.unlink(missing_ok=True)


def _is_partial(name: str) -> bool:
    return (name.startswith(".") and name.endswith(".part")) or name.startswith(".tmp-")


def clean_leftovers(store: JobStore, interrupted: list[str] = ()) -> list[str]:
    """Remove partial writes and folders of jobs that do not exist; only safe while no worker runs.

    ``interrupted`` jobs (recovered at this start) lose their output folder too: it can hold only
    part of what they were writing, and a job that did not succeed serves no video.
    """
    removed: list[str] = []
    known = store.known_ids()
    for root in (store.uploads_dir, store.outputs_dir):
        for job_dir in root.iterdir():
            if not is_valid_job_id(job_dir.name):
                continue  # .staging (cleared by the service) and anything the operator put there
            if job_dir.name not in known or (root is store.outputs_dir and job_dir.name in interrupted):
                _remove(job_dir)
                removed.append(job_dir.relative_to(store.data_dir).as_posix())
                continue
            for item in job_dir.iterdir():
                if _is_partial(item.name):
                    _remove(item)
                    removed.append(item.relative_to(store.data_dir).as_posix())
    return removed


def folder_bytes(path: Path) -> int:
    total = 0
    for p in path.rglob("*"):
        try:
            if p.is_file() and not p.is_symlink():
                total += p.stat().st_size
        except OSError:  # removed meanwhile
            continue
    return total


def expire_jobs(store: JobStore, policy: RetentionPolicy, now: float | None = None) -> list[str]:
    """Delete finished jobs (row, uploads, outputs) by age, then oldest first by total size."""
    now = time.time() if now is None else now
    finished = store.finished_jobs()
    finished.sort(key=lambda j: j.finished_at or j.created_at)
    gone: list[str] = []

    def delete(job_id: str) -> None:
        if store.delete(job_id):
            shutil.rmtree(store.uploads_dir / job_id, ignore_errors=True)
            shutil.rmtree(store.outputs_dir / job_id, ignore_errors=True)
            gone.append(job_id)

    if policy.days is not None:
        cutoff = now - policy.days * 86400
        for job in [j for j in finished if (j.finished_at or j.created_at) < cutoff]:
            delete(job.id)
    if policy.max_gb is not None:
        budget = policy.max_gb * GB
        sizes = {j.id: folder_bytes(store.uploads_dir / j.id) + folder_bytes(store.outputs_dir / j.id)
                 for j in finished if j.id not in gone}
        total = folder_bytes(store.uploads_dir) + folder_bytes(store.outputs_dir)
        for job in finished:
            if total <= budget:
                break
            if job.id in sizes:
                delete(job.id)
                total -= sizes[job.id]
    return gone


def expire_cache(cache_dir: Path, hours: float | None, now: float | None = None,
                 keep: Collection[Path] = ()) -> int:
    """Delete studio-cache files older than ``hours`` (by modification time), then empty folders.

    ``keep``: files the page still names (Gradio's copies of the example inputs, made once when the
    page is built: without them an example row sends a path that no longer exists).
    """
    if hours is None or not cache_dir.is_dir():
        return 0
    cutoff = (time.time() if now is None else now) - hours * 3600
    n = 0
    for p in sorted(cache_dir.rglob("*"), key=lambda x: len(x.parts), reverse=True):
        try:
            if p.is_file() or p.is_symlink():
                if p.lstat().st_mtime < cutoff and p not in keep:
                    p.unlink()
                    n += 1
            elif p.is_dir() and not any(p.iterdir()):
                p.rmdir()
        except OSError:  # in use or removed meanwhile: next pass
            continue
    return n


def sweep(store: JobStore, policy: RetentionPolicy, cache_dir: Path, now: float | None = None,
          keep: Collection[Path] = ()) -> SweepReport:
    """One retention pass (jobs and the studio cache, except ``keep``); logs what it removed."""
    report = SweepReport(jobs=expire_jobs(store, policy, now),
                         cache_files=expire_cache(cache_dir, policy.cache_hours, now, keep))
    if report.jobs or report.cache_files:
        log.info("retention: deleted %d finished job(s) and %d studio-cache file(s)", len(report.jobs),
                 report.cache_files)
    return report


class Housekeeper:
    """Runs :func:`sweep` every ``interval`` seconds in a daemon thread (errors are logged, never fatal)."""

    def __init__(self, store: JobStore, policy: RetentionPolicy, cache_dir: Path, interval: float):
        self.store, self.policy, self.cache_dir, self.interval = store, policy, cache_dir, interval
        self.keep: frozenset[Path] = frozenset()  # studio-cache files the page names (never expired)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def keep_files(self, paths: Collection[Path]) -> None:
        """Never expire these studio-cache files (added to those kept so far)."""
        self.keep = self.keep | frozenset(paths)

    def run_once(self, now: float | None = None) -> SweepReport | None:
        try:
            return sweep(self.store, self.policy, self.cache_dir, now, self.keep)
        except Exception:  # noqa: BLE001 - a failed pass (disk error) is retried at the next one
            log.exception("retention pass failed")
            return None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._loop, name="pusa-housekeeping", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(10)

    def _loop(self) -> None:
        while not self._stop.wait(self.interval):
            self.run_once()
