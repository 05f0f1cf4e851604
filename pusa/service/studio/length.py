"""Length and long video: frames or seconds, the window plan drawn on a timeline, a prompt per window.

A video longer than the model's native window is a chain of windows (:mod:`pusa.windows`); the
studio draws the plan the engine will run (the same :func:`pusa.windows.plan_windows` call, on the
loaded model's family), with the anchors (keyframes, kept video frames) where they land, so the
user sees which prompt and which image each window gets before anything is queued. Everything
here reads the model's family: the bundled model's window is 9 latent frames, Wan's 21.
"""

from __future__ import annotations

from dataclasses import dataclass
from html import escape
from typing import Any, Callable

import gradio as gr

from pusa.family import ModelFamily
from pusa.service.i18n import say
from pusa.service.studio.render import T
from pusa.service.studio.values import optional_int
from pusa.windows import MAX_WINDOWS, count_windows, default_overlap, plan_windows

FamilyOf = Callable[[], ModelFamily]


# ---------------------------------------------------------------------------------------------- pure helpers


def frames_of(value: Any, family: ModelFamily) -> int:
    """The frame count a box means: the typed one when the model can make it, else the model's default."""
    f = optional_int(value)
    return f if isinstance(f, int) and family.valid_frames(f) else family.defaults.frames


def fps_of(value: Any, family: ModelFamily) -> int:
    """The typed fps when it is a positive whole number, else the model's default."""
    f = optional_int(value)
    return f if isinstance(f, int) and f > 0 else family.defaults.fps


def frames_for_seconds(seconds: Any, fps: int, family: ModelFamily) -> int | None:
    """The nearest frame count the model can make (stride*k+1) for ``seconds`` at ``fps``; None if not a number."""
    try:
        secs = float(str(seconds).strip().replace(",", "."))
    except ValueError:
        return None
    if not secs > 0 or secs > 10_000:
        return None
    stride = family.temporal_stride
    return stride * max(0, round((secs * fps - 1) / stride)) + 1


def duration_text(frames: int, fps: int, lang: str = "en") -> str:
    """``33 frames at 16 fps = 2.1 s``."""
    return say("duration", lang, frames=frames, fps=fps, secs=frames / fps)


def prompt_lines(text: Any) -> list[str]:
    """One prompt per non-blank line of the per-window box."""
    return [line.strip() for line in str(text or "").splitlines() if line.strip()]


@dataclass(frozen=True)
class Anchor:
    """A condition on the timeline: its label (``Keyframe 3``, ``video``) and latent position."""

    label: str
    position: int


def plan_html(family: ModelFamily, frames: int, window: Any, overlap: Any, prompts: list[str], prompt: str,
              anchors: list[Anchor], lang: str = "en") -> str:
    """The windows the engine will run, as bars over the latent timeline, with the anchors marked."""
    total = family.latent_frames(frames)
    w = optional_int(window)
    w = w if isinstance(w, int) and w >= 2 else family.native_latent_frames
    o = optional_int(overlap)
    o = o if isinstance(o, int) and o >= 0 else default_overlap(w)
    if o >= w:
        return f'<div class="pusa-bad" data-windows="0">{escape(say("plan_bad_overlap", lang, overlap=o, window=w))}</div>'
    n = count_windows(total, w, o)
    if n > MAX_WINDOWS:
        return f'<div class="pusa-bad" data-windows="{n}">{escape(say("plan_too_many", lang, n=n, max=MAX_WINDOWS))}</div>'
    plan = plan_windows(total, w, o, prompts or [prompt or ""])
    bars, rows = [], []
    for win in plan:
        left, width = 100 * win.start / total, 100 * win.length / total
        first, last = family.pixel_range(win.start)[0], family.pixel_range(win.stop - 1)[1]
        top = 2 + 16 * (win.index % 2)
        bars.append(f'<div class="pusa-win" style="left:{left:.2f}%;width:{width:.2f}%;top:{top}px" '
                    f'title="{escape(say("plan_window", lang, n=win.index + 1))}">{win.index + 1}</div>')
        text = say("plan_row", lang, n=win.index + 1, first=first, last=last, start=win.start, stop=win.stop - 1)
        rows.append(f'<li data-window="{win.index + 1}">{escape(text)}: <i>{escape(win.prompt[:120])}</i></li>')
    marks = []
    for a in anchors:
        if 0 <= a.position < total:
            left = 100 * (a.position + 0.5) / total
            marks.append(f'<div class="pusa-anchor" style="left:{left:.2f}%" '
                         f'title="{escape(a.label)}: {a.position}">▼</div>')
    span = say("plan_span", lang, n=len(plan), total=total, frames=frames)
    return (f'<div class="pusa-plan" data-windows="{len(plan)}" data-latent="{total}">'
            f'<div class="pusa-plan-head">{escape(span)}</div>'
            f'<div class="pusa-track">{"".join(bars)}{"".join(marks)}</div>'
            f'<ol class="pusa-plan-list">{"".join(rows)}</ol></div>')


# ---------------------------------------------------------------------------------------------- the controls


