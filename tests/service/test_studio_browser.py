"""The studio in a real browser (Debian's chromium driven by Playwright), one test per tab.

Install both with ``scripts/install_browser.sh``. The server runs the real engine on the tiny
model, slowed per denoising step so the live progress bar can be seen. Screenshots of every tab
go to a temporary folder; to refresh the README's, run with
``PUSA_SCREENSHOTS_DIR=docs/screenshots``.
"""

from __future__ import annotations

import os
from contextlib import contextmanager
import shutil
import time
from pathlib import Path

import httpx
import pytest

from pusa.service.app import create_app

from .conftest import live_studio, make_config, slow_loader, write_png, write_video

CHROMIUM = Path("/usr/bin/chromium")
if not CHROMIUM.exists():
    pytest.skip("Debian chromium is not installed at /usr/bin/chromium (run scripts/install_browser.sh)",
                allow_module_level=True)
sync_api = pytest.importorskip("playwright.sync_api", reason="the playwright package is not installed "
                                                             "(run scripts/install_browser.sh)")

expect = sync_api.expect

LAUNCH_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
               "--disable-component-update", "--disable-sync", "--no-first-run"]
TAB_NAMES = {"i2v": "Image→Video", "keyframes": "Multi-frame→Video", "v2v": "Video→Video", "t2v": "Text→Video"}


@pytest.fixture(scope="module")
def server(tiny_model: Path, tmp_path_factory: pytest.TempPathFactory):
    config = make_config(tmp_path_factory.mktemp("studio-data"), tiny_model)
    app = create_app(config, loader=slow_loader(config, 0.2), studio=True)
    with live_studio(app) as srv:
        yield srv


@pytest.fixture(scope="module")
def browser():
    with sync_api.sync_playwright() as p:
        b = p.chromium.launch(executable_path=str(CHROMIUM), args=LAUNCH_ARGS, headless=True)
        yield b
        b.close()


@pytest.fixture(scope="module")
def inputs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("browser-inputs")
    return {"a": write_png(d / "start.png"), "b": write_png(d / "end.png", color=(20, 180, 60)),
            "video": write_video(d / "clip.mp4", frames=9)}


@contextmanager
def ready_page(browser, url: str, height: int = 1000):
    """A new English page on ``url``, once its model banner says ready."""
    ctx = browser.new_context(viewport={"width": 1280, "height": height}, locale="en-US")
    try:
        pg = ctx.new_page()
        pg.goto(url)
        pg.wait_for_selector("#model-state[data-state=ready]", timeout=30_000)
        yield pg
    finally:
        ctx.close()


@pytest.fixture
def page(browser, server):
    with ready_page(browser, server.url) as pg:
        yield pg


def textbox(page, elem_id: str):
    return page.locator(f"#{elem_id} textarea, #{elem_id} input[type=text]").first


def set_number(page, elem_id: str, value: str) -> None:
    box = page.locator(f"#{elem_id} input[type=number]").first
    box.fill(value)
    box.press("Tab")


def fill_in_opened_panel(page, elem_id: str, values: str) -> None:
    """Type ``values`` into a box of a just-opened accordion and leave it.

    The accordion mounts its boxes when opened, and for a moment after that the frontend can still
    write the box's default back over what was typed (seen once in CI: a sweep box's '1.0, 2.0' became its
    default '1.0, 1.4, 2.0'); a user typing a second later never meets it, so the value is typed again until
    it holds for half a second, then asserted.
    """
    box = textbox(page, elem_id)
    expect(box).to_be_editable(timeout=10_000)
    for _ in range(5):
        box.fill(values)
        box.press("Tab")  # the page sends a box's value once it is left
        time.sleep(0.5)
        if box.input_value() == values:
            break
    expect(box).to_have_value(values)


