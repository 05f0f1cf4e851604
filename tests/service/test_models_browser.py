"""The model picker in a real browser (Debian's chromium): switch the model in the header, keep using
the page while it loads, generate, and see the model on the result line and in History."""

from __future__ import annotations

import threading
from pathlib import Path

import httpx
import pytest

from pusa.service.app import create_app

from .conftest import live_studio, make_config, slow_loader
from .test_studio_browser import browser, ready_page, set_number, sync_api, textbox  # noqa: F401 - the browser fixture

expect = sync_api.expect
SWITCH_LIMIT_S = 60  # longest a switch stays loading when a test fails before it lets it end


@pytest.fixture(scope="module")
def shelf(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from pusa.testing.layouts import make_tiny_dit, write_lora, write_tiny_diffusers, write_tiny_wan21_original

    root = tmp_path_factory.mktemp("browser-models")
    write_tiny_wan21_original(root / "tiny-b", seed=5)
    write_tiny_diffusers(root / "wan22", seed=7, wan22=True)
    write_lora(root / "pusa_tiny.safetensors", make_tiny_dit(3))
    return root


@pytest.fixture(scope="module")
def switch_done() -> threading.Semaphore:
    """Released by a test once it has checked the page during a switch: only then does that load end."""
    return threading.Semaphore(0)


@pytest.fixture(scope="module")
def server(shelf: Path, tiny_model: Path, tmp_path_factory: pytest.TempPathFactory, switch_done: threading.Semaphore):
    config = make_config(tmp_path_factory.mktemp("picker-studio-data"), tiny_model, models_dir=shelf)

    loads = []

    def factory(c):  # a switch takes long, as a real one takes minutes: the page must stay usable meanwhile
        real = slow_loader(c, 0.05)
        first = not loads
        loads.append(c.model)

        def load(on_progress):
            if not first:  # loading until the test has seen what it checks while loading (no fixed pause)
                on_progress("transformer", "loading")
                switch_done.acquire(timeout=SWITCH_LIMIT_S)
            return real(on_progress)

        return load

    app = create_app(config, studio=True, loader_factory=factory)
    with live_studio(app) as srv:
        yield srv


@pytest.fixture(scope="module")
def page(browser, server):
    with ready_page(browser, server.url, height=1100) as pg:
        yield pg


def choose(page, elem_id: str, text: str) -> None:
    page.locator(f"#{elem_id} input").click()
    page.locator(f"#{elem_id} li[role=option]", has_text=text).first.click()


def test_switch_the_model_in_the_header_then_generate_on_it(page, server, switch_done) -> None:
    expect(page.locator("#model-choice input")).to_have_value("startup — tiny random Wan (test model: its output is "
                                                              "noise) (wan2.1)", timeout=15_000)
    choose(page, "model-choice", "tiny-b")
    choose(page, "lora-choice", "pusa_tiny.safetensors")
    page.locator("#model-load").click()
    expect(page.locator("#model-state")).to_have_attribute("data-state", "loading", timeout=10_000)
    expect(page.locator("#model-note")).to_contain_text("Loading tiny-b")
    # the page stays usable while the model loads: History opens and lists the jobs
    page.get_by_role("tab", name="History").click()
    expect(page.locator("#history-table")).to_contain_text("model", timeout=10_000)
    expect(page.locator("#model-state")).to_have_attribute("data-state", "loading")  # (still)
    switch_done.release()
    expect(page.locator("#model-state")).to_have_attribute("data-state", "ready", timeout=60_000)
    expect(page.locator("#model-state")).to_contain_text("(tiny-b)")
    page.get_by_role("tab", name="Text→Video").click()
    textbox(page, "t2v-prompt").fill("a red ball on the new model")
    set_number(page, "t2v-steps", "2")
    page.locator("#t2v-generate").click()
    expect(page.locator("#t2v-status-box")).to_have_attribute("data-status", "succeeded", timeout=60_000)
    expect(page.locator("#t2v-seed-info")).to_contain_text("model: tiny-b + pusa_tiny.safetensors", timeout=10_000)
    page.get_by_role("tab", name="History").click()
    expect(page.locator("#history-table")).to_contain_text("tiny-b + pusa_tiny.safetensors", timeout=10_000)
    job = httpx.get(f"{server.url}/api/jobs?limit=1").json()["items"][0]
    assert job["model"]["id"] == "tiny-b" and job["model"]["lora_files"] == ["pusa_tiny.safetensors"]


def test_a_switch_to_a_wan22_model_shows_its_second_alpha_and_one_switch_runs_at_a_time(page,
                                                                                        switch_done) -> None:
    page.get_by_role("tab", name="Text→Video").click()
    expect(page.locator("#t2v-lora_alpha_low")).to_be_hidden()
    choose(page, "model-choice", "wan22")
    choose(page, "lora-choice", "no LoRA")
    page.locator("#model-load").click()
    expect(page.locator("#model-note")).to_contain_text("Loading wan22", timeout=10_000)
    page.locator("#model-load").click()
    expect(page.locator("#model-error")).to_contain_text("Not loaded: a model is loading", timeout=10_000)
    switch_done.release()
    expect(page.locator("#model-state")).to_contain_text("(wan22)", timeout=60_000)
    expect(page.locator("#model-state")).to_have_attribute("data-state", "ready")
    expect(page.locator("#model-state")).to_contain_text("Wan2.2")
    expect(page.locator("#t2v-lora_alpha_low")).to_be_visible(timeout=10_000)  # the page redrew for the new model
