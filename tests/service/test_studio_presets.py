"""The speed preset from the studio (issue 11): offered only when the loaded model can run it, picking
it sets Steps and CFG, and a job sends the tab's preset (no browser: the page's own events)."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import httpx
import pytest

from pusa.service.app import create_app
from pusa.service.studio.presets import preset_updates
from pusa.testing.layouts import make_tiny_dit, write_lora

from .conftest import live_studio, make_config, slow_loader, wait_job
from .test_studio_files import StudioClient


@pytest.fixture(scope="module")
def studio(tiny_model: Path, tmp_path_factory: pytest.TempPathFactory):
    """A server started as `pusa serve --preset lightx2v --extra-lora distill.safetensors`."""
    lora = write_lora(tmp_path_factory.mktemp("distill") / "distill.safetensors", make_tiny_dit(0), rank=4, seed=9)
    config = make_config(tmp_path_factory.mktemp("studio-presets"), tiny_model)
    config.engine_options.update(preset="lightx2v", extra_lora=lora)
    app = create_app(config, loader=slow_loader(config, 0.0), studio=True)
    with live_studio(app) as srv:
        srv.client = StudioClient(srv.url)  # type: ignore[attr-defined]
        srv.app = app  # type: ignore[attr-defined]
        yield srv


def test_the_page_starts_on_the_servers_preset_once_the_model_is_ready(studio) -> None:
    tab = SimpleNamespace(inputs={})
    preset, steps, cfg = preset_updates(studio.app.service, [tab], "ko")
    assert preset["choices"] == [("없음: Pusa 기본 샘플링", "none"), ("lightx2v: 4스텝, 가이던스 없음", "lightx2v")]
    assert (preset["value"], preset["visible"]) == ("lightx2v", True)
    assert (steps["value"], cfg["value"]) == (4, 1.0)


def test_picking_a_preset_sets_steps_and_cfg(studio) -> None:
    for name, expected in (("lightx2v", [4, 1.0]), ("none", [10, 5.0])):
        answer = studio.client.call("t2v-preset", {"t2v-preset": name})[0]["body"]["data"]
        assert [a["value"] for a in answer] == expected, answer


def test_a_job_runs_on_the_tabs_preset(studio) -> None:
    client: StudioClient = studio.client
    for preset, steps, cfg in (("lightx2v", 4, 1.0), ("none", 2, 1.0)):
        messages = client.call("t2v-generate", {"t2v-prompt": "a ball", "t2v-preset": preset, "t2v-steps": steps,
                                                "t2v-cfg": cfg, "t2v-frames": "5"}, timeout=120)
        assert '"success": true' in json.dumps(messages)
        job = httpx.get(f"{studio.url}/api/jobs", params={"limit": 1}).json()["items"][0]
        done = wait_job(httpx.Client(base_url=studio.url), job["id"])
        assert done["status"] == "succeeded", done
        s = done["resolved_settings"]
        assert (s["preset"], s["steps"]) == (preset, steps)
        # turning the server's preset off also turns its distillation LoRA off
        assert s["extra_lora_scale"] == (1.0 if preset == "lightx2v" else 0.0)


def test_reusing_a_job_of_a_preset_this_model_cannot_run_falls_back_to_none(tiny_model: Path, tmp_path: Path) -> None:
    """The menu cannot hold a value outside its choices (Gradio refuses the whole event), so reuse fills none."""
    from pusa.service.studio.forms import Form, TaskTab, fill_from_job

    app = create_app(make_config(tmp_path, tiny_model), studio=False)  # not started: jobs stay queued
    service = app.service
    job = service.submit({"prompt": "a ball", "steps": 1, "frames": 5})
    service.store.set_resolved(job.id, {"preset": "lightx2v", "steps": 4, "cfg": 1.0, "seed": 3})
    tab = TaskTab("t2v", Form())
    tab.inputs = {name: name for name in ("prompt", "steps", "cfg", "preset", "seed")}
    for available, expected in ((["none"], "none"), (["none", "lightx2v"], "lightx2v")):
        tab.presets_of = lambda available=available: available
        filled = fill_from_job(tab, service.get(job.id), None, tmp_path)
        assert (filled["preset"], filled["steps"], filled["cfg"]) == (expected, 4, 1.0)
