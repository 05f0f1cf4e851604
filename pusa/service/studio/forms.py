"""Task forms: which inputs a tab shows, and the mapping between its values and a job's settings and files.

The tabs differ only in their input set (one image, keyframes, a video, or text alone); each set is
one :class:`Form`, and the task registry (``TaskSpec.form``) says which form a task uses. Nothing
here checks values: the engine's settings check does, and its field problems come back next to
the fields they name (:func:`show_errors`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import gradio as gr

from pusa.family import ModelFamily
from pusa.service.i18n import say
from pusa.service.jobs import Upload
from pusa.service.store import Job
from pusa.service.studio.checks import wire_slot_checks, wire_upload_check
from pusa.service.studio.inputs import InputFiles
from pusa.service.studio.keyframes import MAX_KEYFRAMES, KeyframeSlots, build_keyframe_slots, filled_labels
from pusa.service.studio.length import Anchor, LengthControls, long_settings, prompt_lines
from pusa.service.studio.problem_text import problem_line
from pusa.service.studio.render import T, field_error_html, status_html
from pusa.service.studio.values import file_path, optional_int, whole
from pusa.tasks import DEFAULT_IMAGE_MULTIPLIER, TASKS
from pusa.windows import default_overlap

FamilyOf = Callable[[], ModelFamily]
# continuation buttons under every finished video: key -> the end of their element id
BUTTON_IDS = {"extend": "extend-video", "last_frame_image": "last-frame-image", "as_keyframe": "as-keyframe"}

# task -> its form, in the registry's order (the tab order of the page)
TASK_FORMS: dict[str, str] = {name: spec.form for name, spec in TASKS.items()}
ERR_BOX: dict[str, Any] = {"padding": False, "container": False, "elem_classes": ["pusa-err-wrap"]}
# settings every tab sends as the user set them (numbers made whole where they are)
COMMON_NUMBERS = ("steps", "lora_alpha", "cfg")
OPTIONAL_NUMBERS = ("width", "height", "frames", "fps")
FILLED_FROM_JOB = ("prompt", "negative_prompt", "steps", "lora_alpha", "lora_alpha_low", "cfg", "fit", "preset")
# text boxes (empty = the model's default) filled with what the job asked for, not what was filled in
FILLED_AS_TEXT = ("width", "height", "frames", "fps", "window", "overlap", "extend")


@dataclass
class TaskTab:
    """The components of one task tab (settings-bearing inputs by settings name, outputs by role)."""

    task: str
    form: "Form"
    inputs: dict[str, Any] = field(default_factory=dict)
    errors: dict[str, Any] = field(default_factory=dict)  # field -> error box next to it
    keyframes: KeyframeSlots | None = None
    length: LengthControls | None = None
    continuations: dict[str, Any] = field(default_factory=dict)  # extend / last frame / keyframe buttons
    run_outputs: list[Any] = field(default_factory=list)  # what Generate writes (a chained submit reuses it)
    run: Any = None  # the Generate handler (an async generator)
    redraw: tuple[Any, ...] = ()  # (fn, inputs, outputs) that redraws the duration and the window plan
    remembered: Any = None  # the job id in the browser's local storage (re-attached after a reload)
    attach: tuple[Any, ...] = ()  # (fn, inputs, outputs) that follows the remembered job on page load
    general_error: Any = None
    status: Any = None
    presets_of: Callable[[], list[str]] = lambda: ["none"]  # presets the loaded model can run (page sets it)
    preview: Any = None  # the running job's latest estimate (studio.preview)
    size: Any = None  # the size preset dropdown (its labels follow the page's language)
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

    def error_box(self, key: str) -> Any:
        return gr.HTML("", elem_id=f"{self.task}-err-{key}", **ERR_BOX)


class Form:
    """A text-only form; subclasses add their inputs above and below the prompt."""

    takes_files = False

    def build_media(self, tab: TaskTab, files: InputFiles, family: FamilyOf) -> None:
        """Inputs above the prompt."""

    def build_conditions(self, tab: TaskTab, family: FamilyOf) -> None:
        """Inputs below the prompt."""

    def wire(self, tab: TaskTab) -> None:
        """Events among the form's own inputs (after the whole tab exists)."""

    def settings(self, vals: dict[str, Any]) -> dict[str, Any]:
        return {}

    def files(self, vals: dict[str, Any], files: InputFiles) -> tuple[list[Upload], Upload | None]:
        return [], None

    def fill(self, tab: TaskTab, s: dict[str, Any], images: list[str | None], video: str | None) -> dict[Any, Any]:
        """Updates that put a job's settings and inputs back into the form (files: copies in the upload cache)."""
        return {}

    def anchor_inputs(self, tab: TaskTab) -> list[Any]:
        """The inputs whose values say where the conditions sit on the timeline."""
        return []

    def anchors(self, values: tuple[Any, ...], lang: str) -> list[Anchor]:
        """Conditions on the timeline (the window plan draws them) from the values of :meth:`anchor_inputs`."""
        return []


