# SPDX-License-Identifier: GPL-3.0-or-later
"""Bad input: each case gets the right status and a message naming the problem; the server stays healthy."""

from __future__ import annotations

import concurrent.futures

import httpx
import pytest
from conftest import JFK, JFK_TEXT, encode, jfk_samples, normalize
import numpy as np


def _assert_error(r: httpx.Response, status: int, fragment: str, param: str | None = None, code: str | None = None):
    assert r.status_code == status, r.text
    err = r.json()["error"]
    assert set(err) == {"message", "type", "param", "code"}
    assert fragment in err["message"], err["message"]
    if param is not None:
        assert err["param"] == param
    if code is not None:
        assert err["code"] == code


@pytest.fixture
def healthy_after(server):
    yield
    with server.client() as c:
        assert c.get("/health").status_code == 200
    assert server.proc.poll() is None


CASES = [
    ("empty", b"", {}, 400, "is empty (0 bytes)", "file"),
    ("truncated", JFK.read_bytes()[:600_000], {}, 400, "truncated", "file"),
    ("non-audio", b"%PDF-1.4 definitely not audio " * 200, {}, 400, "could not be decoded as audio", "file"),
    ("wrong-model", JFK.read_bytes(), {"model": "gpt-4o-transcribe"}, 404, "does not exist", "model"),
    ("bad-format", JFK.read_bytes(), {"response_format": "xml"}, 400, "'xml' is not one of", "response_format"),
    ("bad-temperature", JFK.read_bytes(), {"temperature": "3"}, 400, "between 0 and 1", "temperature"),
    ("bad-language", JFK.read_bytes(), {"language": "elvish"}, 400, "unknown language 'elvish'", "language"),
    ("bad-granularity", JFK.read_bytes(), {"response_format": "verbose_json", "timestamp_granularities[]": "char"},
     400, "'char' is not one of", "timestamp_granularities"),
    ("granularity-needs-verbose", JFK.read_bytes(), {"timestamp_granularities[]": "word"}, 400,
     "needs response_format=verbose_json", "timestamp_granularities"),
]


@pytest.mark.parametrize("name, content, data, status, fragment, param", CASES, ids=[c[0] for c in CASES])
def test_bad_upload(server, healthy_after, name, content, data, status, fragment, param):
    with server.client() as c:
        r = c.post("/v1/audio/transcriptions", files={"file": (f"{name}.flac", content)}, data=data)
    _assert_error(r, status, fragment, param)


def test_missing_file_field(server, healthy_after):
    with server.client() as c:
        r = c.post("/v1/audio/transcriptions", data={"model": "whisper-1"})
    _assert_error(r, 400, "missing required parameter 'file'", "file")


def test_guide_route_errors_keep_detail(server, healthy_after):
    with server.client() as c:
        r = c.post("/transcribe", files={"file": ("x.mp3", b"")})
        bad_task = c.post("/transcribe", params={"task": "summarize"}, files={"file": ("jfk.flac", JFK.read_bytes())})
    _assert_error_guide(r, 400, "is empty (0 bytes)")
    assert bad_task.status_code == 400 and bad_task.json()["error"]["param"] == "task"


def _assert_error_guide(r, status, fragment):
    assert r.status_code == status
    assert fragment in r.json()["detail"] and fragment in r.json()["error"]["message"]


def test_unknown_route_is_openai_404(server):
    with server.client() as c:
        r = c.get("/v1/nothing-here")
    _assert_error(r, 404, "Invalid URL (GET /v1/nothing-here)")


def test_oversize_is_413(limited_server):
    big = JFK.read_bytes()  # 1.15 MB against a 1 MB limit
    with limited_server.client() as c:
        r = c.post("/v1/audio/transcriptions", files={"file": ("jfk.flac", big)})
        _assert_error(r, 413, "larger than the limit of 1 MB (WHISPER_API_MAX_UPLOAD_MB)", code="file_too_large")
        # chunked upload without Content-Length: stopped while it streams in
        head = b'--zzz\r\nContent-Disposition: form-data; name="file"; filename="a.wav"\r\n\r\n'
        r = c.post("/transcribe", content=iter([head] + [b"x" * 65536] * 40 + [b"\r\n--zzz--\r\n"]),
                   headers={"content-type": "multipart/form-data; boundary=zzz"})
        _assert_error(r, 413, "larger than the limit of 1 MB")
        assert c.get("/health").status_code == 200


