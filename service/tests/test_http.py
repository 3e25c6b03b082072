# SPDX-License-Identifier: GPL-3.0-or-later
"""The HTTP layer in-process, in milliseconds: auth, limits, admission, error shapes, formats, SSE framing.

The engine here is a STAND-IN (standin.py), for HTTP-layer tests only: it returns a fixed transcript.
Every behaviour that involves the model is tested with the real tiny.en model in the slow tier."""

from __future__ import annotations

import asyncio
import json

import pytest
from fastapi.testclient import TestClient
from standin import TEXT, StandInEngine

from whisper_api.app import create_app
from whisper_api.errors import ApiError, Busy, TimeLimit
from whisper_api.settings import Settings

KEY = "sk-http-test-0123456789"
AUDIO = b"not decoded by the stand-in"


def make(engine: StandInEngine | None = None, **settings) -> tuple[TestClient, StandInEngine]:
    engine = engine or StandInEngine()
    app = create_app(Settings(model="/nonexistent", served_model_name="tiny.en", **settings), engine)
    return TestClient(app, raise_server_exceptions=False), engine


@pytest.fixture
def client():
    c, engine = make()
    with c:
        yield c, engine
    assert engine.started and engine.stopped, "the lifespan starts and stops the injected engine"


def assert_error(r, status: int, fragment: str, *, code: str | None = None, param: str | None = None,
                 guide: bool = False) -> dict:
    assert r.status_code == status, r.text
    assert r.headers["content-type"] == "application/json"
    body = r.json()
    err = body["error"]
    assert set(err) == {"message", "type", "param", "code"}
    assert fragment in err["message"], err["message"]
    if code is not None:
        assert err["code"] == code
    if param is not None:
        assert err["param"] == param
    assert ("detail" in body) is guide and (not guide or body["detail"] == err["message"])
    return err


# auth --------------------------------------------------------------------------------------------
PROTECTED = [("GET", "/v1/models"), ("GET", "/v1/models/whisper-1"), ("POST", "/v1/audio/transcriptions"),
             ("POST", "/v1/audio/translations"), ("POST", "/transcribe"), ("POST", "/transcribe/url"),
             ("GET", "/metrics"), ("GET", "/docs"), ("GET", "/openapi.json")]


@pytest.mark.parametrize("method, path", PROTECTED)
def test_auth(method, path):
    c, _engine = make(keys=[KEY])
    missing = c.request(method, path)
    wrong = c.request(method, path, headers={"Authorization": "Bearer sk-wrong-key-000000"})
    assert_error(missing, 401, "Authorization: Bearer", code="missing_api_key", guide=not path.startswith("/v1/"))
    err = assert_error(wrong, 401, "Incorrect API key provided: sk-****0000", code="invalid_api_key",
                       guide=not path.startswith("/v1/"))
    assert KEY not in err["message"]
    assert c.get("/health").status_code == 200
    if method == "GET":
        assert c.get(path, headers={"Authorization": f"Bearer {KEY}"}).status_code == 200


def test_metrics_public_needs_no_key():
    c, _engine = make(keys=[KEY], metrics_public=True)
    assert c.get("/metrics").status_code == 200
    assert c.get("/v1/models").status_code == 401


# limits and admission ----------------------------------------------------------------------------
def test_body_over_the_limit_is_413_from_content_length_and_while_streaming():
    c, engine = make(max_upload_mb=0.01)  # the middleware allows the limit + 1 MB of form overhead
    big = b"x" * (1024 * 1024 + 20000)
    r = c.post("/v1/audio/transcriptions", files={"file": ("a.wav", big)})
    assert_error(r, 413, "larger than the limit of 0.01 MB (WHISPER_API_MAX_UPLOAD_MB)", code="file_too_large")
    head = b'--zzz\r\nContent-Disposition: form-data; name="file"; filename="a.wav"\r\n\r\n'
    r = c.post("/transcribe", content=iter([head] + [b"x" * 65536] * 20 + [b"\r\n--zzz--\r\n"]),
               headers={"content-type": "multipart/form-data; boundary=zzz"})
    assert_error(r, 413, "larger than the limit of 0.01 MB", guide=True)
    # under the body limit but over MAX_UPLOAD_MB once the file is read
    r = c.post("/v1/audio/transcriptions", files={"file": ("a.wav", b"x" * 20000)})
    assert_error(r, 413, "the file is larger than the limit of 0.01 MB", param="file")
    assert engine.jobs == []


