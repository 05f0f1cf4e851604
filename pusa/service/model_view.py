"""The loaded model as the service's callers see it (API, studio, worker): state, defaults, family.

A mixin of :class:`pusa.service.jobs.JobService` over its ``host`` (:class:`pusa.service.engine.ModelHost`):
every answer is read from the model that is loaded now, so hints and limits follow a model switch.
"""

from __future__ import annotations

from typing import Any

from pusa.family import ModelFamily
from pusa.service.engine import FAILED as HOST_FAILED, ModelHost
from pusa.settings import ModelDefaults


class ModelView:
    host: ModelHost

    def model_snapshot(self) -> dict[str, Any]:
        """JSON-able model state: load state, label, per-component progress, error, defaults."""
        return self.host.snapshot()

    @property
    def model_ready(self) -> bool:
        """True once a job can start."""
        return self.host.ready

    @property
    def model_settled(self) -> bool:
        """True once loading has ended, successfully or not (nothing will change by waiting)."""
        return self.host.done.is_set()

    def wait_for_model(self, timeout: float | None = None) -> bool:
        """Block until loading has ended (either way) or ``timeout`` passes; returns model_settled."""
        return self.host.done.wait(timeout)

    @property
    def model_failed(self) -> bool:
        """True when the model could not load: submissions raise ModelUnavailable."""
        return self.host.state == HOST_FAILED

    @property
    def model_defaults(self) -> ModelDefaults | None:
        """The loaded model's defaults (size, frames, ...); None until it has loaded."""
        engine = self.host.engine
        return engine.defaults if engine is not None else None

    @property
    def model_family(self) -> ModelFamily | None:
        """The loaded model's geometry (latent frames, size multiple, native window); None until loaded.
        Hints, placeholders and timelines come from it, never from Wan2.1 constants."""
        engine = self.host.engine
        return getattr(engine, "family", None) if engine is not None else None

    @property
    def model_is_wan22(self) -> bool:
        """True for a two-expert (Wan2.2) model: its extra settings apply."""
        engine = self.host.engine
        return bool(engine is not None and engine.is_wan22)

    @property
    def model_presets(self) -> tuple[list[str], str]:
        """(the presets a job may choose on the loaded model, the one a job gets without choosing)."""
        engine = self.host.engine
        if engine is None:
            return ["none"], "none"
        return list(getattr(engine, "presets", ["none"])), str(getattr(engine, "preset", "none"))
