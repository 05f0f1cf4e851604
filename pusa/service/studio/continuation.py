"""Continue from a finished video: extend it, or take its last frame as an image or as a keyframe.

"Extend" fills the video-to-video tab with the result and an extension of one native window
(the engine keeps the input's own pixels and continues from its last latent frames) and submits
it there at once, so the new job's progress shows in that tab. The two "last frame" buttons put
the video's final frame into the image tab or the first keyframe slot and leave the rest to the
user. Every tab's result and the History's selected job offer the three.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

import gradio as gr

from pusa.family import ModelFamily
from pusa.service.i18n import request_lang, say
from pusa.service.jobs import JobNotFound, JobService
from pusa.service.studio.forms import TaskTab, video_positions
from pusa.service.studio.inputs import InputFiles

CONTINUATIONS = ("extend", "last_frame_image", "as_keyframe")


@dataclass
class ContinuationSource:
    """Where a finished job's id is kept (a tab's job state or History's selection) and its buttons."""

    job_state: Any
    buttons: dict[str, Any]


def extension_frames(family: ModelFamily) -> int:
    """New frames one "Extend" adds: one native window less its first frame (32 on the bundled model,
    80 on Wan), always a multiple of the VAE's temporal stride as the engine requires."""
    return family.native_frames - 1


def wire_continuations(service: JobService, files: InputFiles, family: Callable[[], ModelFamily], tabs: gr.Tabs,
                       task_tabs: dict[str, TaskTab], sources: list[ContinuationSource]) -> None:
    """Attach the three buttons of every source to the tabs that continue from it."""
    v2v, i2v, kf = task_tabs.get("v2v"), task_tabs.get("i2v"), task_tabs.get("keyframes")

    def finished_video(job_id: str | None, lang: str) -> tuple[Any, str]:
        try:
            job = service.get(job_id) if job_id else None
        except JobNotFound:
            job = None
        path = service.output_path(job) if job is not None else None
        copy = files.adopt(path) if path is not None else None
        if job is None or copy is None:
            raise gr.Error(say("no_video", lang), title=say("continue_title", lang))
        return job, copy

    def last_frame(job_id: str | None, lang: str) -> tuple[Any, str]:
        job, copy = finished_video(job_id, lang)
        png = files.last_frame(copy)
        if png is None:
            raise gr.Error(say("no_video", lang), title=say("continue_title", lang))
        return job, png

    for src in sources:
        if v2v is not None:
            def extend(request: gr.Request, job_id: str | None, v2v: TaskTab = v2v) -> dict[Any, Any]:
                job, copy = finished_video(job_id, request_lang(request))
                fam = family()
                i = v2v.inputs
                return {tabs: gr.Tabs(selected="v2v"), i["video"]: copy, i["extend"]: str(extension_frames(fam)),
                        i["cond_positions"]: video_positions(fam), i["noise_multipliers"]: "", i["frames"]: "",
                        i["prompt"]: job.settings.get("prompt") or "",
                        i["prompts"]: "\n".join((job.settings.get("prompts") or [])[-1:])}

            fill = [tabs, *[v2v.inputs[k] for k in ("video", "extend", "cond_positions", "noise_multipliers", "frames",
                                                      "prompt", "prompts")]]
            src.buttons["extend"].click(extend, src.job_state, fill, queue=False).success(
                v2v.run, v2v.components, v2v.run_outputs, concurrency_limit=None, show_progress="hidden",
                preprocess=False)
        if i2v is not None:
            def as_image(request: gr.Request, job_id: str | None, i2v: TaskTab = i2v) -> dict[Any, Any]:
                job, png = last_frame(job_id, request_lang(request))
                return {tabs: gr.Tabs(selected="i2v"), i2v.inputs["image"]: png,
                        i2v.inputs["prompt"]: job.settings.get("prompt") or ""}

            src.buttons["last_frame_image"].click(as_image, src.job_state,
                                                  [tabs, i2v.inputs["image"], i2v.inputs["prompt"]], queue=False)
        if kf is not None:
            def as_keyframe(request: gr.Request, job_id: str | None, kf: TaskTab = kf) -> dict[Any, Any]:
                _, png = last_frame(job_id, request_lang(request))
                return {tabs: gr.Tabs(selected="keyframes"), kf.inputs["image_0"]: png}

            src.buttons["as_keyframe"].click(as_keyframe, src.job_state, [tabs, kf.inputs["image_0"]], queue=False)
