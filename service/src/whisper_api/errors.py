# SPDX-License-Identifier: GPL-3.0-or-later
"""Errors every layer raises; the HTTP layer renders them in OpenAI's error shape."""

from __future__ import annotations


class ApiError(Exception):
    """An error with an HTTP status and OpenAI's ``{"error": {message, type, param, code}}`` fields."""

    status = 400
    type = "invalid_request_error"
    code: str | None = None

    def __init__(
        self,
        message: str,
        *,
        status: int | None = None,
        param: str | None = None,
        code: str | None = None,
        type: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        if status is not None:
            self.status = status
        if type is not None:
            self.type = type
        if code is not None:
            self.code = code
        self.param = param
        self.headers = headers or {}

    def body(self) -> dict:
        return {"error": {"message": self.message, "type": self.type, "param": self.param, "code": self.code}}


class AudioError(ApiError):
    """The uploaded or downloaded audio cannot be used (400)."""

    code = "invalid_audio"


class TooLarge(ApiError):
    status = 413
    code = "file_too_large"


class Busy(ApiError):
    status = 503
    type = "server_error"
    code = "server_busy"


class TimeLimit(ApiError):
    status = 504
    type = "server_error"
    code = "processing_timeout"


class UrlRefused(ApiError):
    code = "invalid_url"
