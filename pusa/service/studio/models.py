"""The model and LoRA picker in the page's header (only with ``pusa serve --models-dir``).

Why its own room: the picker talks to :class:`pusa.service.switching.ModelSwitcher` through the job
service and to nothing else on the page but two things: the page's model timer (re-armed on
"Load", so the banner shows the load's progress and every model-dependent hint redraws once the
new model has settled) and its own note beside the button (what is loading, or why a load
failed and which model serves instead). Loading runs in the background: the handler returns at
once and the other tabs and History stay usable. Also here: how a job's model is written in a
tab's result line and in History (:func:`model_cell`, :func:`model_line`).
"""

from __future__ import annotations

from dataclasses import dataclass
from html import escape
from typing import Any

import gradio as gr

from pusa.errors import SettingsError
from pusa.service.engine import ModelBusy
from pusa.service.i18n import request_lang, say
from pusa.service.jobs import JobService
from pusa.service.studio.render import T
from pusa.service.switching import STARTUP_ID

NO_LORA = ""  # the LoRA dropdown's value for "none besides the folder's own default"


@dataclass
class ModelPicker:
    """The picker's components (tests and the page find them by elem_id)."""

    model: Any
    lora: Any
    load: Any
    note: Any
    error: Any
    timer: Any


def model_cell(model: dict[str, Any] | None) -> str:
    """A job's model in a few words: the picker's id (or the label) and the LoRA files it ran with."""
    if not model:
        return ""
    name = model["id"] if model.get("id") and model["id"] != STARTUP_ID else str(model.get("label") or "")
    loras = ", ".join(model.get("lora_files") or [])
    return f"{name} + {loras}" if loras else name


def model_line(model: dict[str, Any] | None, lang: str) -> str:
    """`` · model: tiny-b + pusa.safetensors`` for a tab's result line (empty for a job without a record)."""
    return f" · {say('job_model', lang, model=model_cell(model))}" if model else ""


def build_model_picker(service: JobService, demo: gr.Blocks, page_timer: gr.Timer) -> ModelPicker | None:
    """Lay the picker out where it is called (the header) and wire it; None without ``--models-dir``."""
    switcher = service.models
    if switcher is None:
        return None
    with gr.Row(elem_id="model-picker", equal_height=True):
        model = gr.Dropdown([], label=T("pick_model"), elem_id="model-choice", scale=3)
        lora = gr.Dropdown([], label=T("pick_lora"), elem_id="lora-choice", scale=3)
        load = gr.Button(T("load_model"), elem_id="model-load", scale=1)
    note = gr.HTML("", elem_id="model-note")  # follows the load (its own timer)
    error = gr.HTML("", elem_id="model-error")  # why the last click loaded nothing (until the next click)
    timer = gr.Timer(1.0, active=False)
    picker = ModelPicker(model, lora, load, note, error, timer)

    def lora_choices(model_id: str | None, lang: str) -> list[tuple[str, str]]:
        listing = switcher.listing()
        entry = listing.model(model_id or "")
        fits = listing.loras_for(entry.wan22) if entry is not None else []
        return [(say("no_lora", lang), NO_LORA), *[(x.id, x.id) for x in fits]]

    def fill(request: gr.Request) -> list[Any]:
        lang = request_lang(request)
        listing = switcher.listing()
        models = [(f"{m.id} — {m.label} ({m.family})", m.id) for m in listing.models]
        current = service.host.model_id
        return [gr.update(choices=models, value=current), gr.update(choices=lora_choices(current, lang),
                                                                   value=service.host.lora_id or NO_LORA),
                note_html(service, lang), gr.Timer(active=not service.model_settled)]

    demo.load(fill, None, [model, lora, note, timer], queue=False, show_progress="hidden")

    def pick_model(model_id: str | None, request: gr.Request) -> Any:
        return gr.update(choices=lora_choices(model_id, request_lang(request)), value=NO_LORA)

    model.input(pick_model, model, lora, queue=False, show_progress="hidden")

    def start(model_id: str | None, lora_id: str | None, request: gr.Request) -> list[Any]:
        lang = request_lang(request)
        try:
            switcher.switch(model_id, lora_id or None)
        except (SettingsError, ModelBusy) as e:
            return [gr.update(), _note(say("model_not_loaded", lang, reason=str(e)), "error"), gr.update(),
                    gr.update()]
        return [note_html(service, lang), "", gr.Timer(active=True), gr.Timer(active=True)]

    load.click(start, [model, lora], [note, error, page_timer, timer], queue=False, show_progress="hidden")

    def follow(request: gr.Request) -> list[Any]:
        return [note_html(service, request_lang(request)), gr.Timer(active=not service.model_settled)]

    timer.tick(follow, None, [note, timer], queue=False, show_progress="hidden")
    return picker


def note_html(service: JobService, lang: str) -> str:
    """Beside the button: what is loading, why the last switch failed, or nothing once a switch worked."""
    snap = service.model_snapshot()
    if snap["state"] == "loading":
        return _note(say("model_loading", lang, model=snap["label"]), "loading")
    if snap.get("switch_error"):
        return _note(say("model_switch_failed", lang, error=snap["switch_error"], model=snap["label"]), "error")
    return _note("", snap["state"])


def _note(text: str, state: str) -> str:
    return f'<div class="pusa-model-note" data-state="{escape(state)}">{escape(text)}</div>'
