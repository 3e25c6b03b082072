# SPDX-License-Identifier: GPL-3.0-or-later
"""Pure ASGI middlewares: they never buffer or break streaming responses (SSE).

Outermost first: metrics (every answer counted), body limit (413), auth (401), admission (415 and 503
before a byte of the body is read)."""

from __future__ import annotations

import hmac

from starlette.routing import BaseRoute, Match

from ..errors import ApiError, TooLarge
from ..metrics import Metrics
from .errors import send_error


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
                return await send_error(send, self._error(), scope["path"])
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
                    await send_error(send, self._error(), scope["path"])
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
            return await send_error(send, err, scope["path"])
        if not any(hmac.compare_digest(token, k) for k in self.keys):
            shown = token.decode(errors="replace")
            shown = shown[:3] + "*" * 4 + shown[-4:] if len(shown) > 8 else "*" * len(shown)
            err = ApiError(f"Incorrect API key provided: {shown}. Use one of the keys in WHISPER_API_KEYS "
                           "or WHISPER_API_KEYS_FILE.", status=401, code="invalid_api_key")
            return await send_error(send, err, scope["path"])
        return await self.app(scope, receive, send)


class AdmissionMiddleware:
    """Answers a POST to a transcription route that cannot be served before its body is read: 415 for a
    body of the wrong content type, 503 + Retry-After while the model loads or when every worker is busy
    and the queue is full (the engine's own refusal). Under overload, clients that retry at once would
    otherwise have every upload parsed (multipart) on the event loop only to be refused; refused here,
    the server reads none of it (uvicorn discards the unread body) and /health keeps answering."""

    def __init__(self, app, engine, content_types: dict[str, tuple[str, ...]]) -> None:
        self.app, self.engine, self.content_types = app, engine, content_types

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http" or scope["method"] != "POST" or scope["path"] not in self.content_types:
            return await self.app(scope, receive, send)
        path = scope["path"]
        wanted = self.content_types[path]
        for name, value in scope["headers"]:
            if name == b"content-type":
                media = value.split(b";", 1)[0].strip().lower().decode("latin-1")
                if media and media not in wanted:
                    err = ApiError(f"this route reads {' or '.join(wanted)}, not {media}", status=415,
                                   code="unsupported_media_type")
                    return await send_error(send, err, path)
        refusal = self.engine.refusal()
        if refusal is not None:
            return await send_error(send, refusal, path)
        return await self.app(scope, receive, send)


class MetricsMiddleware:
    """``whisper_api_requests_total{protocol="http",route,method,status}``: the route is the path template of the route
    the request matches (also when a middleware answered it: 401, 413, 503), "unmatched" for none and
    for a method the path does not take, so request paths never become labels."""

    def __init__(self, app, metrics: Metrics, routes: list[BaseRoute]) -> None:
        self.app, self.metrics, self.routes = app, metrics, routes

    def _route(self, scope) -> str:
        for route in self.routes:
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
            self.metrics.requests.labels("http", self._route(scope), scope["method"], str(status)).inc()
