"""Generate, follow, cancel and reuse: the events of one task tab.

Following a job must not hold a thread while it waits: Gradio runs sync handlers in the same
thread pool as the API's sync routes, so sessions sleeping there (one per waiting tab) starved
``/api/health``. The generate handler is an async generator: it sleeps with ``asyncio.sleep`` and
reads the job on a small private pool, so a thousand waiting tabs cost timers, not threads.
"""

from __future__ import annotations

import asyncio
import os
import secrets
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, AsyncIterator

import gradio as gr

from pusa.errors import ModelUnavailable, SettingsError
from pusa.service.i18n import TEXT, request_lang, say
from pusa.service.jobs import JobConflict, JobNotFound, JobService
from pusa.service.store import FAILED, SUCCEEDED, Job, QueueFull, StorageError
from pusa.service.studio.checks import plain_message
from pusa.service.studio.clock import StepClock, decode_per_latent
from pusa.service.studio.forms import TaskTab, collect, fill_from_job, show_errors, show_general
from pusa.service.studio.inputs import InputFiles
from pusa.service.studio.models import model_line
from pusa.service.studio.preview import preview_html
from pusa.service.studio.render import status_html
from pusa.service.uploads import UploadRejected

POLL_SECONDS = 0.25
READ_THREADS = 2
RECENT = 10  # succeeded jobs the time estimates learn from
BROWSER_KEY_FILE = ".studio-browser-key"


def browser_secret(data_dir: Path) -> str:
    """The key of the job ids a browser remembers, kept in the data folder: a reload after a server
    restart still re-attaches each tab to its job (its result, or why it was interrupted)."""
    path = Path(data_dir) / BROWSER_KEY_FILE
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        key = path.read_text().strip()
        if len(key) >= 32:
            return key
        path.unlink(missing_ok=True)  # an empty or cut key (a crash while writing it): make a new one
        return browser_secret(data_dir)
    key = secrets.token_hex(16)
    with os.fdopen(fd, "w") as f:
        f.write(key + "\n")
    return key


class JobFollower:
    """Reads job states for every waiting tab on one small pool, never on the event loop (the store locks)."""

    def __init__(self, service: JobService, threads: int = READ_THREADS):
        self.service = service
        self._pool = ThreadPoolExecutor(threads, thread_name_prefix="pusa-studio-read")

    def _read(self, job_id: str) -> tuple[Job, dict[str, Any]] | None:
        try:
            job = self.service.get(job_id)
        except JobNotFound:
            return None
        return job, self.service.job_dict(job)

    async def follow(self, job_id: str, every: float = POLL_SECONDS
                     ) -> AsyncIterator[tuple[Job, dict[str, Any]] | None]:
        """The job's state now and then every ``every`` seconds until it ends (None: it was deleted)."""
        loop = asyncio.get_running_loop()
        while True:
            snap = await loop.run_in_executor(self._pool, self._read, job_id)
            yield snap
            if snap is None or snap[0].finished:
                return
            await asyncio.sleep(every)

    async def past(self) -> tuple[float | None, float | None]:
        """From the recent succeeded jobs: decode seconds per latent frame, and a typical job's seconds."""
        loop = asyncio.get_running_loop()
        jobs, _ = await loop.run_in_executor(self._pool, lambda: self.service.list_jobs(RECENT, 0, SUCCEEDED))
        totals = sorted(float(j.timings["total"]) for j in jobs if j.timings.get("total"))
        typical = totals[len(totals) // 2] if totals else None
        return decode_per_latent(jobs, self.service.model_family), typical

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)


