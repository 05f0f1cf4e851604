"""The Gradio studio: the seed's four tabs plus History, on the same job service as the API.

Each tab only gathers a settings dict and input files, calls :meth:`JobService.submit`, and then
follows the job (queue position, live step progress) until it ends. Validation is the engine's: a
SettingsError's field problems are shown next to the fields they name.

Rooms: :mod:`.page` (layout), :mod:`.forms` (per-task inputs <-> settings), :mod:`.keyframes`
(slot syncing and timeline), :mod:`.polling` (generate / follow / cancel / reuse), :mod:`.history`,
:mod:`.render` (status, banner and timeline HTML, CSS, labels), :mod:`.language` (the EN / 한국어
switch), :mod:`.preview` (a running job's live preview), :mod:`.presets` (the speed preset menu),
:mod:`.sweep` (compare settings in a grid), :mod:`.models` (the model and LoRA picker),
:mod:`.examples`, :mod:`.values` (widget values as settings), :mod:`.inputs` (which files a request
may name).
"""

from __future__ import annotations

import os
from pathlib import Path

import gradio as gr
from fastapi import FastAPI

from pusa.service.config import ServiceConfig
from pusa.service.jobs import JobService
from pusa.service.studio.examples import EXAMPLES_CSS, cached_copies
from pusa.service.studio.inputs import FileGuard, InputFiles
from pusa.service.studio.language import SWITCH_CSS, PageLanguage
from pusa.service.studio.page import StudioPage
from pusa.service.studio.preview import PREVIEW_CSS
from pusa.service.studio.render import CSS, I18N

__all__ = ["mount_studio", "studio_cache_dir"]

# Gradio runs at most ``max_threads`` queued events at once (40 by default); each tab following its
# job is one such event for as long as the job waits and runs. Following costs no thread (see
# ``polling``), so more tabs may follow at once; further ones wait in Gradio's own queue. A value
# other than 40 also gives Gradio's short sync handlers their own thread limiter instead of
# sharing the API's (Starlette's default), so the page cannot use up the API's threads.
FOLLOWING_TABS = 200


def studio_cache_dir(config: ServiceConfig) -> Path:
    """Where Gradio keeps this studio's uploads and the copies it serves (inside the data dir)."""
    return config.data_dir / "studio-cache"


def mount_studio(service: JobService, config: ServiceConfig, cache_dir: Path | None = None) -> FastAPI:
    """Build the Blocks and mount them on a fresh FastAPI app at "/" (the root app forwards to it).

    ``cache_dir`` (default :func:`studio_cache_dir`) becomes Gradio's upload and cache folder. Gradio
    takes that folder only from the ``GRADIO_TEMP_DIR`` environment variable, read whenever it
    creates a component, also while serving (it re-creates components per session), so it is set
    here, for this process: one studio per process.
    """
    cache = cache_dir or studio_cache_dir(config)
    os.environ["GRADIO_TEMP_DIR"] = str(cache)
    files = InputFiles(cache, config.data_dir / "examples", config.limits)
    demo = StudioPage(service, config.data_dir, files).build()
    # the example rows name Gradio's copies made just now: cache retention must leave them alone
    service.keep_in_studio_cache(cached_copies(cache, files.examples_dir))
    demo.max_threads = FOLLOWING_TABS
    demo.queue(default_concurrency_limit=None)
    parent = FastAPI(docs_url=None, redoc_url=None, openapi_url=None)
    allowed = [str(config.data_dir / "outputs"), str(config.data_dir / "uploads"), str(config.data_dir / "examples")]
    app = gr.mount_gradio_app(parent, demo, path="/", allowed_paths=allowed, i18n=I18N,
                              css=CSS + SWITCH_CSS + PREVIEW_CSS + EXAMPLES_CSS,
                              max_file_size=config.limits.max_bytes, ssr_mode=False, show_error=True,
                              footer_links=[], run_history=False, theme=gr.themes.Soft())
    # the page's own config: which components are the inputs of each event (fn_index)
    inputs_of = {d["id"]: list(d["inputs"]) for d in demo.config["dependencies"]}
    app.add_middleware(FileGuard, files=files, inputs_of=lambda: inputs_of)
    # the chosen language is set before Gradio draws the page (studio.language); Gradio's own
    # settings dialog (footer_links above) with its picker of ~30 languages is not shown
    app.add_middleware(PageLanguage)
    return app