def _asgi_post(app, path: str, body: bytes, content_type: bytes) -> tuple[int, dict, bytes, int]:
    """POST through the ASGI interface; returns status, headers, body and how often the app read the body."""
    reads = 0
    sent: list[dict] = []

    async def receive():
        nonlocal reads
        reads += 1
        return {"type": "http.request", "body": body, "more_body": False}

    async def send(message):
        sent.append(message)

    scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "POST", "scheme": "http",
             "path": path, "raw_path": path.encode(), "query_string": b"", "root_path": "",
             "headers": [(b"content-type", content_type), (b"content-length", str(len(body)).encode())],
             "client": ("127.0.0.1", 1), "server": ("127.0.0.1", 80)}
    asyncio.run(app(scope, receive, send))
    start = next(m for m in sent if m["type"] == "http.response.start")
    return (start["status"], {k.decode(): v.decode() for k, v in start["headers"]},
            b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body"), reads)


@pytest.mark.parametrize("path", ["/v1/audio/transcriptions", "/v1/audio/translations", "/transcribe"])
def test_a_refused_upload_is_answered_before_its_body_is_read(path):
    """The engine's refusal (queue full, loading) is answered 503 + Retry-After without reading the body:
    overloaded, the server does not parse uploads it cannot take (what keeps /health fast)."""
    engine = StandInEngine()
    engine.refuse = Busy("all 1 worker(s) are busy and 2 request(s) wait (WHISPER_API_QUEUE_SIZE); retry later",
                         headers={"Retry-After": "15"})
    app = create_app(Settings(model="/nonexistent"), engine)
    body = b'--b\r\nContent-Disposition: form-data; name="file"; filename="a.wav"\r\n\r\n' + AUDIO + b"\r\n--b--\r\n"
    status, headers, raw, reads = _asgi_post(app, path, body, b"multipart/form-data; boundary=b")
    assert (status, headers["retry-after"], reads) == (503, "15", 0)
    assert json.loads(raw)["error"]["code"] == "server_busy"
    engine.refuse = None
    status, _headers, raw, reads = _asgi_post(app, path, body, b"multipart/form-data; boundary=b")
    assert status == 200 and reads >= 1, raw
    assert engine.jobs and engine.jobs[-1].data == AUDIO


@pytest.mark.parametrize("path", ["/v1/audio/transcriptions", "/v1/audio/translations", "/transcribe"])
def test_a_client_that_goes_away_cancels_its_job(path):
    """The client disconnects while its job waits: the route cancels the job's Future (the engine drops its
    windows) and ends the request as 499, which /metrics counts."""
    engine = StandInEngine()
    engine.hold = True
    app = create_app(Settings(model="/nonexistent"), engine)
    body = b'--b\r\nContent-Disposition: form-data; name="file"; filename="a.wav"\r\n\r\n' + AUDIO + b"\r\n--b--\r\n"
    messages = iter([{"type": "http.request", "body": body, "more_body": False}])
    sent: list[dict] = []

    async def receive():
        message = next(messages, None)
        if message is not None:
            return message
        await asyncio.sleep(0.2)  # the client waits a moment, then goes away
        return {"type": "http.disconnect"}

    async def send(message):
        sent.append(message)

    scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "POST", "scheme": "http",
             "path": path, "raw_path": path.encode(), "query_string": b"", "root_path": "",
             "headers": [(b"content-type", b"multipart/form-data; boundary=b"),
                         (b"content-length", str(len(body)).encode())],
             "client": ("127.0.0.1", 1), "server": ("127.0.0.1", 80)}
    asyncio.run(asyncio.wait_for(app(scope, receive, send), 10))
    assert engine.jobs and engine.jobs[-1].future.cancelled()
    start = next(m for m in sent if m["type"] == "http.response.start")
    assert start["status"] == 499
    with TestClient(app) as c:
        assert f'method="POST",protocol="http",route="{path}",status="499"' in c.get("/metrics").text


