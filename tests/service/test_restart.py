"""Restart survival: a server process is killed mid-job; a second one on the same data dir recovers."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
from fastapi.testclient import TestClient

from pusa.service.app import create_app

from .conftest import free_port, make_config, wait_job

REPO = Path(__file__).resolve().parents[2]
FAST = {"steps": 2, "cfg": 1.0, "width": 64, "height": 64, "frames": 9}


def test_killed_server_leaves_history_and_running_job_comes_back_interrupted(tiny_model: Path, tmp_path: Path) -> None:
    data = tmp_path / "data"
    port = free_port()
    cmd = [sys.executable, "-m", "pusa.service", "--model", str(tiny_model), "--device", "cpu", "--dtype", "fp32",
           "--data-dir", str(data), "--port", str(port), "--no-studio"]
    proc = subprocess.Popen(cmd, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            env={**os.environ, "PYTHONPATH": str(REPO)})
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.time() + 30
        while True:
            try:
                if httpx.get(f"{base}/api/health", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert proc.poll() is None and time.time() < deadline, proc.stderr.read().decode() if proc.stderr else ""
            time.sleep(0.1)

        def submit(settings: dict) -> str:
            r = httpx.post(f"{base}/api/jobs", data={"settings": json.dumps(settings)}, timeout=10)
            assert r.status_code == 201, r.text
            return r.json()["id"]

        class Remote:  # wait_job speaks to anything with .get(url)
            def get(self, url: str) -> httpx.Response:
                return httpx.get(base + url, timeout=10)

        done = submit({"prompt": "finished before the crash", "seed": 7, **FAST})
        assert wait_job(Remote(), done)["status"] == "succeeded"
        # a long job (many steps at a larger size) and one queued behind it
        running = submit({"prompt": "interrupted", "seed": 8, **FAST, "steps": 50, "width": 64, "height": 64,
                          "frames": 33})
        queued = submit({"prompt": "waiting", **FAST})
        wait_job(Remote(), running, until=("running",))
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)

    video_before = (data / "outputs" / done / f"{done}.mp4").read_bytes()
    app = create_app(make_config(data, tiny_model), studio=False)
    with TestClient(app) as c:
        j = c.get(f"/api/jobs/{running}").json()
        assert j["status"] == "interrupted" and "interrupted" in j["error"] and "resubmit" in j["error"]
        assert j["resolved_settings"]["seed"] == 8
        assert c.get(f"/api/jobs/{done}").json()["status"] == "succeeded"
        assert c.get(f"/api/jobs/{done}/video").content == video_before
        # the job that was waiting runs now
        assert wait_job(c, queued)["status"] == "succeeded"
        # one call resubmits the interrupted job with the same settings and seed
        r = c.post(f"/api/jobs/{running}/resubmit")
        assert r.status_code == 201
        again = r.json()
        assert again["resubmitted_from"] == running and again["settings"]["seed"] == 8
        assert c.post(f"/api/jobs/{again['id']}/resubmit").status_code == 409  # not finished yet
        assert c.delete(f"/api/jobs/{again['id']}").json()["action"] in ("cancelled", "cancelling")
        listing = c.get("/api/jobs?limit=50").json()
        assert {done, running, queued, again["id"]} <= {x["id"] for x in listing["items"]}
