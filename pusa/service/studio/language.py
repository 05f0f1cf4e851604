"""The page's language: the EN / 한국어 switch in the header, remembered, applied before anything is drawn.

Gradio picks the locale of its ``gr.I18n`` labels once, from ``navigator.language``, when the app
starts; switching it later (Gradio's own settings dialog) left tabs that had not been visited in
the old language and was forgotten on reload. So the choice is made before Gradio starts: a small
script first in the page's ``<head>`` (:class:`PageLanguage` puts it there) reads ``?lang=`` or,
without one, the choice remembered in local storage, writes it back to both, and pins
``navigator.language`` to it, so every label of every tab is drawn in that language at once. The
switch itself is two plain links (``?lang=en`` / ``?lang=ko``): choosing reloads the page in the
other language (a tab's running job re-attaches after a reload). The server renders its run-time
text in the language of the page address each event comes from (:func:`pusa.service.i18n.request_lang`).
Only complete languages are offered (:data:`pusa.service.i18n.LANGS`); Gradio's settings dialog,
with its picker of some thirty languages, is not shown (``footer_links=[]`` in :mod:`pusa.service.studio`).
"""

from __future__ import annotations

import json
from typing import Any, Callable

from pusa.service.i18n import LANG_PARAM, LANGS

STORAGE_KEY = "pusa-lang"
NAMES = {"en": "EN", "ko": "한국어"}  # each language named in itself

EARLY_SCRIPT = """<script>(function () {
  var langs = %(langs)s, key = %(key)s, param = %(param)s;
  var url = new URL(window.location.href), stored = null;
  var asked = (url.searchParams.get(param) || "").toLowerCase();
  try { stored = window.localStorage.getItem(key); } catch (e) {}
  var chosen = langs.indexOf(asked) >= 0 ? asked : (langs.indexOf(stored) >= 0 ? stored : null);
  var lang = chosen || ((navigator.language || "").toLowerCase().indexOf("ko") === 0 ? "ko" : "en");
  if (chosen) {
    try { window.localStorage.setItem(key, chosen); } catch (e) {}
    if (asked !== chosen) { url.searchParams.set(param, chosen); window.history.replaceState(null, "", url); }
  }
  try {
    Object.defineProperty(navigator, "language", {value: lang, configurable: true});
    Object.defineProperty(navigator, "languages", {value: [lang], configurable: true});
  } catch (e) {}
  document.documentElement.lang = lang;
})();</script>""" % {"langs": json.dumps(list(LANGS)), "key": json.dumps(STORAGE_KEY), "param": json.dumps(LANG_PARAM)}

SWITCH_CSS = """
#pusa-header { align-items: center; }
#lang-switch { text-align: right; font-size: 0.95rem; }
#lang-switch a { text-decoration: none; padding: 2px 8px; border-radius: 4px; border: 1px solid #9995; }
html[lang=en] #lang-switch a[data-lang=en], html[lang=ko] #lang-switch a[data-lang=ko] {
  font-weight: 700; background: #ff980033; border-color: #ff9800; }
html[lang=ko] .gradio-container { word-break: keep-all; }  /* Korean wraps between words */
"""


def switch_html() -> str:
    """The header's switch: one link per complete language, the current one highlighted by CSS."""
    links = " ".join(f'<a href="?{LANG_PARAM}={code}" data-lang="{code}" hreflang="{code}">{NAMES[code]}</a>'
                     for code in LANGS)
    return f'<nav class="pusa-lang" aria-label="Language / 언어">{links}</nav>'


class PageLanguage:
    """ASGI middleware: puts :data:`EARLY_SCRIPT` first into the ``<head>`` of the studio's HTML pages.

    Only uncompressed ``text/html`` answers to GET are touched (the page itself, a few kB); Gradio's
    own ``head=`` option cannot serve here, as Gradio adds that only after it has chosen the locale.
    """

    def __init__(self, app: Any, script: str = EARLY_SCRIPT):
        self.app = app
        self.script = script.encode()

    async def __call__(self, scope: dict, receive: Callable, send: Callable) -> None:
        if scope["type"] != "http" or scope.get("method") != "GET":
            await self.app(scope, receive, send)
            return
        start: dict | None = None
        chunks: list[bytes] = []

        async def inject(message: dict) -> None:
            nonlocal start
            if message["type"] == "http.response.start":
                headers = {k.lower(): v for k, v in message.get("headers", [])}
                html = headers.get(b"content-type", b"").startswith(b"text/html")
                if html and b"content-encoding" not in headers:
                    start = message  # held until the whole body is here
                    return
                await send(message)
                return
            if start is None or message["type"] != "http.response.body":
                await send(message)
                return
            chunks.append(message.get("body", b""))
            if message.get("more_body"):
                return
            body = self._with_script(b"".join(chunks))
            headers = [(k, v) for k, v in start.get("headers", []) if k.lower() != b"content-length"]
            await send({**start, "headers": [*headers, (b"content-length", str(len(body)).encode())]})
            await send({"type": "http.response.body", "body": body})

        await self.app(scope, receive, inject)

    def _with_script(self, body: bytes) -> bytes:
        at = body.lower().find(b"<head>")
        if at < 0:
            return body
        at += len(b"<head>")
        return body[:at] + self.script + body[at:]
