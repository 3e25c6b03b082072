# SPDX-License-Identifier: GPL-3.0-or-later
"""What the routes of every API area share: the engine they talk to, parameter checks, uploads,
waiting for a job, rendering, SSE."""

from __future__ import annotations

import asyncio
import concurrent.futures
import json
from dataclasses import dataclass
from typing import Protocol

from fastapi import Request, UploadFile
from fastapi.responses import JSONResponse, PlainTextResponse, Response, StreamingResponse

from .. import formats
from ..engine import EngineStats, Job
from ..errors import ApiError, TooLarge
from ..metrics import Metrics
from ..result import Transcription
from ..settings import Settings


class EngineLike(Protocol):
    """What the HTTP layer uses of the engine (``whisper_api.engine.Engine``): its state for /health and
    /metrics, ``refusal()`` (the error ``submit`` would raise now, or None) and ``submit(job)``, which
    returns a concurrent Future of a ``Transcription`` and calls ``job.on_decoded``/``job.on_segment``."""

    state: str  # loading, ready, failed
    error: str | None
    device: str
    device_label: str
    compute_type: str
    gpu_available: bool
    device_wanted: str
    device_reason: str | None
    cuda_libraries: dict[str, str | None]
    busy: int
    workers: int  # inference workers (resolved when the model loads: WORKERS=0 is auto)
    stats: EngineStats
    languages: list[str]  # what the served model transcribes (the Wyoming server's info)

    @property
    def queue_depth(self) -> int: ...
    def start(self) -> None: ...
    def stop(self) -> None: ...
    def refusal(self) -> ApiError | None: ...
    def submit(self, job: Job) -> concurrent.futures.Future: ...
    def gpu_sample(self, index: int) -> object | None: ...


@dataclass
class Context:
    settings: Settings
    engine: EngineLike
    metrics: Metrics
    created: int  # the model cards' "created"

    # parameter checks --------------------------------------------------------------------------
    def resolve_model(self, model: str | None) -> str:
        s = self.settings
        if model is None or model == "":
            return s.model_id
        if model in s.accepted_model_ids():
            return s.model_id
        raise ApiError(
            f"The model `{model}` does not exist or you do not have access to it. "
            f"This server serves: {', '.join(s.accepted_model_ids())}.",
            status=404, param="model", code="model_not_found",
        )

    @staticmethod
    def check_format(response_format: str) -> str:
        if response_format not in formats.RESPONSE_FORMATS:
            raise ApiError(f"{response_format!r} is not one of {list(formats.RESPONSE_FORMATS)} - 'response_format'",
                           param="response_format", code="invalid_value")
        return response_format

    @staticmethod
    def check_temperature(temperature: float) -> float:
        if not 0.0 <= temperature <= 1.0:
            raise ApiError(f"temperature must be between 0 and 1, got {temperature:g}", param="temperature",
                           code="invalid_value")
        return temperature

    @staticmethod
    def check_language(language: str | None) -> str | None:
        try:
            return formats.normalize_language(language)
        except ValueError as exc:
            raise ApiError(str(exc), param="language", code="invalid_value") from None

    # work --------------------------------------------------------------------------------------
    async def read_upload(self, file: UploadFile) -> bytes:
        data = await file.read()
        if len(data) > self.settings.max_upload_bytes:
            raise TooLarge(f"the file is larger than the limit of {self.settings.max_upload_mb:g} MB "
                           "(WHISPER_API_MAX_UPLOAD_MB)", param="file")
        return data

    async def run(self, job: Job, request: Request | None = None) -> Transcription:
        """Wait for the job's result. When the client goes away first, the job is cancelled (the engine
        drops what is left of it) and the request ends as 499, which nobody receives but /metrics counts."""
        fut = asyncio.wrap_future(self.engine.submit(job))
        if request is None:
            return await fut
        gone = asyncio.ensure_future(_disconnected(request))
        try:
            await asyncio.wait({fut, gone}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            gone.cancel()
        if not fut.done():
            fut.cancel()  # cancels the engine's Future too
            raise ApiError("the client closed the connection; the transcription was cancelled", status=499,
                           type="client_closed", code="client_closed_request")
        return fut.result()

    @staticmethod
    def render(result: Transcription, response_format: str, granularities: tuple[str, ...]) -> Response:
        body, media = formats.render(result, response_format, granularities)
        if isinstance(body, dict):
            return JSONResponse(body)
        return PlainTextResponse(body, media_type=media)

    async def stream(self, job: Job) -> Response:
        """SSE: ``transcript.text.delta`` per segment, then ``transcript.text.done`` (or an error event).
        Bad audio is a real 4xx: nothing is streamed before the engine has decoded the file."""
        loop = asyncio.get_running_loop()
        decoded = asyncio.Event()
        segments: asyncio.Queue = asyncio.Queue()
        job.on_decoded = lambda _d: loop.call_soon_threadsafe(decoded.set)
        job.on_segment = lambda seg: loop.call_soon_threadsafe(segments.put_nowait, seg)
        fut = asyncio.wrap_future(self.engine.submit(job))
        waiter = asyncio.ensure_future(decoded.wait())
        await asyncio.wait({waiter, fut}, return_when=asyncio.FIRST_COMPLETED)
        if fut.done() and fut.exception() is not None:
            waiter.cancel()
            raise fut.exception()

        def event(payload: dict) -> bytes:
            return f"data: {json.dumps(payload)}\n\n".encode()

        async def events():
            while True:
                getter = asyncio.ensure_future(segments.get())
                await asyncio.wait({getter, fut}, return_when=asyncio.FIRST_COMPLETED)
                if getter.done():
                    yield event({"type": "transcript.text.delta", "delta": getter.result().text})
                    continue
                getter.cancel()
                while not segments.empty():
                    yield event({"type": "transcript.text.delta", "delta": segments.get_nowait().text})
                exc = fut.exception()
                if exc is not None:
                    err = exc if isinstance(exc, ApiError) else ApiError(str(exc), status=500, type="server_error")
                    yield event(err.body())
                    return
                yield event({"type": "transcript.text.done", "text": fut.result().text})
                return

        async def events_until_gone():
            try:
                async for chunk in events():
                    yield chunk
            finally:  # the client went away (Starlette cancels the stream): so does the job
                if not fut.done():
                    fut.cancel()

        return StreamingResponse(events_until_gone(), media_type="text/event-stream",
                                 headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})


async def _disconnected(request: Request) -> None:
    """Return when the client disconnects. Its body was read already, so that is the only message an ASGI
    server has left; any other (a server that sends the body again) ends the watch, which then never returns."""
    if (await request.receive())["type"] != "http.disconnect":
        await asyncio.Event().wait()
