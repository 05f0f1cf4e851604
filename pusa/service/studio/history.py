"""The History tab: every job, the past videos, and reuse / resubmit / delete of the selected one."""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import gradio as gr

from pusa.service.jobs import JobConflict, JobNotFound, JobService
from pusa.service.store import QUEUED, RUNNING, SUCCEEDED, Job, QueueFull, StorageError
from pusa.service.studio.forms import BUTTON_IDS, TaskTab, fill_from_job
from pusa.service.studio.inputs import InputFiles
from pusa.service.studio.models import model_cell
from pusa.service.i18n import TEXT, request_lang, say
from pusa.service.studio.clock import clock_text
from pusa.service.studio.render import T

LISTED_JOBS = 100
LIVE_SECONDS = 2.0
GALLERY_VIDEOS = 24
HEADERS = ["id", "status", "task", "prompt", "seed", "model", "created"]  # the columns (labels: hd_<name>)


@dataclass
class HistoryView:
    """What other rooms wire to: the selected job's id and the buttons that continue from its video."""

    selected: Any
    continuations: dict[str, Any]


def job_rows(service: JobService, jobs: list[Any], lang: str) -> list[list[str]]:
    """History's table rows: id, status, task, prompt, seed, model, created (all text)."""
    return [[j.id, status_cell(service, j, lang), task_name(j.task, lang), (j.settings.get("prompt") or "")[:80],
             _text((j.resolved or {}).get("seed")), _text(model_cell(j.model)),
             time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(j.created_at))] for j in jobs]


def _text(value: Any) -> str:
    """A History cell as text: an unknown value (a seed not drawn yet, no model recorded) is empty,
    never a number column's NaN."""
    return "" if value is None else str(value)


def build_history(service: JobService, tabs: gr.Tabs, history_tab: gr.Tab, task_tabs: dict[str, TaskTab],
                  files: InputFiles, data_dir: Path) -> HistoryView:
    """Lay out the tab and wire it; ``task_tabs`` receive a job's settings on "reuse"."""
    ids_state = gr.State([])
    gallery_ids = gr.State([])
    selected = gr.State(None)
    queue_line = gr.Markdown("", elem_id="history-queue")
    refresh = gr.Button(T("refresh"), size="sm", elem_id="history-refresh")
    gallery = gr.Gallery(label=T("past_videos"), columns=4, height="auto", allow_preview=False,
                         elem_id="history-gallery")
    table = gr.Dataframe(headers=headers("en"), interactive=False, label=T("all_jobs"), elem_id="history-table", wrap=True)
    with gr.Row():
        with gr.Column():
            detail_video = gr.Video(label=T("result"), interactive=False, elem_id="history-video")
        with gr.Column():
            detail = gr.JSON(label=T("job_details"), elem_id="history-detail")
            with gr.Row():
                reuse = gr.Button(T("reuse"), elem_id="history-reuse")
                resubmit = gr.Button(T("resubmit"), elem_id="history-resubmit")
                delete = gr.Button(T("delete"), variant="stop", elem_id="history-delete")
            with gr.Row():
                continuations = {key: gr.Button(T(key), size="sm", elem_id=f"history-{BUTTON_IDS[key]}")
                                 for key in BUTTON_IDS}
            note = gr.Markdown("", elem_id="history-note")

    def load(lang: str = "en") -> list[Any]:
        jobs, _ = service.list_jobs(limit=LISTED_JOBS)
        rows = job_rows(service, jobs, lang)
        vids = [(j, service.output_path(j)) for j in jobs if j.status == SUCCEEDED]
        vids = [(j, p) for j, p in vids if p is not None][:GALLERY_VIDEOS]
        gal = [(str(p), f"{task_name(j.task, lang)} · {(j.settings.get('prompt') or '')[:40]}") for j, p in vids]
        table_value = {"headers": headers(lang), "data": rows}
        return [table_value, [j.id for j in jobs], gal, [j.id for j, _ in vids]]

    def load_for(request: gr.Request) -> list[Any]:
        return load(request_lang(request))

    def show(job_id: str | None) -> list[Any]:
        if not job_id:
            return [None, None, job_id]
        try:
            job = service.get(job_id)
        except JobNotFound:
            return [None, None, None]
        path = service.output_path(job)
        return [service.job_dict(job), str(path) if path else None, job_id]

    def pick_row(ids: list[str], evt: gr.SelectData) -> list[Any]:
        row = evt.index[0] if isinstance(evt.index, (list, tuple)) else evt.index
        return show(ids[row] if 0 <= row < len(ids) else None)

    def pick_video(ids: list[str], evt: gr.SelectData) -> list[Any]:
        i = evt.index if isinstance(evt.index, int) else evt.index[0]
        return show(ids[i] if 0 <= i < len(ids) else None)

    listing = [table, ids_state, gallery, gallery_ids]
    refresh.click(load_for, None, listing, queue=False)
    history_tab.select(load_for, None, listing, queue=False)

    # live: the table and the queue line follow the jobs; the gallery changes only when a video is added
    timer = gr.Timer(LIVE_SECONDS)
    shown = gr.State(None)

    def live(request: gr.Request, last: Any) -> list[Any]:
        lang = request_lang(request)
        line = queue_markdown(service, lang)
        if last is None:  # History not opened yet in this page: only the queue line
            return [gr.update(), gr.update(), gr.update(), gr.update(), line, last]
        rows, ids, gal, gal_ids = load(lang)
        return [gr.update() if rows == last[0] else rows, ids, gr.update() if gal_ids == last[1] else gal, gal_ids,
                line, [rows, gal_ids]]

    timer.tick(live, shown, [*listing, queue_line, shown], queue=False, show_progress="hidden")
    history_tab.select(lambda: [[], []], None, shown, queue=False)
    table.select(pick_row, ids_state, [detail, detail_video, selected], queue=False)
    gallery.select(pick_video, gallery_ids, [detail, detail_video, selected], queue=False)

    def reuse_fn(job_id: str | None) -> dict[Any, Any]:
        if not job_id:
            return {}
        try:
            job = service.get(job_id)
        except JobNotFound:
            return {}
        return {**fill_from_job(task_tabs[job.task], job, files, data_dir), tabs: gr.Tabs(selected=job.task)}

    all_inputs = [c for t in task_tabs.values() for c in t.components]
    reuse.click(reuse_fn, selected, [tabs, *all_inputs], queue=False)

    def resubmit_fn(request: gr.Request, job_id: str | None) -> list[Any]:
        lang = request_lang(request)
        if not job_id:
            return ["", *load(lang), *show(None)]
        try:
            job = service.resubmit(job_id)
        except (JobNotFound, JobConflict, QueueFull, StorageError) as e:
            return [f"⚠ {e}", *load(lang), *show(job_id)]
        return [say("h_queued", lang, id=job.id, source=job_id), *load(lang), *show(job.id)]

    resubmit.click(resubmit_fn, selected, [note, *listing, detail, detail_video, selected], queue=False)

    def delete_fn(request: gr.Request, job_id: str | None) -> list[Any]:
        lang = request_lang(request)
        if not job_id:
            return ["", *load(lang), *show(None)]
        try:
            action = service.cancel_or_delete(job_id)
        except (JobNotFound, JobConflict) as e:
            return [f"⚠ {e}", *load(lang), *show(job_id)]
        return [say("h_action", lang, action=state_name(action, lang), id=job_id), *load(lang),
                *show(None if action == "deleted" else job_id)]

    delete.click(delete_fn, selected, [note, *listing, detail, detail_video, selected], queue=False)
    return HistoryView(selected, continuations)


