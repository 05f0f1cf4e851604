"""The service's view of the generation engine, and the background model loader.

The worker only needs five things from the engine (defaults, is_wan22, validate, generate, save);
naming them in a Protocol keeps the queue logic testable on its own, while the default loader
wraps the real :class:`pusa.pipeline.PusaPipeline`.
"""

from __future__ import annotations

import gc
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


class ModelBusy(RuntimeError):
    """A model is loading already; a switch must wait until it has settled (HTTP 409)."""


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
        self.presets: list[str] = list(getattr(pipe, "presets", ["none"]))
        self.preset: str = pipe.speed.preset if hasattr(pipe, "speed") else "none"
        # file names only (a job's record reaches clients; server paths never do)
        self.lora_names: list[str] = [Path(p).name for p in getattr(pipe, "lora_paths", None) or []]
        self.decoder_name: str = getattr(pipe, "decoder_name", "")  # a --decoder's name, never its path

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
    submitted while the model loads simply wait in the queue. :meth:`switch` loads another model
    the same way (``pusa serve --models-dir``); the worker holds :attr:`in_use` while it claims and
    runs a job, so no job ever starts on a half-loaded or released model.
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
        self.in_use = threading.Lock()  # held by the worker from claiming a job to its end
        self.model_id: str | None = None  # the picker's ids of what is loaded (None: the startup model)
        self.lora_id: str | None = None
        self.switch_error: str | None = None  # why the last switch failed (the previous model serves again)
        self.redact: Callable[[str], str] = lambda text: text  # error texts reach clients: the switcher hides paths

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
        name = self.label
        try:
            self._load(self._loader, lambda label: f"{label} ({name})" if name.startswith("bundled") else label)
        finally:
            self.done.set()

    def _load(self, loader: Callable[[ProgressFn], Engine], label_of: Callable[[str], str]) -> bool:
        """Run ``loader``; READY with the engine (``label_of`` names it from its own label) or FAILED."""
        with self._lock:
            self.components = {}
        self.started_at, self.ready_at, self.error = time.time(), None, None
        self.state = LOADING
        try:
            engine = loader(self._on_progress)
        except Exception as e:  # any failure must reach the page and /api/ready, not kill the server
            log.exception("model failed to load")
            self.error = self.redact(f"{type(e).__name__}: {e}")
            self.state = FAILED
            release_memory()  # whatever the failed load had allocated
            return False
        self.engine = engine
        label = getattr(engine, "label", None)
        if label:
            self.label = label_of(str(label))
        self.ready_at = time.time()
        self.state = READY
        log.info("model ready after %.1f s", self.ready_at - (self.started_at or self.ready_at))
        return True

    def switch(self, loader: Callable[[ProgressFn], Engine], name: str, model_id: str | None,
               lora_id: str | None) -> None:
        """Load another model in the background (raises ModelBusy while one loads).

        Unload, then load: the queue pauses, a running job ends on the old model, the old model is
        released (two 14B models do not fit on one GPU), then the new one loads and the queue goes
        on. If it fails, the previous model loads again and serves, and :attr:`switch_error` says why.
        """
        with self._lock:
            if self._thread is None or not self.done.is_set():
                raise ModelBusy("a model is loading; switch when it has loaded")
            previous = (self._loader, self.label, self.model_id, self.lora_id) if self.engine is not None else None
            self.done.clear()  # the worker takes no new job from here on
            self.state, self.label, self.components = LOADING, name, {}
        self._thread = threading.Thread(target=self._switch, args=(loader, name, model_id, lora_id, previous),
                                        name="pusa-model-switch", daemon=True)
        self._thread.start()

    def _switch(self, loader: Callable[[ProgressFn], Engine], name: str, model_id: str | None,
                lora_id: str | None, previous: tuple[Any, ...] | None) -> None:
        try:
            with self.in_use:  # the running job has ended; nothing else holds the old model
                self.engine = None
                release_memory()
            if self._load(loader, lambda label: label if label == name else f"{label} ({name})"):
                self._loader, self.model_id, self.lora_id, self.switch_error = loader, model_id, lora_id, None
                return
            self.switch_error = f"could not load {name}: {self.error}"
            if previous is not None:  # serve the previous model again
                old_loader, old_label, self.model_id, self.lora_id = previous
                self.label = old_label
                self._load(old_loader, lambda _: old_label)
        finally:
            self.done.set()

    def record(self) -> dict[str, Any]:
        """What a job records of the model it ran on: label, picker ids, LoRA file names."""
        return {"label": self.label, "id": self.model_id, "lora": self.lora_id,
                "lora_files": list(getattr(self.engine, "lora_names", None) or [])}

    def snapshot(self) -> dict[str, Any]:
        """JSON-able state for /api/health, /api/ready and the page's loading panel."""
        with self._lock:
            components = dict(self.components)
        out: dict[str, Any] = {"state": self.state, "label": self.label, "components": components,
                               "error": self.error, "switch_error": self.switch_error, "id": self.model_id,
                               "lora": self.lora_id}
        if self.engine is not None:
            d = self.engine.defaults
            out["defaults"] = {"width": d.width, "height": d.height, "frames": d.frames}
            out["wan22"] = self.engine.is_wan22
            out["presets"] = list(getattr(self.engine, "presets", ["none"]))  # what a job may choose
            out["preset"] = getattr(self.engine, "preset", "none")  # what a job that chooses none gets
            out["decoder"] = getattr(self.engine, "decoder_name", "") or None  # a light decoder makes the pixels
        if self.started_at:
            out["load_seconds"] = round((self.ready_at or time.time()) - self.started_at, 2)
        return out


def release_memory() -> None:
    """Give a released model's memory back (the GPU's caching allocator keeps it otherwise)."""
    gc.collect()
    try:
        import torch

        if torch.cuda.is_available():
            torch.cuda.empty_cache()
    except ImportError:  # a service test without torch: nothing to release
        pass
