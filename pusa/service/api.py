"""The REST API under ``/api``: jobs, their videos, health and readiness.

Every error is JSON ``{"detail": str, "errors": [{"field", "message"}]}`` with a precise status:
422 for bad settings or unreadable inputs (naming the field), 413 for uploads over a limit, 404 for
unknown ids, 409 for a request the job's state does not allow, 429 when the queue is full, 403 for a
foreign Host/Origin (see :mod:`pusa.service.guard`), 503 when the model failed to load
(``ModelUnavailable``), 507 when the data dir is out of space, 500 (still JSON) for anything else.
"""

from __future__ import annotations

import json
import logging
from typing import Any

from fastapi import APIRouter, FastAPI, File, Form, Query, Request, UploadFile
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from pusa.errors import ModelUnavailable, SettingsError
from pusa.settings_parsing import excerpt
from pusa.service.guard import BodyTooLarge
from pusa.service.jobs import JobConflict, JobNotFound, JobService, Upload
from pusa.service.models_api import add_model_routes
from pusa.service.store import STATUSES, QueueFull, StorageError
from pusa.service.sweep_api import build_sweep_router
from pusa.service.uploads import UploadRejected

log = logging.getLogger(__name__)


# An error message is for reading: whatever it quotes is cut well before this many characters.
MAX_MESSAGE_CHARS = 1000

# Starlette's multipart parser stops at these limits with a bare 400; name the part that went over.
_MULTIPART_LIMITS = (("Too many files", "images", "too many files in one request"),
                     ("Too many fields", "request", "too many form fields in one request"),
                     ("exceeded maximum size", "settings", "a text field (the settings JSON) is over its size limit"))


def _cut(text: str) -> str:
    return text if len(text) <= MAX_MESSAGE_CHARS else text[:MAX_MESSAGE_CHARS - 40] + f"... ({len(text)} chars)"


def error_response(status: int, detail: str, errors: list[dict[str, str]] | None = None) -> JSONResponse:
    """One error shape for every failure, so clients can always find the field (messages kept short)."""
    errors = [{"field": _cut(e["field"]), "message": _cut(e["message"])} for e in errors or []]
    return JSONResponse({"detail": _cut(detail), "errors": errors}, status_code=status)


def install_error_handlers(app: FastAPI) -> None:
    """Map the service's exceptions to status codes (and FastAPI's own 422s to the same shape)."""

    @app.exception_handler(SettingsError)
    async def _settings(_: Request, e: SettingsError) -> JSONResponse:
        return error_response(422, str(e), [{"field": p.field, "message": p.message} for p in e.problems])

    @app.exception_handler(UploadRejected)
    async def _upload(_: Request, e: UploadRejected) -> JSONResponse:
        return error_response(e.status, str(e), [{"field": e.field, "message": e.message}])

    @app.exception_handler(JobNotFound)
    async def _missing(_: Request, e: JobNotFound) -> JSONResponse:
        return error_response(404, e.args[0])

    @app.exception_handler(JobConflict)
    async def _conflict(_: Request, e: JobConflict) -> JSONResponse:
        return error_response(409, str(e))

    @app.exception_handler(BodyTooLarge)
    async def _body(_: Request, e: BodyTooLarge) -> JSONResponse:
        return error_response(413, str(e), [{"field": "request", "message": "too large"}])

    @app.exception_handler(QueueFull)
    async def _queue_full(_: Request, e: QueueFull) -> JSONResponse:
        response = error_response(429, str(e), [{"field": "queue", "message": str(e)}])
        response.headers["Retry-After"] = "60"
        return response

    @app.exception_handler(StorageError)
    async def _storage(_: Request, e: StorageError) -> JSONResponse:
        # 507 Insufficient Storage: the operator must free space; the request itself was fine
        return error_response(507 if e.full else 503, str(e), [{"field": "storage", "message": str(e)}])

    @app.exception_handler(Exception)
    async def _internal(_: Request, e: Exception) -> JSONResponse:
        log.error("unhandled error in an API request", exc_info=e)
        return error_response(500, f"internal error ({type(e).__name__}); the server log has the details")

    @app.exception_handler(ModelUnavailable)
    async def _unavailable(_: Request, e: ModelUnavailable) -> JSONResponse:
        return error_response(503, str(e), [{"field": "model", "message": str(e)}])

    @app.exception_handler(StarletteHTTPException)
    async def _http(_: Request, e: StarletteHTTPException) -> JSONResponse:
        detail = "no such API route" if e.status_code == 404 else str(e.detail)
        if isinstance(e.__cause__, BodyTooLarge):  # FastAPI wraps errors met while reading a form
            return error_response(413, str(e.__cause__), [{"field": "request", "message": "too large"}])
        if e.status_code == 400:
            for marker, field, message in _MULTIPART_LIMITS:
                if marker in detail:
                    return error_response(413, f"{field}: {message} ({detail})", [{"field": field, "message": message}])
        return error_response(e.status_code, detail)

    @app.exception_handler(RequestValidationError)
    async def _request(_: Request, e: RequestValidationError) -> JSONResponse:
        errors = []
        for err in e.errors():
            loc = [str(p) for p in err.get("loc", ()) if p not in ("body", "query", "path", "form")]
            errors.append({"field": ".".join(loc) or "request", "message": err.get("msg", "invalid")})
        return error_response(422, "; ".join(f"{x['field']}: {x['message']}" for x in errors), errors)


