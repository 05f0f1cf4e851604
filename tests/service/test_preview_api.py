"""GET /api/jobs/{id}/preview: a PNG of the current estimate after each denoising step."""

from __future__ import annotations

import io
import json
import threading
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from PIL import Image

from pusa.service.app import create_app

from .conftest import make_config, slow_loader, wait_job


def test_preview_appears_while_running_and_follows_the_steps(tiny_model: Path, tmp_path: Path):
    config = make_config(tmp_path / "data", tiny_model)
    gate = threading.Event()
    base = slow_loader(config, 0.0)

    def loader(on_progress):  # hold the job at its second denoising step until the test has looked
        engine = base(on_progress)
        inner = engine.generate

        def generate(settings, *, images, video, callback):
            def cb(info):
                callback(info)
                if info.phase == "denoise" and info.step == 2:
                    assert gate.wait(60)
            return inner(settings, images=images, video=video, callback=cb)

        engine.generate = generate
        return engine

    app = create_app(config, loader=loader, studio=False)
    with TestClient(app) as c:
        assert app.service.wait_for_model(60)
        job_id = c.post("/api/jobs", data={"settings": json.dumps({"prompt": "a red ball", "steps": 4, "cfg": 1.0,
                                                                   "size": [64, 48], "frames": 9})}).json()["id"]
        assert c.get(f"/api/jobs/{job_id}/preview").status_code in (404, 200)
        deadline = 600
        while deadline:
            j = c.get(f"/api/jobs/{job_id}").json()
            if j["progress"]["phase"] == "denoise" and (j["progress"]["step"] or 0) >= 2:
                break
            deadline -= 1
            import time

            time.sleep(0.1)
        r = c.get(f"/api/jobs/{job_id}/preview")
        assert r.status_code == 200 and r.headers["content-type"] == "image/png"
        img = Image.open(io.BytesIO(r.content))
        assert img.size == (8 * 3, 6)  # 3 latent frames of 64x48 / 8, side by side
        assert c.get(f"/api/jobs/{job_id}").json()["preview_url"] == f"/api/jobs/{job_id}/preview"
        gate.set()
        assert wait_job(c, job_id)["status"] == "succeeded"
        assert c.get("/api/jobs/nope1234/preview").status_code == 404


@pytest.mark.parametrize("job_id", ["..%2F..%2Fetc", "x" * 200])
def test_preview_of_a_bad_id_is_404(tiny_model: Path, tmp_path: Path, job_id: str):
    app = create_app(make_config(tmp_path / "data", tiny_model), studio=False)
    with TestClient(app) as c:
        assert c.get(f"/api/jobs/{job_id}/preview").status_code == 404
