# SPDX-License-Identifier: GPL-3.0-or-later
"""HTTP layer: routes (OpenAI's and the homelab guide's), auth, body limit, metrics, error shapes.

Inference runs on the engine's worker threads; routes only await a Future."""

from __future__ import annotations

import asyncio
import hmac
import json
import logging
import time
from contextlib import asynccontextmanager
from typing import Annotated, Literal

from fastapi import FastAPI, File, Form, Query, Request, UploadFile
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, PlainTextResponse, Response, StreamingResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from pydantic import BaseModel, Field
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import Match

from . import __version__, formats, urlfetch
from .engine import Engine, EngineStats, Job
from .errors import ApiError, TooLarge
from .metrics import DeviceCollector, Metrics
from .result import Transcription
from .settings import Settings

log = logging.getLogger("whisper_api.http")

OPEN_PATHS = {"/health"}


# ------------------------------------------------------------------------------------------------
# ASGI middlewares (pure ASGI: they never buffer or break streaming responses)
# ------------------------------------------------------------------------------------------------
async def _send_error(send, err: ApiError, path: str) -> None:
    body = err.body()
    if not path.startswith("/v1/"):
        body["detail"] = err.message
    raw = json.dumps(body).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(raw)).encode())]
    headers += [(k.lower().encode(), v.encode()) for k, v in err.headers.items()]
    await send({"type": "http.response.start", "status": err.status, "headers": headers})
    await send({"type": "http.response.body", "body": raw})


class BodyLimitMiddleware:
    """413 for bodies over the limit: early from Content-Length, or while a chunked body streams in."""

    def __init__(self, app, limit: int, limit_mb: float) -> None:
        self.app, self.limit, self.limit_mb = app, limit, limit_mb

    def _error(self) -> TooLarge:
        return TooLarge(
            f"the request body is larger than the limit of {self.limit_mb:g} MB (WHISPER_API_MAX_UPLOAD_MB): "
            "send a smaller or compressed file (e.g. 16 kHz mono FLAC or Opus)",
            param="file",
        )

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        for name, value in scope["headers"]:
            if name == b"content-length" and value.isdigit() and int(value) > self.limit:
                return await _send_error(send, self._error(), scope["path"])
        seen = 0
        started = False
        answered = False

        async def counting_receive():
            nonlocal seen, answered
            if answered:
                return {"type": "http.disconnect"}
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.limit and not started:
                    # Answer now; the app sees a disconnected client and whatever it sends is dropped.
                    answered = True
                    await _send_error(send, self._error(), scope["path"])
                    return {"type": "http.disconnect"}
            return message

        async def guarded_send(message):
            nonlocal started
            if answered:
                return
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        await self.app(scope, counting_receive, guarded_send)


class AuthMiddleware:
    """Bearer API keys; 401 in OpenAI's shape. /health (and /metrics when public) stay open."""

    def __init__(self, app, keys: frozenset[str], open_paths: set[str]) -> None:
        self.app, self.keys, self.open_paths = app, [k.encode() for k in keys], open_paths

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http" or not self.keys or scope["path"] in self.open_paths:
            return await self.app(scope, receive, send)
        token = b""
        for name, value in scope["headers"]:
            if name == b"authorization":
                scheme, _sep, rest = value.partition(b" ")
                if scheme.lower() == b"bearer":
                    token = rest.strip()
        if not token:
            err = ApiError(
                "You didn't provide an API key. You need to provide your API key in an Authorization header "
                "using Bearer auth (i.e. Authorization: Bearer YOUR_KEY).",
                status=401, code="missing_api_key",
            )
            return await _send_error(send, err, scope["path"])
        if not any(hmac.compare_digest(token, k) for k in self.keys):
            shown = token.decode(errors="replace")
            shown = shown[:3] + "*" * 4 + shown[-4:] if len(shown) > 8 else "*" * len(shown)
            err = ApiError(f"Incorrect API key provided: {shown}. Use one of the keys in WHISPER_API_KEYS "
                           "or WHISPER_API_KEYS_FILE.", status=401, code="invalid_api_key")
            return await _send_error(send, err, scope["path"])
        return await self.app(scope, receive, send)


