"""The two interface languages without a browser: complete tables, the page's choice, the early script, previews."""

from __future__ import annotations

import asyncio
import re
import string

import pytest

from pusa.service.i18n import LANGS, TEXT, i18n_tables, page_lang, request_lang, say
from pusa.service.studio.language import EARLY_SCRIPT, PageLanguage, switch_html
from pusa.service.studio.preview import preview_html

# English a Korean string may keep: technical names Korean users also write in English
TECHNICAL = {"LoRA", "CFG", "FPS", "fps", "MP4", "PNG", "JPEG", "WebP", "WebM", "MOV", "Pusa", "Wan", "Wan2", "V1",
             "lightx2v", "none"}  # the speed presets' names, as `--preset` takes them


def fields(text: str) -> set[str]:
    return {name for _, name, _, _ in string.Formatter().parse(text) if name}


def test_every_key_has_english_and_korean_with_the_same_fields() -> None:
    tables = i18n_tables()
    assert set(tables) == set(LANGS) == {"en", "ko"}
    assert set(tables["en"]) == set(tables["ko"])
    for key, (en, ko) in TEXT.items():
        assert en.strip() and ko.strip(), f"{key}: an empty entry"
        assert fields(en) == fields(ko), f"{key}: {fields(en)} in English, {fields(ko)} in Korean"


def test_korean_entries_are_translated() -> None:
    """No Korean entry is English left as it was (only placeholders and technical names may stay)."""
    untranslated = {}
    for key, (_, ko) in TEXT.items():
        bare = re.sub(r"\{[^}]*\}", " ", ko)
        words = {w for w in re.findall(r"[A-Za-z0-9]+", bare) if sum(c.isalpha() for c in w) >= 2}
        if words - TECHNICAL:
            untranslated[key] = words - TECHNICAL
    assert not untranslated, untranslated


class FakeRequest:
    def __init__(self, **headers: str):
        self.headers = headers


@pytest.mark.parametrize(("referer", "accept", "lang"), [
    ("http://h/?lang=ko", "en-US,en;q=0.9", "ko"),  # the page's choice beats the browser's
    ("http://h/?lang=en", "ko-KR,ko;q=0.9", "en"),
    ("http://h/", "ko-KR,ko;q=0.9", "ko"),  # no choice: the browser's language
    ("http://h/?lang=fr", "en-US", "en"),  # only complete languages
    ("", "", "en"),
])
def test_request_language_follows_the_page_address_then_the_browser(referer: str, accept: str, lang: str) -> None:
    assert request_lang(FakeRequest(referer=referer, **{"accept-language": accept})) == lang
    assert page_lang(None) is None and request_lang(None) == "en" and request_lang(object()) == "en"


def test_switch_offers_exactly_the_complete_languages() -> None:
    html = switch_html()
    assert re.findall(r'href="\?lang=(\w+)"', html) == list(LANGS)
    assert "한국어" in html and ">EN<" in html


def run_page(body: bytes, content_type: bytes, method: str = "GET") -> bytes:
    async def app(scope, receive, send):
        await send({"type": "http.response.start", "status": 200,
                    "headers": [(b"content-type", content_type), (b"content-length", str(len(body)).encode())]})
        await send({"type": "http.response.body", "body": body[:10], "more_body": True})
        await send({"type": "http.response.body", "body": body[10:]})

    sent: list[dict] = []

    async def send(message):
        sent.append(message)

    async def receive():
        return {"type": "http.request", "body": b""}

    asyncio.run(PageLanguage(app)({"type": "http", "method": method, "path": "/"}, receive, send))
    start = sent[0]
    out = b"".join(m.get("body", b"") for m in sent[1:])
    assert dict(start["headers"])[b"content-length"] == str(len(out)).encode()
    return out


def test_the_page_gets_the_early_script_first_in_its_head_and_nothing_else_is_touched() -> None:
    page = b"<!doctype html><html><head><title>x</title></head><body></body></html>"
    out = run_page(page, b"text/html; charset=utf-8")
    assert out.startswith(b"<!doctype html><html><head>" + EARLY_SCRIPT.encode() + b"<title>")
    assert run_page(page, b"application/json") == page
    assert run_page(b'{"a": "<head>"}', b"application/json") == b'{"a": "<head>"}'


def test_preview_shows_only_while_the_job_runs() -> None:
    running = {"id": "j1", "status": "running", "preview_url": "/api/jobs/j1/preview",
               "progress": {"phase": "denoise", "step": 2, "total": 10}}
    html = preview_html(running, "ko")
    assert 'src="api/jobs/j1/preview?step=2"' in html and say("preview_step", "ko", step=2, total=10) in html
    assert preview_html({**running, "progress": {"phase": "denoise", "step": 3, "total": 10}}) != preview_html(running)
    assert preview_html({**running, "preview_url": None}) == ""
    assert preview_html({**running, "status": "succeeded"}) == "" and preview_html(None) == ""