def test_loading_and_failed_engine():
    engine = StandInEngine(state="loading")
    engine.refuse = Busy("the model is still loading; retry in a few seconds", headers={"Retry-After": "5"})
    c, _engine = make(engine)
    assert c.get("/health").status_code == 503 and c.get("/health").json()["status"] == "loading"
    r = c.post("/v1/audio/transcriptions", files={"file": ("a.wav", AUDIO)})
    assert_error(r, 503, "still loading", code="server_busy")
    assert r.headers["retry-after"] == "5"
    engine.state, engine.error = "failed", "could not load model"
    engine.refuse = ApiError("the model is not available: could not load model", status=503, type="server_error",
                             code="model_unavailable")
    health = c.get("/health")
    assert health.status_code == 503 and health.json()["error"] == "could not load model"
    r = c.post("/transcribe/url", json={"url": "http://example.invalid/a.flac"})
    assert_error(r, 503, "not available", code="model_unavailable", guide=True)
    assert "retry-after" not in r.headers


@pytest.mark.parametrize("path, content_type, wanted", [
    ("/v1/audio/transcriptions", "application/json", "multipart/form-data"),
    ("/transcribe", "text/plain", "multipart/form-data"),
    ("/transcribe/url", "text/plain", "application/json"),
])
def test_wrong_content_type_is_415(client, path, content_type, wanted):
    c, engine = client
    r = c.post(path, content=b"{}", headers={"content-type": content_type})
    assert_error(r, 415, f"this route reads {wanted}", code="unsupported_media_type", guide=not path.startswith("/v1/"))
    assert engine.jobs == []


# error shapes ------------------------------------------------------------------------------------
def test_error_shapes(client):
    c, engine = client
    assert_error(c.get("/v1/nothing"), 404, "Invalid URL (GET /v1/nothing)", code="not_found")
    assert_error(c.get("/nothing"), 404, "Invalid URL (GET /nothing)", code="not_found", guide=True)
    assert_error(c.post("/v1/audio/transcriptions", data={"model": "whisper-1"}), 400,
                 "missing required parameter 'file'", param="file")
    assert_error(c.post("/v1/audio/transcriptions", files={"file": ("a", AUDIO)}, data={"model": "gpt-4o"}), 404,
                 "The model `gpt-4o` does not exist", code="model_not_found", param="model")
    assert_error(c.get("/v1/models/gpt-4o"), 404, "does not exist", code="model_not_found")
    assert_error(c.post("/v1/audio/transcriptions", files={"file": ("a", AUDIO)}, data={"response_format": "xml"}),
                 400, "'xml' is not one of", param="response_format")
    assert_error(c.post("/v1/audio/transcriptions", files={"file": ("a", AUDIO)}, data={"temperature": "3"}),
                 400, "between 0 and 1", param="temperature")
    assert_error(c.post("/v1/audio/transcriptions", files={"file": ("a", AUDIO)}, data={"temperature": "hot"}),
                 400, "invalid value for 'temperature'", param="temperature")
    assert_error(c.post("/transcribe", params={"language": "elvish"}, files={"file": ("a", AUDIO)}),
                 400, "unknown language 'elvish'", param="language", guide=True)
    assert_error(c.post("/transcribe", params={"task": "summarize"}, files={"file": ("a", AUDIO)}),
                 400, "invalid value for 'task'", param="task", guide=True)
    assert_error(c.post("/v1/audio/transcriptions", files={"file": ("a", AUDIO)},
                        data={"response_format": "srt", "stream": "true"}), 400, "stream=true works with", param="stream")
    assert_error(c.post("/v1/audio/transcriptions", files={"file": ("a", AUDIO)},
                        data={"timestamp_granularities[]": "word"}), 400, "needs response_format=verbose_json")
    assert_error(c.post("/v1/audio/transcriptions", files={"file": ("a", AUDIO)}, data={"stream": "1"}), 400,
                 "stream must be true or false, not '1'", param="stream")
    assert engine.jobs == [], "a request with a bad parameter never reaches the engine"


