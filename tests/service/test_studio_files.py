"""The studio's Gradio routes, spoken to as a script would (no browser): which files a job may take.

A client can post any JSON to ``/gradio_api/queue/join``, including a file object naming a path on
the server. Only files Gradio itself received for this studio (its upload cache) or the studio's own
examples may become job inputs; anything else is refused next to the field, without a job, without
a copy in the cache, and without echoing the path.
"""

from __future__ import annotations

import json
import os
import time
import uuid
from pathlib import Path
from typing import Any

import httpx
import pytest

from pusa.service.app import create_app

from .conftest import live_studio, make_config, slow_loader, write_png, write_video

FILE_META = {"_type": "gradio.FileData"}


class StudioClient:
    """Gradio's queue protocol by hand: the trigger is named by its element id, inputs by theirs."""

    def __init__(self, url: str):
        self.url = url
        config = httpx.get(f"{url}/config", timeout=30).json()
        self.api = url + config["api_prefix"]
        self.components = {c["id"]: c for c in config["components"]}
        self.ids = {c["props"].get("elem_id"): i for i, c in self.components.items() if c["props"].get("elem_id")}
        self.dependencies = config["dependencies"]

    def dependency(self, trigger: str) -> dict[str, Any]:
        target = self.ids[trigger]
        return next(d for d in self.dependencies if any(t[0] == target for t in d["targets"]))

    def upload(self, path: Path) -> dict[str, Any]:
        """Send a file the way the page does; returns the file object to put in ``data``."""
        with open(path, "rb") as f:
            r = httpx.post(f"{self.api}/upload", files=[("files", (path.name, f))], timeout=30)
        r.raise_for_status()
        return {"path": r.json()[0], "orig_name": path.name, "meta": FILE_META}

    def call(self, trigger: str, values: dict[str, Any], timeout: float = 60.0) -> list[dict[str, Any]]:
        """Run the event of ``trigger`` as the page would: inputs default to the page's values.

        Returns the queue's messages, the one answer of an unqueued event, or the refusal of the
        request itself (``{"msg": "refused", ...}``).
        """
        dep = self.dependency(trigger)
        by_id = {i: self.components[i]["props"].get("value") for i in dep["inputs"]}
        for elem_id, value in values.items():
            assert self.ids[elem_id] in by_id, f"{elem_id} is not an input of {trigger}"
            by_id[self.ids[elem_id]] = value
        session = uuid.uuid4().hex
        body = {"data": [by_id[i] for i in dep["inputs"]], "event_data": None, "fn_index": dep["id"],
                "trigger_id": self.ids[trigger], "session_hash": session}
        route = "queue/join" if dep.get("queue") is not False else "run/predict"
        r = httpx.post(f"{self.api}/{route}", json=body, timeout=timeout)
        if r.status_code != 200:
            return [{"msg": "refused", "status": r.status_code, "body": r.json()}]
        if route == "run/predict":
            return [{"msg": "answer", "body": r.json()}]
        messages = []
        with httpx.stream("GET", f"{self.api}/queue/data", params={"session_hash": session},
                          timeout=timeout) as stream:
            for line in stream.iter_lines():
                if not line.startswith("data:"):
                    continue
                msg = json.loads(line[5:])
                messages.append(msg)
                if msg.get("msg") in ("process_completed", "close_stream"):
                    break
        return messages


def job_count(url: str) -> int:
    return httpx.get(f"{url}/api/jobs", params={"limit": 1}, timeout=30).json()["total"]


def files_holding(folder: Path, data: bytes) -> list[Path]:
    return [p for p in folder.rglob("*") if p.is_file() and p.read_bytes() == data]


@pytest.fixture(scope="module")
def studio(tiny_model: Path, tmp_path_factory: pytest.TempPathFactory):
    config = make_config(tmp_path_factory.mktemp("studio-files"), tiny_model)
    app = create_app(config, loader=slow_loader(config, 0.0), studio=True)
    with live_studio(app) as srv:
        srv.client = StudioClient(srv.url)  # type: ignore[attr-defined]
        srv.data_dir = config.data_dir  # type: ignore[attr-defined]
        yield srv


