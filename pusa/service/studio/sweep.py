"""The sweep panel of a task tab: compare 2-3 values of one or two settings in a grid that plays together.

Below each tab's form, "Compare settings (sweep)" has one row of values per axis (LoRA alpha, noise
multiplier, steps, seed); the tab's other settings and inputs are the base request. Run sweep
queues the group through :class:`pusa.service.sweeps.SweepService` (the API's own path), then the
grid fills in as cells finish: each cell is its label, its video (``/api/jobs/{id}/video``) and
"Use these settings", which puts that cell's settings back into the tab. The videos start together
when the last one is ready, and "Play all together" restarts them in step; a small script keeps the
others on the first video's clock.
"""

from __future__ import annotations

import asyncio
from html import escape
from pathlib import Path
from typing import Any, AsyncIterator

import gradio as gr

from pusa.errors import ModelUnavailable, SettingsError
from pusa.service.i18n import request_lang, say
from pusa.service.jobs import JobNotFound, JobService
from pusa.service.store import QueueFull, StorageError
from pusa.service.studio.checks import plain_message
from pusa.service.studio.forms import ERR_BOX, TaskTab, collect, fill_from_job
from pusa.service.studio.inputs import InputFiles
from pusa.service.studio.render import T, field_error_html
from pusa.service.sweeps import SweepService
from pusa.service.uploads import UploadRejected
from pusa.sweep import AXES, MAX_VALUES, format_value
from pusa.tasks import TASKS

POLL_SECONDS = 0.5
MAX_CELLS = MAX_VALUES * MAX_VALUES
# axis -> (label key, default values in the box; the default sweep is the 3x3 alpha x multiplier)
AXIS_BOXES = {"lora_alpha": ("sweep_alpha", "1.0, 1.4, 2.0"), "noise_multipliers": ("sweep_mult", "0.1, 0.3, 0.5"),
              "steps": ("sweep_steps", ""), "seed": ("sweep_seed", "")}


def _sync_js(task: str, restart: bool) -> str:
    """Start every video of the grid at once (from 0 when ``restart``) and keep them on the first one's
    clock: play/pause/seek of the first is copied, drift over 0.1 s is corrected."""
    return f"""() => {{
  const vs = [...document.querySelectorAll('#{task}-sweep-grid video')];
  if (!vs.length) return;
  const lead = vs[0];
  if (!lead.dataset.pusaSync) {{
    lead.dataset.pusaSync = '1';
    const others = () => [...document.querySelectorAll('#{task}-sweep-grid video')].filter(v => v !== lead);
    lead.addEventListener('play', () => others().forEach(v => {{ v.currentTime = lead.currentTime; v.play(); }}));
    lead.addEventListener('pause', () => others().forEach(v => v.pause()));
    lead.addEventListener('seeked', () => others().forEach(v => {{ v.currentTime = lead.currentTime; }}));
    lead.addEventListener('timeupdate', () => others().forEach(v => {{
      if (Math.abs(v.currentTime - lead.currentTime) > 0.1) v.currentTime = lead.currentTime; }}));
  }}
  vs.forEach(v => {{ v.pause(); {'v.currentTime = 0;' if restart else ''} }});
  vs.forEach(v => v.play().catch(() => {{}}));
}}"""


def cell_label(values: dict[str, Any], lang: str) -> str:
    """The cell's axes and values in the page's language (``alpha 1.0 · mult 0.3``)."""
    return " · ".join(f"{say(f'sw_short_{k}', lang)} {format_value(tuple(v) if isinstance(v, list) else v)}"
                      for k, v in values.items())


def cell_html(cell: dict[str, Any], lang: str) -> str:
    """One cell: its label over its video when done, else its state."""
    label = f'<div class="pusa-sweep-label" style="font-weight:600;font-size:0.9rem">' \
            f'{escape(cell_label(cell["values"], lang))}</div>'
    job = cell.get("job") or {}
    status = cell["status"]
    if status == "succeeded" and job.get("video_url"):
        body = (f'<video src="{escape(job["video_url"])}" muted loop playsinline preload="auto" '
                f'style="width:100%;border-radius:4px"></video>')
    elif status == "running":
        body = say("sw_cell_running", lang, pct=round(100 * (job.get("progress") or {}).get("fraction", 0)))
    elif status == "failed":
        body = say("st_failed_job", lang, error=job.get("error") or "")
    else:
        body = say({"queued": "sw_cell_queued", "cancelled": "st_cancelled"}.get(status, "sw_cell_gone"), lang)
    return (f'<div class="pusa-sweep-cell" data-status="{escape(status)}" data-row="{cell["row"]}" '
            f'data-col="{cell["col"]}">{label}{body if "<video" in body else f"<div>{escape(body)}</div>"}</div>')


def sweep_status(sweep: dict[str, Any], lang: str) -> str:
    counts = sweep["counts"]
    other = sum(n for s, n in counts.items() if s not in ("succeeded", "running", "queued"))
    return say("sw_status", lang, total=len(sweep["cells"]), done=counts.get("succeeded", 0),
               running=counts.get("running", 0), queued=counts.get("queued", 0), other=other)


