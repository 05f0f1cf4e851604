"""Bounded requests: the model's pixel-frame budget, image bombs, fake videos, huge fields, short error texts."""

from __future__ import annotations

import json
import struct
import zlib
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from PIL import Image

from pusa.service.app import create_app

from .conftest import make_config, wait_job, write_png, write_video

FAST = {"steps": 2, "cfg": 1.0, "width": 64, "height": 64, "frames": 9}


@pytest.fixture(scope="module")
def app(tiny_model: Path, tmp_path_factory: pytest.TempPathFactory):
    app = create_app(make_config(tmp_path_factory.mktemp("data"), tiny_model), studio=False)
    with TestClient(app) as c:
        assert app.service.wait_for_model(60) and app.service.model_ready
        app.client = c  # type: ignore[attr-defined]
        yield app


@pytest.fixture
def client(app) -> TestClient:  # noqa: ANN001
    return app.client


def post(client: TestClient, settings: dict | str, files: list | None = None):
    data = {"settings": settings if isinstance(settings, str) else json.dumps(settings)}
    return client.post("/api/jobs", data=data, files=files or None)


def total_jobs(client: TestClient) -> int:
    return client.get("/api/jobs").json()["total"]


def png_header_only(width: int, height: int) -> bytes:
    """A PNG that declares width x height (1-bit grey) with one tiny IDAT: a few dozen bytes on disk."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    ihdr = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\x00")) + chunk(b"IEND", b"")


# ---------------------------------------------------------------------------------------------- pixel budget


def test_a_request_over_the_models_pixel_budget_is_refused_before_queueing(client: TestClient) -> None:
    before = total_jobs(client)
    r = post(client, {"prompt": "huge", "width": 4096, "height": 4096, "frames": 1001})
    assert r.status_code == 422, r.text
    assert "size" in [e["field"] for e in r.json()["errors"]] and "pixel frames" in r.json()["detail"]
    assert total_jobs(client) == before


def test_the_operator_sets_a_smaller_budget(tiny_model: Path, tmp_path: Path) -> None:
    app = create_app(make_config(tmp_path / "data", tiny_model, max_pixel_frames=64 * 64 * 5), studio=False)
    with TestClient(app) as c:
        # refused also while the model loads (the budget is the service's), and after
        r = post(c, {"prompt": "nine frames", **FAST})
        assert r.status_code == 422 and r.json()["errors"][0]["field"] == "size", r.text
        assert "20,480" in r.json()["detail"]
        assert app.service.wait_for_model(60)
        r = post(c, {"prompt": "nine frames", **FAST})
        assert r.status_code == 422 and r.json()["errors"][0]["field"] == "size"
        r = post(c, {"prompt": "five frames", **FAST, "frames": 5})
        assert r.status_code == 201, r.text
        assert wait_job(c, r.json()["id"])["status"] == "succeeded"


def test_serve_takes_the_budget_from_the_command_line() -> None:
    import argparse

    from pusa.service.cli import add_serve_options, config_from_args

    parser = argparse.ArgumentParser()
    add_serve_options(parser)
    config = config_from_args(parser.parse_args(["--max-pixel-frames", "123456"]))
    assert config.max_pixel_frames == 123456 and "max_pixel_frames" not in config.engine_options
    assert config_from_args(parser.parse_args([])).max_pixel_frames is None


# ---------------------------------------------------------------------------------------------- images


def test_uploads_leave_pils_bomb_guard_alone_and_a_bomb_is_refused(client: TestClient, tmp_path: Path) -> None:
    guard = Image.MAX_IMAGE_PIXELS
    ok = post(client, {"task": "i2v", "prompt": "fine", **FAST},
              [("images", ("a.png", write_png(tmp_path / "a.png").read_bytes(), "image/png"))])
    assert ok.status_code == 201, ok.text
    assert Image.MAX_IMAGE_PIXELS == guard and guard is not None
    bomb = png_header_only(20000, 20000)
    assert len(bomb) < 1000
    r = post(client, {"task": "i2v", "prompt": "bomb"}, [("images", ("bomb.png", bomb, "image/png"))])
    assert r.status_code == 413, r.text
    assert r.json()["errors"][0]["field"] == "images[0]" and "pixels" in r.json()["detail"]
    assert Image.MAX_IMAGE_PIXELS == guard
    wait_job(client, ok.json()["id"])


def test_upload_errors_do_not_show_server_paths(app, client: TestClient) -> None:  # noqa: ANN001
    r = post(client, {"task": "i2v", "prompt": "x"}, [("images", ("x.png", b"not an image at all", "image/png"))])
    assert r.status_code == 422 and r.json()["errors"][0]["field"] == "images[0]"
    r2 = post(client, {"task": "v2v", "prompt": "x", "cond_positions": "0"},
              [("video", ("x.mp4", b"\x00" * 2000, "video/mp4"))])
    assert r2.status_code == 422 and r2.json()["errors"][0]["field"] == "video"
    for text in (r.text, r2.text):
        assert str(app.config.data_dir) not in text and "staging" not in text and "/tmp" not in text


def test_a_job_error_does_not_show_server_paths(app, client: TestClient, tmp_path: Path,  # noqa: ANN001
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    from pusa.errors import MediaError

    def generate(settings, *, images, video, callback):  # noqa: ANN001, ANN202 - the engine's signature
        raise MediaError(f"images[0]: cannot read {images[0]}: truncated file")

    monkeypatch.setattr(app.service.host.engine, "generate", generate)
    r = post(client, {"task": "i2v", "prompt": "x", **FAST},
             [("images", ("a.png", write_png(tmp_path / "a.png").read_bytes(), "image/png"))])
    job = wait_job(client, r.json()["id"])
    assert job["status"] == "failed" and "truncated file" in job["error"], job
    assert str(app.config.data_dir) not in json.dumps(job) and "uploads/" in job["error"]


# ---------------------------------------------------------------------------------------------- videos


def zero_frame_mp4(path: Path) -> bytes:
    """An MP4 whose header promises a video stream, with the frame data cut off (decodes to 0 frames)."""
    data = write_video(path, frames=1).read_bytes()
    moov, mdat = data.find(b"moov"), data.find(b"mdat")
    if moov > mdat:  # put the header first so the cut keeps it
        import av

        with av.open(str(path)) as src, av.open(str(path.with_suffix(".fs.mp4")), "w", format="mp4",
                                                options={"movflags": "faststart"}) as dst:
            s_in = src.streams.video[0]
            s_out = dst.add_stream_from_template(s_in)
            for packet in src.demux(s_in):
                if packet.dts is not None:
                    packet.stream = s_out
                    dst.mux(packet)
        data = path.with_suffix(".fs.mp4").read_bytes()
        mdat = data.find(b"mdat")
    return data[:mdat + 4]


@pytest.mark.parametrize("kind", ["png", "zero-frames"])
def test_a_still_image_or_an_empty_video_is_not_a_video(client: TestClient, tmp_path: Path, kind: str) -> None:
    if kind == "png":
        name, body = "clip.mp4", write_png(tmp_path / "still.png").read_bytes()
    else:
        name, body = "clip.mp4", zero_frame_mp4(tmp_path / "one.mp4")
    before = total_jobs(client)
    r = post(client, {"task": "v2v", "prompt": "x", "cond_positions": "0"}, [("video", (name, body, "video/mp4"))])
    assert r.status_code == 422, r.text
    assert r.json()["errors"][0]["field"] == "video"
    assert ("still image" if kind == "png" else "no frames") in r.json()["detail"]
    assert total_jobs(client) == before


# ---------------------------------------------------------------------------------------------- huge requests


def test_a_megabyte_settings_field_is_named(client: TestClient) -> None:
    r = post(client, json.dumps({"prompt": "x" * (1024 * 1024 + 10)}))
    assert r.status_code in (400, 413, 422), r.text
    assert r.json()["errors"] and r.json()["errors"][0]["field"] in ("settings", "prompt")
    assert len(r.text) < 3000


def test_a_long_invalid_value_is_not_echoed_whole(client: TestClient) -> None:
    r = post(client, {"prompt": "x", "task": "t" * 100_000})
    assert r.status_code == 422 and r.json()["errors"][0]["field"] == "task"
    assert len(r.text) < 3000
    r = client.get("/api/jobs/" + "a" * 5000)
    assert r.status_code == 404 and len(r.text) < 3000
    r = client.get("/api/jobs", params={"status": "s" * 5000})
    assert r.status_code == 422 and len(r.text) < 3000


def test_a_thousand_and_one_files_are_named(client: TestClient) -> None:
    files = [("images", (f"{i}.png", b"x", "image/png")) for i in range(1001)]
    r = post(client, {"task": "keyframes", "prompt": "x"}, files)
    assert r.status_code in (400, 413), r.text
    assert r.json()["errors"][0]["field"] == "images"