def test_over_long_is_400(limited_server):
    samples = np.concatenate([jfk_samples()] * 2)  # 22 s against a 20 s limit, 0.7 MB as mp3
    with limited_server.client() as c:
        r = c.post("/v1/audio/transcriptions", files={"file": ("long.mp3", encode(samples, "mp3"))})
        _assert_error(r, 400, "longer than the limit of 20 s (WHISPER_API_MAX_DURATION_S)", "file", "audio_too_long")
        assert c.get("/health").status_code == 200


def test_queue_full_is_503_with_retry_after(limited_server):
    """One worker, no waiting room: of concurrent requests, the extra ones get 503 + Retry-After at once.

    On a loaded machine four threads may reach the server one after the other (each finding the worker
    free), so the round is repeated, at most five times, until one of them meets the busy worker; every
    answer of every round must be a 200 with the right words or a 503 of the right shape."""
    mp3 = encode(jfk_samples(), "mp3")

    def one(_index):
        with limited_server.client() as c:
            return c.post("/v1/audio/transcriptions", files={"file": ("jfk.mp3", mp3)})

    results = []
    for _round in range(5):
        with concurrent.futures.ThreadPoolExecutor(4) as pool:
            results.extend(pool.map(one, range(4)))
        if any(r.status_code == 503 for r in results):
            break
    ok = [r for r in results if r.status_code == 200]
    busy = [r for r in results if r.status_code == 503]
    assert ok and busy and len(ok) + len(busy) == len(results), [r.status_code for r in results]
    for r in busy:
        assert int(r.headers["retry-after"]) >= 1
        _assert_error(r, 503, "WHISPER_API_QUEUE_SIZE", code="server_busy")
    for r in ok:
        assert normalize(r.json()["text"]) == normalize(JFK_TEXT)


# /transcribe/url ---------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "url, fragment",
    [("file:///etc/passwd", "only http and https"), ("ftp://127.0.0.2/jfk.flac", "only http and https"),
     ("gopher://127.0.0.2:70/", "only http and https"), ("jfk.flac", "only http and https"),
     ("http://", "has no host")],
)
def test_url_bad_schemes(server, healthy_after, url, fragment):
    with server.client() as c:
        r = c.post("/transcribe/url", json={"url": url})
    assert r.status_code == 400 and fragment in r.json()["detail"], r.text
    assert r.json()["error"]["param"] == "url"


def test_url_loopback_refused(server, healthy_after, files_127_1):
    """The guard is on: 127.0.0.1 (and 'localhost') are refused before any connection."""
    for url in (files_127_1.url + "/jfk.flac", files_127_1.url.replace("127.0.0.1", "localhost") + "/jfk.flac"):
        with server.client() as c:
            r = c.post("/transcribe/url", json={"url": url})
        assert r.status_code == 400, r.text
        msg = r.json()["detail"]
        assert "resolves to 127.0.0.1, a loopback address" in msg or "resolves to ::1" in msg, msg
        assert "WHISPER_API_ALLOW_PRIVATE_URLS" in msg


def test_url_allowed_network_fetches(server, files_127_2):
    """127.0.0.2/32 is in WHISPER_API_URL_ALLOWED_NETWORKS on this server."""
    with server.client() as c:
        r = c.post("/transcribe/url", json={"url": files_127_2.url + "/jfk.flac"})
    assert r.status_code == 200, r.text
    assert normalize(r.json()["text"]) == normalize(JFK_TEXT)


def test_url_redirect_into_loopback_refused(server, healthy_after, files_127_1, files_127_2):
    files_127_2.redirects["/hop"] = files_127_1.url + "/jfk.flac"
    with server.client() as c:
        r = c.post("/transcribe/url", json={"url": files_127_2.url + "/hop"})
    assert r.status_code == 400 and "resolves to 127.0.0.1, a loopback address" in r.json()["detail"], r.text


