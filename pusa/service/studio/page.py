"""The page: header and model banner, one tab per task (in the registry's order), and History.

Every tab has the same frame: its form's inputs, the prompt, the shared parameters, Generate and
Cancel on the left; status, result and reuse buttons on the right. What differs per task is the
form (:mod:`forms`); the events live in :mod:`polling` and :mod:`history`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import gradio as gr

from pusa.family import WAN21, ModelFamily
from pusa.service.i18n import request_lang, say
from pusa.service.jobs import JobService
from pusa.service.studio.continuation import ContinuationSource, wire_continuations
from pusa.service.studio.examples import add_examples, write_examples
from pusa.service.studio.forms import BUTTON_IDS, ERR_BOX, TASK_FORMS, TaskTab, form_of, video_positions
from pusa.service.studio.history import build_history
from pusa.service.studio.inputs import InputFiles
from pusa.service.studio.keyframes import positions_placeholder
from pusa.service.studio.language import switch_html
from pusa.service.studio.length import build_length, frames_placeholder, wire_length
from pusa.service.studio.models import build_model_picker
from pusa.service.studio.polling import JobFollower, wire_task_tab
from pusa.service.studio.presets import build_preset, preset_outputs, preset_updates, wire_preset
from pusa.service.studio.render import T, model_status_html, status_html
from pusa.service.studio.sweep import build_sweep
from pusa.settings import DEFAULT_NEGATIVE_PROMPT, default_pixel_budget
from pusa.windows import default_overlap

SIZE_PRESETS = {"model default": (None, None), "832x480 (480p)": (832, 480), "480x832 (480p portrait)": (480, 832),
                "1280x720 (720p)": (1280, 720), "720x1280 (720p portrait)": (720, 1280), "512x512": (512, 512),
                "64x64 (tiny)": (64, 64), "custom": (None, None)}


def size_choices(lang: str, family: ModelFamily = WAN21, budget: int | None = None) -> list[tuple[str, str]]:
    """The size presets as (label in ``lang``, preset name) pairs: the value a handler gets stays the name.

    A size whose default-length video is over the server's pixel-frame budget (``budget``; default:
    the model's) says so in its label: choosing it would only earn a refusal."""
    words = {"model default": say("model_default", lang), "custom": say("size_custom", lang)}
    budget = budget or default_pixel_budget(family)
    out = []
    for name, (w, h) in SIZE_PRESETS.items():
        label = words.get(name) or name.replace("portrait", say("size_portrait", lang)).replace(
            "tiny", say("size_tiny", lang))
        if w is not None and h is not None and w * h * family.defaults.frames > budget:
            label += " — " + say("size_too_large", lang)
        out.append((label, name))
    return out


def fit_choices(lang: str) -> list[tuple[str, str]]:
    """crop / letterbox as (label in ``lang``, the settings value) pairs."""
    return [(say(f"fit_{value}", lang), value) for value in ("crop", "letterbox")]