@pytest.mark.parametrize("method, path, allow", [
    ("GET", "/v1/audio/transcriptions", "POST"), ("DELETE", "/transcribe", "POST"), ("POST", "/health", "GET"),
    ("PUT", "/v1/models", "GET"), ("POST", "/metrics", "GET"),
])
def test_405_names_the_allowed_methods(client, method, path, allow):
    c, _engine = client
    r = c.request(method, path)
    assert_error(r, 405, f"{method} is not allowed on {path}", code="method_not_allowed",
                 guide=not path.startswith("/v1/"))
    assert sorted(r.headers["allow"].split(", ")) == sorted(allow.split(", "))


def test_engine_errors_are_rendered(client):
    c, engine = client
    engine.fail_before = ApiError("the file is empty (0 bytes)", param="file", code="invalid_audio")
    assert_error(c.post("/v1/audio/transcriptions", files={"file": ("a", b"")}), 400, "is empty", code="invalid_audio")
    engine.fail_before = TimeLimit("transcription exceeded the processing time limit")
    assert_error(c.post("/transcribe", files={"file": ("a", AUDIO)}), 504, "time limit", code="processing_timeout",
                 guide=True)
    engine.fail_before = RuntimeError("boom")
    assert_error(c.post("/v1/audio/translations", files={"file": ("a", AUDIO)}), 500, "RuntimeError: boom",
                 code="internal_error")


# formats -----------------------------------------------------------------------------------------
def test_formats(client):
    c, engine = client

    def post(**data):
        return c.post("/v1/audio/transcriptions", files={"file": ("a.wav", AUDIO)}, data=data)

    r = post()
    assert r.headers["content-type"] == "application/json" and r.json()["text"] == TEXT
    assert r.json()["usage"] == {"type": "duration", "seconds": 3}
    r = post(response_format="text")
    assert r.headers["content-type"] == "text/plain; charset=utf-8" and r.text == TEXT + "\n"
    r = post(response_format="srt")
    assert r.headers["content-type"] == "text/plain; charset=utf-8"
    assert r.text.startswith("1\n00:00:00,000 --> 00:00:01,500\nHello there.\n\n2\n00:00:01,500 --> 00:00:03,000\n")
    r = post(response_format="vtt")
    assert r.headers["content-type"] == "text/vtt; charset=utf-8" and r.text.startswith("WEBVTT\n\n00:00:00.000 -->")
    r = post(response_format="verbose_json", **{"timestamp_granularities[]": ["word", "segment"]})
    body = r.json()
    assert body["task"] == "transcribe" and body["duration"] == 3.0 and len(body["segments"]) == 2
    assert [w["word"] for w in body["words"]] == ["Hello", "there.", "General", "Kenobi."]
    assert engine.jobs[-1].word_timestamps is True and engine.jobs[-2].word_timestamps is False
    r = c.post("/v1/audio/translations", files={"file": ("a.wav", AUDIO)}, data={"response_format": "vtt"})
    assert r.status_code == 200 and r.headers["content-type"] == "text/vtt; charset=utf-8"
    assert engine.jobs[-1].task == "translate"
    r = c.post("/transcribe", params={"include_segments": "true", "language": "German", "task": "translate"},
               files={"file": ("a.wav", AUDIO)})
    body = r.json()
    assert set(body) == {"text", "language", "duration", "processing_time", "segments"}
    assert body["segments"][1]["words"][1] == {"word": "Kenobi.", "start": 2.2, "end": 3.0, "probability": 0.7}
    assert (engine.jobs[-1].language, engine.jobs[-1].task) == ("de", "translate")
    models = c.get("/v1/models").json()
    assert [m["id"] for m in models["data"]] == ["tiny.en", "whisper-1"]
    assert c.get("/v1/models/whisper-1").json()["id"] == "whisper-1"