def test_url_errors(server, healthy_after, files_127_2):
    with server.client() as c:
        missing = c.post("/transcribe/url", json={"url": files_127_2.url + "/nope.mp3"})
        text = c.post("/transcribe/url", json={"url": files_127_2.url + "/notes.txt"})
        no_url = c.post("/transcribe/url", json={"link": "x"})
    assert missing.status_code == 400 and "HTTP 404" in missing.json()["detail"]
    assert text.status_code == 400 and "could not be decoded as audio" in text.json()["detail"]
    assert no_url.status_code == 400 and no_url.json()["error"]["param"] == "url"


def test_url_private_allowed(auth_server, files_127_1):
    """WHISPER_API_ALLOW_PRIVATE_URLS=true on this server: loopback is fetched."""
    headers = {"Authorization": "Bearer sk-test-alpha-0123456789"}
    with auth_server.client(headers=headers) as c:
        ok = c.post("/transcribe/url", json={"url": files_127_1.url + "/jfk.flac", "include_segments": True})
    assert ok.status_code == 200, ok.text
    assert normalize(ok.json()["text"]) == normalize(JFK_TEXT) and ok.json()["segments"]


def test_url_size_limit(limited_server, files_127_2):
    """big.bin (2 MB) is over the limited server's 1 MB: 413 while downloading."""
    with limited_server.client() as c:
        r = c.post("/transcribe/url", json={"url": files_127_2.url + "/big.bin"})
        assert c.get("/health").status_code == 200
    _assert_error(r, 413, "larger than the limit of 1 MB", "url")


def _requests_total(client, status: str) -> float:
    key = f'whisper_api_requests_total{{method="POST",protocol="http",route="/v1/audio/transcriptions",status="{status}"}} '
    for line in client.get("/metrics").text.splitlines():
        if line.startswith(key):
            return float(line[len(key):])
    return 0.0


def test_overload_refuses_with_retry_after_and_loses_nothing(limited_server):
    """Overload: 6 clients against 1 worker and no waiting room, each retrying 50 ms after a 503 (far
    sooner than Retry-After asks). Every refusal is a 503 + Retry-After in OpenAI's shape, /health
    answers 200 throughout, and every client gets its transcript in the end: the server's own request
    counters agree with what the clients saw (nothing lost, nothing answered twice)."""
    import threading
    import time

    mp3 = encode(jfk_samples(), "mp3")
    with limited_server.client() as c:
        before = {s: _requests_total(c, s) for s in ("200", "503")}
    busy: list[httpx.Response] = []
    texts: list[str] = []
    health: list[int] = []
    stop = threading.Event()

    def one(_index):
        with limited_server.client() as c:
            while True:
                r = c.post("/v1/audio/transcriptions", files={"file": ("jfk.mp3", mp3)})
                if r.status_code != 503:
                    return r
                busy.append(r)
                time.sleep(0.05)

    def poll():
        with limited_server.client(timeout=10) as c:
            while not stop.is_set():
                health.append(c.get("/health").status_code)
                time.sleep(0.02)

    poller = threading.Thread(target=poll)
    poller.start()
    try:
        with concurrent.futures.ThreadPoolExecutor(6) as pool:
            results = list(pool.map(one, range(6)))
    finally:
        stop.set()
        poller.join()
    for r in results:
        assert r.status_code == 200, r.text
        texts.append(r.json()["text"])
    assert all(normalize(t) == normalize(JFK_TEXT) for t in texts)
    assert busy, "6 clients against one worker and no queue met no 503"
    for r in busy:
        assert int(r.headers["retry-after"]) >= 1
        _assert_error(r, 503, "WHISPER_API_QUEUE_SIZE", code="server_busy")
    assert health and set(health) == {200}
    with limited_server.client() as c:
        after = {s: _requests_total(c, s) for s in ("200", "503")}
    assert after["200"] - before["200"] == 6 and after["503"] - before["503"] == len(busy), (before, after, len(busy))
