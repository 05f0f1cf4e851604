"""Long video through the HTTP API: start, middle and end images, a prompt per window, the plan in
the job, progress by window, errors naming the field."""

from __future__ import annotations

import json
from pathlib import Path

import av
import pytest
from fastapi.testclient import TestClient

from pusa.service.app import create_app

from .conftest import make_config, wait_job, write_png, write_video


@pytest.fixture(scope="module")
def client(tiny_model: Path, tmp_path_factory: pytest.TempPathFactory):
    app = create_app(make_config(tmp_path_factory.mktemp("data"), tiny_model), studio=False)
    with TestClient(app) as c:
        assert app.service.wait_for_model(60) and app.service.model_ready
        yield c


def _post(client, settings, images=(), video=None):
    files = [("images", (p.name, p.read_bytes(), "image/png")) for p in images]
    if video is not None:
        files.append(("video", (video.name, video.read_bytes(), "video/mp4")))
    return client.post("/api/jobs", data={"settings": json.dumps(settings)}, files=files or None)


def _frames(client, job_id) -> int:
    data = client.get(f"/api/jobs/{job_id}/video").content
    import io

    with av.open(io.BytesIO(data)) as c:
        return sum(1 for _ in c.decode(video=0))


def test_start_middle_end_images_and_three_prompts(client, tmp_path):
    imgs = [write_png(tmp_path / f"{i}.png", color=(40 * i, 200 - 40 * i, 90)) for i in range(3)]
    settings = {"task": "keyframes", "prompt": ["dawn", "noon", "dusk"], "frames": 25, "cond_positions": "0,3,6",
                "noise_multipliers": "0,0.2,0", "steps": 2, "cfg": 1.0, "size": [32, 32]}
    r = _post(client, settings, imgs)
    assert r.status_code == 201, r.text
    done = wait_job(client, r.json()["id"])
    assert done["status"] == "succeeded", done
    windows = done["windows"]
    assert [w["prompt"] for w in windows] == ["dawn", "noon", "dusk"]
    assert windows[0]["pixel_range"][0] == 0 and windows[-1]["pixel_range"][1] == 24
    assert _frames(client, done["id"]) == 25
    assert done["resolved_settings"]["prompts"] == ["dawn", "noon", "dusk"]


def test_extend_a_video(client, tmp_path):
    video = write_video(tmp_path / "in.mp4", frames=9, size=32)
    r = _post(client, {"task": "v2v", "prompt": "go on", "extend": 8, "steps": 2, "cfg": 1.0, "size": [32, 32]},
              video=video)
    assert r.status_code == 201, r.text
    done = wait_job(client, r.json()["id"])
    assert done["status"] == "succeeded", done
    assert _frames(client, done["id"]) == 9 + 8


@pytest.mark.parametrize("settings,field", [
    ({"prompt": ["a", "b", "c"], "frames": 13}, "prompts"),
    ({"prompt": "x", "frames": 2001}, "frames"),
    ({"prompt": "x", "frames": 13, "overlap": 5}, "overlap"),
    ({"prompt": "x", "task": "t2v", "extend": 8}, "extend"),
    ({"prompt": "x", "task": "keyframes", "frames": 25, "cond_positions": "0,9"}, "cond_positions"),
])
def test_plan_errors_name_the_field(client, tmp_path, settings, field):
    images = [write_png(tmp_path / "a.png"), write_png(tmp_path / "b.png")] if settings.get("task") == "keyframes" \
        else []
    r = _post(client, {"cfg": 1.0, **settings}, images)
    assert r.status_code == 422, r.text
    assert field in [e["field"] for e in r.json()["errors"]], r.json()