def build_router(service: JobService) -> APIRouter:
    """All ``/api`` routes, bound to one job service."""
    router = APIRouter()

    @router.get("/health", summary="Liveness: answers at once, also while the model loads; 503 if the worker is "
                                   "dead or stuck", responses={503: {"description": "the job worker is dead or stuck"}})
    def health() -> JSONResponse:
        body = service.health()
        return JSONResponse(body, status_code=200 if body["status"] == "ok" else 503)

    @router.get("/ready", summary="200 once generation can start, 503 while loading, after a load failure or "
                                  "while the worker is dead or stuck", responses={503: {"description": "not ready"}})
    def ready() -> JSONResponse:
        h = service.health()
        ok = service.model_ready and h["status"] == "ok"
        return JSONResponse({"ready": ok, "reason": h["reason"], "model": h["model"]},
                            status_code=200 if ok else 503)

    @router.post("/jobs", status_code=201, summary="Submit a generation job",
                 responses={413: {"description": "an upload is over a limit"},
                            422: {"description": "bad settings or unreadable input; names the field"}})
    def submit(
        settings: str = Form(..., description='JSON object of generation settings, e.g. '
                                              '{"task": "i2v", "prompt": "...", "steps": 10}'),
        images: list[UploadFile] = File(default=[], description="Condition images, in position order"),
        video: UploadFile | None = File(default=None, description="Input video (v2v)"),
    ) -> JSONResponse:
        try:
            raw = json.loads(settings)
        except json.JSONDecodeError as e:
            return error_response(422, f"settings: not valid JSON ({e})",
                                  [{"field": "settings", "message": f"not valid JSON ({e})"}])
        if not isinstance(raw, dict):
            return error_response(422, "settings: must be a JSON object",
                                  [{"field": "settings", "message": "must be a JSON object"}])
        ups = [Upload(field=f"images[{i}]", stream=f.file, filename=f.filename) for i, f in enumerate(images)]
        vid = Upload(field="video", stream=video.file, filename=video.filename) if video is not None else None
        job = service.submit(raw, ups, vid)
        body = service.job_dict(job)
        return JSONResponse(body, status_code=201, headers={"Location": f"/api/jobs/{job.id}"})

    @router.get("/jobs", summary="List jobs, newest first")
    def list_jobs(limit: int = Query(20, ge=1, le=200), offset: int = Query(0, ge=0),
                  status: str | None = Query(None, description=f"one of {', '.join(STATUSES)}")) -> Any:
        if status is not None and status not in STATUSES:
            return error_response(422, f"status: {excerpt(status)} is not one of {', '.join(STATUSES)}",
                                  [{"field": "status", "message": f"expected one of {', '.join(STATUSES)}"}])
        jobs, total = service.list_jobs(limit, offset, status)
        return {"items": [service.job_dict(j) for j in jobs], "total": total, "limit": limit, "offset": offset}

    @router.get("/jobs/{job_id}", summary="Status, queue position, progress, settings, timings")
    def get_job(job_id: str) -> dict[str, Any]:
        return service.job_dict(service.get(job_id))

    @router.get("/jobs/{job_id}/video", summary="The finished MP4", response_class=FileResponse,
                responses={409: {"description": "the job has no video (yet)"}})
    def get_video(job_id: str) -> Any:
        job = service.get(job_id)
        path = service.output_path(job)
        if path is None:
            return error_response(409, f"job {job_id} has no video (status: {job.status})")
        return FileResponse(path, media_type="video/mp4", filename=f"pusa-{job.task}-{job.id}.mp4")

    @router.get("/jobs/{job_id}/preview", summary="The latest denoising estimate (PNG strip, no VAE call)",
                response_class=FileResponse, responses={404: {"description": "no preview yet"}})
    def get_preview(job_id: str) -> Any:
        job = service.get(job_id)
        path = service.preview_path(job)
        if path is None:
            return error_response(404, f"job {job_id} has no preview yet (status: {job.status})")
        return FileResponse(path, media_type="image/png", headers={"Cache-Control": "no-store"})

    @router.delete("/jobs/{job_id}", summary="Cancel a queued/running job, or delete a finished one")
    def delete_job(job_id: str) -> dict[str, Any]:
        action = service.cancel_or_delete(job_id)
        return {"id": job_id, "action": action}

    @router.post("/jobs/{job_id}/resubmit", status_code=201, summary="Queue a finished job again (same inputs)")
    def resubmit(job_id: str) -> JSONResponse:
        job = service.resubmit(job_id)
        return JSONResponse(service.job_dict(job), status_code=201, headers={"Location": f"/api/jobs/{job.id}"})

    add_model_routes(router, service)  # the picker of --models-dir (pusa.service.models_api)
    router.include_router(build_sweep_router(service))  # /sweeps: a group of jobs, one per cell
    return router
