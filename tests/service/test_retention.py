"""A bounded data dir: leftovers of a killed server swept at start, retention by age and size, a queue cap."""

from __future__ import annotations

import json
import os
import threading
import time
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from pusa.service.app import create_app
from pusa.service.engine import pipeline_loader
from pusa.service.housekeeping import RetentionPolicy, expire_cache, expire_jobs
from pusa.service.store import SUCCEEDED, JobStore

from .conftest import make_config, wait_job, write_png

FAST = {"steps": 2, "cfg": 1.0, "width": 64, "height": 64, "frames": 9}


def submit(c: TestClient, settings: dict, files: list | None = None):
    return c.post("/api/jobs", data={"settings": json.dumps(settings)}, files=files or None)


def finished_job(store: JobStore, job_id: str, size: int) -> None:
    """A succeeded job whose files weigh ``size`` bytes (no model needed)."""
    (store.uploads_dir / job_id).mkdir()
    (store.uploads_dir / job_id / "image_00.png").write_bytes(b"i" * (size // 2))
    (store.outputs_dir / job_id).mkdir()
    (store.outputs_dir / job_id / f"{job_id}.mp4").write_bytes(b"v" * (size - size // 2))
    store.create(job_id, "i2v", {"prompt": job_id}, [f"uploads/{job_id}/image_00.png"], None)
    claimed = store.claim_next()
    assert claimed is not None and claimed.id == job_id
    store.finish(job_id, SUCCEEDED, output=f"outputs/{job_id}/{job_id}.mp4")


# ---------------------------------------------------------------------------------------------- leftovers


def test_leftovers_of_a_killed_server_are_removed_at_start(tiny_model: Path, tmp_path: Path) -> None:
    data = tmp_path / "data"
    with TestClient(create_app(make_config(data, tiny_model), studio=False)) as c:
        done = wait_job(c, submit(c, {"prompt": "kept", **FAST}).json()["id"])
        assert done["status"] == "succeeded"
    jid = done["id"]
    # what kill -9 leaves: a partial MP4 and sidecar, a copy in progress, folders of an unrecorded job
    part = data / "outputs" / jid / f".{jid}.mp4.k3j2.part"
    part.write_bytes(b"half a video")
    (data / "outputs" / jid / f".{jid}.json.x1.part").write_text("{")
    (data / "uploads" / jid / ".tmp-abc123").write_bytes(b"half a copy")
    orphan = "0123456789abcdef"
    (data / "uploads" / orphan).mkdir()
    (data / "uploads" / orphan / "image_00.png").write_bytes(b"never queued")
    (data / "outputs" / orphan).mkdir()
    (data / "outputs" / "operator-notes").mkdir()  # not ours: never touched
    # and a job that was running (its partial output must go: it did not succeed)
    store = JobStore(data)
    store.create("fedcba9876543210", "t2v", {"prompt": "was running"}, [], None)
    assert store.claim_next() is not None
    (data / "outputs" / "fedcba9876543210").mkdir()
    (data / "outputs" / "fedcba9876543210" / "fedcba9876543210.mp4").write_bytes(b"whatever was there")
    store.close()

    with TestClient(create_app(make_config(data, tiny_model), studio=False)) as c:
        assert not part.exists() and not list((data / "outputs" / jid).glob(".*"))
        assert not list((data / "uploads" / jid).glob(".*"))
        assert not (data / "uploads" / orphan).exists() and not (data / "outputs" / orphan).exists()
        assert (data / "outputs" / "operator-notes").is_dir()
        assert c.get(f"/api/jobs/{jid}/video").status_code == 200  # the finished job is intact
        j = c.get("/api/jobs/fedcba9876543210").json()
        assert j["status"] == "interrupted" and not (data / "outputs" / "fedcba9876543210").exists()
        assert c.app.service.wait_for_model(60)  # type: ignore[attr-defined]


# ---------------------------------------------------------------------------------------------- retention


def test_finished_jobs_expire_by_age_and_queued_ones_never(tmp_path: Path) -> None:
    store = JobStore(tmp_path / "data")
    finished_job(store, "00000000000000a1", 100)
    store.create("00000000000000a2", "t2v", {"prompt": "waiting"}, [], None)
    now = time.time()
    assert expire_jobs(store, RetentionPolicy(days=2), now=now + 1 * 86400) == []
    assert expire_jobs(store, RetentionPolicy(days=2), now=now + 3 * 86400) == ["00000000000000a1"]
    assert store.get("00000000000000a1") is None and not (store.uploads_dir / "00000000000000a1").exists()
    assert not (store.outputs_dir / "00000000000000a1").exists()
    assert store.get("00000000000000a2") is not None  # queued: never expired
    store.close()


def test_the_oldest_finished_jobs_go_while_over_the_size_budget(tmp_path: Path) -> None:
    store = JobStore(tmp_path / "data")
    for i in range(3):
        finished_job(store, f"00000000000000b{i}", 1000)
    budget_gb = 2500 / 1024 ** 3  # room for two of the three
    assert expire_jobs(store, RetentionPolicy(max_gb=budget_gb)) == ["00000000000000b0"]
    assert expire_jobs(store, RetentionPolicy(max_gb=budget_gb)) == []
    assert [j.id for j in store.finished_jobs()] == ["00000000000000b1", "00000000000000b2"]
    store.close()


def test_studio_cache_files_expire_by_age(tmp_path: Path) -> None:
    cache = tmp_path / "studio-cache"
    (cache / "aa11").mkdir(parents=True)
    (cache / "bb22").mkdir()
    old, new = cache / "aa11" / "old.png", cache / "bb22" / "new.png"
    old.write_bytes(b"o")
    new.write_bytes(b"n")
    two_days_ago = time.time() - 2 * 86400
    os.utime(old, (two_days_ago, two_days_ago))
    assert expire_cache(cache, hours=24) == 1
    assert not old.exists() and not (cache / "aa11").exists() and new.exists()
    assert expire_cache(cache, hours=None) == 0 and new.exists()


def test_the_server_applies_retention_at_start(tiny_model: Path, tmp_path: Path) -> None:
    data = tmp_path / "data"
    with TestClient(create_app(make_config(data, tiny_model), studio=False)) as c:
        jid = wait_job(c, submit(c, {"prompt": "old", **FAST}).json()["id"])["id"]
    cached = data / "studio-cache" / "cc33" / "upload.png"
    cached.parent.mkdir(parents=True)
    cached.write_bytes(b"c")
    long_ago = time.time() - 3 * 86400
    os.utime(cached, (long_ago, long_ago))
    time.sleep(0.05)
    # default config: the cache expires (on by default), jobs are kept
    with TestClient(create_app(make_config(data, tiny_model), studio=False)) as c:
        assert not cached.exists()
        assert c.get(f"/api/jobs/{jid}").status_code == 200
        assert c.app.service.wait_for_model(60)  # type: ignore[attr-defined]
    # with a retention age shorter than the job's: it goes
    with TestClient(create_app(make_config(data, tiny_model, retention_days=0.01 / 86400), studio=False)) as c:
        assert c.get(f"/api/jobs/{jid}").status_code == 404
        assert not (data / "outputs" / jid).exists()
        assert c.app.service.wait_for_model(60)  # type: ignore[attr-defined]


# ---------------------------------------------------------------------------------------------- queue cap


def test_a_full_queue_answers_429_and_keeps_nothing(tiny_model: Path, tmp_path: Path) -> None:
    config = make_config(tmp_path / "data", tiny_model, max_queued=2)
    real = pipeline_loader(config)
    gate = threading.Event()

    def gated(on_progress):  # noqa: ANN001, ANN202 - jobs wait in the queue until the test lets the model load
        assert gate.wait(60)
        return real(on_progress)

    app = create_app(config, loader=gated, studio=False)
    png = write_png(tmp_path / "a.png")
    image = [("images", ("a.png", png.read_bytes(), "image/png"))]
    with TestClient(app) as c:
        first = submit(c, {"task": "i2v", "prompt": "1", **FAST}, image)
        assert first.status_code == 201
        assert submit(c, {"prompt": "2", **FAST}).status_code == 201
        r = submit(c, {"task": "i2v", "prompt": "3", **FAST}, image)
        assert r.status_code == 429, r.text
        assert r.json()["errors"][0]["field"] == "queue" and "2 jobs waiting" in r.json()["detail"]
        assert int(r.headers["retry-after"]) > 0
        jobs = {j["id"] for j in c.get("/api/jobs").json()["items"]}
        assert len(jobs) == 2 and first.json()["id"] in jobs
        assert {p.name for p in (app.config.data_dir / "uploads").iterdir() if p.name != ".staging"} <= jobs
        assert not any((app.config.data_dir / "uploads" / ".staging").glob("*"))
        gate.set()
        for job in c.get("/api/jobs").json()["items"]:
            wait_job(c, job["id"])
        assert submit(c, {"prompt": "room again", **FAST}).status_code == 201


def test_serve_options_set_retention_and_the_queue_cap() -> None:
    import argparse

    from pusa.service.cli import add_serve_options, config_from_args

    parser = argparse.ArgumentParser()
    add_serve_options(parser)
    c = config_from_args(parser.parse_args(["--max-queued", "5", "--retention-days", "7", "--retention-max-gb", "20",
                                            "--cache-retention-hours", "0"]))
    assert (c.max_queued, c.retention_days, c.retention_max_gb, c.cache_retention_hours) == (5, 7.0, 20.0, None)
    c = config_from_args(parser.parse_args([]))
    assert (c.max_queued, c.retention_days, c.retention_max_gb, c.cache_retention_hours) == (100, None, None, 24.0)
