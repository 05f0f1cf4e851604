"""The web studio and HTTP job service: one process, a durable job queue, one worker per device.

``create_app(ServiceConfig(...))`` builds the ASGI app (API under ``/api``, Gradio studio at ``/``);
``pusa serve`` (see :mod:`pusa.service.cli`) runs it with uvicorn. Heavy imports (torch, gradio,
the engine) happen lazily so the server answers within a second of starting.
"""

from pusa.service.config import ServiceConfig, UploadLimits

__all__ = ["ServiceConfig", "UploadLimits", "create_app"]


def create_app(*args, **kwargs):  # noqa: ANN002, ANN003 - thin lazy re-export
    """Build the service ASGI app (lazy import keeps ``import pusa.service`` cheap)."""
    from pusa.service.app import create_app as _create_app

    return _create_app(*args, **kwargs)