class ImageForm(Form):
    takes_files = True

    def build_media(self, tab: TaskTab, files: InputFiles, family: FamilyOf) -> None:
        tab.inputs["image"] = files.register(gr.Image(type="filepath", label=T("image"), height=260,
                                                      sources=["upload", "clipboard"], elem_id=f"{tab.task}-image"),
                                             "images")
        tab.errors["images"] = tab.error_box("images")
        wire_upload_check(tab.inputs["image"], "image", "images", tab.errors["images"], files)

    def build_conditions(self, tab: TaskTab, family: FamilyOf) -> None:
        tab.inputs["noise_multiplier"] = gr.Slider(0.0, 1.0, value=DEFAULT_IMAGE_MULTIPLIER, step=0.05,
                                                   label=T("noise_multiplier"), info=T("help_noise_multiplier"),
                                                   elem_id=f"{tab.task}-noise_multiplier")

    def settings(self, vals: dict[str, Any]) -> dict[str, Any]:
        return {"noise_multipliers": [whole(vals["noise_multiplier"])]}

    def files(self, vals: dict[str, Any], files: InputFiles) -> tuple[list[Upload], Upload | None]:
        if not vals.get("image"):
            return [], None
        return [Upload(field="images", path=files.accept(file_path(vals["image"]), "images"))], None

    def fill(self, tab: TaskTab, s: dict[str, Any], images: list[str | None], video: str | None) -> dict[Any, Any]:
        up: dict[Any, Any] = {}
        if s.get("noise_multipliers"):
            up[tab.inputs["noise_multiplier"]] = s["noise_multipliers"][0]
        if images:
            up[tab.inputs["image"]] = images[0]
        return up

    def anchor_inputs(self, tab: TaskTab) -> list[Any]:
        return [tab.inputs["image"]]

    def anchors(self, values: tuple[Any, ...], lang: str) -> list[Anchor]:
        return [Anchor(say("image", lang), 0)] if values and values[0] else []


class KeyframesForm(Form):
    takes_files = True

    def build_media(self, tab: TaskTab, files: InputFiles, family: FamilyOf) -> None:
        tab.keyframes = build_keyframe_slots(files, tab.errors, tab.error_box, family)
        for i, image in enumerate(tab.keyframes.images):
            tab.inputs[f"image_{i}"] = image
        tab.inputs["cond_positions"] = tab.keyframes.positions_text
        tab.inputs["noise_multipliers"] = tab.keyframes.multipliers_text
        wire_slot_checks(tab.keyframes.images, tab.errors["images"], files)

    def wire(self, tab: TaskTab) -> None:
        assert tab.keyframes is not None
        tab.keyframes.wire(tab.inputs["frames"])

    def files(self, vals: dict[str, Any], files: InputFiles) -> tuple[list[Upload], Upload | None]:
        images: list[Upload] = []
        for i in range(MAX_KEYFRAMES):
            if vals.get(f"image_{i}"):
                name = f"images[{len(images)}]"
                images.append(Upload(field=name, path=files.accept(file_path(vals[f"image_{i}"]), name)))
        return images, None

    def fill(self, tab: TaskTab, s: dict[str, Any], images: list[str | None], video: str | None) -> dict[Any, Any]:
        return {tab.inputs[f"image_{i}"]: images[i] if i < len(images) else None for i in range(MAX_KEYFRAMES)}

    def anchor_inputs(self, tab: TaskTab) -> list[Any]:
        return [tab.inputs["cond_positions"], *[tab.inputs[f"image_{i}"] for i in range(MAX_KEYFRAMES)]]

    def anchors(self, values: tuple[Any, ...], lang: str) -> list[Anchor]:
        labels = filled_labels(values[1:])
        return [Anchor(f"{say('keyframe', lang)} {n}", p) for n, p in zip(labels, _positions(values[0]))]


