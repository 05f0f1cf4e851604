"""HTTP API on the real engine (tiny model): every task, error codes, cancel, paging, token, loading."""

from __future__ import annotations

import io
import json
import threading
import time
from pathlib import Path

import av
import numpy as np
import pytest
from fastapi.testclient import TestClient

from pusa.service.app import create_app
from pusa.service.engine import pipeline_loader

from .conftest import make_config, slow_loader, video_duration, wait_job, write_png, write_video

FAST = {"steps": 2, "cfg": 1.0, "width": 64, "height": 64, "frames": 9}


@pytest.fixture(scope="module")
def client(tiny_model: Path, tmp_path_factory: pytest.TempPathFactory):
    app = create_app(make_config(tmp_path_factory.mktemp("data"), tiny_model), studio=False)
    with TestClient(app) as c:
        assert app.service.wait_for_model(60) and app.service.model_ready, app.service.model_snapshot()
        c.app_obj = app  # type: ignore[attr-defined]
        yield c


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("inputs")
    return {"a": write_png(d / "a.png"), "b": write_png(d / "b.png", color=(10, 200, 90)),
            "video": write_video(d / "in.mp4", frames=9)}


def post(client: TestClient, settings: dict | str, images: list[Path] = (), video: Path | None = None):
    files = [("images", (p.name, p.read_bytes(), "image/png")) for p in images]
    if video is not None:
        files.append(("video", (video.name, video.read_bytes(), "video/mp4")))
    data = {"settings": settings if isinstance(settings, str) else json.dumps(settings)}
    return client.post("/api/jobs", data=data, files=files or None)


# ---------------------------------------------------------------------------------------------- tasks


@pytest.mark.parametrize("task", ["t2v", "i2v", "keyframes", "v2v"])
def test_every_task_generates_a_video(client: TestClient, files: dict[str, Path], task: str, tmp_path: Path) -> None:
    settings = {"task": task, "prompt": f"a test of {task}", **FAST}
    images, video = [], None
    if task == "i2v":
        images = [files["a"]]
        settings["noise_multipliers"] = "0.3"
    elif task == "keyframes":
        images = [files["a"], files["b"]]
        settings.update(cond_positions="0,2", noise_multipliers="0.2,0.5")
    elif task == "v2v":
        video = files["video"]
        settings.update(cond_positions="0,1")
    r = post(client, settings, images, video)
    assert r.status_code == 201, r.text
    job = r.json()
    assert job["status"] in ("queued", "running") and r.headers["location"] == f"/api/jobs/{job['id']}"
    done = wait_job(client, job["id"])
    assert done["status"] == "succeeded", done
    assert done["progress"]["fraction"] == 1.0
    resolved = done["resolved_settings"]
    assert resolved["task"] == task and isinstance(done["seed"], int) and resolved["seed"] == done["seed"]
    if task == "keyframes":
        assert resolved["cond_positions"] == [0, 2] and resolved["noise_multipliers"] == [0.2, 0.5]
    if task == "v2v":
        assert resolved["cond_positions"] == [0, 1] and resolved["noise_multipliers"] == [0.0, 0.0]
    assert done["timings"]["denoise"] >= 0 and done["timings"]["total"] > 0
    assert done["inputs"] == {"images": len(images), "video": video is not None}
    v = client.get(done["video_url"])
    assert v.status_code == 200 and v.headers["content-type"] == "video/mp4"
    out = tmp_path / "out.mp4"
    out.write_bytes(v.content)
    n, dur = video_duration(out)
    assert n == 9 and dur > 0
    # the output and its settings sidecar live in the data dir, under the job's own folder
    data_dir = client.app_obj.config.data_dir  # type: ignore[attr-defined]
    sidecar = json.loads((data_dir / "outputs" / job["id"] / f"{job['id']}.json").read_text())
    assert sidecar["seed"] == done["seed"]


def test_same_seed_same_video(client: TestClient) -> None:
    ids = [post(client, {"prompt": "repeat", "seed": 1234, **FAST}).json()["id"] for _ in range(2)]
    frames = []
    for i in ids:
        data = client.get(wait_job(client, i)["video_url"]).content
        with av.open(io.BytesIO(data)) as c:  # compare pixels: the file also holds timings
            frames.append(np.stack([f.to_ndarray(format="rgb24") for f in c.decode(video=0)]))
    assert frames[0].shape[0] == 9 and np.array_equal(frames[0], frames[1])


# ---------------------------------------------------------------------------------------------- errors


