"""``GET /api/models`` and ``POST /api/model``: the model picker over HTTP (``pusa serve --models-dir``).

Without ``--models-dir`` both answer 404 (the server serves the one model it started with; its
state is in ``/api/health``). A client names a model and a LoRA by the ids the listing gives,
never by path. The switch answers 202 at once; the load runs in the background and its progress
is in ``GET /api/models`` (and the studio's banner).
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field

from pusa.service.engine import ModelBusy

NO_MODELS_DIR = "this server has no --models-dir: it serves only the model it started with"


class ModelChoice(BaseModel):
    """The body of ``POST /api/model``."""

    model_config = ConfigDict(extra="forbid")

    model: str = Field(..., description="a model id from GET /api/models", max_length=300)
    lora: str | None = Field(None, description="a LoRA id from GET /api/models that fits the model; null: none "
                                               "besides the model folder's own default", max_length=300)


def add_model_routes(router: APIRouter, service: Any) -> None:
    """Add the picker's routes to the ``/api`` router of one job service."""

    def missing() -> JSONResponse:
        return JSONResponse({"detail": NO_MODELS_DIR, "errors": [{"field": "models_dir", "message": NO_MODELS_DIR}]},
                            status_code=404)

    @router.get("/models", summary="The models and LoRAs of --models-dir, the current one and its load progress",
                responses={404: {"description": "the server has no --models-dir"}})
    def list_models() -> Any:
        if service.models is None:
            return missing()
        return service.models.public()

    @router.post("/model", status_code=202, summary="Switch the model (loads in the background; queued jobs wait)",
                 responses={404: {"description": "the server has no --models-dir"},
                            409: {"description": "a model is loading already"},
                            422: {"description": "an unknown model or a LoRA that does not fit it; names the field "
                                                 "and the allowed values"}})
    def switch_model(choice: ModelChoice) -> Any:
        if service.models is None:
            return missing()
        try:
            service.models.switch(choice.model, choice.lora)
        except ModelBusy as e:
            return JSONResponse({"detail": str(e), "errors": [{"field": "model", "message": str(e)}]},
                                status_code=409)
        return JSONResponse(service.models.public(), status_code=202)
