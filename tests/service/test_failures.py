"""The worker and the API under storage failures: a full disk never kills the worker or leaves a job running."""

from __future__ import annotations

import errno
import json
import sqlite3
import threading
import time
from pathlib import Path
from typing import Any, Callable

import pytest
from fastapi.testclient import TestClient

from pusa.service import worker as worker_module
from pusa.service.app import create_app

from .conftest import make_config, slow_loader, wait_job, write_png

FAST = {"steps": 2, "cfg": 1.0, "width": 64, "height": 64, "frames": 9}
DISK_FULL = "database or disk is full"


@pytest.fixture(autouse=True)
def quick_retries(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(worker_module, "RETRY_DELAYS", (0.01, 0.05))


def submit(c: TestClient, settings: dict[str, Any]) -> Any:
    return c.post("/api/jobs", data={"settings": json.dumps(settings)})


def until(predicate: Callable[[], Any], timeout: float = 60.0) -> Any:
    """Poll a condition (no wall-clock promise: the timeout only ends a hung test)."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.02)
    raise AssertionError("condition not reached")


def failing_while(flag: threading.Event, real: Callable[..., Any], error: BaseException) -> Callable[..., Any]:
    def call(*args: Any, **kwargs: Any) -> Any:
        if flag.is_set():
            raise error
        return real(*args, **kwargs)

    return call


def test_worker_survives_a_full_disk_and_the_job_ends_failed(tiny_model: Path, tmp_path: Path,
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    app = create_app(make_config(tmp_path / "data", tiny_model), studio=False)
    with TestClient(app) as c:
        assert app.service.wait_for_model(60) and app.service.model_ready
        store, engine = app.service.store, app.service.host.engine
        full = threading.Event()
        full.set()
        # the database refuses progress and the end of the job; the video cannot be written either
        monkeypatch.setattr(store, "set_progress", failing_while(full, store.set_progress,
                                                                 sqlite3.OperationalError(DISK_FULL)))
        monkeypatch.setattr(store, "finish", failing_while(full, store.finish, sqlite3.OperationalError(DISK_FULL)))
        monkeypatch.setattr(engine, "save", failing_while(full, engine.save,
                                                          OSError(errno.ENOSPC, "No space left on device",
                                                                  "/srv/secret/outputs/x.mp4")))
        jid = submit(c, {"prompt": "disk full", **FAST}).json()["id"]

        # the worker keeps trying to record the end; health and ready say why
        h = until(lambda: (r := c.get("/api/health")).status_code == 503 and "record the end" in
                  (r.json()["reason"] or "") and r.json())
        assert h["status"] == "error" and DISK_FULL in h["reason"] and h["worker"]["alive"]
        r = c.get("/api/ready")
        assert r.status_code == 503 and DISK_FULL in r.json()["reason"]
        assert c.get(f"/api/jobs/{jid}").json()["status"] == "running"
        assert c.delete(f"/api/jobs/{jid}").json()["action"] == "cancelling"

        full.clear()  # space comes back
        done = wait_job(c, jid)
        assert done["status"] == "failed"
        assert "out of space" in done["error"] and "free space" in done["error"] and "/srv" not in done["error"]
        assert not (app.config.data_dir / "outputs" / jid).exists()
        assert c.get("/api/health").json()["status"] == "ok"
        assert c.get("/api/ready").status_code == 200
        assert c.delete(f"/api/jobs/{jid}").json()["action"] == "deleted"
        # and the worker goes on with the next job
        assert wait_job(c, submit(c, {"prompt": "after", **FAST}).json()["id"])["status"] == "succeeded"


def test_progress_write_failures_do_not_end_the_job(tiny_model: Path, tmp_path: Path,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    app = create_app(make_config(tmp_path / "data", tiny_model), studio=False)
    with TestClient(app) as c:
        assert app.service.wait_for_model(60)
        store = app.service.store
        full = threading.Event()
        full.set()
        monkeypatch.setattr(store, "set_progress", failing_while(full, store.set_progress,
                                                                 sqlite3.OperationalError(DISK_FULL)))
        done = wait_job(c, submit(c, {"prompt": "no progress", **FAST}).json()["id"])
        assert done["status"] == "succeeded"


def test_a_storage_error_taking_the_next_job_is_retried(tiny_model: Path, tmp_path: Path,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    app = create_app(make_config(tmp_path / "data", tiny_model), studio=False)
    with TestClient(app) as c:
        assert app.service.wait_for_model(60)
        store = app.service.store
        full = threading.Event()
        full.set()
        monkeypatch.setattr(store, "claim_next", failing_while(full, store.claim_next,
                                                               sqlite3.OperationalError(DISK_FULL)))
        h = until(lambda: (r := c.get("/api/health")).status_code == 503 and r.json())
        assert "cannot take the next job" in h["reason"] and DISK_FULL in h["reason"]
        full.clear()
        until(lambda: c.get("/api/health").status_code == 200)
        assert wait_job(c, submit(c, {"prompt": "later", **FAST}).json()["id"])["status"] == "succeeded"


def test_a_dead_worker_is_reported(tiny_model: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    class ThreadKilled(BaseException):
        """Stands for whatever could still end a thread (not an Exception the loop catches)."""

    app = create_app(make_config(tmp_path / "data", tiny_model), studio=False)
    worker = app.service.worker

    def die() -> None:
        raise ThreadKilled

    monkeypatch.setattr(worker, "_step", die)
    monkeypatch.setattr(threading, "excepthook", lambda args: None)  # the death is the point of the test
    with TestClient(app) as c:
        assert app.service.wait_for_model(60)  # no model load may outlive the test (loads share global state)
        r = until(lambda: (r := c.get("/api/health")).status_code == 503 and r)
        assert r.json()["status"] == "error" and "worker has stopped" in r.json()["reason"]
        assert r.json()["worker"]["alive"] is False
        assert c.get("/api/ready").status_code == 503


@pytest.mark.parametrize("where", ["database", "files"])
def test_disk_full_at_submit_is_507_and_leaves_nothing(tiny_model: Path, tmp_path: Path, where: str,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    from pusa.service import uploads

    app = create_app(make_config(tmp_path / "data", tiny_model), studio=False)
    with TestClient(app) as c:
        assert app.service.wait_for_model(60)
        if where == "database":
            monkeypatch.setattr(app.service.store, "create", failing_while(
                _always(), app.service.store.create, sqlite3.OperationalError(DISK_FULL)))
        else:
            real_commit = uploads.commit

            def commit(staged: Any, job_dir: Path) -> Any:
                real_commit(staged, job_dir)  # the job's folder exists, then the disk fills
                raise OSError(errno.ENOSPC, "No space left on device", str(job_dir / "image_00.png"))

            monkeypatch.setattr(uploads, "commit", commit)
        png = write_png(tmp_path / "a.png")
        r = c.post("/api/jobs", data={"settings": json.dumps({"task": "i2v", "prompt": "x", **FAST})},
                   files=[("images", ("a.png", png.read_bytes(), "image/png"))])
        assert r.status_code == 507, r.text
        body = r.json()
        assert body["errors"][0]["field"] == "storage" and str(tmp_path) not in r.text
        uploads_dir = app.config.data_dir / "uploads"
        assert [p.name for p in uploads_dir.iterdir() if p.name != ".staging"] == []
        assert not any((uploads_dir / ".staging").glob("*"))
        assert c.get("/api/jobs").json()["total"] == 0


def _always() -> threading.Event:
    e = threading.Event()
    e.set()
    return e


def test_shutdown_records_the_running_job_as_interrupted(tiny_model: Path, tmp_path: Path) -> None:
    config = make_config(tmp_path / "data", tiny_model)
    app = create_app(config, loader=slow_loader(config, 0.2), studio=False)
    with TestClient(app) as c:
        jid = submit(c, {"prompt": "long", **FAST, "steps": 40}).json()["id"]
        wait_job(c, jid, until=("running",))
    # the server has stopped (lifespan shutdown, as on SIGTERM); a new one reads the record
    with TestClient(create_app(make_config(tmp_path / "data", tiny_model), studio=False)) as c:
        j = c.get(f"/api/jobs/{jid}").json()
        assert j["status"] == "interrupted" and "server stopped" in j["error"]
        assert c.post(f"/api/jobs/{jid}/resubmit").status_code == 201
