"""Durable job store: one SQLite file in the data dir, the job's files beside it.

Layout of a data dir::

    jobs.sqlite3            the job table (WAL mode)
    uploads/<job id>/       the job's input images / video (written atomically)
    outputs/<job id>/       the job's video + JSON sidecar (never overwritten)

SQLite (not an in-memory queue) is what lets history, queue order and the "running when the
process died" state survive a restart.
"""

from __future__ import annotations

import errno
import json
import sqlite3
import threading
import time
import uuid
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

QUEUED, RUNNING, SUCCEEDED, FAILED, CANCELLED = "queued", "running", "succeeded", "failed", "cancelled"
# the server stopped (shutdown, crash, kill) while the job ran: not the user's cancel, not the job's fault
INTERRUPTED = "interrupted"
STATUSES = (QUEUED, RUNNING, SUCCEEDED, FAILED, CANCELLED, INTERRUPTED)
TERMINAL = (SUCCEEDED, FAILED, CANCELLED, INTERRUPTED)

INTERRUPTED_REASON = ("interrupted: the server stopped while this job was running; "
                      "resubmit it to run it again")

_FULL_ERRNOS = {errno.ENOSPC, getattr(errno, "EDQUOT", errno.ENOSPC)}


class StorageError(RuntimeError):
    """The data dir cannot be read or written (disk full, I/O error, database locked).

    ``full`` tells "out of space" (HTTP 507, the operator must free space) from other failures
    (HTTP 503). The message never contains a path: it may reach clients.
    """

    def __init__(self, message: str, full: bool):
        super().__init__(message)
        self.full = full


class QueueFull(RuntimeError):
    """As many jobs as the operator allows already wait (HTTP 429: try again later)."""

    def __init__(self, limit: int):
        super().__init__(f"the queue is full ({limit} jobs waiting); try again when some have run")
        self.limit = limit


def as_storage_error(e: BaseException) -> StorageError | None:
    """The storage failure behind ``e`` (SQLite error, out-of-space OSError), or None for any other error."""
    if isinstance(e, StorageError):
        return e
    if isinstance(e, sqlite3.Error):
        text = str(e)
        return StorageError(f"the job database cannot be written ({text})", full="full" in text.lower())
    if isinstance(e, OSError) and e.errno in _FULL_ERRNOS:
        return StorageError(f"the data dir is out of space ({e.strerror or 'no space left on device'})", full=True)
    return None

_SCHEMA = """
CREATE TABLE IF NOT EXISTS jobs (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    id TEXT UNIQUE NOT NULL,
    status TEXT NOT NULL,
    task TEXT NOT NULL,
    settings TEXT NOT NULL,
    resolved TEXT,
    images TEXT NOT NULL DEFAULT '[]',
    video TEXT,
    created_at REAL NOT NULL,
    started_at REAL,
    finished_at REAL,
    phase TEXT,
    step INTEGER,
    total INTEGER,
    timings TEXT,
    error TEXT,
    error_field TEXT,
    output TEXT,
    cancel_requested INTEGER NOT NULL DEFAULT 0,
    resubmitted_from TEXT,
    model TEXT,
    group_id TEXT
);
CREATE INDEX IF NOT EXISTS jobs_status ON jobs(status, seq);
CREATE TABLE IF NOT EXISTS sweeps (
    id TEXT PRIMARY KEY,
    task TEXT NOT NULL,
    spec TEXT NOT NULL,
    created_at REAL NOT NULL
);
"""

# Columns added after the first release: (name, SQL type), added to older databases at open.
_ADDED_COLUMNS = (("model", "TEXT"), ("group_id", "TEXT"))


