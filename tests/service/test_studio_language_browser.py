"""The studio's language switch and live previews in a real browser (Debian chromium, Playwright).

The server, browser and input fixtures are the ones of :mod:`test_studio_browser` (one server per
module). The Korean page is checked word by word: after switching to 한국어 and reloading, every
tab, its accordions, a finished job's run-time text and History may show no English word but user
data, the model's name and the few technical tokens of :data:`ALLOWED`.
"""

from __future__ import annotations

import re
import time

import httpx
import pytest

from .test_studio_browser import (browser, expect, inputs, ready_page, server, set_number, shoot, shots,  # noqa: F401
                                  textbox)

KO_TABS = {"i2v": "이미지→비디오", "keyframes": "멀티 프레임→비디오", "v2v": "비디오→비디오", "t2v": "텍스트→비디오"}
# English the Korean page may show, each for a reason: names of formats, units and techniques a Korean
# user meets in English too (and types in English), and the names of the model families
ALLOWED = {
    "LoRA", "CFG", "FPS", "fps",  # technique names, as in every Korean guide to these models
    "MP4", "PNG", "JPEG", "WebP", "WebM", "MOV",  # file formats
    "Pusa", "Wan",  # the product and the model family
    "EN",  # the switch names each language in itself: EN / 한국어
}
PROMPT_KO = "바다 위로 떠오르는 해"
WORD = re.compile(r"[A-Za-z0-9]+")  # "MP4" is one token; "64x64" has one letter, not a word


def english_words(text: str, data: list[str]) -> set[str]:
    """The English words of ``text`` once user data and model names (``data``) are taken out."""
    for item in sorted(data, key=len, reverse=True):
        text = text.replace(item, " ")
    return {w for w in WORD.findall(text) if sum(c.isalpha() for c in w) >= 2 and w not in ALLOWED}


def visible_text(page) -> str:
    """What a reader sees: the body's text without the History's raw job record (the API's JSON, by design)."""
    return page.evaluate("""() => {
        const detail = document.querySelector('#history-detail');
        const hidden = detail ? detail.style.display : null;
        if (detail) detail.style.display = 'none';
        const text = document.body.innerText;
        if (detail) detail.style.display = hidden;
        return text;
    }""")


@pytest.fixture
def english_page(browser, server):  # noqa: F811 - the shared fixtures above
    """A page in a browser that prefers English: the header switch is the only way to Korean."""
    with ready_page(browser, server.url) as pg:
        yield pg