def generate_and_check(page, task: str) -> None:
    """Click Generate, watch the progress bar move, and wait for a playable <video>."""
    page.locator(f"#{task}-generate").click()
    page.wait_for_selector(f'#{task}-status-box[data-status="running"] progress', timeout=30_000)
    fractions = set()
    deadline = time.time() + 60
    while time.time() < deadline:
        box = page.locator(f"#{task}-status-box")
        status = box.get_attribute("data-status")
        fractions.add(page.locator(f"#{task}-status-box progress").get_attribute("value"))
        if status in ("succeeded", "failed", "cancelled"):
            break
        time.sleep(0.1)
    assert status == "succeeded", page.locator(f"#{task}-status").inner_text()
    assert len(fractions) >= 3, f"progress bar did not move: {fractions}"
    page.wait_for_function(
        f"() => {{ const v = document.querySelector('#{task}-video video'); return v && v.duration > 0; }}",
        timeout=30_000)
    duration = page.evaluate(f"document.querySelector('#{task}-video video').duration")
    assert duration > 0
    expect(page.locator(f"#{task}-download")).to_be_visible(timeout=10_000)
    expect(page.locator(f"#{task}-seed-info")).to_contain_text("seed", timeout=10_000)


@pytest.fixture(scope="module")
def shots(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Where screenshots go: a temporary folder unless PUSA_SCREENSHOTS_DIR names one (e.g. docs/screenshots)."""
    wanted = os.environ.get("PUSA_SCREENSHOTS_DIR")
    folder = Path(wanted) if wanted else tmp_path_factory.mktemp("screenshots")
    folder.mkdir(parents=True, exist_ok=True)
    return folder


@pytest.fixture
def shoot(shots: Path):
    def take(page, name: str) -> None:
        tmp = shots / f".{name}.tmp.png"
        page.screenshot(path=str(tmp), full_page=True)
        shutil.move(tmp, shots / f"{name}.png")

    return take


def open_tab(page, task: str) -> None:
    page.get_by_role("tab", name=TAB_NAMES[task]).click()
    page.locator(f"#{task}-generate").wait_for(state="visible")


def test_image_to_video_tab(page, inputs, shoot) -> None:
    open_tab(page, "i2v")
    page.locator("#i2v-image input[type=file]").set_input_files(str(inputs["a"]))
    page.locator("#i2v-image img").first.wait_for(timeout=15_000)
    textbox(page, "i2v-prompt").fill("a sunrise over the sea")
    set_number(page, "i2v-noise_multiplier", "0.3")
    set_number(page, "i2v-steps", "5")
    generate_and_check(page, "i2v")
    shoot(page, "i2v")
    # "reuse these settings" puts the used seed into the seed box
    seed_text = page.locator("#i2v-seed-info").inner_text()
    page.locator("#i2v-reuse").click()
    page.locator("#i2v-more").get_by_text("More settings").click()
    seed_box = page.locator("#i2v-seed input").first
    seed_box.wait_for(state="visible", timeout=10_000)
    deadline = time.time() + 10
    while seed_box.input_value() == "-1" and time.time() < deadline:
        time.sleep(0.1)
    assert seed_box.input_value() != "-1" and seed_box.input_value() in seed_text


def test_multi_frame_tab_with_timeline(page, inputs, shoot) -> None:
    open_tab(page, "keyframes")
    page.locator("#keyframes-image-0 input[type=file]").set_input_files(str(inputs["a"]))
    page.locator("#keyframes-image-0 img").first.wait_for(timeout=15_000)
    page.locator("#keyframes-image-1 input[type=file]").set_input_files(str(inputs["b"]))
    page.locator("#keyframes-image-1 img").first.wait_for(timeout=15_000)
    # two images on a 9-frame model (3 latent slots): spread to the first and last slot
    expect(page.locator("#keyframes-timeline .pusa-slot.pinned")).to_have_count(2, timeout=15_000)
    assert textbox(page, "keyframes-cond_positions").input_value() == "0,2"
    # the typed form still works and updates the per-image controls and the timeline
    textbox(page, "keyframes-cond_positions").fill("0,1")
    # let the positions round-trip (it rewrites the per-image controls) finish before the next edit
    expect(page.locator("#keyframes-pos-1 input").first).to_have_value("1", timeout=10_000)
    textbox(page, "keyframes-noise_multipliers").fill("0.2,0.5")
    expect(page.locator("#keyframes-mult-1 input[type=number]").first).to_have_value("0.5", timeout=10_000)
    timeline = page.locator("#keyframes-timeline")
    expect(timeline).to_contain_text("Keyframe 2 pins latent slot 1 = pixel frames 1–4, multiplier 0.5",
                                     timeout=10_000)
    textbox(page, "keyframes-prompt").fill("the sun climbs into the sky")
    set_number(page, "keyframes-steps", "5")
    generate_and_check(page, "keyframes")
    shoot(page, "keyframes")


def test_video_to_video_tab(page, inputs, shoot) -> None:
    open_tab(page, "v2v")
    page.locator("#v2v-video-in input[type=file]").set_input_files(str(inputs["video"]))
    page.locator("#v2v-video-in video").first.wait_for(timeout=15_000)
    textbox(page, "v2v-prompt").fill("waves continue")
    textbox(page, "v2v-cond_positions").fill("0,1")
    set_number(page, "v2v-steps", "5")
    generate_and_check(page, "v2v")
    shoot(page, "v2v")


def test_text_to_video_tab_and_history(page, shoot) -> None:
    open_tab(page, "t2v")
    textbox(page, "t2v-prompt").fill("a red fox in the snow")
    set_number(page, "t2v-steps", "5")
    generate_and_check(page, "t2v")
    shoot(page, "t2v")
    page.get_by_role("tab", name="History").click()
    page.locator("#history-table").get_by_text("a red fox in the snow").first.wait_for(timeout=15_000)
    page.locator("#history-table").get_by_text("a red fox in the snow").first.click()
    page.locator("#history-video video").wait_for(timeout=15_000)
    page.locator("#history-resubmit").click()
    page.locator("#history-note").get_by_text("queued job").wait_for(timeout=15_000)
    shoot(page, "history")


def test_korean_interface(browser, server, shoot) -> None:
    ctx = browser.new_context(viewport={"width": 1280, "height": 900}, locale="ko-KR")
    try:
        pg = ctx.new_page()
        pg.goto(server.url)
        pg.get_by_role("tab", name="이미지→비디오").wait_for(timeout=30_000)
        expect(pg.get_by_text("프롬프트").first).to_be_visible(timeout=15_000)
        shoot(pg, "studio-ko")
    finally:
        ctx.close()


def test_opening_more_settings_and_changing_nothing_still_generates(page, inputs) -> None:
    """Width, height and frames left empty mean the model's defaults, also once their accordion is open:
    one page walks every tab as a new user does (the inputs, every accordion opened, Generate)."""
    for task in ("i2v", "keyframes", "v2v", "t2v"):
        open_tab(page, task)
        if task == "i2v":
            page.locator("#i2v-image input[type=file]").set_input_files(str(inputs["a"]))
            page.locator("#i2v-image img").first.wait_for(timeout=15_000)
        elif task == "keyframes":
            for i, key in enumerate(("a", "b")):
                page.locator(f"#keyframes-image-{i} input[type=file]").set_input_files(str(inputs[key]))
                page.locator(f"#keyframes-image-{i} img").first.wait_for(timeout=15_000)
        elif task == "v2v":
            page.locator("#v2v-video-in input[type=file]").set_input_files(str(inputs["video"]))
            page.locator("#v2v-video-in video").first.wait_for(timeout=15_000)
            textbox(page, "v2v-cond_positions").fill("0,1")  # the 9-frame clip has 3 latent frames
        textbox(page, f"{task}-prompt").fill(f"defaults for {task}")
        page.locator(f"#{task}-more").get_by_text("More settings").click()
        page.locator(f"#{task}-long").get_by_text("Long video").click()
        for name in ("width", "height", "frames", "fps", "window", "overlap", "overlap_multipliers", "prompts"):
            box = textbox(page, f"{task}-{name}")
            box.wait_for(state="visible", timeout=10_000)
            assert box.input_value() == "", f"{task} {name} shows {box.input_value()!r} instead of staying empty"
        generate_and_check(page, task)


def api_job(server, job_id: str) -> dict:
    return httpx.get(f"{server.url}/api/jobs/{job_id}", timeout=30).json()


def test_long_video_with_three_prompts_then_extend_the_result(page, server) -> None:
    """25 frames on the 9-frame test model: three windows, a prompt each, drawn before generating;
    then "Extend" on the result queues a v2v extension of it in the video tab."""
    open_tab(page, "t2v")
    textbox(page, "t2v-prompt").fill("a boat at sea")
    textbox(page, "t2v-frames").fill("25")
    expect(page.locator("#t2v-duration")).to_contain_text("25 frames at", timeout=10_000)
    page.locator("#t2v-long").get_by_text("Long video").click()
    fill_in_opened_panel(page, "t2v-prompts",
                         "the boat leaves the harbour\nthe boat crosses open sea\nthe boat reaches the island")
    plan = page.locator("#t2v-plan .pusa-plan")
    expect(plan).to_have_attribute("data-windows", "3", timeout=10_000)
    # the window count follows the frames at once; the prompts arrive with the box's change event
    expect(page.locator("#t2v-plan li[data-window='3']")).to_contain_text("the boat reaches the island",
                                                                          timeout=15_000)
    set_number(page, "t2v-steps", "2")
    generate_and_check(page, "t2v")
    job_id = page.locator("#t2v-status-box").get_attribute("data-job")
    done = api_job(server, job_id)
    assert [w["prompt"] for w in done["windows"]] == ["the boat leaves the harbour", "the boat crosses open sea",
                                                       "the boat reaches the island"]
    # Extend: the video tab takes the result and runs the extension at once
    page.locator("#t2v-extend-video").click()
    page.locator("#v2v-generate").wait_for(state="visible", timeout=10_000)
    expect(textbox(page, "v2v-extend")).to_have_value("8", timeout=10_000)
    deadline = time.time() + 90
    status = None
    while time.time() < deadline:
        status = page.locator("#v2v-status-box").get_attribute("data-status")
        if status in ("succeeded", "failed", "cancelled"):
            break
        time.sleep(0.2)
    assert status == "succeeded", page.locator("#v2v-status").inner_text()
    ext = api_job(server, page.locator("#v2v-status-box").get_attribute("data-job"))
    assert ext["task"] == "v2v" and ext["settings"]["extend"] == 8 and ext["resolved_settings"]["frames"] > 8
    page.wait_for_function("() => { const v = document.querySelector('#v2v-video video'); return v && v.duration > 0; }",
                           timeout=30_000)


def test_a_reload_reattaches_the_tab_to_its_running_job(page, server) -> None:
    open_tab(page, "t2v")
    textbox(page, "t2v-prompt").fill("a long wait")
    set_number(page, "t2v-steps", "25")  # 0.2 s a step: about 5 s running
    page.locator("#t2v-generate").click()
    running = page.locator('#t2v-status-box[data-status="running"]')
    running.wait_for(timeout=30_000)
    job_id = running.get_attribute("data-job")
    expect(page.locator("#t2v-status-box .pusa-status-times")).to_contain_text("elapsed", timeout=10_000)
    page.reload()
    page.wait_for_selector("#model-state[data-state=ready]", timeout=30_000)
    open_tab(page, "t2v")
    box = page.locator(f'#t2v-status-box[data-job="{job_id}"]')
    box.wait_for(timeout=30_000)
    assert box.get_attribute("data-status") in ("running", "succeeded")
    page.wait_for_selector(f'#t2v-status-box[data-job="{job_id}"][data-status="succeeded"]', timeout=60_000)
    page.wait_for_function("() => { const v = document.querySelector('#t2v-video video'); return v && v.duration > 0; }",
                           timeout=30_000)


def test_history_follows_jobs_live_with_the_queue(page, server) -> None:
    page.get_by_role("tab", name="History").click()
    page.locator("#history-table").wait_for(timeout=15_000)
    r = httpx.post(f"{server.url}/api/jobs", data={"settings": '{"task": "t2v", "prompt": "live row", "steps": 15}'},
                   timeout=30)
    assert r.status_code == 201, r.text
    job_id = r.json()["id"]
    expect(page.locator("#history-table")).to_contain_text(job_id, timeout=15_000)  # no refresh clicked
    expect(page.locator("#history-queue")).to_contain_text(f"Running: {job_id}", timeout=30_000)
    expect(page.locator("#history-table")).to_contain_text("succeeded", timeout=60_000)
    deadline = time.time() + 30
    while api_job(server, job_id)["status"] != "succeeded" and time.time() < deadline:
        time.sleep(0.2)
    expect(page.locator("#history-queue")).not_to_contain_text(job_id, timeout=15_000)


# The checks below type into a tab of their own (keyframes, t2v, i2v) and are refused before any job
# exists, so they share one page (two page loads fewer, ~6 s each on a busy machine); they stay last in
# the module so that page (whose History timer keeps ticking) is closed right after them.
@pytest.fixture(scope="module")
def form_page(browser, server):
    with ready_page(browser, server.url) as pg:
        yield pg


def test_bad_position_string_shows_message_next_to_field(form_page, inputs, shoot) -> None:
    page = form_page
    open_tab(page, "keyframes")
    page.locator("#keyframes-image-0 input[type=file]").set_input_files(str(inputs["a"]))
    page.locator("#keyframes-image-1 input[type=file]").set_input_files(str(inputs["b"]))
    page.locator("#keyframes-image-1 img").first.wait_for(timeout=15_000)
    textbox(page, "keyframes-prompt").fill("x")
    textbox(page, "keyframes-cond_positions").fill("0,abc")
    page.locator("#keyframes-generate").click()
    err = page.locator("#keyframes-err-cond_positions .pusa-field-error")
    err.wait_for(state="visible", timeout=15_000)
    assert "'abc'" in err.inner_text() and "cond_positions" in err.inner_text()
    # the message sits right under the positions field
    field_box = page.locator("#keyframes-cond_positions").bounding_box()
    err_box = err.bounding_box()
    assert 0 <= err_box["y"] - (field_box["y"] + field_box["height"]) < 60
    shoot(page, "keyframes-error")


def test_steps_out_of_range_says_the_range_and_keeps_the_value(form_page) -> None:
    page = form_page
    open_tab(page, "t2v")
    textbox(page, "t2v-prompt").fill("x")
    for typed in ("0", "99"):
        set_number(page, "t2v-steps", typed)
        page.locator("#t2v-generate").click()
        err = page.locator("#t2v-err-steps .pusa-field-error")
        expect(err).to_contain_text(typed, timeout=15_000)
        assert "from 1 to 50" in err.inner_text()
        assert page.locator("#t2v-steps input[type=number]").first.input_value() == typed


def test_unreadable_image_upload_says_so_next_to_the_field(form_page, tmp_path: Path) -> None:
    page = form_page
    open_tab(page, "i2v")
    fake = tmp_path / "photo.png"
    fake.write_bytes(b"not a picture at all\n" * 50)
    page.locator("#i2v-image input[type=file]").set_input_files(str(fake))
    err = page.locator("#i2v-err-images .pusa-field-error")
    expect(err).to_contain_text("not an image we can read: PNG, JPEG, WebP", timeout=15_000)
    textbox(page, "i2v-prompt").fill("x")
    page.locator("#i2v-generate").click()
    expect(err).to_contain_text("not an image we can read", timeout=15_000)
    body = page.locator("body").inner_text()
    for raw in ("UnidentifiedImageError", "Could not preprocess", "studio-cache", "Traceback"):
        assert raw not in body, f"{raw!r} reached the page"