@dataclass
class Job:
    """One row of the job table, with JSON columns decoded."""

    seq: int
    id: str
    status: str
    task: str
    settings: dict[str, Any]
    resolved: dict[str, Any] | None
    images: list[str]
    video: str | None
    created_at: float
    started_at: float | None = None
    finished_at: float | None = None
    phase: str | None = None
    step: int | None = None
    total: int | None = None
    timings: dict[str, float] = field(default_factory=dict)
    error: str | None = None
    error_field: str | None = None
    output: str | None = None
    cancel_requested: bool = False
    resubmitted_from: str | None = None
    model: dict[str, Any] | None = None  # the model (label, picker ids, LoRA files) the job ran on
    group_id: str | None = None  # the sweep this job is a cell of (pusa.service.sweeps)

    @property
    def finished(self) -> bool:
        return self.status in TERMINAL

    @classmethod
    def from_row(cls, row: sqlite3.Row) -> "Job":
        d = dict(row)
        for key, empty in (("settings", {}), ("images", [])):
            d[key] = json.loads(d[key]) if d[key] else empty
        d["resolved"] = json.loads(d["resolved"]) if d["resolved"] else None
        d["model"] = json.loads(d["model"]) if d.get("model") else None
        d["timings"] = json.loads(d["timings"]) if d["timings"] else {}
        d["cancel_requested"] = bool(d["cancel_requested"])
        return cls(**d)


def new_job_id() -> str:
    """Random, URL- and path-safe id (hex only, so it can never escape the data dir)."""
    return uuid.uuid4().hex[:16]


def is_valid_job_id(job_id: str) -> bool:
    """Ids come from URLs; only our own hex ids may ever become a path component."""
    return 1 <= len(job_id) <= 32 and all(c in "0123456789abcdef" for c in job_id)