def test_header_switch_to_korean_is_remembered_and_leaves_no_english(english_page, server, shoot) -> None:  # noqa: F811
    page = english_page
    page.get_by_role("tab", name="Text→Video").wait_for(timeout=15_000)
    page.locator("#lang-switch a[data-lang=ko]").click()
    page.get_by_role("tab", name=KO_TABS["t2v"]).wait_for(timeout=30_000)
    assert "lang=ko" in page.url
    # remembered: a reload, and the bare address (local storage puts ?lang=ko back)
    page.reload()
    page.get_by_role("tab", name=KO_TABS["i2v"]).wait_for(timeout=30_000)
    page.goto(server.url)
    page.get_by_role("tab", name=KO_TABS["i2v"]).wait_for(timeout=30_000)
    assert "lang=ko" in page.url
    page.wait_for_selector("#model-state[data-state=ready]", timeout=30_000)
    expect(page.locator("#model-state")).to_contain_text("모델 준비됨", timeout=15_000)
    # a finished job's run-time text (status, seed and timings) in Korean
    page.get_by_role("tab", name=KO_TABS["t2v"]).click()
    textbox(page, "t2v-prompt").fill(PROMPT_KO)
    set_number(page, "t2v-steps", "3")
    page.locator("#t2v-generate").click()
    page.wait_for_selector('#t2v-status-box[data-status="succeeded"]', timeout=60_000)
    expect(page.locator("#t2v-seed-info")).to_contain_text("시드", timeout=10_000)
    job_id = page.locator("#t2v-status-box").get_attribute("data-job")
    label = httpx.get(f"{server.url}/api/ready", timeout=30).json()["model"]
    data = [PROMPT_KO, job_id, *(str(v) for v in (label.values() if isinstance(label, dict) else [label]))]
    found: dict[str, set[str]] = {}
    for task, name in KO_TABS.items():
        page.get_by_role("tab", name=name).click()
        page.locator(f"#{task}-generate").wait_for(state="visible")
        page.locator(f"#{task}-more").get_by_text("추가 설정").first.click()  # the accordions' labels too
        page.locator(f"#{task}-long").get_by_text("긴 영상").first.click()
        textbox(page, f"{task}-width").wait_for(state="visible", timeout=10_000)
        textbox(page, f"{task}-prompts").wait_for(state="visible", timeout=10_000)
        found[task] = english_words(visible_text(page), data)
    shoot(page, "studio-ko")
    page.get_by_role("tab", name="기록").click()
    expect(page.locator("#history-table")).to_contain_text(PROMPT_KO, timeout=15_000)
    expect(page.locator("#history-table")).to_contain_text("완료", timeout=15_000)
    page.locator("#history-table").get_by_text(PROMPT_KO).filter(visible=True).first.click()
    page.locator("#history-video video").wait_for(timeout=15_000)
    # the player shows NaN for its duration until the video's metadata is in (slow on a busy machine)
    page.wait_for_function("() => { const v = document.querySelector('#history-video video');"
                           " return v && v.readyState >= 1 && isFinite(v.duration); }", timeout=15_000)
    found["history"] = english_words(visible_text(page), data)
    assert not any(found.values()), f"English on the Korean page: {found}"


def test_korean_run_time_text_follows_the_switch_not_the_browser(english_page) -> None:
    """The server's own text (duration, window plan) is Korean in an English-preferring browser once switched."""
    page = english_page
    page.locator("#lang-switch a[data-lang=ko]").click()
    page.get_by_role("tab", name=KO_TABS["t2v"]).click()
    expect(page.locator("#t2v-duration")).to_contain_text("프레임", timeout=15_000)
    expect(page.locator("#t2v-plan")).to_contain_text("윈도우", timeout=15_000)
    page.locator("#lang-switch a[data-lang=en]").click()  # and back: English again, also remembered
    page.get_by_role("tab", name="Text→Video").click()
    expect(page.locator("#t2v-duration")).to_contain_text("frames at", timeout=15_000)
    page.reload()
    page.get_by_role("tab", name="Text→Video").wait_for(timeout=30_000)


def test_a_running_job_shows_its_live_preview_before_the_video(english_page) -> None:
    page = english_page
    page.get_by_role("tab", name="Text→Video").click()
    textbox(page, "t2v-prompt").fill("a preview while it runs")
    set_number(page, "t2v-steps", "20")  # 0.2 s a step on the slowed tiny model
    page.locator("#t2v-generate").click()
    img = page.locator("#t2v-preview img")
    img.wait_for(state="visible", timeout=30_000)
    page.wait_for_function("() => { const i = document.querySelector('#t2v-preview img');"
                           " return i && i.complete && i.naturalWidth > 0 && i.naturalHeight > 0; }", timeout=15_000)
    status = page.locator("#t2v-status-box").get_attribute("data-status")
    assert status == "running", "the preview must show while the job runs"
    assert page.evaluate("() => !document.querySelector('#t2v-video video')"), "the video came before the preview"
    src = img.get_attribute("src")
    deadline = time.time() + 20  # the preview follows the steps: a new address per step
    while img.count() and img.get_attribute("src") == src and time.time() < deadline:
        time.sleep(0.1)
    assert img.count() == 0 or img.get_attribute("src") != src
    page.wait_for_selector('#t2v-status-box[data-status="succeeded"]', timeout=60_000)
    page.wait_for_function("() => { const v = document.querySelector('#t2v-video video'); return v && v.duration > 0; }",
                           timeout=30_000)
    expect(page.locator("#t2v-preview img")).to_have_count(0, timeout=10_000)  # the video took its place
