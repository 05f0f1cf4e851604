"""The Gradio studio: the seed's four tabs plus history, on top of the same job service as the API.

Each tab only gathers a settings dict and input files, calls :meth:`JobService.submit`, and then
follows the job in the store (queue position, live step progress) until it ends. Validation is
the engine's: a SettingsError's field problems are shown next to the fields they name.
"""

from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass, field
from html import escape
from pathlib import Path
from typing import Any

import gradio as gr

from pusa.errors import SettingsError
from pusa.service.config import ServiceConfig
from pusa.service.i18n import PREFIX, i18n_tables, lang_of, say
from pusa.service.jobs import JobConflict, JobNotFound, JobService, Upload
from pusa.service.store import SUCCEEDED, Job
from pusa.service.uploads import UploadRejected
from pusa.settings import (DEFAULT_IMAGE_MULTIPLIER, DEFAULT_NEGATIVE_PROMPT, GenerationSettings, latent_frames,
                           pixel_frames_of_latent)

log = logging.getLogger(__name__)

I18N = gr.I18n(**i18n_tables())


def T(key: str) -> Any:
    """A translatable label (English/Korean, chosen by the browser) for a key of :data:`i18n.TEXT`."""
    return I18N(f"{PREFIX}{key}")


TASKS = ("i2v", "keyframes", "v2v", "t2v")
MAX_KEYFRAMES = 4
POLL_SECONDS = 0.25
SIZE_PRESETS = {"model default": (None, None), "832x480 (480p)": (832, 480), "480x832 (480p portrait)": (480, 832),
                "1280x720 (720p)": (1280, 720), "720x1280 (720p portrait)": (720, 1280), "512x512": (512, 512),
                "64x64 (tiny)": (64, 64), "custom": (None, None)}
ERR_BOX: dict[str, Any] = {"padding": False, "container": False, "elem_classes": ["pusa-err-wrap"]}
# Fields the studio shows an error box next to; other problems go to the tab's general box.
FIELD_BOXES = ("prompt", "images", "video", "cond_positions", "noise_multipliers", "size", "frames", "seed")

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
"""


# ----------------------------------------------------------------------------- small helpers


def _lang(request: gr.Request | None) -> str:
    try:
        return lang_of(request.headers.get("accept-language")) if request is not None else "en"
    except Exception:  # a request without headers (e.g. an API client): default language
        return "en"


def _num(value: Any) -> Any:
    """Gradio numbers arrive as floats; integral ones become ints so the settings check sees the user's value."""
    if isinstance(value, float) and math.isfinite(value) and value.is_integer():
        return int(value)
    return value


def _blank(value: Any) -> bool:
    return value is None or (isinstance(value, str) and not value.strip())


def field_error_html(message: str | None) -> str:
    return f'<div class="pusa-field-error">{escape(message)}</div>' if message else ""


def status_html(task: str, job: dict[str, Any] | None, lang: str, ready: bool, text: str | None = None) -> str:
    """Queue position, phase and a progress bar (the element tests and users watch)."""
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
            phase = say(f"ph_{prog['phase']}", lang) if f"ph_{prog['phase']}" in _PHASES else prog["phase"]
            msg = say("st_running", lang, phase=phase, step=prog["step"], total=prog["total"])
    elif st == "succeeded":
        msg = say("st_succeeded", lang, secs=float(job["timings"].get("total", 0.0)), seed=job["seed"])
    elif st == "cancelled":
        msg = say("st_cancelled", lang)
    else:
        msg = say("st_failed_job", lang, error=job.get("error") or "")
    frac = prog["fraction"]
    return (f'<div class="pusa-status" id="{task}-status-box" data-status="{st}" data-job="{job["id"]}">'
            f'<div class="pusa-status-text">{escape(msg)}</div>'
            f'<progress class="pusa-progress" value="{frac:.3f}" max="1"></progress> {round(frac * 100)}%</div>')


_PHASES = {"ph_text", "ph_encode", "ph_denoise", "ph_decode", "ph_lora", "ph_waiting"}


def timeline_html(positions_text: str, multipliers_text: str, frames: int, lang: str = "en") -> str:
    """Which latent slot (and which pixel frames) each keyframe pins, drawn as a row of slots."""
    n_latent = latent_frames(frames)
    try:
        s = GenerationSettings.parse({"prompt": "x", "task": "keyframes", "cond_positions": positions_text or None,
                                      "noise_multipliers": multipliers_text or None})
    except SettingsError as e:
        return f'<div class="pusa-bad">{escape(str(e))}</div>'
    positions = s.cond_positions or []
    mults = s.noise_multipliers or []
    pinned = {p: i for i, p in enumerate(positions)}
    cells = []
    for slot in range(n_latent):
        first, last = pixel_frames_of_latent(slot)
        px = f"{first}" if first == last else f"{first}–{last}"
        cls = "pusa-slot pinned" if slot in pinned else "pusa-slot"
        tag = f"#{pinned[slot] + 1}" if slot in pinned else str(slot)
        cells.append(f'<div class="{cls}" title="{say("tl_slot", lang)} {slot}: {say("tl_pixels", lang)} {px}">'
                     f'{tag}<div class="px">{px}</div></div>')
    rows = []
    for i, p in enumerate(positions):
        mult = mults[i] if i < len(mults) else DEFAULT_IMAGE_MULTIPLIER
        if 0 <= p < n_latent:
            first, last = pixel_frames_of_latent(p)
            rows.append(f"<li>{escape(say('tl_pins', lang, n=i + 1, pos=p, first=first, last=last, mult=mult))}</li>")
        else:
            rows.append(f'<li class="pusa-bad">#{i + 1}: {p} is outside 0 to {n_latent - 1} '
                        f'({frames} frames = {n_latent} latent slots)</li>')
    return (f'<div class="pusa-timeline" data-slots="{n_latent}">{"".join(cells)}</div>'
            f'<ul class="pusa-timeline-list">{"".join(rows)}</ul>')


