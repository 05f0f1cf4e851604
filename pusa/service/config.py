"""Service configuration: where data lives, which model to load, and what uploads may weigh.

Kept free of heavy imports so ``pusa serve --help`` and the first HTTP answer stay fast.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

TOKEN_ENV = "PUSA_TOKEN"


@dataclass(frozen=True)
class UploadLimits:
    """Per-upload limits; anything larger is refused with HTTP 413 before it reaches the engine."""

    max_bytes: int = 50 * 1024 * 1024          # per uploaded file
    max_pixels: int = 4096 * 4096              # width * height of an image or video frame
    max_video_seconds: float = 60.0            # duration of an uploaded video
    max_images: int = 16                       # images per job (keyframes)

    def max_request_bytes(self) -> int:
        """Upper bound for a whole multipart request (all files + the settings field)."""
        return self.max_bytes * (self.max_images + 1) + 1024 * 1024


@dataclass
class ServiceConfig:
    """Everything ``pusa serve`` decides; ``create_app`` takes one of these."""

    data_dir: Path = field(default_factory=lambda: Path("pusa-data"))
    model: Path | None = None            # None: the bundled default model
    # keyword arguments for PusaPipeline.from_pretrained (lora, device, dtype, offload, ...),
    # as produced by pusa.cli_options.engine_kwargs so the CLI and the service stay in step
    engine_options: dict[str, Any] = field(default_factory=dict)
    token: str | None = None
    limits: UploadLimits = field(default_factory=UploadLimits)
    host: str = "127.0.0.1"
    port: int = 7860
    studio: bool = True                  # mount the Gradio studio at "/"
    # without a token: Host names (NAME or NAME:PORT) and page origins (http://NAME:PORT) allowed
    # besides this server's own address (see pusa.service.guard)
    allowed_hosts: tuple[str, ...] = ()
    allowed_origins: tuple[str, ...] = ()
    max_queued: int = 100                # more waiting jobs than this: HTTP 429
    # retention (pusa.service.housekeeping): finished jobs by age / total size of their files, and
    # Gradio's studio cache by age; None switches a kind off
    retention_days: float | None = None
    retention_max_gb: float | None = None
    cache_retention_hours: float | None = 24.0
    housekeeping_interval_s: float = 600.0
    # largest width x height x frames a job may ask; None: the loaded model's own budget
    # (pusa.settings.PIXEL_BUDGET_MARGIN times its default window)
    max_pixel_frames: int | None = None
    # a folder of model folders and LoRA files the studio and POST /api/model may switch between
    # (pusa.service.models_dir); None: only the startup model, no picker
    models_dir: Path | None = None

    def __post_init__(self) -> None:
        self.data_dir = Path(self.data_dir).expanduser().resolve()
        if self.models_dir is not None:
            self.models_dir = Path(self.models_dir).expanduser().resolve()
        if self.token is None:
            self.token = os.environ.get(TOKEN_ENV) or None

    @property
    def studio_cache_dir(self) -> Path:
        """Where Gradio keeps the studio's uploads and the copies it serves (swept by retention)."""
        return self.data_dir / "studio-cache"

    @property
    def model_label(self) -> str:
        """Name shown before the model has loaded (the loaded pipeline's own label replaces it)."""
        return str(self.model) if self.model is not None else "bundled default model"
