# SPDX-License-Identifier: GPL-3.0-or-later
"""OpenAI's routes: /v1/audio/transcriptions, /v1/audio/translations, /v1/models."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, File, Form, Request, UploadFile
from pydantic import BaseModel

from .. import formats
from ..engine import Job
from ..errors import ApiError
from .common import Context
from .errors import responses

_TEXT = {"schema": {"type": "string"}}


def _audio_content(stream: bool) -> dict:
    """The bodies a transcription route answers with: JSON (json, verbose_json), text/plain (text, srt),
    text/vtt, and with stream=true text/event-stream."""
    content = {
        "application/json": {"schema": {"type": "object", "required": ["text"],
                                        "properties": {"text": {"type": "string"}}}},
        "text/plain": _TEXT,
        "text/vtt": _TEXT,
    }
    if stream:
        content["text/event-stream"] = {"itemSchema": SSE_EVENT}
    return content


# stream=true: `data: {json}` events (OpenAPI 3.2's itemSchema describes one event): a
# transcript.text.delta per segment, then transcript.text.done, or an error in OpenAI's shape.
SSE_EVENT = {
    "type": "object",
    "required": ["data"],
    "properties": {"data": {"type": "string", "contentMediaType": "application/json", "contentSchema": {"anyOf": [
        {"type": "object", "required": ["type", "delta"],
         "properties": {"type": {"const": "transcript.text.delta"}, "delta": {"type": "string"}}},
        {"type": "object", "required": ["type", "text"],
         "properties": {"type": {"const": "transcript.text.done"}, "text": {"type": "string"}}},
        {"type": "object", "required": ["error"], "properties": {"error": {"type": "object", "required": ["message"]}}},
    ]}}},
}
_BOOLEAN = ("true", "false")


def _doc(**extra):
    """A form field's schema as a multipart body can carry it: a field is sent or left out, never null
    (FastAPI writes ``anyOf: [T, null]`` for an optional one), plus what the route checks itself (so its
    error is OpenAI's 400 naming the param): documentation only."""

    def edit(schema: dict) -> None:
        options = [o for o in schema.pop("anyOf", []) if o.get("type") != "null"]
        if options:
            schema.update(options[0])
        schema.update(extra)

    return edit


OPTIONAL = _doc()
FORMATS_DOC = _doc(enum=list(formats.RESPONSE_FORMATS))
TEMPERATURE_DOC = _doc(minimum=0, maximum=1)
GRANULARITIES_DOC = _doc(type="array", items={"type": "string", "enum": list(formats.GRANULARITIES)})
UPLOAD_ERRORS = responses(400, 401, 404, 405, 413, 415, 503, 504)


class ModelCard(BaseModel):
    id: str
    object: str
    created: int
    owned_by: str


class ModelList(BaseModel):
    object: str
    data: list[ModelCard]


def router(ctx: Context) -> APIRouter:
    api = APIRouter(tags=["openai"])

    @api.post(
        "/v1/audio/transcriptions", summary="Transcribe audio (OpenAI-compatible)", response_model=None,
        responses={200: {"description": "The transcript in the format asked for", "content": _audio_content(True)},
                   **UPLOAD_ERRORS},
    )
    async def transcriptions(
        request: Request,
        file: Annotated[UploadFile, File(description="Audio: wav, mp3, m4a, flac, ogg, webm, ...")],
        model: Annotated[str | None, Form(json_schema_extra=OPTIONAL)] = None,
        language: Annotated[str | None, Form(description="ISO-639-1 code or English name; empty: detect",
                                             json_schema_extra=OPTIONAL)] = None,
        prompt: Annotated[str | None, Form(json_schema_extra=OPTIONAL)] = None,
        response_format: Annotated[str, Form(json_schema_extra=FORMATS_DOC)] = "json",
        temperature: Annotated[float, Form(json_schema_extra=TEMPERATURE_DOC)] = 0.0,
        timestamp_granularities: Annotated[
            list[str] | None,
            Form(alias="timestamp_granularities[]", json_schema_extra=GRANULARITIES_DOC,
                 description="word and/or segment; needs response_format=verbose_json"),
        ] = None,
        stream_: Annotated[str, Form(alias="stream", description="SSE; with response_format json or text",
                                     json_schema_extra=_doc(type="boolean"))] = "false",
    ):
        if stream_ not in _BOOLEAN:
            raise ApiError(f"stream must be true or false, not {stream_!r}", param="stream", code="invalid_value")
        stream = stream_ == "true"
        ctx.resolve_model(model)
        ctx.check_format(response_format)
        ctx.check_temperature(temperature)
        lang = ctx.check_language(language)
        grans = tuple(dict.fromkeys(timestamp_granularities or ()))
        for g in grans:
            if g not in formats.GRANULARITIES:
                raise ApiError(f"{g!r} is not one of ['word', 'segment'] - 'timestamp_granularities[]'",
                               param="timestamp_granularities", code="invalid_value")
        if grans and response_format != "verbose_json":
            raise ApiError("timestamp_granularities[] needs response_format=verbose_json",
                           param="timestamp_granularities", code="invalid_value")
        if stream and response_format not in ("json", "text"):
            raise ApiError(f"stream=true works with response_format json or text, not {response_format!r}",
                           param="stream", code="invalid_value")
        job = Job(data=await ctx.read_upload(file), task="transcribe", language=lang, prompt=prompt,
                  temperature=temperature, word_timestamps="word" in grans)
        if stream:
            return await ctx.stream(job)
        return ctx.render(await ctx.run(job, request), response_format, grans)

    @api.post(
        "/v1/audio/translations", summary="Translate audio to English (OpenAI-compatible)", response_model=None,
        responses={200: {"description": "The English text in the format asked for",
                         "content": _audio_content(False)}, **UPLOAD_ERRORS},
    )
    async def translations(
        request: Request,
        file: Annotated[UploadFile, File()],
        model: Annotated[str | None, Form(json_schema_extra=OPTIONAL)] = None,
        prompt: Annotated[str | None, Form(json_schema_extra=OPTIONAL)] = None,
        response_format: Annotated[str, Form(json_schema_extra=FORMATS_DOC)] = "json",
        temperature: Annotated[float, Form(json_schema_extra=TEMPERATURE_DOC)] = 0.0,
    ):
        ctx.resolve_model(model)
        ctx.check_format(response_format)
        ctx.check_temperature(temperature)
        job = Job(data=await ctx.read_upload(file), task="translate", prompt=prompt, temperature=temperature)
        return ctx.render(await ctx.run(job, request), response_format, ())

    def model_card(model_id: str) -> dict:
        return {"id": model_id, "object": "model", "created": ctx.created, "owned_by": "whisper-api"}

    @api.get("/v1/models", response_model=ModelList, responses=responses(401, 405))
    async def list_models():
        return {"object": "list", "data": [model_card(m) for m in ctx.settings.accepted_model_ids()]}

    @api.get("/v1/models/{model_id:path}", response_model=ModelCard, responses=responses(401, 404, 405))
    async def get_model(model_id: str):
        ctx.resolve_model(model_id)
        return model_card(model_id)

    return api