def headers(lang: str) -> list[str]:
    """The table's column headers in the page's language."""
    return [say(f"hd_{name}", lang) for name in HEADERS]


def state_name(state: str, lang: str) -> str:
    """A job state (queued, running, …) or a History action (deleted, cancelling) in the page's language."""
    return say(f"js_{state}", lang) if f"js_{state}" in TEXT else state


def task_name(task: str, lang: str) -> str:
    """A task as its tab is called (Image→Video, …); an unknown one as the API names it."""
    return say(f"tab_{task}", lang) if f"tab_{task}" in TEXT else task


def status_cell(service: JobService, job: Job, lang: str = "en") -> str:
    """A job's status in the table, with its place in the queue or its progress while it runs."""
    name = state_name(job.status, lang)
    if job.status == QUEUED:
        return f"{name} #{service.job_dict(job)['queue_position']}"
    if job.status == RUNNING:
        return f"{name} {round(service.job_dict(job)['progress']['fraction'] * 100)}%"
    return name


def queue_markdown(service: JobService, lang: str, now: float | None = None) -> str:
    """Who is running (task, phase, elapsed, time left from its pace so far) and how many wait."""
    now = time.time() if now is None else now
    counts = service.queue_counts()
    text = say("q_waiting", lang, n=counts.get(QUEUED, 0))
    running, _ = service.list_jobs(limit=1, status=RUNNING)
    if running:
        job = running[0]
        d = service.job_dict(job)
        prog = d["progress"]
        elapsed = max(0.0, now - (job.started_at or now))
        frac = prog["fraction"]
        left = f" · {say('st_left', lang, left=clock_text(elapsed * (1 - frac) / frac))}" if frac > 0.05 else ""
        phase_word = say(f"ph_{prog['phase']}", lang) if f"ph_{prog['phase']}" in TEXT else prog["phase"]
        phase = f"{phase_word} {prog['step']}/{prog['total']}" if prog["phase"] else ""
        text = say("q_running", lang, id=job.id, task=task_name(job.task, lang), phase=phase, pct=round(frac * 100),
                   elapsed=clock_text(elapsed)) + left + " — " + text
    return text