@pytest.mark.parametrize("settings, field, words", [
    ({"prompt": "x", "steps": 0}, "steps", "from 1 to 50"),
    ({"prompt": "x", "stepz": 3}, "stepz", "allowed settings are"),
    ({"prompt": "x", "task": "img2vid"}, "task", "expected one of i2v, keyframes, v2v, t2v"),
    ({"prompt": "x", "width": 65}, "width", "multiple of 16"),
    ({"steps": 2}, "prompt", "required"),
    ({"prompt": "x", "task": "v2v", "cond_positions": "0,abc"}, "cond_positions", "'abc'"),
    ({"prompt": "x", "task": "v2v", "cond_positions": "0,1"}, "video", "needs an input video"),
    ({"prompt": "x", "task": "i2v"}, "images", "exactly 1 image"),
    ({"prompt": "x", "task": "t2v", "frames": 9, "cond_positions": "0"}, "cond_positions", "no conditions"),
    ({"prompt": "x", "preset": "turbo"}, "preset", "expected one of none, lightx2v"),
    # the model was loaded without a distillation LoRA: the 4-step preset cannot run on it
    ({"prompt": "x", "preset": "lightx2v"}, "preset", "allowed here: none"),
])
def test_bad_settings_are_422_naming_the_field(client: TestClient, settings: dict, field: str, words: str) -> None:
    r = post(client, settings)
    assert r.status_code == 422, r.text
    body = r.json()
    assert field in [e["field"] for e in body["errors"]], body
    assert words in body["detail"], body


def test_position_outside_the_model_frames_is_422(client: TestClient, files: dict[str, Path]) -> None:
    # 9 frames = 3 latent slots: position 5 does not exist (a cross-field rule of the engine)
    r = post(client, {"prompt": "x", "task": "keyframes", "frames": 9, "cond_positions": "0,5"},
             [files["a"], files["b"]])
    assert r.status_code == 422
    assert r.json()["errors"][0]["field"] == "cond_positions" and "outside 0 to 2" in r.json()["detail"]


def test_malformed_requests_are_422(client: TestClient) -> None:
    assert post(client, "{not json").json()["errors"][0]["field"] == "settings"
    assert post(client, "[1, 2]").status_code == 422
    r = client.post("/api/jobs", data={})
    assert r.status_code == 422 and r.json()["errors"][0]["field"] == "settings"
    r = client.post("/api/jobs", data={"settings": json.dumps({"prompt": "x", "task": "i2v"})},
                    files=[("images", ("x.png", b"this is not an image", "image/png"))])
    assert r.status_code == 422 and r.json()["errors"][0]["field"] == "images[0]"
    r = client.post("/api/jobs", data={"settings": json.dumps({"prompt": "x", "task": "v2v", "cond_positions": "0"})},
                    files=[("video", ("x.mp4", b"\x00" * 1000, "video/mp4"))])
    assert r.status_code == 422 and r.json()["errors"][0]["field"] == "video"
    assert client.get("/api/jobs?status=done").status_code == 422


@pytest.mark.parametrize("field, name, words", [
    ("images", "holiday.png", "this file is not an image we can read; upload a PNG, JPEG or WebP file"),
    ("video", "clip.mp4", "this file is not a video we can read; upload an MP4 or WebM file"),
])
def test_unreadable_uploads_are_one_sentence_without_exception_names(client: TestClient, tmp_path: Path, field: str,
                                                                    name: str, words: str) -> None:
    bad = tmp_path / name
    bad.write_bytes(b"\x00\x00\x00\x18ftypmp42" + b"not a picture, not a video " * 40)
    task = {"images": ("i2v", [bad], None), "video": ("v2v", [], bad)}[field]
    extra = {"cond_positions": "0", "noise_multipliers": "0"} if field == "video" else {"noise_multipliers": "0.2"}
    r = post(client, {"prompt": "x", "task": task[0], **FAST, **extra}, images=task[1], video=task[2])
    assert r.status_code == 422, r.text
    detail = r.json()["detail"]
    assert words in detail and "Error" not in detail and "staging" not in detail and str(tmp_path) not in detail


def test_too_large_uploads_are_413(client: TestClient, tmp_path: Path) -> None:
    big_bytes = tmp_path / "big.png"
    big_bytes.write_bytes(b"\x89PNG" + b"\x00" * 500_000)  # over the 400 kB test limit
    r = post(client, {"prompt": "x", "task": "i2v"}, [big_bytes])
    assert r.status_code == 413 and r.json()["errors"][0]["field"] == "images[0]" and "limit" in r.json()["detail"]
    many_pixels = write_png(tmp_path / "wide.png", size=(512, 256))  # 131072 px > 65536
    r = post(client, {"prompt": "x", "task": "i2v"}, [many_pixels])
    assert r.status_code == 413 and "pixels" in r.json()["detail"]
    long_video = write_video(tmp_path / "long.mp4", frames=33, size=32, fps=8)  # 4.1 s > 3 s
    r = post(client, {"prompt": "x", "task": "v2v", "cond_positions": "0"}, video=long_video)
    assert r.status_code == 413 and r.json()["errors"][0]["field"] == "video" and "3 s" in r.json()["detail"]
    # a request larger than all file limits together is refused from its Content-Length alone
    limit = client.app_obj.config.limits.max_request_bytes()  # type: ignore[attr-defined]
    r = client.post("/api/jobs", content=b"x" * (limit + 1), headers={"content-type": "multipart/form-data; b=x"})
    assert r.status_code == 413 and r.json()["errors"][0]["field"] == "request"
    # nothing was queued and nothing left in staging
    data_dir = client.app_obj.config.data_dir  # type: ignore[attr-defined]
    assert not any((data_dir / "uploads" / ".staging").glob("*"))


