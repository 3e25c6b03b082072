# SPDX-License-Identifier: GPL-3.0-or-later
"""Auth, metrics, /docs, the time limit, batched+VAD decoding, and /health during inference."""

from __future__ import annotations

import threading
import time

import httpx
import pytest
from conftest import API_KEYS, JFK, JFK_TEXT, _server, normalize, wer

ROUTES = [
    ("GET", "/v1/models"), ("GET", "/v1/models/whisper-1"), ("POST", "/v1/audio/transcriptions"),
    ("POST", "/v1/audio/translations"), ("POST", "/transcribe"), ("POST", "/transcribe/url"),
    ("GET", "/metrics"), ("GET", "/docs"), ("GET", "/openapi.json"),
]


@pytest.mark.parametrize("method, path", ROUTES)
def test_every_route_but_health_needs_a_key(auth_server, method, path):
    with httpx.Client(base_url=auth_server.url, timeout=30) as c:
        missing = c.request(method, path)
        wrong = c.request(method, path, headers={"Authorization": "Bearer nope-nope-nope"})
        health = c.get("/health")
    for r, code in ((missing, "missing_api_key"), (wrong, "invalid_api_key")):
        assert r.status_code == 401, (path, r.text)
        err = r.json()["error"]
        assert err["code"] == code and err["type"] == "invalid_request_error" and set(err) == {
            "message", "type", "param", "code"}
    assert "Authorization: Bearer" in missing.json()["error"]["message"]
    assert health.status_code == 200


def test_keys_grant_access(auth_server):
    for key in API_KEYS:
        with httpx.Client(base_url=auth_server.url, headers={"Authorization": f"Bearer {key}"}, timeout=30) as c:
            assert c.get("/v1/models").status_code == 200
            assert c.get("/metrics").status_code == 200
            assert c.get("/docs").status_code == 200


def test_metrics(server):
    with server.client() as c:
        c.post("/transcribe", files={"file": ("jfk.flac", JFK.read_bytes())})
        c.post("/v1/audio/transcriptions", files={"file": ("x.wav", b"")})
        text = c.get("/metrics").text
    samples = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            name, _sep, value = line.rpartition(" ")
            samples[name] = float(value)
    assert samples['whisper_api_requests_total{method="POST",protocol="http",route="/transcribe",status="200"}'] >= 1
    assert samples['whisper_api_requests_total{method="POST",protocol="http",route="/v1/audio/transcriptions",status="400"}'] >= 1
    assert samples['whisper_api_audio_seconds_total{protocol="http"}'] >= 11.0
    assert samples['whisper_api_processing_seconds_count{protocol="http"}'] >= 1
    assert 0 < samples["whisper_api_model_load_seconds"] < 120
    assert samples["whisper_api_queue_depth"] == 0 and samples["whisper_api_model_ready"] == 1


def test_docs_served(server):
    with server.client() as c:
        assert "swagger" in c.get("/docs").text.lower()
        paths = c.get("/openapi.json").json()["paths"]
    assert {"/health", "/transcribe", "/transcribe/url", "/v1/audio/transcriptions", "/v1/models"} <= set(paths)


def test_health_stays_fast_during_inference(server, long_speech):
    """Both workers decode long audio while /health keeps answering (inference is off the event loop)."""
    path, _text = long_speech
    data = path.read_bytes()
    results = []

    def work():
        with server.client() as c:
            results.append(c.post("/transcribe", files={"file": ("long.wav", data)}).status_code)

    threads = [threading.Thread(target=work) for _thread in range(2)]
    for t in threads:
        t.start()
    seen_busy = 0
    worst = 0.0
    with server.client(timeout=5) as c:
        while any(t.is_alive() for t in threads):
            t0 = time.monotonic()
            body = c.get("/health").json()
            worst = max(worst, time.monotonic() - t0)
            seen_busy = max(seen_busy, body["busy_workers"])
            time.sleep(0.05)
    for t in threads:
        t.join()
    assert results == [200, 200]
    assert seen_busy >= 1, "no /health answer came while a worker was busy"
    print(f"/health worst latency while busy: {worst * 1000:.1f} ms")


@pytest.fixture(scope="module")
def timeout_server(model_dir):
    srv = _server("timeout", model_dir, max_processing_s="0.05")
    srv.wait_healthy()
    yield srv
    srv.stop()


def test_processing_time_limit(timeout_server):
    with timeout_server.client() as c:
        r = c.post("/v1/audio/transcriptions", files={"file": ("jfk.flac", JFK.read_bytes())})
        assert c.get("/health").status_code == 200
    assert r.status_code == 504, r.text
    err = r.json()["error"]
    assert err["code"] == "processing_timeout" and "WHISPER_API_MAX_PROCESSING_S" in err["message"]


@pytest.fixture(scope="module")
def batched_server(model_dir):
    srv = _server("batched", model_dir, batched="true", batch_size="4", vad_filter="true",
                  condition_on_previous_text="false", beam_size="2")
    srv.wait_healthy()
    yield srv
    srv.stop()


def test_batched_vad_pipeline(batched_server, long_speech):
    path, text = long_speech
    with batched_server.client() as c:
        jfk = c.post("/v1/audio/transcriptions", files={"file": ("jfk.flac", JFK.read_bytes())},
                     data={"response_format": "verbose_json"}).json()
        long = c.post("/v1/audio/transcriptions", files={"file": ("long.wav", path.read_bytes())},
                      data={"response_format": "verbose_json"}).json()
    assert wer(JFK_TEXT, jfk["text"]) <= 0.1, jfk["text"]
    assert wer(text, long["text"]) < 0.3, long["text"]
    starts = [s["start"] for s in long["segments"]]
    assert starts == sorted(starts) and long["segments"][-1]["end"] <= long["duration"]
    assert normalize(jfk["text"])
