"""The service's view of the generation engine, and the background model loader.

The worker only needs five things from the engine (defaults, is_wan22, validate, generate, save);
naming them in a Protocol keeps the queue logic testable on its own, while the default loader
wraps the real :class:`pusa.pipeline.PusaPipeline`.
"""

from __future__ import annotations

import logging
import threading
import time
from pathlib import Path
from typing import Any, Callable, Protocol

from pusa.service.config import ServiceConfig
from pusa.family import ModelFamily
from pusa.settings import GenerationSettings, ModelDefaults

log = logging.getLogger(__name__)

ProgressFn = Callable[[str, str], None]

LOADING, READY, FAILED, IDLE = "loading", "ready", "failed", "idle"


class Engine(Protocol):
    """What the worker and the API use of a loaded model."""

    defaults: ModelDefaults
    is_wan22: bool

    def validate(self, settings: GenerationSettings, n_images: int, has_video: bool) -> GenerationSettings: ...

    def generate(self, settings: GenerationSettings, *, images: list[Path] | None, video: Path | None,
                 callback: Callable[[Any], None]) -> Any: ...

    def preview(self, latents: Any) -> Any:
        """A small RGB strip of the current estimate (no VAE call), for the live preview."""
        return self.pipe.preview_image(latents)

    def save(self, result: Any, path: Path) -> None: ...


class PipelineEngine:
    """Adapter from :class:`pusa.pipeline.PusaPipeline` to :class:`Engine`."""

    def __init__(self, pipe: Any):
        self.pipe = pipe
        self.defaults: ModelDefaults = pipe.defaults
        self.family: ModelFamily | None = getattr(pipe, "family", None)
        self.is_wan22: bool = bool(getattr(pipe, "is_wan22", False))
        self.label: str | None = getattr(pipe, "label", None)

    def validate(self, settings: GenerationSettings, n_images: int, has_video: bool) -> GenerationSettings:
        return self.pipe.validate(settings, n_images, has_video)

    def generate(self, settings: GenerationSettings, *, images: list[Path] | None, video: Path | None,
                 callback: Callable[[Any], None]) -> Any:
        from pusa.long_video import generate_video  # any length: one window, chained windows, an extension

        return generate_video(self.pipe, settings, images=images or None, video=video, callback=callback)

    def preview(self, latents: Any) -> Any:
        """A small RGB strip of the current estimate (no VAE call), for the live preview."""
        return self.pipe.preview_image(latents)

    def save(self, result: Any, path: Path) -> None:
        from pusa.media import save_video

        save_video(result, path)


def pipeline_loader(config: ServiceConfig) -> Callable[[ProgressFn], Engine]:
    """The default loader: the configured (or bundled) model through the real pipeline."""
    if "parallel" in config.engine_options:  # --nproc N: a worker group of N ranks
        from pusa.parallel.pool import pool_loader

        return pool_loader(config)

    def load(on_progress: ProgressFn) -> Engine:
        from pusa.pipeline import PusaPipeline

        model_dir = config.model
        if model_dir is None:
            from pusa.bundled import default_model_dir

            model_dir = default_model_dir()
        options = dict(config.engine_options)
        if config.max_pixel_frames is not None:
            options["max_pixel_frames"] = config.max_pixel_frames
        pipe = PusaPipeline.from_pretrained(model_dir, **options, on_progress=on_progress)
        return PipelineEngine(pipe)

    return load


class ModelHost:
    """Loads the model in a background thread and reports per-component progress meanwhile.

    The server answers immediately; the worker waits on :attr:`ready` before taking jobs, so jobs
    submitted while the model loads simply wait in the queue.
    """

    def __init__(self, loader: Callable[[ProgressFn], Engine], label: str):
        self._loader = loader
        self.label = label
        self.state = IDLE
        self.error: str | None = None
        self.engine: Engine | None = None
        self.components: dict[str, str] = {}
        self.started_at: float | None = None
        self.ready_at: float | None = None
        self.done = threading.Event()  # set when loading ended, either way
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None

    @property
    def ready(self) -> bool:
        return self.state == READY

    def start(self) -> None:
        if self._thread is not None:
            return
        self.state = LOADING
        self.started_at = time.time()
        self._thread = threading.Thread(target=self._run, name="pusa-model-loader", daemon=True)
        self._thread.start()

    def _on_progress(self, component: str, status: str) -> None:
        with self._lock:
            self.components[component] = status
        log.info("model component %s: %s", component, status)

    def _run(self) -> None:
        try:
            engine = self._loader(self._on_progress)
        except Exception as e:  # any failure must reach the page and /api/ready, not kill the server
            log.exception("model failed to load")
            self.error = f"{type(e).__name__}: {e}"
            self.state = FAILED
        else:
            self.engine = engine
            label = getattr(engine, "label", None)
            if label:
                self.label = f"{label} ({self.label})" if self.label.startswith("bundled") else str(label)
            self.ready_at = time.time()
            self.state = READY
            log.info("model ready after %.1f s", self.ready_at - (self.started_at or self.ready_at))
        finally:
            self.done.set()

    def snapshot(self) -> dict[str, Any]:
        """JSON-able state for /api/health, /api/ready and the page's loading panel."""
        with self._lock:
            components = dict(self.components)
        out: dict[str, Any] = {"state": self.state, "label": self.label, "components": components,
                               "error": self.error}
        if self.engine is not None:
            d = self.engine.defaults
            out["defaults"] = {"width": d.width, "height": d.height, "frames": d.frames}
            out["wan22"] = self.engine.is_wan22
        if self.started_at:
            out["load_seconds"] = round((self.ready_at or time.time()) - self.started_at, 2)
        return out
