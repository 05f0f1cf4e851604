"""Checks the page runs as soon as a file arrives, and the sentences it shows for refused inputs.

A new user should learn that a file is unusable next to the field, when they upload it, not from a
toast naming a Python exception and a cache path, nor from a failed job in History. The checks are
the service's own (:func:`pusa.service.uploads.check_image` / ``check_video``, the same limits),
run on Gradio's cached copy; their refusals are rewritten into one plain sentence.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import gradio as gr

from pusa.service import uploads
from pusa.service.i18n import request_lang, say
from pusa.service.studio.inputs import InputFiles
from pusa.service.studio.render import field_error_html
from pusa.service.studio.values import file_path

_EXCEPTION_NAME = re.compile(r"\s*\((?:[A-Za-z_.]*(?:Error|Exception|Warning)|[A-Za-z_.]+\.[A-Za-z_]+)\)")
_PATH = re.compile(r"(?:/[^\s/:;,'\"]+){2,}")


def plain_message(message: str, lang: str = "en") -> str:
    """One sentence for a refused input: known refusals in the user's words, never an exception name or path."""
    if message.startswith(uploads.NOT_AN_IMAGE):
        return say("bad_image", lang)
    if message.startswith(uploads.NOT_A_VIDEO):
        return say("bad_video", lang)
    return _PATH.sub("…", _EXCEPTION_NAME.sub("", message))


def check_file(value: Any, kind: str, field: str, files: InputFiles, limits: UploadLimits, lang: str) -> str:
    """The error HTML for an uploaded file ("" when it is fine or the slot was emptied)."""
    path = file_path(value)
    if not path:
        return ""
    try:
        real = files.accept(path, field)
        if kind == "image":
            uploads.check_image(real, field, limits)
        else:
            uploads.check_video(real, field, limits, Path(real).name)
    except uploads.UploadRejected as e:
        return field_error_html(plain_message(e.message, lang))
    return ""


def wire_upload_check(component: Any, kind: str, field: str, error_box: Any, files: InputFiles) -> None:
    """Check a file input on every upload or clear; the sentence goes into ``error_box`` beside it.

    ``preprocess=False``: Gradio's own image preprocessing opens the file and would answer an
    unreadable one with a raw exception toast before this check could speak.
    """

    def check(request: gr.Request, value: Any) -> str:
        return check_file(value, kind, field, files, files.limits, request_lang(request))

    component.change(check, component, error_box, queue=False, preprocess=False, show_progress="hidden")


def wire_slot_checks(slots: list[Any], error_box: Any, files: InputFiles) -> None:
    """The keyframe slots share one error box: it lists every unreadable slot by its keyframe number."""

    def check(request: gr.Request, *values: Any) -> str:
        lang = request_lang(request)
        out = []
        for i, value in enumerate(values):
            html = check_file(value, "image", f"images[{i}]", files, files.limits, lang)
            if html:
                out.append(html.replace('">', f'">{say("keyframe", lang)} {i + 1}: ', 1))
        return "".join(out)

    for slot in slots:
        slot.change(check, slots, error_box, queue=False, preprocess=False, show_progress="hidden")