def wire_task_tab(tab: TaskTab, service: JobService, files: InputFiles, data_dir: Path,
                  follower: JobFollower) -> None:
    """Attach Generate (submit, then follow the job live), Cancel, and the two Reuse buttons."""
    names = tab.names
    err_boxes = list(tab.errors.values())
    continuations = list(tab.continuations.values())
    # the tab's job id also lives in the browser's local storage, so a reload re-attaches to it
    # (an explicit secret: Gradio re-creates components per session, and a re-created one would draw
    # a new random secret and could no longer read what the page stored)
    tab.remembered = gr.BrowserState(None, storage_key=f"pusa-job-{tab.task}", secret=browser_secret(data_dir))
    outputs = [tab.status, tab.preview, tab.general_error, tab.video, tab.download, tab.seed_info, tab.reuse, tab.reuse_seed,
               tab.job_state, tab.seed_state, tab.remembered, *continuations, *err_boxes]

    def submit(vals: dict[str, Any]) -> Job:
        raw, images, video = collect(tab, vals, files, service.model_is_wan22)
        return service.submit(raw, images, video)

    async def run(request: gr.Request, *values: Any) -> AsyncIterator[dict[Any, Any]]:
        lang = request_lang(request)
        cleared = {box: "" for box in err_boxes}
        try:  # copying and checking the files takes a moment: not on the event loop
            job = await asyncio.to_thread(submit, dict(zip(names, values)))
        except SettingsError as e:
            yield show_errors(tab, [(p.field, p.message) for p in e.problems], lang, cleared)
            return
        except UploadRejected as e:
            yield show_errors(tab, [(e.field, plain_message(e.message, lang))], lang, cleared)
            return
        except (ModelUnavailable, QueueFull, StorageError) as e:  # not the user's input: no "please fix"
            yield show_general(tab, say("not_queued", lang, reason=str(e)), lang, cleared)
            return
        async for update in follow(job.id, lang, cleared):
            yield update

    async def follow(job_id: str, lang: str, cleared: dict[Any, str]) -> AsyncIterator[dict[Any, Any]]:
        """The job's live status until it ends, then its result (also after a reload: :func:`attach`)."""
        base = {**cleared, tab.general_error: "", tab.preview: "", tab.video: None, tab.download: gr.update(visible=False),
                tab.reuse: gr.update(visible=False), tab.reuse_seed: gr.update(visible=False),
                tab.seed_info: "", tab.job_state: job_id, tab.remembered: job_id,
                **{b: gr.update(visible=False) for b in continuations}}
        last = last_preview = None
        per_latent, typical = await follower.past()
        clock = StepClock(per_latent)
        async for snap in follower.follow(job_id):
            if snap is None:  # deleted from the history tab meanwhile
                yield {tab.status: status_html(tab.task, None, lang, True, say("st_cancelled", lang))}
                return
            current, d = snap
            times = clock.observe(current, service.model_family, d["progress"]["fraction"])
            queue_left = typical * d["queue_position"] if typical and d.get("queue_position") else None
            html_ = status_html(tab.task, d, lang, service.model_ready, times=times, queue_left=queue_left)
            preview = preview_html(d, lang)  # the latest estimate while it runs (a new step: a new address)
            if html_ != last or preview != last_preview:
                update = {tab.status: html_, tab.preview: preview}
                yield {**base, **update} if last is None else update
                last, last_preview = html_, preview
        yield final_outputs(tab, service, current, d, lang)

    # preprocess=False: Gradio's image preprocessing would answer an unreadable upload with a raw
    # exception toast; collect() reads the file objects itself and the checks speak in sentences
    tab.generate.click(run, tab.components, outputs, concurrency_limit=None, show_progress="hidden",
                       api_name=f"generate_{tab.task}", preprocess=False)
    tab.run, tab.run_outputs = run, outputs  # "Extend" elsewhere fills this tab, then runs the same submit

    async def attach(request: gr.Request, job_id: Any, following: Any) -> AsyncIterator[dict[Any, Any]]:
        """After a reload: follow the job this tab had (queued or running), or show its result again.

        Runs when the page has read the id from local storage (the remembered value's change), which
        is also when this tab itself stored it: a job the tab already follows is left alone.
        """
        if not isinstance(job_id, str) or not job_id or job_id == following:
            yield {tab.status: gr.update()}  # nothing to do (a generator yielding nothing blanks its outputs)
            return
        try:
            await asyncio.to_thread(service.get, job_id)
        except JobNotFound:  # deleted meanwhile (or retention): forget it
            yield {tab.remembered: None}
            return
        async for update in follow(job_id, request_lang(request), {box: "" for box in err_boxes}):
            yield update

    tab.attach = (attach, [tab.remembered, tab.job_state], outputs)  # the page runs it on load
    tab.remembered.change(attach, [tab.remembered, tab.job_state], outputs, concurrency_limit=None,
                          show_progress="hidden")

    def cancel(job_id: str | None) -> None:
        if not job_id:
            return
        try:
            if not service.get(job_id).finished:
                service.cancel_or_delete(job_id)
        except (JobNotFound, JobConflict):
            pass  # already gone or finished: nothing to cancel

    tab.cancel.click(cancel, tab.job_state, None, queue=False)

    def reuse(job_id: str | None) -> dict[Any, Any]:
        if not job_id:
            return {}
        try:
            return fill_from_job(tab, service.get(job_id), files, data_dir)
        except JobNotFound:
            return {}

    tab.reuse.click(reuse, tab.job_state, tab.components, queue=False)
    tab.reuse_seed.click(lambda s: s if s is not None else -1, tab.seed_state, tab.inputs["seed"], queue=False)


def final_outputs(tab: TaskTab, service: JobService, job: Job, d: dict[str, Any], lang: str) -> dict[Any, Any]:
    """The tab once its job has ended: the video, seed and timings, or the error next to its field."""
    out: dict[Any, Any] = {tab.status: status_html(tab.task, d, lang, True), tab.seed_state: d["seed"],
                           tab.preview: ""}  # the video (or the error) takes the preview's place
    if job.status == SUCCEEDED:
        path = service.output_path(job)
        out.update({tab.video: str(path) if path else None,
                    tab.download: gr.update(value=str(path) if path else None, visible=path is not None),
                    tab.reuse: gr.update(visible=True), tab.reuse_seed: gr.update(visible=True),
                    **{b: gr.update(visible=True) for b in tab.continuations.values()},
                    tab.seed_info: seed_line(d["seed"], job.id, job.timings, lang) + model_line(job.model, lang)})
    elif job.status == FAILED:
        out.update(show_errors(tab, [(job.error_field or "error", job.error or "")], lang, {}))
        out[tab.status] = status_html(tab.task, d, lang, True)
        out[tab.reuse] = gr.update(visible=True)
    return out


def seed_line(seed: Any, job_id: str, timings: dict[str, float], lang: str) -> str:
    """``seed 42 · job abc · text 0.10 s, denoise 1.20 s, …`` in the page's language (Markdown)."""
    parts = [f"{say(f'tm_{k}', lang) if f'tm_{k}' in TEXT else k} {say('secs', lang, v=v)}" for k, v in timings.items()]
    return say("seed_line", lang, seed=seed, id=job_id, timings=", ".join(parts))
