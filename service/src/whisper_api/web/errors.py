# SPDX-License-Identifier: GPL-3.0-or-later
"""The one error renderer: every error the service answers, from a route, a validation failure, the
router (404/405) or a middleware, is an ``ApiError`` rendered here in OpenAI's shape. On the guide's
routes (not under /v1/) the body also carries FastAPI's ``detail`` with the same message."""

from __future__ import annotations

import json
import logging

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field
from starlette.exceptions import HTTPException as StarletteHTTPException

from ..errors import ApiError

log = logging.getLogger("whisper_api.http")


def error_body(err: ApiError, path: str) -> dict:
    body = err.body()
    if not path.startswith("/v1/"):
        body["detail"] = err.message  # what FastAPI clients of the guide's API read
    return body


def error_response(err: ApiError, path: str) -> JSONResponse:
    return JSONResponse(error_body(err, path), status_code=err.status, headers=err.headers)


async def send_error(send, err: ApiError, path: str) -> None:
    """The same response as ``error_response``, sent from a pure ASGI middleware."""
    raw = json.dumps(error_body(err, path)).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(raw)).encode())]
    headers += [(k.lower().encode(), v.encode()) for k, v in err.headers.items()]
    await send({"type": "http.response.start", "status": err.status, "headers": headers})
    await send({"type": "http.response.body", "body": raw})


def install(app: FastAPI) -> None:
    """Route every exception FastAPI and Starlette raise through the renderer."""

    @app.exception_handler(ApiError)
    async def _api_error(request: Request, exc: ApiError):
        return error_response(exc, request.url.path)

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
        return error_response(ApiError(msg, param=param), request.url.path)

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException):
        code = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code)
        detail = exc.detail if isinstance(exc.detail, str) else json.dumps(exc.detail)
        if exc.status_code == 404:
            detail = f"Invalid URL ({request.method} {request.url.path})"
        elif exc.status_code == 405:
            detail = f"{request.method} is not allowed on {request.url.path}; allowed: {(exc.headers or {}).get('Allow')}"
        # exc.headers carries the router's Allow on a 405
        return error_response(ApiError(detail, status=exc.status_code, code=code, headers=dict(exc.headers or {})),
                              request.url.path)

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception):
        log.exception("unhandled error on %s", request.url.path)
        return error_response(ApiError(f"internal error: {type(exc).__name__}: {exc}", status=500,
                                       type="server_error", code="internal_error"), request.url.path)


# OpenAPI: the error body and the responses each route declares ------------------------------------
class ErrorDetail(BaseModel):
    message: str
    type: str = Field(description="invalid_request_error or server_error")
    param: str | None
    code: str | None


class ErrorBody(BaseModel):
    """OpenAI's error shape (the guide's routes add ``detail``, the same message)."""

    error: ErrorDetail
    detail: str | None = Field(None, description="only on the guide's routes: the message again")


WHEN = {
    400: "Bad input: the file (empty, truncated, corrupt, not audio, too long) or a parameter",
    401: "API keys are configured and none or a wrong one was given",
    404: "Unknown model",
    405: "Another method on this path; `Allow` lists the methods it takes",
    413: "The request body or the downloaded file is over WHISPER_API_MAX_UPLOAD_MB",
    415: "The request body is not of the content type this route reads",
    503: "The model is loading or failed, or every worker is busy and the queue is full; see Retry-After",
    504: "Processing took longer than WHISPER_API_MAX_PROCESSING_S",
}
_HEADERS = {
    405: {"Allow": {"description": "the methods this path takes", "schema": {"type": "string"}}},
    503: {"Retry-After": {"description": "seconds to wait before retrying (absent after a failed load)",
                          "schema": {"type": "integer"}}},
}


def responses(*statuses: int) -> dict[int | str, dict]:
    """``responses=`` of a route: each status with its description, error schema and headers."""
    out: dict[int | str, dict] = {}
    for status in statuses:
        entry: dict = {"description": WHEN[status], "model": ErrorBody}
        if status in _HEADERS:
            entry["headers"] = _HEADERS[status]
        out[status] = entry
    return out