class StudioPage:
    """Builds the Blocks for one service; the tabs it built stay in ``tabs`` (task -> TaskTab)."""

    def __init__(self, service: JobService, data_dir: Path, files: InputFiles):
        self.service = service
        self.data_dir = data_dir
        self.files = files
        self.follower = JobFollower(service)
        self.tabs: dict[str, TaskTab] = {}

    def family(self) -> ModelFamily:
        """The loaded model's family; Wan2.1's until it has loaded (the page redraws its hints then)."""
        return self.service.model_family or WAN21

    def build(self) -> gr.Blocks:
        write_examples(self.files.examples_dir)
        with gr.Blocks(title="Pusa studio", analytics_enabled=False) as demo:
            with gr.Row(elem_id="pusa-header", equal_height=True):
                with gr.Column(scale=4):
                    gr.Markdown(f"# {T('title')}")
                with gr.Column(scale=1, min_width=180):  # EN / 한국어, in the header (studio.language)
                    gr.HTML(switch_html(), elem_id="lang-switch", padding=False)
            gr.Markdown(T("subtitle"))
            model_status = gr.HTML(model_status_html(self.service.model_snapshot()), elem_id="model-status")
            timer = gr.Timer(1.0)
            build_model_picker(self.service, demo, timer)  # only with --models-dir (studio.models)
            with gr.Tabs() as tabs:
                for task in TASK_FORMS:
                    with gr.Tab(T(f"tab_{task}"), id=task, elem_id=f"tab-{task}"):
                        self._task_tab(task)
                with gr.Tab(T("tab_history"), id="history", elem_id="tab-history") as history_tab:
                    history = build_history(self.service, tabs, history_tab, self.tabs, self.files, self.data_dir)
            sources = [ContinuationSource(t.job_state, t.continuations) for t in self.tabs.values()]
            wire_continuations(self.service, self.files, self.family, tabs, self.tabs,
                               [*sources, ContinuationSource(history.selected, history.continuations)])
            self._wire_model_hints(demo, timer, model_status)
            self._wire_choice_labels(demo, timer)
            for t in self.tabs.values():  # after a reload each tab follows its job again (also on the
                fn, inputs, outputs = t.attach  # remembered id's change: the page reads it after load)
                demo.load(fn, inputs, outputs, concurrency_limit=None, show_progress="hidden")
        return demo

    def _wire_model_hints(self, demo: gr.Blocks, timer: gr.Timer, model_status: Any) -> None:
        """The banner while the model loads, then every hint that depends on the model: placeholders,
        the keyframe timeline, the window plan (at page load and once loading has ended)."""
        alpha_lows = [t.inputs["lora_alpha_low"] for t in self.tabs.values()]
        hinted: list[tuple[str, Any]] = []
        for t in self.tabs.values():
            hinted += [("frames", t.inputs["frames"]), ("fps", t.inputs["fps"]), ("width", t.inputs["width"]),
                       ("height", t.inputs["height"]), ("window", t.inputs["window"]),
                       ("overlap", t.inputs["overlap"])]
            if t.keyframes is not None:
                hinted.append(("positions", t.keyframes.positions_text))
        v2v_positions = [t.inputs["cond_positions"] for t in self.tabs.values() if TASK_FORMS[t.task] == "video"]

        def hints(*v2v_values: Any) -> list[Any]:
            fam = self.family()
            d = fam.defaults
            text = {"frames": frames_placeholder(fam), "fps": str(d.fps), "width": str(d.width), "height": str(d.height),
                    "window": str(fam.native_latent_frames), "overlap": str(default_overlap(fam.native_latent_frames)),
                    "positions": positions_placeholder(fam)}
            ups = [gr.update(placeholder=text[kind]) for kind, _ in hinted]
            fallback = video_positions(WAN21)
            ups += [gr.update(value=video_positions(fam)) if not (v or "").strip() or v == fallback else gr.update()
                    for v in v2v_values]
            return ups

        def tick(request: gr.Request, *v2v_values: Any) -> list[Any]:
            wan22 = self.service.model_is_wan22
            return [model_status_html(self.service.model_snapshot(), request_lang(request)),
                    gr.Timer(active=not self.service.model_settled),
                    *[gr.update(visible=wan22) for _ in alpha_lows], *hints(*v2v_values),
                    *preset_updates(self.service, list(self.tabs.values()), request_lang(request))]

        outputs = [model_status, timer, *alpha_lows, *[c for _, c in hinted], *v2v_positions,
                   *preset_outputs(list(self.tabs.values()))]
        for trigger in (timer.tick, demo.load):
            dep = trigger(tick, v2v_positions, outputs, show_progress="hidden", queue=False)
            for t in self.tabs.values():
                dep = dep.then(*t.redraw, show_progress="hidden", queue=False, preprocess=False)
                if t.keyframes is not None:
                    dep = dep.then(*t.keyframes.redraw, show_progress="hidden", queue=False, preprocess=False)

    def _wire_choice_labels(self, demo: gr.Blocks, timer: gr.Timer) -> None:
        """The size presets' and fit choices' labels in the page's language (their values stay as they are),
        at page load and while the model loads (which sizes fit depends on the model)."""
        sizes = [t.size for t in self.tabs.values()]
        fits = [t.inputs["fit"] for t in self.tabs.values() if "fit" in t.inputs]

        def labels(request: gr.Request) -> list[Any]:
            lang = request_lang(request)
            return [*[gr.update(choices=size_choices(lang, self.family(), self.service.config.max_pixel_frames))
                      for _ in sizes],
                    *[gr.update(choices=fit_choices(lang)) for _ in fits]]

        for trigger in (demo.load, timer.tick):
            trigger(labels, None, [*sizes, *fits], queue=False, show_progress="hidden")

    def _task_tab(self, task: str) -> None:
        tab = TaskTab(task, form_of(task))
        tab.presets_of = lambda: self.service.model_presets[0]
        self.tabs[task] = tab
        tab.job_state = gr.State(None)
        tab.seed_state = gr.State(None)
        with gr.Row():
            with gr.Column(scale=1):
                tab.form.build_media(tab, self.files, self.family)
                tab.inputs["prompt"] = gr.Textbox(label=T("prompt"), placeholder=T("prompt_ph"), lines=2,
                                                  elem_id=f"{task}-prompt")
                tab.errors["prompt"] = tab.error_box("prompt")
                tab.form.build_conditions(tab, self.family)
                tab.length = build_length(task, tab.inputs, tab.errors, tab.error_box, self.family)
                _shared_parameters(tab)
                with gr.Row():
                    tab.generate = gr.Button(T("generate"), variant="primary", elem_id=f"{task}-generate")
                    tab.cancel = gr.Button(T("cancel"), variant="stop", elem_id=f"{task}-cancel")
            with gr.Column(scale=1):
                tab.status = gr.HTML(status_html(task, None, "en", False), elem_id=f"{task}-status")
                tab.general_error = gr.HTML("", elem_id=f"{task}-error", **ERR_BOX)
                tab.preview = gr.HTML("", elem_id=f"{task}-preview", padding=False)  # while running (studio.preview)
                tab.video = gr.Video(label=T("result"), interactive=False, autoplay=True, loop=True, height=320,
                                     elem_id=f"{task}-video")
                tab.seed_info = gr.Markdown("", elem_id=f"{task}-seed-info")
                with gr.Row():
                    tab.download = gr.DownloadButton(T("download"), visible=False, elem_id=f"{task}-download")
                    tab.reuse = gr.Button(T("reuse"), visible=False, elem_id=f"{task}-reuse")
                    tab.reuse_seed = gr.Button(T("reuse_seed"), visible=False, elem_id=f"{task}-reuse-seed")
                with gr.Row():
                    for key in BUTTON_IDS:
                        tab.continuations[key] = gr.Button(T(key), visible=False, size="sm",
                                                           elem_id=f"{task}-{BUTTON_IDS[key]}")
        add_examples(tab, self.files.examples_dir)
        tab.form.wire(tab)
        wire_preset(tab)
        tab.redraw = wire_length(tab.length, tab.inputs["fps"], tab.inputs["prompt"], tab.form.anchor_inputs(tab),
                                 tab.form.anchors, self.family)
        wire_task_tab(tab, self.service, self.files, self.data_dir, self.follower)
        build_sweep(tab, self.service, self.files, self.data_dir)  # "Compare settings (sweep)" (studio.sweep)