@pytest.fixture
def secrets(tmp_path: Path) -> dict[str, Path]:
    """Files outside every studio folder, with contents no other test writes."""
    d = tmp_path / "private"
    d.mkdir()
    return {"image": write_png(d / "secret.png", color=(1, 2, 3)), "video": write_video(d / "secret.mp4", frames=7)}


def outcome(messages: list[dict[str, Any]]) -> str:
    return json.dumps(messages)


CASES = {  # event trigger, the kind of secret, the file input, other inputs
    "i2v image": ("i2v-generate", "image", "i2v-image", {"i2v-prompt": "x", "i2v-steps": 1}),
    "keyframe image": ("keyframes-generate", "image", "keyframes-image-1", {"keyframes-prompt": "x",
                                                                           "keyframes-steps": 1}),
    "v2v video": ("v2v-generate", "video", "v2v-video-in", {"v2v-prompt": "x", "v2v-steps": 1,
                                                            "v2v-cond_positions": "0"}),
    # an unqueued event (/gradio_api/run/predict): the keyframe slots react to an image
    "keyframe slot change": ("keyframes-image-2", "image", "keyframes-image-2", {}),
}


@pytest.mark.parametrize("case", list(CASES))
@pytest.mark.parametrize("how", ["path", "symlink in the cache"])
def test_a_server_path_is_refused(studio, secrets: dict[str, Path], case: str, how: str) -> None:
    trigger, kind, elem, values = CASES[case]
    client: StudioClient = studio.client
    secret = secrets[kind]
    path = secret
    if how == "symlink in the cache":  # a link planted inside the cache must not lead out of it
        cache = studio.data_dir / "studio-cache"
        cache.mkdir(exist_ok=True)
        path = cache / f"link-{uuid.uuid4().hex}{secret.suffix}"
        os.symlink(secret, path)
    inputs = dict(values)
    if trigger == "keyframes-generate":  # a real upload next to the foreign one: only the foreign one is wrong
        inputs["keyframes-image-0"] = client.upload(write_png(secret.parent / "mine.png"))
    inputs[elem] = {"path": str(path), "orig_name": secret.name, "meta": FILE_META}
    before = job_count(studio.url)
    messages = client.call(trigger, inputs)
    text = outcome(messages)
    assert job_count(studio.url) == before, "a job was created from a file the studio never received"
    assert messages[0]["msg"] == "refused" and messages[0]["status"] == 422, text[-2000:]
    field = {"image": "images", "video": "video"}[kind]
    assert messages[0]["body"]["errors"][0]["field"].startswith(field), text
    assert "not uploaded through this page" in text, text[-2000:]
    assert str(secret) not in text and str(path) not in text, "the refusal echoes the server path"
    data = secret.read_bytes()
    assert not files_holding(studio.data_dir / "uploads", data)
    assert not [p for p in files_holding(studio.data_dir / "studio-cache", data) if not p.is_symlink()], \
        "the foreign file was copied into Gradio's cache (servable through /gradio_api/file=)"


def test_an_uploaded_file_still_makes_a_job(studio, tmp_path: Path) -> None:
    client: StudioClient = studio.client
    before = job_count(studio.url)
    image = client.upload(write_png(tmp_path / "upload.png", color=(9, 99, 199)))
    messages = client.call("i2v-generate", {"i2v-image": image, "i2v-prompt": "an upload", "i2v-steps": 1})
    assert job_count(studio.url) == before + 1, outcome(messages)[-2000:]
    assert 'data-status=\\"succeeded\\"' in outcome(messages)


def test_an_example_file_is_accepted(studio) -> None:
    client: StudioClient = studio.client
    before = job_count(studio.url)
    example = studio.data_dir / "examples" / "sunrise_start.png"
    messages = client.call("i2v-generate", {"i2v-image": {"path": str(example), "meta": FILE_META},
                                            "i2v-prompt": "an example", "i2v-steps": 1})
    assert job_count(studio.url) == before + 1, outcome(messages)[-2000:]


# ---------------------------------------------------------------------------------------------- the rule itself


