"""Fixtures for the service tests: the tiny random model, apps on it, input files, a live server.

Every test that generates runs the real engine (``PusaPipeline`` on the tiny diffusers model);
the only wrapper is :func:`slow_loader`, which adds a pause per denoising step so that "running"
lasts long enough to observe progress and cancel it on a fast CPU.
"""

from __future__ import annotations

import socket
import threading
import time
from pathlib import Path
from contextlib import contextmanager
from typing import Any, Callable, Iterator

import numpy as np
import pytest
from PIL import Image

from pusa.service.config import ServiceConfig, UploadLimits
from pusa.service.engine import PipelineEngine, pipeline_loader

ENGINE_OPTIONS = {"device": "cpu", "dtype": "fp32"}
# small limits so the 413 tests need only small files
TEST_LIMITS = UploadLimits(max_bytes=400_000, max_pixels=256 * 256, max_video_seconds=3.0, max_images=6)


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from pusa.testing.layouts import write_tiny_diffusers

    return write_tiny_diffusers(tmp_path_factory.mktemp("model") / "tiny", seed=0)


def make_config(data_dir: Path, model: Path, **kw: Any) -> ServiceConfig:
    kw.setdefault("limits", TEST_LIMITS)
    # Starlette's TestClient sends "Host: testserver"; a real client names this server's address
    kw.setdefault("allowed_hosts", ("testserver",))
    return ServiceConfig(data_dir=data_dir, model=model, engine_options=dict(ENGINE_OPTIONS), **kw)


def slow_loader(config: ServiceConfig, step_delay: float) -> Callable:
    """The real loader, with a pause after each denoising step (a stand-in for a slow GPU)."""
    real = pipeline_loader(config)

    def load(on_progress: Callable[[str, str], None]) -> PipelineEngine:
        engine = real(on_progress)
        inner = engine.generate

        def generate(settings: Any, *, images: Any, video: Any, callback: Callable) -> Any:
            def cb(info: Any) -> None:
                callback(info)
                if info.phase == "denoise":
                    time.sleep(step_delay)

            return inner(settings, images=images, video=video, callback=cb)

        engine.generate = generate  # type: ignore[method-assign]
        return engine

    return load


def write_png(path: Path, size: tuple[int, int] = (64, 64), color: tuple[int, int, int] = (200, 80, 40)) -> Path:
    img = Image.new("RGB", size, color)
    img.paste((20, 160, 220), (size[0] // 4, size[1] // 4, size[0] // 2, size[1] // 2))
    img.save(path)
    return path


def write_video(path: Path, frames: int = 9, size: int = 64, fps: int = 8) -> Path:
    from pusa.media import write_mp4

    t = np.arange(frames)[:, None, None]
    x = np.arange(size)[None, None, :]
    y = np.arange(size)[None, :, None]
    v = ((x * 3 + y + t * 20) % 256).astype(np.uint8)
    write_mp4(np.stack([v, 255 - v, v // 2], axis=-1), path, fps=fps)
    return path


def video_duration(path: Path) -> tuple[int, float]:
    """(decoded frame count, duration in seconds) of an MP4."""
    import av

    with av.open(str(path)) as c:
        s = c.streams.video[0]
        n = sum(1 for _ in c.decode(s))
        dur = float(s.duration * s.time_base) if s.duration else (c.duration or 0) / 1e6
    return n, dur


def wait_job(client: Any, job_id: str, timeout: float = 60.0, until: tuple[str, ...] = ("succeeded", "failed",
                                                                                        "cancelled")) -> dict:
    deadline = time.time() + timeout
    while time.time() < deadline:
        j = client.get(f"/api/jobs/{job_id}").json()
        if j["status"] in until:
            return j
        time.sleep(0.05)
    raise AssertionError(f"job {job_id} did not reach {until} in {timeout} s: {j}")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class LiveServer:
    """uvicorn in a thread, for the browser tests (same process, so the tiny model fixtures apply)."""

    def __init__(self, app: Any):
        import uvicorn

        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=self.port, log_level="warning",
                                                    lifespan="on"))
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def __enter__(self) -> "LiveServer":
        self.thread.start()
        deadline = time.time() + 30
        while not self.server.started:
            if time.time() > deadline or not self.thread.is_alive():
                raise RuntimeError("server did not start")
            time.sleep(0.05)
        return self

    def __exit__(self, *exc: Any) -> None:
        self.server.should_exit = True
        self.thread.join(30)


@contextmanager
def live_studio(app: Any, timeout: float = 60.0) -> Iterator[LiveServer]:
    """A live server whose studio page has been built and whose model has loaded."""
    import httpx

    with LiveServer(app) as srv:
        deadline = time.time() + timeout
        while httpx.get(f"{srv.url}/api/studio").json()["state"] != "ready" or not app.service.model_ready:
            assert time.time() < deadline, "studio or model not ready"
            time.sleep(0.2)
        yield srv