def _shared_parameters(tab: TaskTab) -> None:
    """Parameters every task shares (the seed's alpha/steps plus the additions)."""
    task = tab.task
    with gr.Row():
        tab.inputs["lora_alpha"] = gr.Slider(0.1, 5.0, value=1.4, step=0.1, label=T("lora_alpha"),
                                             info=T("help_lora_alpha"), elem_id=f"{task}-lora_alpha")
        tab.inputs["lora_alpha_low"] = gr.Slider(0.1, 5.0, value=1.4, step=0.1, label=T("lora_alpha_low"),
                                                 info=T("help_lora_alpha_low"), visible=False,
                                                 elem_id=f"{task}-lora_alpha_low")
        # a number box, not a slider: a slider's box silently clamps 0 or 99 into range; this one
        # passes the value on and the check says the range next to it
        tab.inputs["steps"] = gr.Number(10, label=T("steps"), info=T("help_steps"), precision=0,
                                        elem_id=f"{task}-steps")
        build_preset(tab)
    tab.errors["steps"] = tab.error_box("steps")
    with gr.Accordion(T("more"), open=False, elem_id=f"{task}-more"):
        with gr.Row():
            tab.inputs["seed"] = gr.Number(-1, label=T("seed"), info=T("help_seed"), precision=0,
                                           elem_id=f"{task}-seed")
            # a text box: empty means the model's own rate (a number box cannot stay empty)
            tab.inputs["fps"] = gr.Textbox("", label=T("fps"), info=T("help_fps"), elem_id=f"{task}-fps")
        tab.errors["seed"] = tab.error_box("seed")
        # a row of its own: a third of the column left its label one syllable wide in Korean
        tab.inputs["cfg"] = gr.Slider(1.0, 20.0, value=5.0, step=0.5, label=T("cfg"), info=T("help_cfg"),
                                      elem_id=f"{task}-cfg")
        with gr.Row():
            size = gr.Dropdown(size_choices("en"), value="model default", label=T("size"), info=T("help_size"),
                               elem_id=f"{task}-size")
            tab.size = size
            # text boxes: a number box cannot stay empty (it shows and sends 0), and empty means the model's default
            tab.inputs["width"] = gr.Textbox("", label=T("width"), placeholder=T("model_default"),
                                             elem_id=f"{task}-width")
            tab.inputs["height"] = gr.Textbox("", label=T("height"), placeholder=T("model_default"),
                                              elem_id=f"{task}-height")
        tab.errors["size"] = tab.error_box("size")
        if tab.form.takes_files:
            tab.inputs["fit"] = gr.Radio(fit_choices("en"), value="crop", label=T("fit"), info=T("help_fit"),
                                         elem_id=f"{task}-fit")
        tab.inputs["negative_prompt"] = gr.Textbox(DEFAULT_NEGATIVE_PROMPT, label=T("negative_prompt"),
                                                   info=T("help_negative"), lines=2, elem_id=f"{task}-negative_prompt")

    def pick_size(name: str) -> tuple[Any, Any]:
        if name == "custom":
            return gr.update(), gr.update()
        w, h = SIZE_PRESETS.get(name, (None, None))
        return ("" if w is None else str(w)), ("" if h is None else str(h))

    size.change(pick_size, size, [tab.inputs["width"], tab.inputs["height"]], queue=False)