def test_input_files_rule(tmp_path: Path) -> None:
    from pusa.service.studio.inputs import NOT_RECEIVED, InputFiles
    from pusa.service.uploads import UploadRejected

    cache, examples, outside = tmp_path / "cache", tmp_path / "examples", tmp_path / "outside"
    for d in (cache / "abc", examples, outside):
        d.mkdir(parents=True)
    files = InputFiles(cache, examples)
    upload = write_png(cache / "abc" / "up.png")
    example = write_png(examples / "ex.png")
    secret = write_png(outside / "secret.png")
    os.symlink(secret, cache / "abc" / "link.png")
    os.symlink(outside, cache / "dirlink")
    assert files.accept(str(upload), "images") == upload.resolve()
    assert files.accept(example, "images[1]") == example.resolve()
    for bad in [secret, cache / "abc" / "link.png", cache / "dirlink" / "secret.png", f"{cache}/abc/../../outside/"
                "secret.png", cache / "abc", f"file://{upload}", "http://127.0.0.1/x.png", "", None, 3]:
        assert not files.accepts(bad), bad
    with pytest.raises(UploadRejected) as e:
        files.accept(str(secret), "video")
    assert e.value.field == "video" and e.value.message == NOT_RECEIVED and str(secret) not in str(e.value)
    # a past job's input goes into the cache (once), where the page may send it back
    (tmp_path / "uploads" / "job1").mkdir(parents=True)
    job_input = write_png(tmp_path / "uploads" / "job1" / "image_00.png")
    adopted = files.adopt(job_input)
    assert adopted is not None and files.accepts(adopted) and Path(adopted).read_bytes() == job_input.read_bytes()
    assert files.adopt(job_input) == adopted and files.adopt(tmp_path / "gone.png") is None


def test_gradio_keeps_uploads_and_example_copies_in_the_given_cache_dir(tiny_model: Path, tmp_path: Path) -> None:
    from fastapi.testclient import TestClient

    from pusa.service.studio import mount_studio

    config = make_config(tmp_path / "data", tiny_model)
    app = create_app(config, studio=False)  # the service only: the studio is mounted by hand below
    cache = tmp_path / "given-cache"
    studio_app = mount_studio(app.service, config, cache_dir=cache)
    with TestClient(studio_app) as c:
        r = c.post("/gradio_api/upload", files=[("files", ("a.png", write_png(tmp_path / "a.png").read_bytes()))])
        assert r.status_code == 200, r.text
        uploaded = Path(r.json()[0])
        assert uploaded.is_file() and uploaded.resolve().is_relative_to(cache.resolve())
        assert c.get(f"/gradio_api/file={uploaded}").status_code == 200
    assert any(cache.rglob("sunrise_start.png")), "the example rows were not copied into the given cache"


def test_cache_retention_keeps_the_example_copies_the_page_names(tiny_model: Path, tmp_path: Path) -> None:
    """Gradio copies the example files into the studio cache once, when the page is built; the 24 h
    cache retention must not delete them (an example row would then send a missing path)."""
    from fastapi.testclient import TestClient

    from pusa.service.studio import mount_studio

    config = make_config(tmp_path / "data", tiny_model)
    app = create_app(config, studio=False)
    cache = app.service.housekeeper.cache_dir  # the folder retention sweeps: the studio's default cache
    with TestClient(app):
        studio_app = mount_studio(app.service, config)
        with TestClient(studio_app) as c:
            datasets = [x for x in c.get("/config").json()["components"] if x["type"] == "dataset"]
        named = {Path(v["path"]) for d in datasets for row in d["props"]["samples"] for v in row
                 if isinstance(v, dict) and v.get("path")}
        assert named and all(p.is_file() and p.resolve().is_relative_to(cache.resolve()) for p in named), named
        stale = cache / "someone" / "old-upload.png"
        stale.parent.mkdir(parents=True)
        write_png(stale)
        report = app.service.housekeeper.run_once(now=time.time() + 7 * 86400)  # a week later: all are "old"
        assert report is not None and report.cache_files >= 1 and not stale.exists()
        missing = [p for p in named if not p.is_file()]
        assert not missing, f"retention deleted the example copies the page sends: {missing}"