def test_unknown_ids_are_404(client: TestClient) -> None:
    for method, url in [("get", "/api/jobs/0123456789abcdef"), ("get", "/api/jobs/0123456789abcdef/video"),
                        ("delete", "/api/jobs/0123456789abcdef"), ("post", "/api/jobs/0123456789abcdef/resubmit"),
                        ("get", "/api/jobs/NOT-AN-ID")]:
        r = getattr(client, method)(url)
        assert r.status_code == 404, (method, url, r.text)
        assert "no job" in r.json()["detail"]
    r = client.get("/api/jobs/..%2F..%2Fjobs.sqlite3")
    assert r.status_code == 404 and r.json()["errors"] == []


def test_list_is_paged_newest_first(client: TestClient) -> None:
    ids = [post(client, {"prompt": f"page {i}", **FAST}).json()["id"] for i in range(3)]
    for i in ids:
        wait_job(client, i)
    page = client.get("/api/jobs?limit=2&offset=0").json()
    assert [j["id"] for j in page["items"]] == ids[::-1][:2] and page["total"] >= 3
    page2 = client.get("/api/jobs?limit=2&offset=2").json()
    assert page2["items"][0]["id"] == ids[0]
    ok = client.get("/api/jobs?status=succeeded&limit=200").json()
    assert all(j["status"] == "succeeded" for j in ok["items"])


def test_delete_finished_job_removes_it(client: TestClient) -> None:
    jid = post(client, {"prompt": "to delete", **FAST}).json()["id"]
    wait_job(client, jid)
    data_dir = client.app_obj.config.data_dir  # type: ignore[attr-defined]
    assert (data_dir / "outputs" / jid).is_dir()
    assert client.delete(f"/api/jobs/{jid}").json() == {"id": jid, "action": "deleted"}
    assert client.get(f"/api/jobs/{jid}").status_code == 404
    assert not (data_dir / "outputs" / jid).exists()


def test_health_ready_and_docs(client: TestClient) -> None:
    h = client.get("/api/health").json()
    assert h["status"] == "ok" and h["model"]["state"] == "ready"
    assert h["model"]["defaults"] == {"width": 64, "height": 64, "frames": 9}
    assert (h["model"]["presets"], h["model"]["preset"]) == (["none"], "none")  # no distillation LoRA loaded
    assert client.get("/api/ready").json()["ready"] is True
    schema = client.get("/api/openapi.json").json()
    assert "/api/jobs" in schema["paths"] and "/api/jobs/{job_id}/resubmit" in schema["paths"]
    assert client.get("/api/docs").status_code == 200


def test_progress_is_recorded_for_every_step(client: TestClient, monkeypatch: pytest.MonkeyPatch) -> None:
    store = client.app_obj.service.store  # type: ignore[attr-defined]
    seen: list[tuple[str, int, int]] = []
    real = store.set_progress

    def record(job_id: str, phase: str, step: int, total: int) -> None:
        seen.append((phase, step, total))
        real(job_id, phase, step, total)

    monkeypatch.setattr(store, "set_progress", record)
    jid = post(client, {"prompt": "progress", **FAST, "steps": 3}).json()["id"]
    assert wait_job(client, jid)["status"] == "succeeded"
    assert [s for s in seen if s[0] == "denoise"][-3:] == [("denoise", 1, 3), ("denoise", 2, 3), ("denoise", 3, 3)]
    phases = [s[0] for s in seen]
    assert phases.index("text") < phases.index("denoise") < phases.index("decode")


# ---------------------------------------------------------------------------------------------- cancel