def build_sweep(tab: TaskTab, service: JobService, files: InputFiles, data_dir: Path) -> None:
    """The sweep accordion under a task tab's form, and its events (called by the page per tab)."""
    task = tab.task
    sweeps = SweepService(service)
    axes = [a for a in AXES if TASKS[task].conditioned or a != "noise_multipliers"]
    with gr.Accordion(T("sweep"), open=False, elem_id=f"{task}-sweep"):
        gr.Markdown(T("sweep_help"))
        with gr.Row():
            boxes = {a: gr.Textbox(AXIS_BOXES[a][1] if TASKS[task].conditioned or a == "lora_alpha" else "",
                                   label=T(AXIS_BOXES[a][0]), placeholder=AXIS_BOXES[a][1] or "5, 10, 20",
                                   elem_id=f"{task}-sweep-{a}") for a in axes}
        error = gr.HTML("", elem_id=f"{task}-sweep-error", **ERR_BOX)
        with gr.Row():
            run_button = gr.Button(T("sweep_run"), variant="primary", elem_id=f"{task}-sweep-run")
            cancel_button = gr.Button(T("sweep_cancel"), variant="stop", elem_id=f"{task}-sweep-cancel")
            play_button = gr.Button(T("sweep_play"), elem_id=f"{task}-sweep-play")
        status = gr.Markdown("", elem_id=f"{task}-sweep-status")
        group_state = gr.State(None)
        columns, htmls, uses = [], [], []
        with gr.Column(elem_id=f"{task}-sweep-grid"):
            for r in range(MAX_VALUES):
                with gr.Row():
                    for c in range(MAX_VALUES):
                        with gr.Column(visible=False, min_width=160) as col:
                            htmls.append(gr.HTML("", elem_id=f"{task}-sweep-cell-{r}-{c}", padding=False))
                            uses.append(gr.Button(T("sweep_use"), size="sm", visible=False,
                                                  elem_id=f"{task}-sweep-use-{r}-{c}"))
                        columns.append(col)

    names, err_boxes = tab.names, list(tab.errors.values())
    outputs = [error, status, group_state, *columns, *htmls, *uses, *err_boxes]

    def submit(vals: dict[str, Any], texts: dict[str, str]) -> dict[str, Any]:
        raw, images, video = collect(tab, vals, files, service.model_is_wan22)
        return sweeps.submit(raw, {a: t for a, t in texts.items() if (t or "").strip()}, images, video)

    def grid(sweep: dict[str, Any], lang: str) -> dict[Any, Any]:
        """Cells placed at (row, column) of the 3x3 frame; the rest hidden."""
        out: dict[Any, Any] = {c: gr.update(visible=False) for c in columns}
        out.update({u: gr.update(visible=False) for u in uses})
        for cell in sweep["cells"]:
            k = cell["row"] * MAX_VALUES + cell["col"]
            out[columns[k]] = gr.update(visible=True)
            out[htmls[k]] = cell_html(cell, lang)
            out[uses[k]] = gr.update(visible=cell["status"] == "succeeded")
        return out

    async def run(request: gr.Request, *values: Any) -> AsyncIterator[dict[Any, Any]]:
        lang = request_lang(request)
        vals, texts = dict(zip(names, values[:len(names)])), dict(zip(axes, values[len(names):]))
        cleared: dict[Any, Any] = {box: "" for box in err_boxes}
        try:
            sweep = await asyncio.to_thread(submit, vals, texts)
        except SettingsError as e:
            for p in e.problems:  # a field of the form: next to it too
                key = p.field.split("[")[0]
                if key in tab.errors:
                    cleared[tab.errors[key]] = field_error_html(f"{p.field}: {p.message}")
            yield {**cleared, error: field_error_html(say("st_fix", lang, error=str(e)))}
            return
        except UploadRejected as e:
            yield {**cleared, error: field_error_html(f"{e.field}: {plain_message(e.message, lang)}")}
            return
        except (ModelUnavailable, QueueFull, StorageError) as e:
            yield {**cleared, error: field_error_html(say("not_queued", lang, reason=str(e)))}
            return
        yield {**cleared, error: "", group_state: sweep["group"], status: sweep_status(sweep, lang),
               **grid(sweep, lang)}
        html_ids = {id(h) for h in htmls}
        shown = {id(h): v for h, v in grid(sweep, lang).items() if id(h) in html_ids}
        while not sweep["finished"]:
            await asyncio.sleep(POLL_SECONDS)
            try:
                sweep = await asyncio.to_thread(sweeps.get, sweep["group"])
            except JobNotFound:
                return
            update = grid(sweep, lang)
            # a cell's HTML only when it changed: drawing a <video> again would restart it
            changed = {h: v for h, v in update.items() if id(h) not in html_ids or shown.get(id(h)) != v}
            shown.update({id(h): v for h, v in update.items() if id(h) in html_ids})
            yield {status: sweep_status(sweep, lang), **changed}

    run_button.click(run, [*tab.components, *boxes.values()], outputs, concurrency_limit=None,
                     show_progress="hidden", preprocess=False, api_name=f"sweep_{task}"
                     ).then(None, js=_sync_js(task, restart=True))
    play_button.click(None, js=_sync_js(task, restart=True))

    def cancel(group: str | None) -> None:
        if group:
            try:
                sweeps.cancel(group)
            except JobNotFound:
                pass

    cancel_button.click(cancel, group_state, None, queue=False)

    for k, use in enumerate(uses):
        use.click(_filler(tab, service, files, data_dir, k), [group_state], tab.components, queue=False)


def _filler(tab: TaskTab, service: JobService, files: InputFiles, data_dir: Path, k: int) -> Any:
    """The handler of cell ``k``'s "Use these settings": the tab's inputs from that cell's job."""
    sweeps = SweepService(service)

    def fill(group: str | None) -> dict[Any, Any]:
        if not group:
            return {}
        try:
            cells = sweeps.get(group)["cells"]
            cell = next(c for c in cells if c["row"] * MAX_VALUES + c["col"] == k)
            return fill_from_job(tab, service.get(cell["job_id"]), files, data_dir)
        except (JobNotFound, StopIteration):
            return {}

    return fill
