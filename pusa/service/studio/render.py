"""What the studio draws as HTML: the status line, the model banner, the keyframe timeline, the CSS.

Pure functions of data (a job dict, a model snapshot, typed positions): no Gradio events and no
service calls here, so the look of each state can be checked without a page.
"""

from __future__ import annotations

from html import escape
from typing import Any

import gradio as gr

from pusa.errors import SettingsError
from pusa.family import ModelFamily
from pusa.service.i18n import PREFIX, TEXT, i18n_tables, say
from pusa.service.studio.clock import Times, clock_text
from pusa.service.studio.problem_text import job_error
from pusa.settings import GenerationSettings
from pusa.tasks import DEFAULT_IMAGE_MULTIPLIER

I18N = gr.I18n(**i18n_tables())

CSS = """
.pusa-status { font-size: 0.95rem; }
.pusa-status progress { width: 100%; height: 14px; }
.pusa-field-error { color: #c62828; font-size: 0.9rem; margin-top: -6px; }
.pusa-err-wrap:not(:has(.pusa-field-error)) { display: none !important; }
.pusa-timeline { display: flex; flex-wrap: wrap; gap: 3px; margin: 4px 0; }
.pusa-slot { border: 1px solid #9993; border-radius: 4px; padding: 2px 4px; min-width: 34px; text-align: center;
             font-size: 0.75rem; line-height: 1.2; }
.pusa-slot.pinned { background: #ff9800; color: #000; font-weight: 600; }
.pusa-slot .px { opacity: 0.7; font-size: 0.65rem; }
.pusa-timeline-list { font-size: 0.85rem; margin: 2px 0 0 1rem; padding: 0; }
.pusa-bad { color: #c62828; }
.pusa-plan-head { font-size: 0.85rem; opacity: 0.8; }
.pusa-track { position: relative; height: 40px; margin: 4px 0; background: #9991; border-radius: 4px; }
.pusa-win { position: absolute; height: 14px; border-radius: 3px; background: #1e88e5aa; color: #fff;
            font-size: 0.65rem; text-align: center; line-height: 14px; overflow: hidden; }
.pusa-anchor { position: absolute; bottom: -2px; transform: translateX(-50%); color: #ff9800; font-size: 0.8rem; }
.pusa-plan-list { font-size: 0.85rem; margin: 2px 0 0 1rem; padding: 0; }
"""

# Engine phases that have their own translated name (others are shown as the engine names them).
_PHASES = ("text", "encode", "denoise", "decode", "lora", "waiting")


def T(key: str) -> Any:
    """A translatable label (English/Korean, chosen by the browser) for a key of :data:`i18n.TEXT`."""
    return I18N(f"{PREFIX}{key}")


def field_error_html(message: str | None) -> str:
    return f'<div class="pusa-field-error">{escape(message)}</div>' if message else ""


def status_html(task: str, job: dict[str, Any] | None, lang: str, ready: bool, text: str | None = None,
                times: Times | None = None, queue_left: float | None = None) -> str:
    """Queue position, phase and a progress bar (the element tests and users watch).

    ``times`` (measured by the following tab's :class:`StepClock`) adds the elapsed time and the
    time left, and moves the bar by time; ``queue_left`` estimates the wait of a queued job.
    """
    if job is None:
        return f'<div class="pusa-status" id="{task}-status-box" data-status="idle">{escape(text or "")}</div>'
    st = job["status"]
    prog = job["progress"]
    if st == "queued":
        msg = say("st_queued_ready" if ready else "st_queued", lang, pos=job["queue_position"])
    elif st == "running":
        if job.get("cancel_requested"):
            msg = say("st_cancelling", lang)
        elif prog["phase"] in (None, "waiting"):
            msg = say("st_starting", lang)
        else:
            phase = say(f"ph_{prog['phase']}", lang) if prog["phase"] in _PHASES else prog["phase"]
            msg = say("st_running", lang, phase=phase, step=prog["step"], total=prog["total"])
    elif st == "succeeded":
        msg = say("st_succeeded", lang, secs=float(job["timings"].get("total", 0.0)), seed=job["seed"])
    elif st == "cancelled":
        msg = say("st_cancelled", lang)
    else:
        msg = say("st_failed_job", lang, error=job_error(job.get("error") or "", job.get("error_field"), lang))
    frac = prog["fraction"]
    when = ""
    if times is not None and st in ("queued", "running"):
        frac = times.fraction if st == "running" else frac
        key = "st_waited" if st == "queued" else "st_elapsed"
        when = say(key, lang, elapsed=clock_text(times.elapsed))
        left = queue_left if st == "queued" else times.left
        if left is not None:
            when += " · " + say("st_left", lang, left=clock_text(left))
    return (f'<div class="pusa-status" id="{task}-status-box" data-status="{st}" data-job="{job["id"]}">'
            f'<div class="pusa-status-text">{escape(msg)}</div>'
            + (f'<div class="pusa-status-times">{escape(when)}</div>' if when else "")
            + f'<progress class="pusa-progress" value="{frac:.3f}" max="1"></progress> {round(frac * 100)}%</div>')


