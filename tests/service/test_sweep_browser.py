"""The studio's sweep panel in a real browser (Debian's chromium): a labelled grid that plays together.

Same harness as ``test_studio_browser.py``: the real engine on the tiny model, slowed a little per
denoising step.
"""

from __future__ import annotations

import os
import shutil
import time
from pathlib import Path

import httpx
import pytest

from pusa.service.app import create_app

from .conftest import live_studio, make_config, slow_loader, write_png
from .test_studio_browser import (browser, fill_in_opened_panel, ready_page, set_number,  # noqa: F401 - the browser fixture
                                  sync_api, textbox)

expect = sync_api.expect


@pytest.fixture(scope="module")
def server(tiny_model: Path, tmp_path_factory: pytest.TempPathFactory):
    config = make_config(tmp_path_factory.mktemp("sweep-studio-data"), tiny_model)
    app = create_app(config, loader=slow_loader(config, 0.05), studio=True)
    with live_studio(app) as srv:
        yield srv


@pytest.fixture
def page(browser, server):
    with ready_page(browser, server.url, height=1200) as pg:
        yield pg


def videos_state(page) -> list[dict]:
    return page.evaluate("""() => [...document.querySelectorAll('#i2v-sweep-grid video')].map(v => (
        {t: v.currentTime, paused: v.paused, ready: v.readyState, duration: v.duration}))""")


def test_a_sweep_fills_a_labelled_grid_that_plays_together_and_a_cell_fills_the_tab(page, server,
                                                                                     tmp_path: Path) -> None:
    page.get_by_role("tab", name="Image→Video").click()
    page.locator("#i2v-image input[type=file]").set_input_files(str(write_png(tmp_path / "a.png")))
    page.locator("#i2v-image img").first.wait_for(timeout=15_000)
    textbox(page, "i2v-prompt").fill("a sunrise over the sea")
    set_number(page, "i2v-steps", "2")
    page.locator("#i2v-sweep").get_by_text("Compare settings (sweep)").click()
    for elem_id, values in (("i2v-sweep-lora_alpha", "1.0, 2.0"), ("i2v-sweep-noise_multipliers", "0.1, 0.5")):
        fill_in_opened_panel(page, elem_id, values)
    page.locator("#i2v-sweep-run").click()
    # the grid: rows are the first axis (alpha), columns the second (multiplier); the third row/column stay hidden
    expect(page.locator("#i2v-sweep-cell-0-1")).to_contain_text("alpha 1.0 · mult 0.5", timeout=30_000)
    expect(page.locator("#i2v-sweep-cell-1-0")).to_contain_text("alpha 2.0 · mult 0.1")
    expect(page.locator("#i2v-sweep-cell-0-2")).to_be_hidden()
    expect(page.locator("#i2v-sweep-cell-2-0")).to_be_hidden()
    page.wait_for_function("() => [...document.querySelectorAll('#i2v-sweep-grid video')].filter("
                           "v => v.readyState >= 2 && !v.paused).length === 4", timeout=90_000)
    expect(page.locator("#i2v-sweep-status")).to_contain_text("4 done")
    # playing together: the four clocks agree (the first video leads, the others follow)
    for _ in range(3):
        times = [v["t"] for v in videos_state(page)]
        assert max(times) - min(times) < 0.3, times
        time.sleep(0.3)
    page.evaluate("document.querySelector('#i2v-sweep-grid video').pause()")
    page.wait_for_function("() => [...document.querySelectorAll('#i2v-sweep-grid video')].every(v => v.paused)",
                           timeout=5_000)
    page.locator("#i2v-sweep-play").click()
    page.wait_for_function("() => [...document.querySelectorAll('#i2v-sweep-grid video')].every(v => !v.paused)",
                           timeout=5_000)
    times = [v["t"] for v in videos_state(page)]
    assert max(times) - min(times) < 0.3, times
    if os.environ.get("PUSA_SCREENSHOTS_DIR"):  # refresh docs/screenshots/sweep.png
        tmp = Path(os.environ["PUSA_SCREENSHOTS_DIR"]) / ".sweep.tmp.png"
        page.locator("#i2v-sweep").screenshot(path=str(tmp))
        shutil.move(tmp, tmp.with_name("sweep.png"))
    # every cell is a job of one group
    groups = {j["group"] for j in httpx.get(f"{server.url}/api/jobs").json()["items"][:4]}
    assert len(groups) == 1 and None not in groups
    # "Use these settings" of row 2, column 1 puts alpha 2.0 and multiplier 0.1 into the tab
    page.locator("#i2v-sweep-use-1-0").click()
    expect(page.locator("#i2v-lora_alpha input[type=number]")).to_have_value("2", timeout=10_000)
    expect(page.locator("#i2v-noise_multiplier input[type=number]")).to_have_value("0.1")


def test_a_bad_axis_is_named_in_the_sweep_panel(page) -> None:
    page.get_by_role("tab", name="Text→Video").click()
    textbox(page, "t2v-prompt").fill("a red ball")
    page.locator("#t2v-sweep").get_by_text("Compare settings (sweep)").click()
    expect(page.locator("#t2v-sweep-noise_multipliers")).to_have_count(0)  # text alone has no conditions
    fill_in_opened_panel(page, "t2v-sweep-lora_alpha", "1.0, 9")
    page.locator("#t2v-sweep-run").click()
    expect(page.locator("#t2v-sweep-error")).to_contain_text("sweep.lora_alpha", timeout=15_000)
    expect(page.locator("#t2v-sweep-cell-0-0")).to_be_hidden()
