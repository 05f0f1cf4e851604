"""The model and LoRA picker (``pusa serve --models-dir``): discovery on real on-disk layouts, and
switching over the API on the real engine (tiny models)."""

from __future__ import annotations

import json
import os
import sqlite3
import threading
import time
from pathlib import Path
from typing import Any, Callable

import pytest
from fastapi.testclient import TestClient

from pusa.service.app import create_app
from pusa.service.config import ServiceConfig
from pusa.service.engine import pipeline_loader
from pusa.service.models_dir import scan
from pusa.service.store import JobStore

from .conftest import make_config, wait_job

FAST = {"task": "t2v", "prompt": "a test", "steps": 2, "cfg": 1.0, "width": 64, "height": 64, "frames": 9}


@pytest.fixture(scope="module")
def shelf(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A models dir as an operator would fill it: two models in two layouts, a Wan2.2 model, a model
    whose weights are broken, LoRAs (a file, a pickle in loras/, a Wan2.2 pair), and things to skip."""
    import torch

    from pusa.testing.layouts import (make_tiny_dit, write_lora, write_tiny_diffusers, write_tiny_wan21_original)

    root = tmp_path_factory.mktemp("models")
    write_tiny_diffusers(root / "tiny-a", seed=3)
    write_tiny_wan21_original(root / "tiny-b", seed=5)
    write_tiny_diffusers(root / "wan22", seed=7, wan22=True)
    broken = write_tiny_diffusers(root / "broken", seed=9)
    weights = next((broken / "transformer").glob("*.safetensors"))
    weights.write_bytes(weights.read_bytes()[:200])  # the layout is recognised; loading its weights fails
    dit = make_tiny_dit(3)
    write_lora(root / "pusa_tiny.safetensors", dit, style="pusa")
    (root / "loras").mkdir()
    write_lora(root / "loras" / "other.pt", dit, style="original")
    torch.save({"blocks.0.weight": torch.zeros(2)}, str(root / "loras" / "bad.pt"))  # offered by name; fails to load
    (root / "pair").mkdir()
    write_lora(root / "pair" / "high_noise_pusa.safetensors", dit)
    write_lora(root / "pair" / "low_noise_pusa.safetensors", dit, seed=1)
    from safetensors.torch import save_file

    save_file({"blocks.0.weight": torch.zeros(2)}, str(root / "not_a_lora.safetensors"))
    (root / "notes").mkdir()
    (root / "notes" / "readme.txt").write_text("not a model")
    outside = tmp_path_factory.mktemp("outside")
    write_tiny_wan21_original(outside / "elsewhere", seed=11)
    write_lora(outside / "far.safetensors", dit)
    os.symlink(outside / "elsewhere", root / "escape")
    os.symlink(outside / "far.safetensors", root / "far.safetensors")
    return root


# ------------------------------------------------------------------------------------------ discovery


def test_scan_lists_models_and_loras_and_skips_the_rest(shelf: Path) -> None:
    listing = scan(shelf)
    models = {m.id: (m.kind, m.family, m.wan22) for m in listing.models}
    assert models == {"broken": ("diffusers", "wan2.1", False), "tiny-a": ("diffusers", "wan2.1", False),
                      "tiny-b": ("wan2.1-original", "wan2.1", False), "wan22": ("diffusers", "wan2.2-a14b", True)}
    loras = {x.id: x.kind for x in listing.loras}
    assert loras == {"pair": "wan2.2-pair", "pusa_tiny.safetensors": "file", "loras/bad.pt": "file",
                     "loras/other.pt": "file"}
    assert [x.id for x in listing.loras_for(True)] == ["pair"]
    assert all(m.label.startswith("tiny random Wan") for m in listing.models)  # pusa info's label (pusa.json)


def test_symlinks_leading_outside_the_models_dir_are_not_offered(shelf: Path) -> None:
    listing = scan(shelf)
    assert listing.model("escape") is None and listing.lora("far.safetensors") is None
    assert (shelf / "escape" / "config.json").is_file()  # it would load: only the escape keeps it out


# ------------------------------------------------------------------------------------------ the API


class GatedFactory:
    """The real loaders; a switch's load waits for :attr:`gate` and notes whether the old model was released."""

    def __init__(self) -> None:
        self.gate = threading.Event()
        self.gate.set()
        self.old_model_held: list[bool] = []
        self.app: Any = None

    def __call__(self, config: ServiceConfig) -> Callable:
        real = pipeline_loader(config)

        def load(on_progress: Callable[[str, str], None]) -> Any:
            if self.app is not None:
                self.old_model_held.append(self.app.service.host.engine is not None)
            assert self.gate.wait(60)
            return real(on_progress)

        return load


@pytest.fixture(scope="module")
def picker(shelf: Path, tiny_model: Path, tmp_path_factory: pytest.TempPathFactory):
    factory = GatedFactory()
    config = make_config(tmp_path_factory.mktemp("picker-data"), tiny_model, models_dir=shelf)
    app = create_app(config, studio=False, loader_factory=factory)
    with TestClient(app) as c:
        assert app.service.wait_for_model(60) and app.service.model_ready
        factory.app = app
        c.factory = factory  # type: ignore[attr-defined]
        c.service = app.service  # type: ignore[attr-defined]
        yield c


def settle(client: TestClient, timeout: float = 60.0) -> dict:
    deadline = time.time() + timeout
    while time.time() < deadline:
        body = client.get("/api/models").json()
        if body["state"] != "loading":
            return body
        time.sleep(0.05)
    raise AssertionError(f"the model did not settle: {body}")


def run_job(client: TestClient) -> dict:
    r = client.post("/api/jobs", data={"settings": json.dumps(FAST)})
    assert r.status_code == 201, r.text
    return wait_job(client, r.json()["id"])


def test_listing_names_the_startup_model_as_current(picker: TestClient) -> None:
    body = picker.get("/api/models").json()
    assert [m["id"] for m in body["models"]] == ["startup", "broken", "tiny-a", "tiny-b", "wan22"]
    assert body["current"]["model"] == "startup" and body["state"] == "ready"
    assert "path" not in json.dumps(body) and str(picker.service.config.models_dir) not in json.dumps(body)


def test_switch_runs_queued_jobs_on_the_new_model_only_after_it_loaded(picker: TestClient) -> None:
    before = run_job(picker)
    assert before["model"]["id"] == "startup"
    picker.factory.gate.clear()
    r = picker.post("/api/model", json={"model": "tiny-b", "lora": "pusa_tiny.safetensors"})
    assert r.status_code == 202, r.text
    queued = picker.post("/api/jobs", data={"settings": json.dumps(FAST)}).json()
    time.sleep(1.5)  # the old model is gone, the new one waits at the gate: the job must wait too
    assert picker.get(f"/api/jobs/{queued['id']}").json()["status"] == "queued"
    assert picker.get("/api/models").json()["state"] == "loading"
    assert picker.post("/api/model", json={"model": "tiny-a"}).status_code == 409  # one switch at a time
    picker.factory.gate.set()
    body = settle(picker)
    assert body["state"] == "ready" and body["current"]["model"] == "tiny-b", body
    assert body["current"]["lora"] == "pusa_tiny.safetensors" and body["current"]["lora_files"] == ["pusa_tiny.safetensors"]
    assert picker.factory.old_model_held[-1] is False  # unload, then load
    job = wait_job(picker, queued["id"])
    assert job["status"] == "succeeded", job
    assert job["model"]["id"] == "tiny-b" and job["model"]["label"].endswith("(tiny-b)")
    assert job["model"]["lora_files"] == ["pusa_tiny.safetensors"]
    assert picker.get(f"/api/jobs/{before['id']}").json()["model"]["id"] == "startup"  # history keeps its model


@pytest.mark.parametrize("choice, field, words", [
    ({"model": "nope"}, "model", "is not one of: startup, broken, tiny-a, tiny-b, wan22"),
    ({"model": "../tiny-a"}, "model", "is not one of"),
    ({"model": "tiny-a", "lora": "pair"}, "lora", "a single LoRA file): pusa_tiny.safetensors, loras/bad.pt, "
                                                  "loras/other.pt, or null"),
    ({"model": "wan22", "lora": "pusa_tiny.safetensors"}, "lora", "a high/low-noise pair folder): pair"),
    ({"model": "tiny-a", "lora": "far.safetensors"}, "lora", "is not one of"),
    ({"lora": None}, "model", "Field required"),
])
def test_a_bad_choice_is_422_naming_the_field_and_the_allowed_values(picker: TestClient, choice: dict, field: str,
                                                                     words: str) -> None:
    r = picker.post("/api/model", json=choice)
    assert r.status_code == 422, r.text
    assert r.json()["errors"][0]["field"] == field and words in r.json()["errors"][0]["message"], r.json()
    assert picker.get("/api/models").json()["state"] == "ready"  # nothing was unloaded


@pytest.mark.parametrize("choice, words", [({"model": "broken"}, "could not load broken: "),
                                           ({"model": "tiny-a", "lora": "loras/bad.pt"}, "loras/bad.pt: 1 keys are not")])
def test_a_failing_load_brings_the_previous_model_back_and_health_says_why(picker: TestClient, choice: dict,
                                                                          words: str) -> None:
    current = settle(picker)["current"]["model"]
    assert picker.post("/api/model", json=choice).status_code == 202
    body = settle(picker)
    assert body["state"] == "ready" and body["current"]["model"] == current, body
    assert str(picker.service.config.models_dir) not in body["switch_error"]  # no server path
    health = picker.get("/api/health").json()
    assert health["status"] == "ok" and words in health["model"]["switch_error"], health["model"]
    assert picker.get("/api/ready").status_code == 200
    assert run_job(picker)["model"]["id"] == current
    assert picker.post("/api/model", json={"model": "tiny-b"}).status_code == 202  # a good switch clears it
    assert settle(picker)["switch_error"] is None


def test_without_models_dir_the_picker_routes_are_404(tiny_model: Path, tmp_path: Path) -> None:
    app = create_app(make_config(tmp_path / "data", tiny_model), studio=False, loader=lambda p: None)
    client = TestClient(app)
    for r in (client.get("/api/models"), client.post("/api/model", json={"model": "x"})):
        assert r.status_code == 404 and r.json()["errors"][0]["field"] == "models_dir"


def test_a_job_database_from_before_the_model_column_keeps_its_history(tmp_path: Path) -> None:
    db = sqlite3.connect(tmp_path / "jobs.sqlite3")
    db.execute("CREATE TABLE jobs (seq INTEGER PRIMARY KEY AUTOINCREMENT, id TEXT UNIQUE NOT NULL, status TEXT NOT "
               "NULL, task TEXT NOT NULL, settings TEXT NOT NULL, resolved TEXT, images TEXT NOT NULL DEFAULT '[]', "
               "video TEXT, created_at REAL NOT NULL, started_at REAL, finished_at REAL, phase TEXT, step INTEGER, "
               "total INTEGER, timings TEXT, error TEXT, error_field TEXT, output TEXT, cancel_requested INTEGER "
               "NOT NULL DEFAULT 0, resubmitted_from TEXT)")
    db.execute("INSERT INTO jobs (id, status, task, settings, created_at) VALUES ('abc', 'succeeded', 't2v', '{}', 1)")
    db.commit()
    db.close()
    store = JobStore(tmp_path)
    assert store.get("abc").model is None
    store.set_model("abc", {"label": "m"})
    assert store.get("abc").model == {"label": "m"}


def test_serve_takes_models_dir_and_refuses_a_missing_one(shelf: Path, tmp_path: Path) -> None:
    import argparse

    from pusa.service.cli import add_serve_options, cmd_serve, config_from_args

    parser = argparse.ArgumentParser()
    add_serve_options(parser)
    config = config_from_args(parser.parse_args(["--models-dir", str(shelf), "--data-dir", str(tmp_path / "d")]))
    assert config.models_dir == shelf.resolve()
    assert config_from_args(parser.parse_args(["--data-dir", str(tmp_path / "d")])).models_dir is None
    assert cmd_serve(parser.parse_args(["--models-dir", str(tmp_path / "nowhere"), "--data-dir", str(tmp_path)])) == 2


def test_a_light_decoder_stays_with_the_startup_model(shelf: Path, tiny_model: Path, tmp_path: Path) -> None:
    """``--decoder`` was chosen for the startup model's latent space: a picked model loads without it,
    the startup model (with or without a LoRA) with it."""
    from pusa.service.switching import ModelSwitcher

    class Host:
        model_id = None
        redact = None

        def switch(self, loader: Any, *ids: Any) -> None:
            pass

    loaded: list[dict] = []
    config = make_config(tmp_path, tiny_model, models_dir=shelf)
    config.engine_options["decoder"] = str(tmp_path / "light")
    switcher = ModelSwitcher(config, Host(), lambda c: loaded.append(dict(c.engine_options)))  # type: ignore[arg-type]
    switcher.switch("tiny-a")
    switcher.switch("startup", "pusa_tiny.safetensors")
    switcher.switch("startup")
    assert [o["decoder"] for o in loaded] == [None, str(tmp_path / "light"), str(tmp_path / "light")]


def test_health_and_the_sidecar_name_the_light_decoder(tiny_model: Path, tmp_path: Path) -> None:
    """A server started with ``--decoder`` says so: its pixels are the light decoder's, not the model's."""
    import torch

    from pusa.light_decoder import narrow_vae
    from pusa.loading.components import load_vae

    narrow_vae(load_vae(tiny_model / "vae", torch.float32), 0.5).save_pretrained(str(tmp_path / "tiny-light"))
    config = make_config(tmp_path / "data", tiny_model)
    config.engine_options["decoder"] = str(tmp_path / "tiny-light")
    app = create_app(config, studio=False)
    with TestClient(app) as c:
        assert app.service.wait_for_model(60) and app.service.model_ready
        health = c.get("/api/health").json()
        assert health["model"]["decoder"] == "tiny-light" and str(tmp_path) not in json.dumps(health)
        job = run_job(c)
        assert job["status"] == "succeeded", job
        sidecar = next((tmp_path / "data").rglob("*.json"), None)
        assert sidecar is not None and json.loads(sidecar.read_text())["decoder"] == "tiny-light"