def model_status_html(snap: dict[str, Any], lang: str = "en") -> str:
    """The banner above the tabs in the page's language: load state, the model, its defaults or its error."""
    state = snap["state"]
    key = {"ready": "st_ready", "failed": "st_failed"}.get(state, "st_loading")
    comps = "".join(f"<li>{escape(k)}: <b>{escape(say(f'comp_{v}', lang) if f'comp_{v}' in TEXT else v)}</b></li>"
                    for k, v in snap["components"].items())
    extra = ""
    if state == "ready" and "defaults" in snap:
        d = snap["defaults"]
        extra = " — " + say("banner_defaults", lang, width=d["width"], height=d["height"], frames=d["frames"])
        extra += " — Wan2.2" if snap.get("wan22") else ""
    if snap.get("error"):
        extra += f" — {escape(snap['error'])}"
    secs = f" ({say('load_secs', lang, v=snap.get('load_seconds', 0))})" if state == "loading" else ""
    return (f'<div id="model-state" data-state="{state}"><b>{escape(say(key, lang))}'
            f'</b>{secs}: {escape(snap["label"])}{extra}'
            + (f"<ul>{comps}</ul>" if state != "ready" and comps else "") + "</div>")


def timeline_html(positions_text: str, multipliers_text: str, frames: int, family: ModelFamily,
                  labels: list[int], lang: str = "en") -> str:
    """Which latent slot (and which pixel frames) each keyframe pins, drawn as a row of the model's slots.

    ``labels`` are the keyframe numbers of the slots holding an image, in order: position ``k`` pins
    keyframe ``labels[k]`` (removing a middle image leaves the others' numbers as they were), and a
    position without an image says so instead of naming a keyframe that does not exist.
    """
    n_latent = family.latent_frames(frames)
    try:
        s = GenerationSettings.parse({"prompt": "x", "task": "keyframes", "cond_positions": positions_text or None,
                                      "noise_multipliers": multipliers_text or None})
    except SettingsError as e:
        return f'<div class="pusa-bad">{escape(str(e))}</div>'
    positions = s.cond_positions or []
    mults = s.noise_multipliers or []
    pinned = {p: labels[i] for i, p in enumerate(positions) if i < len(labels)}
    cells = []
    for slot in range(n_latent):
        first, last = family.pixel_range(slot)
        px = f"{first}" if first == last else f"{first}–{last}"
        cls = "pusa-slot pinned" if slot in pinned else "pusa-slot"
        tag = f"#{pinned[slot]}" if slot in pinned else str(slot)
        cells.append(f'<div class="{cls}" title="{say("tl_slot", lang)} {slot}: {say("tl_pixels", lang)} {px}">'
                     f'{tag}<div class="px">{px}</div></div>')
    rows = []
    for i, p in enumerate(positions):
        mult = mults[i] if i < len(mults) else DEFAULT_IMAGE_MULTIPLIER
        if i >= len(labels):
            rows.append(f'<li class="pusa-bad">{escape(say("tl_no_image", lang, k=i + 1, pos=p, n=len(labels)))}</li>')
        elif 0 <= p < n_latent:
            first, last = family.pixel_range(p)
            rows.append(f"<li>{escape(say('tl_pins', lang, n=labels[i], pos=p, first=first, last=last, mult=mult))}"
                        f"</li>")
        else:
            rows.append(f'<li class="pusa-bad">{escape(say("tl_outside", lang, n=labels[i], pos=p, last=n_latent - 1, frames=frames, slots=n_latent))}</li>')
    return (f'<div class="pusa-timeline" data-slots="{n_latent}">{"".join(cells)}</div>'
            f'<ul class="pusa-timeline-list">{"".join(rows)}</ul>')