class VideoForm(Form):
    takes_files = True

    def build_media(self, tab: TaskTab, files: InputFiles, family: FamilyOf) -> None:
        tab.inputs["video"] = files.register(gr.Video(label=T("video_in"), sources=["upload"], height=260,
                                                      elem_id=f"{tab.task}-video-in"), "video")
        tab.errors["video"] = tab.error_box("video")
        wire_upload_check(tab.inputs["video"], "video", "video", tab.errors["video"], files)

    def build_conditions(self, tab: TaskTab, family: FamilyOf) -> None:
        tab.inputs["cond_positions"] = gr.Textbox(video_positions(family()), label=T("cond_positions"),
                                                  info=T("help_v2v_positions"), elem_id=f"{tab.task}-cond_positions")
        tab.errors["cond_positions"] = tab.error_box("cond_positions")
        tab.inputs["noise_multipliers"] = gr.Textbox("", label=T("noise_multipliers"), info=T("help_v2v_multipliers"),
                                                     placeholder="0.0,0.0,0.0,0.0",
                                                     elem_id=f"{tab.task}-noise_multipliers")
        tab.errors["noise_multipliers"] = tab.error_box("noise_multipliers")
        tab.inputs["extend"] = gr.Textbox("", label=T("extend_by"), info=T("help_extend"), elem_id=f"{tab.task}-extend")
        tab.errors["extend"] = tab.error_box("extend")

    def settings(self, vals: dict[str, Any]) -> dict[str, Any]:
        extend = optional_int(vals.get("extend"))
        return {} if extend is None else {"extend": extend}

    def anchor_inputs(self, tab: TaskTab) -> list[Any]:
        return [tab.inputs["cond_positions"]]

    def anchors(self, values: tuple[Any, ...], lang: str) -> list[Anchor]:
        return [Anchor(say("video_in", lang), p) for p in _positions(values[0] if values else "")]

    def files(self, vals: dict[str, Any], files: InputFiles) -> tuple[list[Upload], Upload | None]:
        if not vals.get("video"):
            return [], None
        path = files.accept(file_path(vals["video"]), "video")
        return [], Upload(field="video", path=path, filename=path.name)

    def fill(self, tab: TaskTab, s: dict[str, Any], images: list[str | None], video: str | None) -> dict[Any, Any]:
        return {tab.inputs["video"]: video} if video else {}


FORMS: dict[str, Form] = {"image": ImageForm(), "keyframes": KeyframesForm(), "video": VideoForm(), "text": Form()}


def form_of(task: str) -> Form:
    return FORMS[TASK_FORMS[task]]


def video_positions(family: ModelFamily) -> str:
    """v2v's default positions: the input's first frames, as many latent frames as a window hands on
    (0,1,2,3 = 13 frames on Wan; an extension with these positions is accepted as they are)."""
    return ",".join(str(p) for p in range(max(1, default_overlap(family.native_latent_frames))))


def _positions(text: Any) -> list[int]:
    """The whole numbers of a typed position list (the plan draws what parses; the check names the rest)."""
    return [int(x) for x in str(text or "").replace(" ", "").split(",") if x.isdigit()]


def _blank(value: Any) -> bool:
    return value is None or (isinstance(value, str) and not value.strip())