def evenly_spaced(n: int, n_latent: int) -> list[int]:
    if n <= 1:
        return [0] * n
    return [round(i * (n_latent - 1) / (n - 1)) for i in range(n)]


# ----------------------------------------------------------------------------- one task tab


@dataclass
class TaskTab:
    """The components of one task tab and how they map to settings and files."""

    task: str
    inputs: dict[str, Any] = field(default_factory=dict)        # name -> component (settings-bearing)
    errors: dict[str, Any] = field(default_factory=dict)        # field -> error HTML next to it
    general_error: Any = None
    status: Any = None
    video: Any = None
    download: Any = None
    seed_info: Any = None
    reuse: Any = None
    reuse_seed: Any = None
    job_state: Any = None
    seed_state: Any = None
    generate: Any = None
    cancel: Any = None

    @property
    def names(self) -> list[str]:
        return list(self.inputs)

    @property
    def components(self) -> list[Any]:
        return list(self.inputs.values())


class Studio:
    """Builds the Blocks; one instance per service."""

    def __init__(self, service: JobService, config: ServiceConfig):
        self.service = service
        self.config = config
        self.tabs: dict[str, TaskTab] = {}
        self.examples_dir = config.data_dir / "examples"

    # ------------------------------------------------------------------ model facts

    def model_frames(self) -> int:
        engine = self.service.host.engine
        return engine.defaults.frames if engine is not None else 81

    def model_status_html(self) -> str:
        snap = self.service.host.snapshot()
        state = snap["state"]
        key = {"ready": "st_ready", "failed": "st_failed"}.get(state, "st_loading")
        comps = "".join(f"<li>{escape(k)}: <b>{escape(v)}</b></li>" for k, v in snap["components"].items())
        extra = ""
        if state == "ready" and "defaults" in snap:
            d = snap["defaults"]
            extra = f" — {d['width']}x{d['height']}, {d['frames']} frames" + (" — Wan2.2" if snap.get("wan22") else "")
        if snap.get("error"):
            extra += f" — {escape(snap['error'])}"
        secs = f" ({snap.get('load_seconds', 0):.0f} s)" if state == "loading" else ""
        return (f'<div id="model-state" data-state="{state}"><b>{escape(say(key))} / {escape(say(key, "ko"))}'
                f'</b>{secs}: {escape(snap["label"])}{extra}'
                + (f"<ul>{comps}</ul>" if state != "ready" and comps else "") + "</div>")

    # ------------------------------------------------------------------ building

    def build(self) -> gr.Blocks:
        self._write_examples()
        with gr.Blocks(title="Pusa studio", analytics_enabled=False) as demo:
            gr.Markdown(f"# {T('title')}")
            gr.Markdown(T("subtitle"))
            model_status = gr.HTML(self.model_status_html(), elem_id="model-status")
            timer = gr.Timer(1.0)
            with gr.Tabs() as tabs:
                with gr.Tab(T("tab_i2v"), id="i2v", elem_id="tab-i2v"):
                    self._task_tab("i2v")
                with gr.Tab(T("tab_keyframes"), id="keyframes", elem_id="tab-keyframes"):
                    self._task_tab("keyframes")
                with gr.Tab(T("tab_v2v"), id="v2v", elem_id="tab-v2v"):
                    self._task_tab("v2v")
                with gr.Tab(T("tab_t2v"), id="t2v", elem_id="tab-t2v"):
                    self._task_tab("t2v")
                with gr.Tab(T("tab_history"), id="history", elem_id="tab-history") as history_tab:
                    self._history_tab(tabs, history_tab)
            alpha_lows = [t.inputs["lora_alpha_low"] for t in self.tabs.values()]

            def tick() -> list[Any]:
                host = self.service.host
                wan22 = bool(host.engine is not None and host.engine.is_wan22)
                return [self.model_status_html(), gr.Timer(active=not host.done.is_set()),
                        *[gr.update(visible=wan22) for _ in alpha_lows]]

            timer.tick(tick, None, [model_status, timer, *alpha_lows], show_progress="hidden", queue=False)
            demo.load(tick, None, [model_status, timer, *alpha_lows], show_progress="hidden", queue=False)
        return demo

    def _common_controls(self, tab: TaskTab) -> None:
        """Parameters every task shares (seed's alpha/steps plus the additions)."""
        with gr.Row():
            tab.inputs["lora_alpha"] = gr.Slider(0.1, 5.0, value=1.4, step=0.1, label=T("lora_alpha"),
                                                 info=T("help_lora_alpha"), elem_id=f"{tab.task}-lora_alpha")
            tab.inputs["lora_alpha_low"] = gr.Slider(0.1, 5.0, value=1.4, step=0.1, label=T("lora_alpha_low"),
                                                     info=T("help_lora_alpha_low"), visible=False,
                                                     elem_id=f"{tab.task}-lora_alpha_low")
            tab.inputs["steps"] = gr.Slider(1, 50, value=10, step=1, label=T("steps"), info=T("help_steps"),
                                            elem_id=f"{tab.task}-steps")
        with gr.Accordion(T("more"), open=False, elem_id=f"{tab.task}-more"):
            with gr.Row():
                tab.inputs["seed"] = gr.Number(-1, label=T("seed"), info=T("help_seed"), precision=0,
                                               elem_id=f"{tab.task}-seed")
                tab.inputs["cfg"] = gr.Slider(1.0, 20.0, value=5.0, step=0.5, label=T("cfg"), info=T("help_cfg"),
                                              elem_id=f"{tab.task}-cfg")
                tab.inputs["fps"] = gr.Number(16, label=T("fps"), info=T("help_fps"), precision=0,
                                              elem_id=f"{tab.task}-fps")
            tab.errors["seed"] = gr.HTML("", elem_id=f"{tab.task}-err-seed", **ERR_BOX)
            with gr.Row():
                size = gr.Dropdown(list(SIZE_PRESETS), value="model default", label=T("size"), info=T("help_size"),
                                   elem_id=f"{tab.task}-size")
                tab.inputs["width"] = gr.Number(None, label=T("width"), precision=0, elem_id=f"{tab.task}-width")
                tab.inputs["height"] = gr.Number(None, label=T("height"), precision=0, elem_id=f"{tab.task}-height")
                tab.inputs["frames"] = gr.Number(None, label=T("frames"), info=T("help_frames"), precision=0,
                                                 elem_id=f"{tab.task}-frames")
            tab.errors["size"] = gr.HTML("", elem_id=f"{tab.task}-err-size", **ERR_BOX)
            tab.errors["frames"] = gr.HTML("", elem_id=f"{tab.task}-err-frames", **ERR_BOX)
            if tab.task != "t2v":
                tab.inputs["fit"] = gr.Radio(["crop", "letterbox"], value="crop", label=T("fit"), info=T("help_fit"),
                                             elem_id=f"{tab.task}-fit")
            tab.inputs["negative_prompt"] = gr.Textbox(DEFAULT_NEGATIVE_PROMPT, label=T("negative_prompt"),
                                                       info=T("help_negative"), lines=2,
                                                       elem_id=f"{tab.task}-negative_prompt")

            def pick_size(name: str) -> tuple[Any, Any]:
                w, h = SIZE_PRESETS.get(name, (None, None))
                if name == "custom":
                    return gr.update(), gr.update()
                return w, h

            size.change(pick_size, size, [tab.inputs["width"], tab.inputs["height"]], queue=False)

    def _task_tab(self, task: str) -> None:
        tab = TaskTab(task)
        self.tabs[task] = tab
        tab.job_state = gr.State(None)
        tab.seed_state = gr.State(None)
        with gr.Row():
            with gr.Column(scale=1):
                if task == "i2v":
                    tab.inputs["image"] = gr.Image(type="filepath", label=T("image"), height=260,
                                                   sources=["upload", "clipboard"], elem_id="i2v-image")
                    tab.errors["images"] = gr.HTML("", elem_id="i2v-err-images", **ERR_BOX)
                elif task == "keyframes":
                    self._keyframe_inputs(tab)
                elif task == "v2v":
                    tab.inputs["video"] = gr.Video(label=T("video_in"), sources=["upload"], height=260,
                                                   elem_id="v2v-video-in")
                    tab.errors["video"] = gr.HTML("", elem_id="v2v-err-video", **ERR_BOX)
                tab.inputs["prompt"] = gr.Textbox(label=T("prompt"), placeholder=T("prompt_ph"), lines=2,
                                                  elem_id=f"{task}-prompt")
                tab.errors["prompt"] = gr.HTML("", elem_id=f"{task}-err-prompt", **ERR_BOX)
                if task == "i2v":
                    tab.inputs["noise_multiplier"] = gr.Slider(0.0, 1.0, value=0.2, step=0.05,
                                                               label=T("noise_multiplier"),
                                                               info=T("help_noise_multiplier"),
                                                               elem_id="i2v-noise_multiplier")
                if task == "v2v":
                    tab.inputs["cond_positions"] = gr.Textbox("0,1,2,3", label=T("cond_positions"),
                                                              info=T("help_v2v_positions"),
                                                              elem_id="v2v-cond_positions")
                    tab.errors["cond_positions"] = gr.HTML("", elem_id="v2v-err-cond_positions", **ERR_BOX)
                    tab.inputs["noise_multipliers"] = gr.Textbox("", label=T("noise_multipliers"),
                                                                 info=T("help_v2v_multipliers"),
                                                                 placeholder="0.0,0.0,0.0,0.0",
                                                                 elem_id="v2v-noise_multipliers")
                    tab.errors["noise_multipliers"] = gr.HTML("", elem_id="v2v-err-noise_multipliers", **ERR_BOX)
                self._common_controls(tab)
                with gr.Row():
                    tab.generate = gr.Button(T("generate"), variant="primary", elem_id=f"{task}-generate")
                    tab.cancel = gr.Button(T("cancel"), variant="stop", elem_id=f"{task}-cancel")
            with gr.Column(scale=1):
                tab.status = gr.HTML(status_html(task, None, "en", False), elem_id=f"{task}-status")
                tab.general_error = gr.HTML("", elem_id=f"{task}-error", **ERR_BOX)
                tab.video = gr.Video(label=T("result"), interactive=False, autoplay=True, loop=True, height=320,
                                     elem_id=f"{task}-video")
                tab.seed_info = gr.Markdown("", elem_id=f"{task}-seed-info")
                with gr.Row():
                    tab.download = gr.DownloadButton(T("download"), visible=False, elem_id=f"{task}-download")
                    tab.reuse = gr.Button(T("reuse"), visible=False, elem_id=f"{task}-reuse")
                    tab.reuse_seed = gr.Button(T("reuse_seed"), visible=False, elem_id=f"{task}-reuse-seed")
        self._examples(tab)
        self._wire(tab)

    def _keyframe_inputs(self, tab: TaskTab) -> None:
        """2..MAX_KEYFRAMES image slots, each with position + multiplier, kept in sync with the typed form."""
        slots_visible = gr.State(2)
        rows = []
        imgs, poss, mults = [], [], []
        with gr.Row():
            for i in range(MAX_KEYFRAMES):
                with gr.Column(visible=i < 2, min_width=160) as col:
                    imgs.append(gr.Image(type="filepath", label=f"{T('keyframe')} {i + 1}", height=150,
                                         sources=["upload", "clipboard"], elem_id=f"keyframes-image-{i}"))
                    poss.append(gr.Number(None, label=T("position"), precision=0, minimum=0,
                                          elem_id=f"keyframes-pos-{i}"))
                    mults.append(gr.Slider(0.0, 1.0, value=DEFAULT_IMAGE_MULTIPLIER, step=0.05,
                                           label=T("noise_multiplier"), elem_id=f"keyframes-mult-{i}"))
                rows.append(col)
        add = gr.Button(T("add_image"), size="sm", elem_id="keyframes-add")
        tab.errors["images"] = gr.HTML("", elem_id="keyframes-err-images", **ERR_BOX)
        for i in range(MAX_KEYFRAMES):
            tab.inputs[f"image_{i}"] = imgs[i]
        tab.inputs["cond_positions"] = gr.Textbox("", label=T("cond_positions"), info=T("help_cond_positions"),
                                                  placeholder="0,20", elem_id="keyframes-cond_positions")
        tab.errors["cond_positions"] = gr.HTML("", elem_id="keyframes-err-cond_positions", **ERR_BOX)
        tab.inputs["noise_multipliers"] = gr.Textbox("", label=T("noise_multipliers"),
                                                     info=T("help_noise_multipliers"), placeholder="0.2,0.5",
                                                     elem_id="keyframes-noise_multipliers")
        tab.errors["noise_multipliers"] = gr.HTML("", elem_id="keyframes-err-noise_multipliers", **ERR_BOX)
        gr.Markdown(f"**{T('timeline')}**")
        timeline = gr.HTML(timeline_html("", "", self.model_frames()), elem_id="keyframes-timeline")
        self._kf = dict(imgs=imgs, poss=poss, mults=mults, timeline=timeline)

        def show_more(n: int) -> list[Any]:
            n = min(n + 1, MAX_KEYFRAMES)
            return [n, *[gr.update(visible=i < n) for i in range(MAX_KEYFRAMES)]]

        add.click(show_more, slots_visible, [slots_visible, *rows], queue=False)

        def frames_of(frames: Any) -> int:
            f = _num(frames)
            return f if isinstance(f, int) and f >= 1 and (f - 1) % 4 == 0 else self.model_frames()

        def on_images(*vals: Any) -> list[Any]:
            # an image added or removed: spread the filled slots evenly (first..last latent slot)
            images, frames = vals[:MAX_KEYFRAMES], vals[MAX_KEYFRAMES]
            mvals = vals[MAX_KEYFRAMES + 1:]
            filled = [i for i, im in enumerate(images) if im]
            n_latent = latent_frames(frames_of(frames))
            spread = evenly_spaced(len(filled), n_latent)
            pos_updates = [None] * MAX_KEYFRAMES
            for k, i in enumerate(filled):
                pos_updates[i] = spread[k]
            ptxt = ",".join(str(p) for p in spread)
            mtxt = ",".join(f"{float(mvals[i]):g}" for i in filled)
            return [*pos_updates, ptxt, mtxt, timeline_html(ptxt, mtxt, frames_of(frames))]

        def on_slot_edit(*vals: Any) -> list[Any]:
            images = vals[:MAX_KEYFRAMES]
            pvals = vals[MAX_KEYFRAMES:2 * MAX_KEYFRAMES]
            mvals = vals[2 * MAX_KEYFRAMES:3 * MAX_KEYFRAMES]
            frames = vals[-1]
            filled = [i for i, im in enumerate(images) if im]
            ptxt = ",".join("" if pvals[i] is None else str(_num(pvals[i])) for i in filled)
            mtxt = ",".join(f"{float(mvals[i]):g}" for i in filled)
            return [ptxt, mtxt, timeline_html(ptxt, mtxt, frames_of(frames))]

        def on_text(ptxt: str, mtxt: str, frames: Any, *images: Any) -> list[Any]:
            # typed form -> per-image controls (only when it parses and matches the images)
            filled = [i for i, im in enumerate(images) if im]
            pos_up: list[Any] = [gr.update()] * MAX_KEYFRAMES
            mult_up: list[Any] = [gr.update()] * MAX_KEYFRAMES
            try:
                s = GenerationSettings.parse({"prompt": "x", "cond_positions": ptxt or None,
                                              "noise_multipliers": mtxt or None})
                if s.cond_positions and len(s.cond_positions) == len(filled):
                    for k, i in enumerate(filled):
                        pos_up[i] = s.cond_positions[k]
                if s.noise_multipliers and len(s.noise_multipliers) == len(filled):
                    for k, i in enumerate(filled):
                        mult_up[i] = s.noise_multipliers[k]
            except SettingsError:
                pass
            return [*pos_up, *mult_up, timeline_html(ptxt, mtxt, frames_of(frames))]

        ptext, mtext = tab.inputs["cond_positions"], tab.inputs["noise_multipliers"]
        self._kf_handlers = (on_images, on_slot_edit, on_text, frames_of, ptext, mtext)

    def _wire_keyframes(self, tab: TaskTab) -> None:
        """Attach the keyframe sync handlers (needs the frames box, built after the slots)."""
        on_images, on_slot_edit, on_text, frames_of, ptext, mtext = self._kf_handlers
        imgs, poss, mults, timeline = (self._kf[k] for k in ("imgs", "poss", "mults", "timeline"))
        frames = tab.inputs["frames"]
        for im in imgs:
            im.change(on_images, [*imgs, frames, *mults], [*poss, ptext, mtext, timeline], queue=False)
        for c in (*poss, *mults):
            c.input(on_slot_edit, [*imgs, *poss, *mults, frames], [ptext, mtext, timeline], queue=False)
        for c in (ptext, mtext):  # .change: also after the slots rewrite the text (values agree, so no loop)
            c.change(on_text, [ptext, mtext, frames, *imgs], [*poss, *mults, timeline], queue=False)
        frames.change(lambda p, m, f: timeline_html(p, m, frames_of(f)), [ptext, mtext, frames], timeline,
                      queue=False)

    # ------------------------------------------------------------------ settings <-> inputs

    def collect(self, tab: TaskTab, vals: dict[str, Any]) -> tuple[dict[str, Any], list[Upload], Upload | None]:
        """Tab values -> (raw settings dict, image uploads, video upload). No rules here: the engine checks."""
        raw: dict[str, Any] = {"task": tab.task, "prompt": vals.get("prompt") or ""}
        for key in ("steps", "lora_alpha", "cfg", "fps"):
            raw[key] = _num(vals[key])
        if self.service.host.engine is not None and self.service.host.engine.is_wan22:
            raw["lora_alpha_low"] = _num(vals["lora_alpha_low"])
        for key in ("width", "height", "frames"):
            if vals.get(key) is not None:
                raw[key] = _num(vals[key])
        seed = _num(vals.get("seed"))
        if seed is not None and seed != -1:
            raw["seed"] = seed
        if vals.get("negative_prompt") is not None:
            raw["negative_prompt"] = vals["negative_prompt"]
        if "fit" in vals and vals["fit"]:
            raw["fit"] = vals["fit"]
        images: list[Upload] = []
        video: Upload | None = None
        if tab.task == "i2v":
            raw["noise_multipliers"] = [_num(vals["noise_multiplier"])]
            if vals.get("image"):
                images.append(Upload(field="images", path=Path(vals["image"])))
        elif tab.task == "keyframes":
            for i in range(MAX_KEYFRAMES):
                if vals.get(f"image_{i}"):
                    images.append(Upload(field=f"images[{len(images)}]", path=Path(vals[f"image_{i}"])))
        elif tab.task == "v2v" and vals.get("video"):
            video = Upload(field="video", path=Path(vals["video"]), filename=Path(vals["video"]).name)
        for key in ("cond_positions", "noise_multipliers"):
            if key in vals and not _blank(vals[key]):
                raw[key] = vals[key]
        return raw, images, video

    def settings_updates(self, tab: TaskTab, job: Job) -> dict[Any, Any]:
        """Fill a tab's inputs from a job (its resolved settings when known, incl. the seed used)."""
        s = dict(job.settings)
        s.update(job.resolved or {})
        up: dict[Any, Any] = {}
        simple = ("prompt", "negative_prompt", "steps", "lora_alpha", "cfg", "fps", "width", "height", "frames",
                  "fit")
        for key in simple:
            if key in tab.inputs and s.get(key) is not None:
                up[tab.inputs[key]] = s[key]
        if s.get("lora_alpha_low") is not None:
            up[tab.inputs["lora_alpha_low"]] = s["lora_alpha_low"]
        up[tab.inputs["seed"]] = s.get("seed") if s.get("seed") is not None else -1
        pos, mult = s.get("cond_positions"), s.get("noise_multipliers")
        files = [str(self.config.data_dir / p) for p in job.images]
        if tab.task == "i2v":
            if mult:
                up[tab.inputs["noise_multiplier"]] = mult[0]
            if files:
                up[tab.inputs["image"]] = files[0]
        elif tab.task == "keyframes":
            for i in range(MAX_KEYFRAMES):
                up[tab.inputs[f"image_{i}"]] = files[i] if i < len(files) else None
        elif tab.task == "v2v" and job.video:
            up[tab.inputs["video"]] = str(self.config.data_dir / job.video)
        if "cond_positions" in tab.inputs:
            up[tab.inputs["cond_positions"]] = ",".join(str(p) for p in pos) if pos else ""
            up[tab.inputs["noise_multipliers"]] = ",".join(f"{m:g}" for m in mult) if mult else ""
        return up

    # ------------------------------------------------------------------ events

    def _wire(self, tab: TaskTab) -> None:
        if tab.task == "keyframes":
            self._wire_keyframes(tab)
        names = tab.names
        err_boxes = [tab.errors[k] for k in tab.errors]
        outputs = [tab.status, tab.general_error, tab.video, tab.download, tab.seed_info, tab.reuse, tab.reuse_seed,
                   tab.job_state, tab.seed_state, *err_boxes]

        def run(request: gr.Request, *values: Any):  # noqa: ANN202 - a Gradio generator
            lang = _lang(request)
            vals = dict(zip(names, values))
            cleared = {box: "" for box in err_boxes}
            try:
                raw, images, video = self.collect(tab, vals)
                job = self.service.submit(raw, images, video)
            except SettingsError as e:
                yield self._show_errors(tab, [(p.field, p.message) for p in e.problems], lang, cleared)
                return
            except UploadRejected as e:
                yield self._show_errors(tab, [(e.field, e.message)], lang, cleared)
                return
            except RuntimeError as e:
                yield self._show_errors(tab, [("model", str(e))], lang, cleared)
                return
            base = {**cleared, tab.general_error: "", tab.video: None, tab.download: gr.update(visible=False),
                    tab.reuse: gr.update(visible=False), tab.reuse_seed: gr.update(visible=False),
                    tab.seed_info: "", tab.job_state: job.id}
            last = None
            while True:
                current = self.service.store.get(job.id)
                if current is None:  # deleted from the history tab meanwhile
                    yield {tab.status: status_html(tab.task, None, lang, True, say("st_cancelled", lang))}
                    return
                d = self.service.job_dict(current)
                html_ = status_html(tab.task, d, lang, self.service.host.ready)
                if html_ != last:
                    yield {**base, tab.status: html_} if last is None else {tab.status: html_}
                    last = html_
                if current.finished:
                    break
                time.sleep(POLL_SECONDS)
            yield self._final(tab, current, d, lang)

        tab.generate.click(run, tab.components, outputs, concurrency_limit=None, show_progress="hidden")

        def cancel(job_id: str | None) -> None:
            if not job_id:
                return
            try:
                job = self.service.get(job_id)
                if not job.finished:
                    self.service.cancel_or_delete(job_id)
            except (JobNotFound, JobConflict):
                pass  # already gone or finished: nothing to cancel

        tab.cancel.click(cancel, tab.job_state, None, queue=False)

        def reuse(job_id: str | None) -> dict[Any, Any]:
            if not job_id:
                return {}
            try:
                return self.settings_updates(tab, self.service.get(job_id))
            except JobNotFound:
                return {}

        tab.reuse.click(reuse, tab.job_state, tab.components, queue=False)
        tab.reuse_seed.click(lambda s: s if s is not None else -1, tab.seed_state, tab.inputs["seed"], queue=False)

    def _show_errors(self, tab: TaskTab, problems: list[tuple[str, str]], lang: str,
                     cleared: dict[Any, str]) -> dict[Any, Any]:
        """Each problem next to its field when the tab has a box for it; all of them in the general box."""
        out = dict(cleared)
        for fld, msg in problems:
            key = fld.split("[")[0]
            key = "size" if key in ("width", "height", "size") else key
            if key in tab.errors:
                prev = out.get(tab.errors[key]) or ""
                out[tab.errors[key]] = prev + field_error_html(f"{fld}: {msg}")
        text = "; ".join(f"{f}: {m}" for f, m in problems)
        out[tab.general_error] = field_error_html(say("st_fix", lang, error=text))
        out[tab.status] = status_html(tab.task, None, lang, True, "")
        return out

    def _final(self, tab: TaskTab, job: Job, d: dict[str, Any], lang: str) -> dict[Any, Any]:
        out: dict[Any, Any] = {tab.status: status_html(tab.task, d, lang, True), tab.seed_state: d["seed"]}
        if job.status == SUCCEEDED:
            path = self.service.output_path(job)
            out.update({tab.video: str(path) if path else None,
                        tab.download: gr.update(value=str(path) if path else None, visible=path is not None),
                        tab.reuse: gr.update(visible=True), tab.reuse_seed: gr.update(visible=True),
                        tab.seed_info: f"seed **{d['seed']}** · job `{job.id}` · "
                                       + ", ".join(f"{k} {v:.2f}s" for k, v in job.timings.items())})
        elif job.status == "failed":
            problems = [(job.error_field or "error", job.error or "")]
            out.update(self._show_errors(tab, problems, lang, {}))
            out[tab.status] = status_html(tab.task, d, lang, True)
            out[tab.reuse] = gr.update(visible=True)
        return out

    # ------------------------------------------------------------------ history

    def _history_tab(self, tabs: gr.Tabs, history_tab: gr.Tab) -> None:
        ids_state = gr.State([])
        gallery_ids = gr.State([])
        selected = gr.State(None)
        refresh = gr.Button(T("refresh"), size="sm", elem_id="history-refresh")
        gallery = gr.Gallery(label=T("past_videos"), columns=4, height="auto", allow_preview=False,
                             elem_id="history-gallery")
        table = gr.Dataframe(headers=["id", "status", "task", "prompt", "seed", "created"], interactive=False,
                             label=T("all_jobs"), elem_id="history-table", wrap=True)
        with gr.Row():
            with gr.Column():
                detail_video = gr.Video(label=T("result"), interactive=False, elem_id="history-video")
            with gr.Column():
                detail = gr.JSON(label=T("job_details"), elem_id="history-detail")
                with gr.Row():
                    reuse = gr.Button(T("reuse"), elem_id="history-reuse")
                    resubmit = gr.Button(T("resubmit"), elem_id="history-resubmit")
                    delete = gr.Button(T("delete"), variant="stop", elem_id="history-delete")
                note = gr.Markdown("", elem_id="history-note")

        def load() -> list[Any]:
            jobs, _ = self.service.store.list(limit=100)
            rows = [[j.id, j.status, j.task, (j.settings.get("prompt") or "")[:80],
                     (j.resolved or {}).get("seed", ""), time.strftime("%Y-%m-%d %H:%M:%S",
                                                                        time.localtime(j.created_at))] for j in jobs]
            vids = [(j, self.service.output_path(j)) for j in jobs if j.status == SUCCEEDED]
            vids = [(j, p) for j, p in vids if p is not None][:24]
            gal = [(str(p), f"{j.task} · {(j.settings.get('prompt') or '')[:40]}") for j, p in vids]
            return [rows, [j.id for j in jobs], gal, [j.id for j, _ in vids]]

        def show(job_id: str | None) -> list[Any]:
            if not job_id:
                return [None, None, job_id]
            try:
                job = self.service.get(job_id)
            except JobNotFound:
                return [None, None, None]
            path = self.service.output_path(job)
            return [self.service.job_dict(job), str(path) if path else None, job_id]

        def pick_row(ids: list[str], evt: gr.SelectData) -> list[Any]:
            row = evt.index[0] if isinstance(evt.index, (list, tuple)) else evt.index
            return show(ids[row] if 0 <= row < len(ids) else None)

        def pick_video(ids: list[str], evt: gr.SelectData) -> list[Any]:
            i = evt.index if isinstance(evt.index, int) else evt.index[0]
            return show(ids[i] if 0 <= i < len(ids) else None)

        listing = [table, ids_state, gallery, gallery_ids]
        refresh.click(load, None, listing, queue=False)
        history_tab.select(load, None, listing, queue=False)
        table.select(pick_row, ids_state, [detail, detail_video, selected], queue=False)
        gallery.select(pick_video, gallery_ids, [detail, detail_video, selected], queue=False)

        all_inputs = [c for t in self.tabs.values() for c in t.components]

        def reuse_fn(job_id: str | None) -> dict[Any, Any]:
            if not job_id:
                return {}
            try:
                job = self.service.get(job_id)
            except JobNotFound:
                return {}
            return {**self.settings_updates(self.tabs[job.task], job), tabs: gr.Tabs(selected=job.task)}

        reuse.click(reuse_fn, selected, [tabs, *all_inputs], queue=False)

        def resubmit_fn(job_id: str | None) -> list[Any]:
            if not job_id:
                return ["", *load(), *show(None)]
            try:
                job = self.service.resubmit(job_id)
            except (JobNotFound, JobConflict) as e:
                return [f"⚠ {e}", *load(), *show(job_id)]
            return [f"queued job `{job.id}` (from `{job_id}`)", *load(), *show(job.id)]

        resubmit.click(resubmit_fn, selected, [note, *listing, detail, detail_video, selected], queue=False)

        def delete_fn(job_id: str | None) -> list[Any]:
            if not job_id:
                return ["", *load(), *show(None)]
            try:
                action = self.service.cancel_or_delete(job_id)
            except (JobNotFound, JobConflict) as e:
                return [f"⚠ {e}", *load(), *show(job_id)]
            return [f"{action}: `{job_id}`", *load(), *show(None if action == "deleted" else job_id)]

        delete.click(delete_fn, selected, [note, *listing, detail, detail_video, selected], queue=False)

    # ------------------------------------------------------------------ examples

    def _write_examples(self) -> None:
        """Small procedural inputs for the preset gallery (no downloads; written once, atomically)."""
        import os
        import tempfile

        import numpy as np
        from PIL import Image, ImageDraw

        d = self.examples_dir
        d.mkdir(parents=True, exist_ok=True)

        def save(img: Image.Image, name: str) -> None:
            if (d / name).exists():
                return
            fd, tmp = tempfile.mkstemp(dir=d, suffix=".png")
            os.close(fd)
            img.save(tmp, format="PNG")
            os.replace(tmp, d / name)

        def scene(sun_y: int, sky: tuple[int, int, int]) -> Image.Image:
            img = Image.new("RGB", (256, 256), sky)
            draw = ImageDraw.Draw(img)
            draw.ellipse((96, sun_y, 160, sun_y + 64), fill=(255, 200, 40))
            draw.rectangle((0, 180, 256, 256), fill=(30, 90, 160))
            return img

        save(scene(150, (250, 140, 90)), "sunrise_start.png")
        save(scene(40, (120, 180, 240)), "sunrise_end.png")
        save(scene(90, (200, 160, 120)), "sunrise_mid.png")
        if not (d / "waves.mp4").exists():
            from pusa.media import write_mp4

            t = np.arange(17)[:, None, None]
            y = np.arange(128)[None, :, None]
            x = np.arange(128)[None, None, :]
            wave = (127 + 120 * np.sin((x + 6 * t) / 10.0 + y / 25.0)).astype(np.uint8)
            frames = np.stack([wave // 3, wave // 2, wave], axis=-1)
            write_mp4(frames, d / "waves.mp4", fps=8)

    def _examples(self, tab: TaskTab) -> None:
        """Preset inputs per tab (like the seed's example gallery); headers in both languages."""
        d = self.examples_dir
        i = tab.inputs
        head = {k: f"{say(k)} / {say(k, 'ko')}" for k in ("image", "keyframe", "video_in", "prompt", "noise_multiplier",
                                                             "lora_alpha", "steps", "cond_positions")}
        if tab.task == "i2v":
            rows = [[str(d / "sunrise_start.png"), "The sun rises over a calm sea, gentle waves", 0.2, 1.4, 10]]
            comps = [i["image"], i["prompt"], i["noise_multiplier"], i["lora_alpha"], i["steps"]]
            headers = [head["image"], head["prompt"], head["noise_multiplier"], head["lora_alpha"], head["steps"]]
        elif tab.task == "keyframes":
            rows = [[str(d / "sunrise_start.png"), str(d / "sunrise_end.png"),
                     "Time-lapse: the sun climbs from the horizon into a blue sky", 1.4, 10]]
            comps = [i["image_0"], i["image_1"], i["prompt"], i["lora_alpha"], i["steps"]]
            headers = [f"{head['keyframe']} 1", f"{head['keyframe']} 2", head["prompt"], head["lora_alpha"],
                       head["steps"]]
        elif tab.task == "v2v":
            rows = [[str(d / "waves.mp4"), "Ocean waves roll in under a stormy sky", "0,1", 1.4, 10]]
            comps = [i["video"], i["prompt"], i["cond_positions"], i["lora_alpha"], i["steps"]]
            headers = [head["video_in"], head["prompt"], head["cond_positions"], head["lora_alpha"], head["steps"]]
        else:
            rows = [["A red fox runs through fresh snow in a pine forest, cinematic", 1.4, 10],
                    ["A paper boat drifts down a rain-filled street, close-up", 1.4, 10]]
            comps = [i["prompt"], i["lora_alpha"], i["steps"]]
            headers = [head["prompt"], head["lora_alpha"], head["steps"]]
        ex = gr.Examples(rows, comps, label=T("examples"), elem_id=f"{tab.task}-examples")
        ex.dataset.headers = headers


def mount_studio(service: JobService, config: ServiceConfig) -> Any:
    """Build the Blocks and mount them on a fresh FastAPI app at "/" (the root app forwards to it)."""
    from fastapi import FastAPI

    demo = Studio(service, config).build()
    demo.queue(default_concurrency_limit=None)
    parent = FastAPI(docs_url=None, redoc_url=None, openapi_url=None)
    allowed = [str(config.data_dir / "outputs"), str(config.data_dir / "uploads"), str(config.data_dir / "examples")]
    return gr.mount_gradio_app(parent, demo, path="/", allowed_paths=allowed, i18n=I18N, css=CSS,
                               max_file_size=config.limits.max_bytes, ssr_mode=False, show_error=True,
                               footer_links=["settings"], run_history=False, theme=gr.themes.Soft())