# SSE ---------------------------------------------------------------------------------------------
def _events(r) -> list[dict]:
    assert r.headers["content-type"].startswith("text/event-stream")
    assert r.headers["cache-control"] == "no-cache"
    frames = r.text.split("\n\n")
    assert frames[-1] == "", "every event ends with a blank line"
    out = []
    for frame in frames[:-1]:
        assert frame.startswith("data: ") and "\n" not in frame, frame
        out.append(json.loads(frame[len("data: "):]))
    return out


def test_sse_framing(client):
    c, engine = client
    r = c.post("/v1/audio/transcriptions", files={"file": ("a.wav", AUDIO)}, data={"stream": "true"})
    assert r.status_code == 200
    assert _events(r) == [
        {"type": "transcript.text.delta", "delta": " Hello there."},
        {"type": "transcript.text.delta", "delta": " General Kenobi."},
        {"type": "transcript.text.done", "text": TEXT},
    ]
    engine.fail_after = TimeLimit("transcription exceeded the processing time limit")
    events = _events(c.post("/v1/audio/transcriptions", files={"file": ("a.wav", AUDIO)}, data={"stream": "true"}))
    assert [e.get("type") for e in events[:2]] == ["transcript.text.delta"] * 2
    assert events[2]["error"]["code"] == "processing_timeout"
    engine.fail_after, engine.fail_before = None, ApiError("the file is empty (0 bytes)", code="invalid_audio")
    r = c.post("/v1/audio/transcriptions", files={"file": ("a.wav", b"")}, data={"stream": "true"})
    assert_error(r, 400, "is empty", code="invalid_audio")  # before any byte is streamed: a real 4xx


# operations --------------------------------------------------------------------------------------
def test_health_and_metrics(client):
    c, _engine = client
    health = c.get("/health")
    assert health.status_code == 200
    assert health.json() == {"status": "healthy", "model": "tiny.en", "device": "cpu", "gpu_available": False,
                             "compute_type": "int8", "workers": 1, "busy_workers": 0, "queue_depth": 0,
                             "device_wanted": "cpu", "device_reason": None, "cuda_libraries": {}}
    c.post("/transcribe", files={"file": ("a.wav", AUDIO)})
    c.get("/v1/models/nope")
    r = c.get("/metrics")
    assert r.headers["content-type"].startswith("text/plain")
    text = r.text
    assert 'whisper_api_requests_total{method="POST",protocol="http",route="/transcribe",status="200"} 1.0' in text
    assert 'whisper_api_requests_total{method="GET",protocol="http",route="/v1/models/{model_id:path}",status="404"} 1.0' in text
    assert 'whisper_api_audio_seconds_total{protocol="http"} 3.0' in text, "the app wires its metrics to the injected engine"
    assert 'whisper_api_device_info{compute_type="int8",device="cpu",wanted="cpu"} 1.0' in text


def test_openapi_declares_auth_only_where_it_applies():
    """The document the schemathesis run checks (test_openapi.py), in the cases it does not run."""
    def doc(**settings) -> dict:
        return make(**settings)[0].app.openapi()

    open_doc = doc()
    assert "securitySchemes" not in open_doc["components"]
    for item in open_doc["paths"].values():
        for operation in item.values():
            assert "401" not in operation["responses"] and "security" not in operation
            assert "422" not in operation["responses"]
    keyed = doc(keys=[KEY], metrics_public=True)["paths"]
    assert keyed["/v1/models"]["get"]["security"] == [{"apiKey": []}] and "401" in keyed["/v1/models"]["get"]["responses"]
    for path in ("/health", "/metrics"):
        assert "security" not in keyed[path]["get"] and "401" not in keyed[path]["get"]["responses"]
    upload = keyed["/v1/audio/transcriptions"]["post"]["responses"]
    assert sorted(upload) == ["200", "400", "401", "404", "405", "413", "415", "503", "504"]
    assert set(upload["200"]["content"]) == {"application/json", "text/plain", "text/vtt", "text/event-stream"}
    assert "Allow" in upload["405"]["headers"] and "Retry-After" in upload["503"]["headers"]
