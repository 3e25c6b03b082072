# SPDX-License-Identifier: GPL-3.0-or-later
"""The application: settings + an engine + the HTTP layer's parts (``whisper_api.web``) and, with
WHISPER_API_WYOMING, the Wyoming server on the same engine and event loop (``whisper_api.wyoming_server``).

``create_app(settings)`` builds the real engine; ``create_app(settings, engine)`` serves a given one
(the HTTP-layer tests pass a stand-in). Inference runs on the engine's worker threads; routes only
await a Future."""

from __future__ import annotations

import time
from contextlib import asynccontextmanager

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi

from . import __version__
from .engine import Engine, EngineStats
from .metrics import DeviceCollector, Metrics
from .settings import Settings
from .web import errors, guide, ops, openai
from .web.common import Context, EngineLike
from .web.middleware import AdmissionMiddleware, AuthMiddleware, BodyLimitMiddleware, MetricsMiddleware
from .wyoming_server import WyomingServer

OPEN_PATHS = {"/health"}
UPLOAD_TYPES = ("multipart/form-data", "application/x-www-form-urlencoded")
# The POST routes whose bodies are only read when the engine can take the job, and what they read.
ADMITTED = {
    "/v1/audio/transcriptions": UPLOAD_TYPES,
    "/v1/audio/translations": UPLOAD_TYPES,
    "/transcribe": UPLOAD_TYPES,
    "/transcribe/url": ("application/json",),
}


def create_app(settings: Settings, engine: EngineLike | None = None) -> FastAPI:
    """The service's ASGI app. Without ``engine`` it builds the real one from ``settings``; a given engine
    is served as it is, its ``stats`` wired to this app's metrics. The lifespan starts and stops it."""
    metrics = Metrics()
    stats = EngineStats(
        on_audio_seconds=lambda seconds, protocol: metrics.audio_seconds.labels(protocol).inc(seconds),
        on_processing_seconds=lambda seconds, protocol: metrics.processing_seconds.labels(protocol).observe(seconds),
        on_model_loaded=metrics.model_load_seconds.set,
    )
    if engine is None:
        engine = Engine(settings, stats)
    else:
        engine.stats = stats
    metrics.queue_depth.set_function(lambda: engine.queue_depth)
    metrics.busy_workers.set_function(lambda: engine.busy)
    metrics.model_ready.set_function(lambda: 1 if engine.state == "ready" else 0)

    def device_state() -> tuple[str, str, str]:
        device = engine.device if engine.state != "failed" else "none"
        return device, engine.compute_type if device != "none" else "none", engine.device_wanted

    metrics.registry.register(DeviceCollector(device_state, lambda: engine.gpu_sample(settings.device_index)))

    @asynccontextmanager
    async def lifespan(_app: FastAPI):
        engine.start()
        wyoming = WyomingServer(settings, engine, metrics) if settings.wyoming else None
        try:
            if wyoming is not None:
                await wyoming.start()
            yield
        finally:
            if wyoming is not None:
                await wyoming.stop()
            engine.stop()

    app = FastAPI(
        title="whisper-api",
        version=__version__,
        description="OpenAI-compatible speech-to-text on faster-whisper, plus the homelab guide's routes.",
        lifespan=lifespan,
    )
    app.state.engine = engine
    app.state.settings = settings
    app.state.metrics = metrics
    ctx = Context(settings=settings, engine=engine, metrics=metrics, created=int(time.time()))
    errors.install(app)
    routes = [r for r in app.router.routes if getattr(r, "path", None)]  # /docs, /openapi.json, ...
    for area in (openai, guide, ops):
        area_router = area.router(ctx)
        routes += area_router.routes
        app.include_router(area_router)
    open_paths = set(OPEN_PATHS)
    if settings.metrics_public:
        open_paths.add("/metrics")
    keys = settings.api_keys()
    app.openapi = lambda: _openapi(app, open_paths if keys else None)

    app.add_middleware(AdmissionMiddleware, engine=engine, content_types=ADMITTED)
    app.add_middleware(AuthMiddleware, keys=keys, open_paths=open_paths)
    app.add_middleware(BodyLimitMiddleware, limit=settings.max_upload_bytes + 1024 * 1024,
                       limit_mb=settings.max_upload_mb)
    app.add_middleware(MetricsMiddleware, metrics=metrics, routes=routes)
    return app


def _openapi(app: FastAPI, open_paths: set[str] | None) -> dict:
    """FastAPI's document without its 422 responses (a validation failure is answered 400 in OpenAI's
    shape, web.errors, and each route declares its 400) and, when API keys are configured (open_paths
    given), with the Bearer scheme on every route but the open ones; 401 only where it can happen."""
    if app.openapi_schema is None:
        doc = get_openapi(title=app.title, version=app.version, description=app.description, routes=app.routes)
        for path, item in doc["paths"].items():
            for operation in item.values():
                operation.get("responses", {}).pop("422", None)
                if open_paths is not None and path not in open_paths:
                    operation["security"] = [{"apiKey": []}]
                else:  # no keys, or an open route: never 401
                    operation.get("responses", {}).pop("401", None)
        if open_paths is not None:
            doc.setdefault("components", {})["securitySchemes"] = {"apiKey": {
                "type": "http", "scheme": "bearer",
                "description": "one of WHISPER_API_KEYS / WHISPER_API_KEYS_FILE"}}
        for name in ("HTTPValidationError", "ValidationError"):
            doc.get("components", {}).get("schemas", {}).pop(name, None)
        app.openapi_schema = doc
    return app.openapi_schema
