# SPDX-License-Identifier: GPL-3.0-or-later
"""Operations: /health (never behind a key) and /metrics (Prometheus)."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from pydantic import BaseModel, Field

from .common import Context
from .errors import responses


class Health(BaseModel):
    status: str = Field(description="healthy; loading or failed (503)")
    model: str
    device: str
    gpu_available: bool
    compute_type: str
    workers: int
    busy_workers: int
    queue_depth: int
    device_wanted: str
    device_reason: str | None
    cuda_libraries: dict[str, str | None]
    error: str | None = Field(None, description="after a failed load: why")


def router(ctx: Context) -> APIRouter:
    api = APIRouter(tags=["ops"])
    engine, settings = ctx.engine, ctx.settings

    @api.get("/health", summary="Liveness/readiness: 200 once the model serves requests", response_model=Health,
             responses={503: {"model": Health, "description": "The model is loading, or failed to load (error)"},
                        **responses(405)})
    async def health():
        body = {
            "status": {"ready": "healthy"}.get(engine.state, engine.state),
            "model": settings.model_id,
            "device": engine.device_label,
            "gpu_available": engine.gpu_available,
            "compute_type": engine.compute_type,
            "workers": engine.workers,
            "busy_workers": engine.busy,
            "queue_depth": engine.queue_depth,
            "device_wanted": engine.device_wanted,
            "device_reason": engine.device_reason,
            "cuda_libraries": engine.cuda_libraries,
        }
        if engine.error:
            body["error"] = engine.error
        return JSONResponse(body, status_code=200 if engine.state == "ready" else 503)

    @api.get("/metrics", summary="Prometheus metrics", response_class=Response,
             responses={200: {"description": "Prometheus text exposition format",
                              "content": {"text/plain": {"schema": {"type": "string"}}}},
                        **responses(401, 405)})
    def prometheus():  # a plain def: FastAPI runs it in its threadpool, so NVML reads stay off the event loop
        return Response(generate_latest(ctx.metrics.registry), media_type=CONTENT_TYPE_LATEST)

    return api
