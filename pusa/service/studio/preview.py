"""A running job's live preview in its tab: the latest clean-video estimate, after every denoising step.

The worker keeps the estimate as ``outputs/<id>/preview.png`` and the API serves it at
``GET /api/jobs/{id}/preview`` (the job's ``preview_url``). The tab shows it with a plain ``<img>``
pointing there, with the step in the address so the browser fetches each new estimate: no copy into
Gradio's cache per step. It is there while the job runs, so a bad start can be cancelled after two
steps, and gone when the job ends (the finished video takes its place).
"""

from __future__ import annotations

from html import escape
from typing import Any

from pusa.service.i18n import say

PREVIEW_CSS = """
.pusa-preview img { display: block; width: 100%; max-height: 240px; object-fit: contain;
                    image-rendering: pixelated; background: #0001; border-radius: 4px; }
.pusa-preview .pusa-preview-label { font-size: 0.8rem; opacity: 0.75; }
"""


def preview_html(job: dict[str, Any] | None, lang: str = "en") -> str:
    """The ``<img>`` of the job's latest estimate while it runs; empty when it has none or has ended."""
    if job is None or job.get("status") != "running" or not job.get("preview_url"):
        return ""
    prog = job.get("progress") or {}
    step = prog.get("step") if prog.get("phase") == "denoise" else None
    # relative: the API sits next to the page, also behind a path prefix; the step makes each one new
    src = f"{str(job['preview_url']).lstrip('/')}?step={step if step is not None else prog.get('phase') or 0}"
    label = say("preview_step", lang, step=step, total=prog.get("total")) if step is not None else say("preview", lang)
    return (f'<div class="pusa-preview" data-job="{escape(str(job["id"]))}">'
            f'<div class="pusa-preview-label">{escape(label)}</div>'
            f'<img src="{escape(src)}" alt="{escape(say("preview", lang))}"></div>')