def collect(tab: TaskTab, vals: dict[str, Any], files: InputFiles,
            wan22: bool) -> tuple[dict[str, Any], list[Upload], Upload | None]:
    """Tab values -> (raw settings dict, image uploads, video upload). No rules here: the engine checks."""
    lines = prompt_lines(vals.get("prompts"))
    prompt = vals.get("prompt") or ""
    raw: dict[str, Any] = {"task": tab.task, "prompt": prompt if prompt.strip() or not lines else lines[0]}
    for key in COMMON_NUMBERS:
        raw[key] = whole(vals[key])
    if wan22:
        raw["lora_alpha_low"] = whole(vals["lora_alpha_low"])
    for key in OPTIONAL_NUMBERS:  # empty = the model's default
        if optional_int(vals.get(key)) is not None:
            raw[key] = optional_int(vals[key])
    seed = whole(vals.get("seed"))
    if seed is not None and seed != -1:
        raw["seed"] = seed
    if vals.get("negative_prompt") is not None:
        raw["negative_prompt"] = vals["negative_prompt"]
    if vals.get("fit"):
        raw["fit"] = vals["fit"]
    if vals.get("preset"):
        raw["preset"] = vals["preset"]
    raw.update(long_settings(vals))
    raw.update(tab.form.settings(vals))
    for key in ("cond_positions", "noise_multipliers"):
        if key in vals and not _blank(vals[key]):
            raw[key] = vals[key]
    images, video = tab.form.files(vals, files)
    return raw, images, video


def fill_from_job(tab: TaskTab, job: Job, files: InputFiles, data_dir: Path) -> dict[Any, Any]:
    """Fill a tab's inputs from a job (its resolved settings when known, incl. the seed used)."""
    s = dict(job.settings)
    s.update(job.resolved or {})
    up: dict[Any, Any] = {tab.inputs[k]: s[k] for k in FILLED_FROM_JOB if k in tab.inputs and s.get(k) is not None}
    if "preset" in tab.inputs and s.get("preset") not in tab.presets_of():
        # a job of a preset this model cannot run (another model, no distillation LoRA): the menu cannot
        # hold that value, so the tab gets the plain sampling with the job's own steps and CFG
        up[tab.inputs["preset"]] = "none"
    asked = job.settings
    for k in FILLED_AS_TEXT:
        if k in tab.inputs:
            up[tab.inputs[k]] = "" if asked.get(k) is None else str(asked[k])
    if "prompts" in tab.inputs:
        up[tab.inputs["prompts"]] = "\n".join(asked.get("prompts") or [])
        mults = asked.get("overlap_multipliers")
        up[tab.inputs["overlap_multipliers"]] = ",".join(f"{m:g}" for m in mults) if mults else ""
        up[tab.inputs["color_match"]] = asked.get("color_match", True)
    up[tab.inputs["seed"]] = s.get("seed") if s.get("seed") is not None else -1
    # the page may send back only files in the upload cache, so a past job's inputs go there first
    images = [files.adopt(data_dir / p) for p in job.images]
    up.update(tab.form.fill(tab, s, images, files.adopt(data_dir / job.video) if job.video else None))
    if "cond_positions" in tab.inputs:
        pos, mult = s.get("cond_positions"), s.get("noise_multipliers")
        up[tab.inputs["cond_positions"]] = ",".join(str(p) for p in pos) if pos else ""
        up[tab.inputs["noise_multipliers"]] = ",".join(f"{m:g}" for m in mult) if mult else ""
    return up


def show_errors(tab: TaskTab, problems: list[tuple[str, str]], lang: str, cleared: dict[Any, str]) -> dict[Any, Any]:
    """Each problem next to its field when the tab has a box for it; all of them in the general box."""
    out: dict[Any, Any] = dict(cleared)
    for fld, msg in problems:
        key = fld.split("[")[0]
        key = "size" if key in ("width", "height", "size") else key
        if key in tab.errors:
            out[tab.errors[key]] = (out.get(tab.errors[key]) or "") + field_error_html(problem_line(fld, msg, lang))
    text = "; ".join(problem_line(f, m, lang) for f, m in problems)
    out[tab.general_error] = field_error_html(say("st_fix", lang, error=text))
    out[tab.status] = status_html(tab.task, None, lang, True, "")
    return out


def show_general(tab: TaskTab, message: str, lang: str, cleared: dict[Any, str]) -> dict[Any, Any]:
    """A refusal that is not about a field (model unavailable, queue full, disk full) in the general box."""
    return {**cleared, tab.general_error: field_error_html(message), tab.status: status_html(tab.task, None, lang, True, "")}