class MetricsMiddleware:
    def __init__(self, app, fastapi_app: FastAPI, metrics: Metrics) -> None:
        self.app, self.fastapi_app, self.metrics = app, fastapi_app, metrics

    def _route(self, scope) -> str:
        for route in self.fastapi_app.router.routes:
            match, _child_scope = route.matches(scope)
            if match == Match.FULL:
                return getattr(route, "path", "other")
        return "unmatched"

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        status = 500

        async def capture(message):
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, capture)
        finally:
            self.metrics.requests.labels(self._route(scope), scope["method"], str(status)).inc()


# ------------------------------------------------------------------------------------------------
# Request models
# ------------------------------------------------------------------------------------------------
class UrlRequest(BaseModel):
    url: str = Field(description="http(s) URL of an audio file")
    language: str | None = None
    include_segments: bool | None = None
    task: Literal["transcribe", "translate"] | None = None


def create_app(settings: Settings) -> FastAPI:
    metrics = Metrics()
    engine = Engine(
        settings,
        EngineStats(
            on_audio_seconds=metrics.audio_seconds.inc,
            on_processing_seconds=metrics.processing_seconds.observe,
            on_model_loaded=metrics.model_load_seconds.set,
        ),
    )
    metrics.queue_depth.set_function(lambda: engine.queue_depth)
    metrics.busy_workers.set_function(lambda: engine.busy)
    metrics.model_ready.set_function(lambda: 1 if engine.state == "ready" else 0)

    def device_state() -> tuple[str, str, str]:
        device = engine.device if engine.state != "failed" else "none"
        return device, engine.compute_type if device != "none" else "none", engine.device_wanted

    metrics.registry.register(DeviceCollector(device_state, lambda: engine.nvml.sample(settings.device_index)))
    created = int(time.time())

    @asynccontextmanager
    async def lifespan(_app: FastAPI):
        engine.start()
        try:
            yield
        finally:
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

    # errors --------------------------------------------------------------------------------------
    def error_response(request: Request, err: ApiError) -> JSONResponse:
        body = err.body()
        if not request.url.path.startswith("/v1/"):
            body["detail"] = err.message  # what FastAPI clients of the guide's API read
        return JSONResponse(body, status_code=err.status, headers=err.headers)

    @app.exception_handler(ApiError)
    async def _api_error(request: Request, exc: ApiError):
        return error_response(request, exc)

    @app.exception_handler(RequestValidationError)
    async def _validation(request: Request, exc: RequestValidationError):
        first = exc.errors()[0] if exc.errors() else {}
        loc = [str(p) for p in first.get("loc", ()) if p not in ("body", "query", "path")]
        param = loc[0] if loc else None
        msg = first.get("msg", "invalid request")
        if first.get("type") == "missing":
            msg = f"missing required parameter {param!r}"
        elif param:
            msg = f"invalid value for {param!r}: {msg}"
        return error_response(request, ApiError(msg, param=param))

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException):
        code = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code)
        detail = exc.detail if isinstance(exc.detail, str) else json.dumps(exc.detail)
        if exc.status_code == 404:
            detail = f"Invalid URL ({request.method} {request.url.path})"
        return error_response(request, ApiError(detail, status=exc.status_code, code=code))

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception):
        log.exception("unhandled error on %s", request.url.path)
        return error_response(request, ApiError(f"internal error: {type(exc).__name__}: {exc}", status=500,
                                                type="server_error", code="internal_error"))

    # helpers -------------------------------------------------------------------------------------
    def resolve_model(model: str | None) -> str:
        if model is None or model == "":
            return settings.model_id
        if model in settings.accepted_model_ids():
            return settings.model_id
        raise ApiError(
            f"The model `{model}` does not exist or you do not have access to it. "
            f"This server serves: {', '.join(settings.accepted_model_ids())}.",
            status=404, param="model", code="model_not_found",
        )

    def check_format(response_format: str) -> str:
        if response_format not in formats.RESPONSE_FORMATS:
            raise ApiError(f"{response_format!r} is not one of {list(formats.RESPONSE_FORMATS)} - 'response_format'",
                           param="response_format", code="invalid_value")
        return response_format

    def check_temperature(temperature: float) -> float:
        if not 0.0 <= temperature <= 1.0:
            raise ApiError(f"temperature must be between 0 and 1, got {temperature:g}", param="temperature",
                           code="invalid_value")
        return temperature

    def check_language(language: str | None) -> str | None:
        try:
            return formats.normalize_language(language)
        except ValueError as exc:
            raise ApiError(str(exc), param="language", code="invalid_value") from None

    async def read_upload(file: UploadFile) -> bytes:
        data = await file.read()
        if len(data) > settings.max_upload_bytes:
            raise TooLarge(f"the file is larger than the limit of {settings.max_upload_mb:g} MB "
                           "(WHISPER_API_MAX_UPLOAD_MB)", param="file")
        return data

    async def run(job: Job) -> Transcription:
        return await asyncio.wrap_future(engine.submit(job))

    def render(result: Transcription, response_format: str, granularities: tuple[str, ...]) -> Response:
        body, media = formats.render(result, response_format, granularities)
        if isinstance(body, dict):
            return JSONResponse(body)
        return PlainTextResponse(body, media_type=media)

    async def stream(job: Job, response_format: str) -> Response:
        loop = asyncio.get_running_loop()
        decoded = asyncio.Event()
        segments: asyncio.Queue = asyncio.Queue()
        job.on_decoded = lambda _d: loop.call_soon_threadsafe(decoded.set)
        job.on_segment = lambda seg: loop.call_soon_threadsafe(segments.put_nowait, seg)
        fut = asyncio.wrap_future(engine.submit(job))
        waiter = asyncio.ensure_future(decoded.wait())
        await asyncio.wait({waiter, fut}, return_when=asyncio.FIRST_COMPLETED)
        if fut.done() and fut.exception() is not None:
            waiter.cancel()
            raise fut.exception()  # bad audio: a real 4xx before any byte is streamed

        def event(payload: dict) -> bytes:
            return f"data: {json.dumps(payload)}\n\n".encode()

        async def events():
            texts: list[str] = []
            while True:
                getter = asyncio.ensure_future(segments.get())
                await asyncio.wait({getter, fut}, return_when=asyncio.FIRST_COMPLETED)
                if getter.done():
                    seg = getter.result()
                    texts.append(seg.text)
                    yield event({"type": "transcript.text.delta", "delta": seg.text})
                    continue
                getter.cancel()
                while not segments.empty():
                    seg = segments.get_nowait()
                    texts.append(seg.text)
                    yield event({"type": "transcript.text.delta", "delta": seg.text})
                exc = fut.exception()
                if exc is not None:
                    err = exc if isinstance(exc, ApiError) else ApiError(str(exc), status=500, type="server_error")
                    yield event(err.body())
                    return
                yield event({"type": "transcript.text.done", "text": fut.result().text})
                return

        return StreamingResponse(events(), media_type="text/event-stream",
                                 headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})

    # OpenAI routes -------------------------------------------------------------------------------
    @app.post("/v1/audio/transcriptions", tags=["openai"], summary="Transcribe audio (OpenAI-compatible)")
    async def transcriptions(
        file: Annotated[UploadFile, File(description="Audio: wav, mp3, m4a, flac, ogg, webm, ...")],
        model: Annotated[str | None, Form()] = None,
        language: Annotated[str | None, Form()] = None,
        prompt: Annotated[str | None, Form()] = None,
        response_format: Annotated[str, Form()] = "json",
        temperature: Annotated[float, Form()] = 0.0,
        timestamp_granularities: Annotated[list[str] | None, Form(alias="timestamp_granularities[]")] = None,
        stream_: Annotated[bool, Form(alias="stream")] = False,
    ):
        resolve_model(model)
        check_format(response_format)
        check_temperature(temperature)
        lang = check_language(language)
        grans = tuple(dict.fromkeys(timestamp_granularities or ()))
        for g in grans:
            if g not in formats.GRANULARITIES:
                raise ApiError(f"{g!r} is not one of ['word', 'segment'] - 'timestamp_granularities[]'",
                               param="timestamp_granularities", code="invalid_value")
        if grans and response_format != "verbose_json":
            raise ApiError("timestamp_granularities[] needs response_format=verbose_json",
                           param="timestamp_granularities", code="invalid_value")
        if stream_ and response_format not in ("json", "text"):
            raise ApiError(f"stream=true works with response_format json or text, not {response_format!r}",
                           param="stream", code="invalid_value")
        job = Job(data=await read_upload(file), task="transcribe", language=lang, prompt=prompt,
                  temperature=temperature, word_timestamps="word" in grans)
        if stream_:
            return await stream(job, response_format)
        return render(await run(job), response_format, grans)

    @app.post("/v1/audio/translations", tags=["openai"], summary="Translate audio to English (OpenAI-compatible)")
    async def translations(
        file: Annotated[UploadFile, File()],
        model: Annotated[str | None, Form()] = None,
        prompt: Annotated[str | None, Form()] = None,
        response_format: Annotated[str, Form()] = "json",
        temperature: Annotated[float, Form()] = 0.0,
    ):
        resolve_model(model)
        check_format(response_format)
        check_temperature(temperature)
        job = Job(data=await read_upload(file), task="translate", prompt=prompt, temperature=temperature)
        return render(await run(job), response_format, ())

    def model_card(model_id: str) -> dict:
        return {"id": model_id, "object": "model", "created": created, "owned_by": "whisper-api"}

    @app.get("/v1/models", tags=["openai"])
    async def list_models():
        return {"object": "list", "data": [model_card(m) for m in settings.accepted_model_ids()]}

    @app.get("/v1/models/{model_id:path}", tags=["openai"])
    async def get_model(model_id: str):
        resolve_model(model_id)
        return model_card(model_id)

    # The homelab guide's routes ------------------------------------------------------------------
    def guide(result: Transcription, include_segments: bool) -> dict:
        return formats.guide_response(result, include_segments)

    @app.post("/transcribe", tags=["guide"], summary="Transcribe an uploaded file (homelab guide API)")
    async def transcribe(
        file: Annotated[UploadFile, File()],
        language: Annotated[str | None, Query(description="e.g. en, es, de; empty: detect")] = None,
        include_segments: Annotated[bool, Query(description="include segments with word timestamps")] = False,
        task: Annotated[Literal["transcribe", "translate"], Query()] = "transcribe",
    ):
        job = Job(data=await read_upload(file), task=task, language=check_language(language),
                  word_timestamps=include_segments)
        return guide(await run(job), include_segments)

    @app.post("/transcribe/url", tags=["guide"], summary="Fetch audio from an http(s) URL and transcribe it")
    async def transcribe_url(
        body: UrlRequest,
        language: Annotated[str | None, Query()] = None,
        include_segments: Annotated[bool, Query()] = False,
        task: Annotated[Literal["transcribe", "translate"], Query()] = "transcribe",
    ):
        include = body.include_segments if body.include_segments is not None else include_segments
        lang = check_language(body.language if body.language is not None else language)
        data, _final = await urlfetch.fetch(
            body.url,
            max_bytes=settings.max_upload_bytes,
            timeout_s=settings.url_timeout_s,
            max_redirects=settings.url_max_redirects,
            allow_private=settings.allow_private_urls,
            allowed_networks=settings.url_allowed_networks,
        )
        job = Job(data=data, task=body.task or task, language=lang, word_timestamps=include, name="downloaded file")
        return guide(await run(job), include)

    @app.get("/health", tags=["ops"], summary="Liveness/readiness: 200 once the model serves requests")
    async def health():
        body = {
            "status": {"ready": "healthy"}.get(engine.state, engine.state),
            "model": settings.model_id,
            "device": engine.device_label,
            "gpu_available": engine.gpu_available,
            "compute_type": engine.compute_type,
            "workers": settings.workers,
            "busy_workers": engine.busy,
            "queue_depth": engine.queue_depth,
            "device_wanted": engine.device_wanted,
            "device_reason": engine.device_reason,
            "cuda_libraries": engine.cuda_libraries,
        }
        if engine.error:
            body["error"] = engine.error
        return JSONResponse(body, status_code=200 if engine.state == "ready" else 503)

    @app.get("/metrics", tags=["ops"], summary="Prometheus metrics")
    def prometheus():  # a plain def: FastAPI runs it in its threadpool, so NVML reads stay off the event loop
        return Response(generate_latest(metrics.registry), media_type=CONTENT_TYPE_LATEST)

    open_paths = set(OPEN_PATHS)
    if settings.metrics_public:
        open_paths.add("/metrics")
    app.add_middleware(AuthMiddleware, keys=settings.api_keys(), open_paths=open_paths)
    app.add_middleware(BodyLimitMiddleware, limit=settings.max_upload_bytes + 1024 * 1024,
                       limit_mb=settings.max_upload_mb)
    app.add_middleware(MetricsMiddleware, fastapi_app=app, metrics=metrics)
    return app