class JobStore:
    """Thread-safe access to the job table (one connection guarded by a lock)."""

    def __init__(self, data_dir: Path):
        self.data_dir = Path(data_dir)
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.uploads_dir = self.data_dir / "uploads"
        self.outputs_dir = self.data_dir / "outputs"
        self.uploads_dir.mkdir(exist_ok=True)
        self.outputs_dir.mkdir(exist_ok=True)
        self.path = self.data_dir / "jobs.sqlite3"
        self._lock = threading.RLock()
        self._db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None, timeout=10)
        self._db.row_factory = sqlite3.Row
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.executescript(_SCHEMA)
        have = {r[1] for r in self._db.execute("PRAGMA table_info(jobs)")}
        for name, kind in _ADDED_COLUMNS:  # a data dir from an older version keeps its history
            if name not in have:
                self._db.execute(f"ALTER TABLE jobs ADD COLUMN {name} {kind}")

    def close(self) -> None:
        with self._lock:
            self._db.close()

    # ------------------------------------------------------------------ helpers

    @contextmanager
    def _access(self) -> Iterator[sqlite3.Connection]:
        """The connection, under the lock; SQLite failures come out as StorageError."""
        with self._lock:
            try:
                yield self._db
            except sqlite3.Error as e:
                err = as_storage_error(e)
                assert err is not None
                raise err from e

    def _one(self, sql: str, args: tuple = ()) -> Job | None:
        with self._access() as db:
            row = db.execute(sql, args).fetchone()
        return Job.from_row(row) if row else None

    def _exec(self, sql: str, args: tuple = ()) -> int:
        with self._access() as db:
            return db.execute(sql, args).rowcount

    # ------------------------------------------------------------------ create / read

    def create(self, job_id: str, task: str, settings: dict[str, Any], images: list[str], video: str | None,
               resubmitted_from: str | None = None, max_queued: int | None = None) -> Job:
        """Insert a queued job; its files must already be in ``uploads/<id>/``.

        With ``max_queued``, raises QueueFull instead when that many jobs already wait (checked and
        inserted under one lock, so concurrent submissions cannot pass the cap together).
        """
        with self._access() as db:
            if max_queued is not None:
                waiting = db.execute("SELECT COUNT(*) FROM jobs WHERE status = ?", (QUEUED,)).fetchone()[0]
                if waiting >= max_queued:
                    raise QueueFull(max_queued)
            db.execute("INSERT INTO jobs (id, status, task, settings, images, video, created_at, resubmitted_from) "
                       "VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                       (job_id, QUEUED, task, json.dumps(settings), json.dumps(images), video, time.time(),
                        resubmitted_from))
        job = self.get(job_id)
        assert job is not None
        return job

    def create_group(self, group: str, task: str, spec: dict[str, Any],
                     jobs: list[tuple[str, dict[str, Any], list[str], str | None]], max_queued: int) -> list[Job]:
        """Queue a sweep's cells ``(id, settings, images, video)`` and its description in one
        transaction: all or none, and the queue cap counts every cell (QueueFull otherwise)."""
        with self._access() as db:
            waiting = db.execute("SELECT COUNT(*) FROM jobs WHERE status = ?", (QUEUED,)).fetchone()[0]
            if waiting + len(jobs) > max_queued:
                raise QueueFull(max_queued)
            now = time.time()
            db.execute("BEGIN IMMEDIATE")
            try:
                db.execute("INSERT INTO sweeps (id, task, spec, created_at) VALUES (?, ?, ?, ?)",
                           (group, task, json.dumps(spec), now))
                db.executemany("INSERT INTO jobs (id, status, task, settings, images, video, created_at, group_id) "
                               "VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                               [(i, QUEUED, task, json.dumps(st), json.dumps(im), v, now, group)
                                for i, st, im, v in jobs])
                db.execute("COMMIT")
            except BaseException:
                db.execute("ROLLBACK")
                raise
        return self.group_jobs(group)

    def get_sweep(self, group: str) -> dict[str, Any] | None:
        """A sweep's description (task, axes, cells with their job ids), or None."""
        with self._access() as db:
            row = db.execute("SELECT * FROM sweeps WHERE id = ?", (group,)).fetchone()
        return {**dict(row), "spec": json.loads(row["spec"])} if row else None

    def group_jobs(self, group: str) -> list[Job]:
        """The jobs of a sweep still in the table, in queue order."""
        with self._access() as db:
            rows = db.execute("SELECT * FROM jobs WHERE group_id = ? ORDER BY seq", (group,)).fetchall()
        return [Job.from_row(r) for r in rows]

    def get(self, job_id: str) -> Job | None:
        return self._one("SELECT * FROM jobs WHERE id = ?", (job_id,))

    def list(self, limit: int = 20, offset: int = 0, status: str | None = None) -> tuple[list[Job], int]:
        """Newest first; returns (page, total matching)."""
        where, args = ("WHERE status = ?", (status,)) if status else ("", ())
        with self._access() as db:
            total = db.execute(f"SELECT COUNT(*) FROM jobs {where}", args).fetchone()[0]
            rows = db.execute(f"SELECT * FROM jobs {where} ORDER BY seq DESC LIMIT ? OFFSET ?",
                                    (*args, limit, offset)).fetchall()
        return [Job.from_row(r) for r in rows], total

    def queue_position(self, job: Job) -> int | None:
        """1-based place among queued jobs (1 = next to run); None when not queued."""
        if job.status != QUEUED:
            return None
        with self._access() as db:
            ahead = db.execute("SELECT COUNT(*) FROM jobs WHERE status = ? AND seq < ?",
                                     (QUEUED, job.seq)).fetchone()[0]
        return ahead + 1

    def counts(self) -> dict[str, int]:
        with self._access() as db:
            rows = db.execute("SELECT status, COUNT(*) FROM jobs GROUP BY status").fetchall()
        out = {s: 0 for s in STATUSES}
        out.update({r[0]: r[1] for r in rows})
        return out

    # ------------------------------------------------------------------ state transitions

    def claim_next(self) -> Job | None:
        """Atomically move the oldest queued job to running and return it."""
        with self._access() as db:
            row = db.execute("SELECT id FROM jobs WHERE status = ? ORDER BY seq LIMIT 1", (QUEUED,)).fetchone()
            if row is None:
                return None
            changed = db.execute("UPDATE jobs SET status = ?, started_at = ?, phase = 'waiting' "
                                       "WHERE id = ? AND status = ?",
                                       (RUNNING, time.time(), row[0], QUEUED)).rowcount
            return self.get(row[0]) if changed else None

    def set_resolved(self, job_id: str, resolved: dict[str, Any]) -> None:
        self._exec("UPDATE jobs SET resolved = ? WHERE id = ?", (json.dumps(resolved), job_id))

    def set_model(self, job_id: str, model: dict[str, Any]) -> None:
        """Record the model a job runs on (shown with the job for good)."""
        self._exec("UPDATE jobs SET model = ? WHERE id = ?", (json.dumps(model), job_id))

    def set_progress(self, job_id: str, phase: str, step: int, total: int) -> None:
        self._exec("UPDATE jobs SET phase = ?, step = ?, total = ? WHERE id = ? AND status = ?",
                   (phase, step, total, job_id, RUNNING))

    def finish(self, job_id: str, status: str, *, output: str | None = None, timings: dict[str, float] | None = None,
               error: str | None = None, error_field: str | None = None,
               resolved: dict[str, Any] | None = None) -> None:
        """Record the end of a running job (succeeded, failed or cancelled)."""
        assert status in TERMINAL
        with self._access() as db:
            db.execute(
                "UPDATE jobs SET status = ?, finished_at = ?, output = COALESCE(?, output), timings = ?, "
                "error = ?, error_field = ?, resolved = COALESCE(?, resolved) WHERE id = ?",
                (status, time.time(), output, json.dumps(timings or {}), error, error_field,
                 json.dumps(resolved) if resolved is not None else None, job_id))

    def cancel_queued(self, job_id: str) -> bool:
        """Cancel a job that has not started; False if it is no longer queued."""
        return self._exec("UPDATE jobs SET status = ?, finished_at = ?, error = ? WHERE id = ? AND status = ?",
                          (CANCELLED, time.time(), "cancelled before it started", job_id, QUEUED)) == 1

    def request_cancel(self, job_id: str) -> bool:
        """Flag a running job; the worker stops it at the next step."""
        return self._exec("UPDATE jobs SET cancel_requested = 1 WHERE id = ? AND status = ?",
                          (job_id, RUNNING)) == 1

    def fail_queued(self, reason: str) -> int:
        """Fail every queued job (used when the model cannot load: they could never run)."""
        return self._exec("UPDATE jobs SET status = ?, finished_at = ?, error = ? WHERE status = ?",
                          (FAILED, time.time(), reason, QUEUED))

    def recover_interrupted(self) -> list[str]:
        """Jobs left 'running' by a dead process come back 'interrupted', with the reason, ready to resubmit."""
        with self._access() as db:
            ids = [r[0] for r in db.execute("SELECT id FROM jobs WHERE status = ?", (RUNNING,))]
            db.execute("UPDATE jobs SET status = ?, finished_at = ?, error = ? WHERE status = ?",
                       (INTERRUPTED, time.time(), INTERRUPTED_REASON, RUNNING))
        return ids

    def delete(self, job_id: str) -> bool:
        """Remove a finished job's row (its files are removed by the caller)."""
        marks = ", ".join("?" * len(TERMINAL))
        return self._exec(f"DELETE FROM jobs WHERE id = ? AND status IN ({marks})", (job_id, *TERMINAL)) == 1

    def finished_jobs(self) -> list[Job]:
        """Every finished job, the longest finished first (retention deletes in this order)."""
        marks = ", ".join("?" * len(TERMINAL))
        with self._access() as db:
            rows = db.execute(f"SELECT * FROM jobs WHERE status IN ({marks}) "
                              f"ORDER BY COALESCE(finished_at, created_at), seq", TERMINAL).fetchall()
        return [Job.from_row(r) for r in rows]

    def known_ids(self) -> set[str]:
        """Every job id in the table (to tell a job's folder from a leftover)."""
        with self._access() as db:
            return {r[0] for r in db.execute("SELECT id FROM jobs")}