def test_cancel_queued_and_running_within_one_step(tiny_model: Path, tmp_path: Path) -> None:
    config = make_config(tmp_path / "data", tiny_model)
    app = create_app(config, loader=slow_loader(config, 0.25), studio=False)
    with TestClient(app) as c:
        running = post(c, {"prompt": "long", **FAST, "steps": 30}).json()["id"]
        queued = post(c, {"prompt": "behind", **FAST}).json()["id"]
        assert c.get(f"/api/jobs/{queued}").json()["queue_position"] == 2  # both wait for the model
        wait_job(c, running, until=("running",))
        assert c.get(f"/api/jobs/{queued}").json()["queue_position"] == 1
        # wait until a few denoising steps have run, then cancel both
        deadline = time.time() + 60
        while True:
            j = c.get(f"/api/jobs/{running}").json()
            if j["progress"]["phase"] == "denoise" and (j["progress"]["step"] or 0) >= 2:
                break
            assert time.time() < deadline, j
            time.sleep(0.05)
        assert c.delete(f"/api/jobs/{queued}").json()["action"] == "cancelled"
        r = c.delete(f"/api/jobs/{running}")
        step_at_cancel = c.get(f"/api/jobs/{running}").json()["progress"]["step"]
        assert r.json()["action"] == "cancelling"
        done = wait_job(c, running, timeout=10)
        assert done["status"] == "cancelled" and done["error"] == "cancelled while running"
        assert done["progress"]["step"] <= step_at_cancel + 1 < 30  # stopped within one step
        assert c.get(f"/api/jobs/{queued}").json()["status"] == "cancelled"
        assert c.get(f"/api/jobs/{running}/video").status_code == 409
        # the worker goes on with the next job
        nxt = post(c, {"prompt": "after", **FAST}).json()["id"]
        assert wait_job(c, nxt)["status"] == "succeeded"


# ---------------------------------------------------------------------------------------------- loading


def test_answers_while_loading_and_queued_jobs_wait(tiny_model: Path, tmp_path: Path) -> None:
    config = make_config(tmp_path / "data", tiny_model)
    real = pipeline_loader(config)
    gate = threading.Event()

    def gated(on_progress):  # the real loader, held back until the test lets it go
        on_progress("transformer", "loading")
        assert gate.wait(60)
        return real(on_progress)

    app = create_app(config, loader=gated, studio=False)
    with TestClient(app) as c:
        # the loader is held back, so these answers cannot have waited for it (speed: benchmarks/bench_health.py)
        h = c.get("/api/health")
        assert h.status_code == 200 and h.json()["status"] == "ok"
        assert h.json()["model"]["state"] == "loading"
        assert h.json()["model"]["components"] == {"transformer": "loading"}
        assert c.get("/api/ready").status_code == 503
        jid = post(c, {"prompt": "early", **FAST}).json()["id"]
        j = c.get(f"/api/jobs/{jid}").json()
        assert j["status"] == "queued" and j["queue_position"] == 1
        gate.set()
        assert wait_job(c, jid)["status"] == "succeeded"
        assert c.get("/api/ready").status_code == 200


def test_model_load_failure_is_reported_not_fatal(tmp_path: Path) -> None:
    config = make_config(tmp_path / "data", tmp_path / "no-such-model")
    app = create_app(config, studio=False)
    with TestClient(app) as c:
        assert app.service.wait_for_model(30) and app.service.model_failed
        r = c.get("/api/ready")
        assert r.status_code == 503 and r.json()["model"]["state"] == "failed" and r.json()["model"]["error"]
        r = post(c, {"prompt": "x", **FAST})
        assert r.status_code == 503 and "failed to load" in r.json()["detail"]
        assert r.json()["errors"][0]["field"] == "model"
        assert c.get("/api/health").status_code == 200


# ---------------------------------------------------------------------------------------------- token


def test_token_protects_api_and_studio(tiny_model: Path, tmp_path: Path) -> None:
    app = create_app(make_config(tmp_path / "data", tiny_model, token="s3cret"), studio=False)
    with TestClient(app) as c:
        assert c.get("/api/health").status_code == 401
        assert c.get("/api/jobs").status_code == 401
        assert c.get("/api/docs").status_code == 401
        assert c.get("/api/health", headers={"Authorization": "Bearer wrong"}).status_code == 401
        assert c.get("/api/health", headers={"Authorization": "Bearer s3cret"}).status_code == 200
        assert c.get("/api/health?token=s3cret").status_code == 200
        page = c.get("/")
        assert page.status_code == 401 and "token" in page.text
        r = c.get("/?token=s3cret", follow_redirects=False)
        assert r.status_code == 303 and r.headers["location"] == "/" and "pusa_token=s3cret" in r.headers["set-cookie"]
        c.cookies.set("pusa_token", "s3cret")
        assert c.get("/").status_code == 200
        assert c.get("/api/jobs").status_code == 200


def test_second_server_on_same_data_dir_is_refused(tiny_model: Path, tmp_path: Path) -> None:
    config = make_config(tmp_path / "data", tiny_model)
    with TestClient(create_app(config, studio=False)):
        with pytest.raises(Exception, match="another pusa server"):
            with TestClient(create_app(make_config(tmp_path / "data", tiny_model), studio=False)):
                pass
