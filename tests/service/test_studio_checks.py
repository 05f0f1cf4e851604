"""Refused inputs on the studio's page: one sentence next to the field, on upload and before queueing,
never an exception name or a server path (spoken to as the page speaks, no browser)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from pusa.service.app import create_app
from pusa.service.store import QueueFull, StorageError

from .conftest import live_studio, make_config, slow_loader, write_video
from .test_studio_files import StudioClient, job_count

RAW_NAMES = ("UnidentifiedImageError", "InvalidDataError", "Traceback", "studio-cache", "uploads/", ".staging")


@pytest.fixture(scope="module")
def studio(tiny_model: Path, tmp_path_factory: pytest.TempPathFactory):
    config = make_config(tmp_path_factory.mktemp("studio-checks"), tiny_model)
    app = create_app(config, loader=slow_loader(config, 0.0), studio=True)
    with live_studio(app) as srv:
        srv.client = StudioClient(srv.url)  # type: ignore[attr-defined]
        srv.app = app  # type: ignore[attr-defined]
        yield srv


def _clean(text: str) -> None:
    for raw in RAW_NAMES:
        assert raw not in text, f"{raw!r} reached the page: {text[-1500:]}"


def test_a_non_image_is_refused_on_upload_and_on_generate(studio, tmp_path: Path) -> None:
    client: StudioClient = studio.client
    fake = tmp_path / "holiday.png"
    fake.write_bytes(b"this is a text file, not a picture\n" * 20)
    up = client.upload(fake)
    answer = json.dumps(client.call("i2v-image", {"i2v-image": up}))
    assert "not an image we can read: PNG, JPEG, WebP" in answer, answer[-1500:]
    _clean(answer)
    before = job_count(studio.url)
    messages = json.dumps(client.call("i2v-generate", {"i2v-image": up, "i2v-prompt": "x", "i2v-steps": 1}))
    assert "not an image we can read: PNG, JPEG, WebP" in messages, messages[-1500:]
    assert '"msg": "process_completed"' in messages and '"success": true' in messages  # no error toast
    _clean(messages)
    assert job_count(studio.url) == before


def test_a_corrupt_video_is_refused_in_a_sentence(studio, tmp_path: Path) -> None:
    client: StudioClient = studio.client
    bad = tmp_path / "clip.mp4"
    bad.write_bytes(b"\x00\x00\x00\x18ftypmp42" + b"garbage" * 200)
    up = client.upload(bad)
    answer = json.dumps(client.call("v2v-video-in", {"v2v-video-in": up}))
    assert "not a video we can read" in answer, answer[-1500:]
    _clean(answer)


def test_a_video_too_short_for_its_positions_is_refused_before_queueing(studio, tmp_path: Path) -> None:
    client: StudioClient = studio.client
    up = client.upload(write_video(tmp_path / "short.mp4", frames=5))  # 2 latent frames: positions 0 and 1
    before = job_count(studio.url)
    messages = json.dumps(client.call("v2v-generate", {"v2v-video-in": up,
                                                        "v2v-prompt": "x", "v2v-steps": 1,
                                                        "v2v-cond_positions": "0,2"}))
    assert job_count(studio.url) == before, "a job was queued that could only fail"
    assert "position 2 needs at least 9 frames of the input video; it has 5" in messages, messages[-1500:]
    _clean(messages)


@pytest.mark.parametrize("error,words", [(QueueFull(3), "the queue is full"),
                                         (StorageError("the data dir is out of space (x)", full=True),
                                          "the data dir is out of space")])
def test_queue_full_and_storage_errors_are_shown(studio, monkeypatch, error: Exception, words: str) -> None:
    def refuse(*_a, **_k):
        raise error

    monkeypatch.setattr(studio.app.service, "submit", refuse)
    messages = json.dumps(studio.client.call("t2v-generate", {"t2v-prompt": "x", "t2v-steps": 1}))
    assert f"Not queued: {words}" in messages, messages[-1500:]
    assert '"success": true' in messages
