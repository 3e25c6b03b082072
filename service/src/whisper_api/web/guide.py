# SPDX-License-Identifier: GPL-3.0-or-later
"""The homelab guide's routes, unchanged for its curl calls and Elixir clients: /transcribe, /transcribe/url."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, File, Query, Request, UploadFile
from pydantic import BaseModel, Field

from .. import formats, urlfetch
from ..engine import Job
from .common import Context
from .errors import responses


class UrlRequest(BaseModel):
    url: str = Field(description="http(s) URL of an audio file")
    language: str | None = None
    include_segments: bool | None = None
    task: Literal["transcribe", "translate"] | None = None


class GuideWord(BaseModel):
    word: str
    start: float
    end: float
    probability: float


class GuideSegment(BaseModel):
    id: int
    start: float
    end: float
    text: str
    words: list[GuideWord]


class GuideResponse(BaseModel):
    text: str
    language: str
    duration: float
    processing_time: float
    segments: list[GuideSegment] | None = Field(description="with include_segments=true")


ERRORS = responses(400, 401, 405, 413, 415, 503, 504)


def router(ctx: Context) -> APIRouter:
    api = APIRouter(tags=["guide"])

    @api.post("/transcribe", summary="Transcribe an uploaded file (homelab guide API)",
              response_model=GuideResponse, responses=ERRORS)
    async def transcribe(
        request: Request,
        file: Annotated[UploadFile, File()],
        language: Annotated[str | None, Query(description="e.g. en, es, de; empty: detect")] = None,
        include_segments: Annotated[bool, Query(description="include segments with word timestamps")] = False,
        task: Annotated[Literal["transcribe", "translate"], Query()] = "transcribe",
    ):
        job = Job(data=await ctx.read_upload(file), task=task, language=ctx.check_language(language),
                  word_timestamps=include_segments)
        return formats.guide_response(await ctx.run(job, request), include_segments)

    @api.post("/transcribe/url", summary="Fetch audio from an http(s) URL and transcribe it",
              response_model=GuideResponse, responses=ERRORS)
    async def transcribe_url(
        request: Request,
        body: UrlRequest,
        language: Annotated[str | None, Query()] = None,
        include_segments: Annotated[bool, Query()] = False,
        task: Annotated[Literal["transcribe", "translate"], Query()] = "transcribe",
    ):
        s = ctx.settings
        include = body.include_segments if body.include_segments is not None else include_segments
        lang = ctx.check_language(body.language if body.language is not None else language)
        data, _final = await urlfetch.fetch(
            body.url,
            max_bytes=s.max_upload_bytes,
            timeout_s=s.url_timeout_s,
            max_redirects=s.url_max_redirects,
            allow_private=s.allow_private_urls,
            allowed_networks=s.url_allowed_networks,
        )
        job = Job(data=data, task=body.task or task, language=lang, word_timestamps=include, name="downloaded file")
        return formats.guide_response(await ctx.run(job, request), include)

    return api
