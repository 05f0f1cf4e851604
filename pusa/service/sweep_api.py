"""``/api/sweeps``: submit a sweep (a group of jobs), read its cells, cancel or delete it.

The form is ``POST /api/jobs``'s (``settings`` JSON, ``images``, ``video``) plus ``sweep``: a JSON
object ``{axis: [values]}`` with one or two of lora_alpha, noise_multipliers, steps, seed (or the
same object as ``"sweep"`` inside the settings). Errors have the API's one shape: a bad axis is 422
naming ``sweep.<axis>``, a sweep whose cells do not all fit in the queue 429.
"""

from __future__ import annotations

import json
from typing import Any

from fastapi import APIRouter, File, Form, UploadFile
from fastapi.responses import JSONResponse

from pusa.errors import SettingsError
from pusa.service.jobs import JobService, Upload
from pusa.service.sweeps import SweepService


def _json_object(text: str | None, field: str) -> Any:
    if text is None:
        return None
    try:
        value = json.loads(text)
    except json.JSONDecodeError as e:
        raise SettingsError.single(field, f"not valid JSON ({e})") from None
    if not isinstance(value, dict):
        raise SettingsError.single(field, 'must be a JSON object, e.g. {"lora_alpha": [1.0, 1.4, 2.0]}'
                                   if field == "sweep" else "must be a JSON object")
    return value


def build_sweep_router(service: JobService) -> APIRouter:
    """The sweep routes, bound to the one job service."""
    router = APIRouter()
    sweeps = SweepService(service)

    @router.post("/sweeps", status_code=201, summary="Submit a sweep: one queued job per cell, sharing a group id",
                 responses={413: {"description": "an upload is over a limit"},
                            422: {"description": "bad settings or axes (names the field, e.g. sweep.lora_alpha)"},
                            429: {"description": "the queue has no room for every cell"}})
    def submit(
        settings: str = Form(..., description='JSON object of generation settings, as for POST /api/jobs'),
        sweep: str | None = Form(None, description='JSON object of 1-2 axes with 2-3 values each, e.g. '
                                                   '{"lora_alpha": [1.0, 1.4, 2.0], "noise_multipliers": '
                                                   '[0.1, 0.3, 0.5]}; axes: lora_alpha, noise_multipliers, '
                                                   'steps, seed'),
        images: list[UploadFile] = File(default=[], description="Condition images, in position order"),
        video: UploadFile | None = File(default=None, description="Input video (v2v)"),
    ) -> JSONResponse:
        raw = _json_object(settings, "settings")
        axes = _json_object(sweep, "sweep")
        if "sweep" in raw:
            if axes is not None:
                raise SettingsError.single("sweep", "give the axes either in the sweep field or in the settings")
            axes = raw.pop("sweep")
        if axes is None:
            raise SettingsError.single("sweep", 'missing: give the axes, e.g. {"lora_alpha": [1.0, 1.4, 2.0]}')
        ups = [Upload(field=f"images[{i}]", stream=f.file, filename=f.filename) for i, f in enumerate(images)]
        vid = Upload(field="video", stream=video.file, filename=video.filename) if video is not None else None
        body = sweeps.submit(raw, axes, ups, vid)
        return JSONResponse(body, status_code=201, headers={"Location": f"/api/sweeps/{body['group']}"})

    @router.get("/sweeps/{group}", summary="A sweep's axes and cells: label, values, settings and job of each")
    def get_sweep(group: str) -> dict[str, Any]:
        return sweeps.get(group)

    @router.post("/sweeps/{group}/cancel", summary="Cancel every queued or running cell (finished ones stay)")
    def cancel_sweep(group: str) -> dict[str, Any]:
        return sweeps.cancel(group)

    @router.delete("/sweeps/{group}", summary="Cancel the unfinished cells and delete the finished ones")
    def delete_sweep(group: str) -> dict[str, Any]:
        return sweeps.delete(group)

    return router