@dataclass
class LengthControls:
    """The length row (frames, seconds, duration) and the long-video accordion of one tab."""

    frames: Any
    seconds: Any
    duration: Any
    prompts: Any
    window: Any
    overlap: Any
    overlap_multipliers: Any
    color_match: Any
    plan: Any


def build_length(task: str, inputs: dict[str, Any], errors: dict[str, Any], err_box: Callable[[str], Any],
                 family: FamilyOf) -> LengthControls:
    """Frames (4k+1) or seconds, the duration they make, and the long-video settings with the plan."""
    fam = family()
    with gr.Row():
        frames = gr.Textbox("", label=T("frames"), info=T("help_frames"), placeholder=frames_placeholder(fam),
                            elem_id=f"{task}-frames")
        seconds = gr.Textbox("", label=T("seconds"), info=T("help_seconds"), elem_id=f"{task}-seconds")
    duration = gr.Markdown(duration_text(fam.defaults.frames, fam.defaults.fps), elem_id=f"{task}-duration")
    inputs["frames"] = frames
    errors["frames"] = err_box("frames")
    with gr.Accordion(T("long_video"), open=False, elem_id=f"{task}-long"):
        prompts = gr.Textbox("", label=T("prompts"), info=T("help_prompts"), lines=3, elem_id=f"{task}-prompts")
        errors["prompts"] = err_box("prompts")
        with gr.Row():
            window = gr.Textbox("", label=T("window"), info=T("help_window"),
                                placeholder=str(fam.native_latent_frames), elem_id=f"{task}-window")
            overlap = gr.Textbox("", label=T("overlap"), info=T("help_overlap"),
                                 placeholder=str(default_overlap(fam.native_latent_frames)), elem_id=f"{task}-overlap")
            mults = gr.Textbox("", label=T("overlap_multipliers"), info=T("help_overlap_multipliers"),
                               elem_id=f"{task}-overlap_multipliers")
        errors["window"] = err_box("window")
        errors["overlap"] = err_box("overlap")
        errors["overlap_multipliers"] = err_box("overlap_multipliers")
        color = gr.Checkbox(True, label=T("color_match"), info=T("help_color_match"), elem_id=f"{task}-color_match")
    gr.Markdown(f"**{T('plan')}**")
    plan = gr.HTML(plan_html(fam, fam.defaults.frames, "", "", [], "", []), elem_id=f"{task}-plan")
    for name, comp in (("prompts", prompts), ("window", window), ("overlap", overlap),
                       ("overlap_multipliers", mults), ("color_match", color)):
        inputs[name] = comp
    return LengthControls(frames, seconds, duration, prompts, window, overlap, mults, color, plan)


def frames_placeholder(family: ModelFamily) -> str:
    d = family.defaults
    return f"{d.frames} ({d.frames / d.fps:.1f} s)"


def long_settings(vals: dict[str, Any]) -> dict[str, Any]:
    """The long-video settings of a tab's values (empty boxes: the model's defaults)."""
    raw: dict[str, Any] = {}
    lines = prompt_lines(vals.get("prompts"))
    if lines:
        raw["prompts"] = lines
    for key in ("window", "overlap"):
        v = optional_int(vals.get(key))
        if v is not None:
            raw[key] = v
    mults = vals.get("overlap_multipliers")
    if isinstance(mults, str) and mults.strip():
        raw["overlap_multipliers"] = mults
    if vals.get("color_match") is False:
        raw["color_match"] = False
    return raw


def wire_length(length: LengthControls, fps: Any, prompt: Any, anchor_inputs: list[Any],
                anchors_of: Callable[[tuple[Any, ...], str], list[Anchor]], family: FamilyOf) -> tuple[Any, ...]:
    """Seconds -> frames; every length, prompt, window or anchor edit redraws the duration and the plan.

    Returns the redraw as ``(fn, inputs, outputs)`` so the page can run it when the model's family
    becomes known. Inputs arrive unprocessed (an image slot is only asked whether it holds a file).
    """
    from pusa.service.i18n import request_lang

    inputs = [length.frames, fps, prompt, length.prompts, length.window, length.overlap, *anchor_inputs]

    def redraw(request: gr.Request, frames: Any, fps_v: Any, prompt_v: Any, prompts: Any, window: Any,
               overlap: Any, *anchor_values: Any) -> list[str]:
        lang = request_lang(request)
        fam = family()
        f = frames_of(frames, fam)
        return [duration_text(f, fps_of(fps_v, fam), lang),
                plan_html(fam, f, window, overlap, prompt_lines(prompts), str(prompt_v or ""),
                          anchors_of(tuple(anchor_values), lang), lang)]

    outputs = [length.duration, length.plan]
    for comp in inputs:  # the prompts on leaving their box, not on every key
        event = comp.blur if comp is prompt or comp is length.prompts else comp.change
        event(redraw, inputs, outputs, queue=False, preprocess=False, show_progress="hidden")

    def to_frames(seconds: Any, fps_v: Any) -> Any:
        fam = family()
        f = frames_for_seconds(seconds, fps_of(fps_v, fam), fam)
        return gr.update() if f is None else str(f)

    length.seconds.input(to_frames, [length.seconds, fps], length.frames, queue=False)
    return (redraw, inputs, outputs)
