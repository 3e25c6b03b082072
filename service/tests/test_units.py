# SPDX-License-Identifier: GPL-3.0-or-later
"""Layer tests without a server: audio decoding, output formats, SSRF address rules, settings, CLI."""

from __future__ import annotations

import io
import os
import ipaddress
import wave
import subprocess
import sys
from pathlib import Path

import pytest
import srt
import webvtt
from hypothesis import given, settings as hsettings, strategies as st
from conftest import JFK, encode, jfk_samples

from whisper_api import formats
from whisper_api.audio import decode
from whisper_api.errors import AudioError
from whisper_api.result import Segment, Transcription
from whisper_api.settings import Settings
from whisper_api.urlfetch import address_refusal, check_url
from whisper_api.errors import UrlRefused


# audio ------------------------------------------------------------------------------------------
@pytest.mark.parametrize("fmt", ["wav", "mp3", "m4a", "flac", "ogg", "webm"])
def test_decode_formats(fmt):
    data = encode(jfk_samples(), fmt)
    out = decode(data, max_duration_s=60)
    assert abs(out.duration - 11.0) < 0.2, (fmt, out.duration)
    assert out.samples.dtype.name == "float32"
    assert 0.3 < float(abs(out.samples).max()) <= 1.0


@pytest.mark.parametrize(
    "data, message",
    [
        (b"", "is empty (0 bytes)"),
        (b"this is a text file, not audio\n" * 50, "could not be decoded as audio"),
        (JFK.read_bytes()[: len(JFK.read_bytes()) // 2], "truncated"),
    ],
    ids=["empty", "not-audio", "truncated-flac"],
)
def test_decode_rejects(data, message):
    with pytest.raises(AudioError) as err:
        decode(data, max_duration_s=60)
    assert message in err.value.message
    assert err.value.status == 400


def test_decode_truncated_wav():
    wav = encode(jfk_samples(), "wav")
    with pytest.raises(AudioError, match="truncated: its WAV header announces 352000 bytes"):
        decode(wav[: len(wav) // 3], max_duration_s=60)


def test_decode_too_long_stops_early():
    with pytest.raises(AudioError, match="longer than the limit of 5 s") as err:
        decode(JFK.read_bytes(), max_duration_s=5)
    assert err.value.code == "audio_too_long"


def test_decode_silent_header_only_wav():
    buf = io.BytesIO()
    with wave.open(buf, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(16000)
        w.writeframes(b"")
    wav = buf.getvalue()
    with pytest.raises(AudioError, match="no audio samples"):
        decode(wav, max_duration_s=60)


# formats ----------------------------------------------------------------------------------------
def _seg(i, start, end, text="hello there"):
    return Segment(id=i, seek=0, start=start, end=end, text=text, tokens=[1, 2], temperature=0.0,
                   avg_logprob=-0.1, compression_ratio=1.0, no_speech_prob=0.01)


segments_strategy = st.lists(
    st.tuples(st.floats(-5, 200, allow_nan=False), st.floats(-5, 200, allow_nan=False),
              st.text(alphabet="abc xyz", min_size=1, max_size=20).filter(lambda t: t.strip())),
    min_size=1, max_size=30,
)


@hsettings(max_examples=150, deadline=None)
@given(raw=segments_strategy, duration=st.floats(0.5, 150, allow_nan=False))
def test_subtitles_parse_monotonic_within_duration(raw, duration):
    """Whatever times the decoder emits, srt/vtt parse and stay monotonic and inside the audio."""
    result = Transcription("transcribe", "en", duration, [_seg(i, a, b, t) for i, (a, b, t) in enumerate(raw)])
    subs = list(srt.parse(formats.to_srt(result)))
    vtt = webvtt.from_string(formats.to_vtt(result))
    assert len(subs) == len(raw) == len(vtt.captions)
    prev = 0.0
    for sub, cap in zip(subs, vtt.captions, strict=True):
        start, end = sub.start.total_seconds(), sub.end.total_seconds()
        assert prev <= start <= end <= duration + 0.0005
        assert abs(_vtt_seconds(cap.start) - start) < 0.002 and abs(_vtt_seconds(cap.end) - end) < 0.002
        prev = start


def _vtt_seconds(stamp: str) -> float:
    h, m, s = stamp.split(":")
    return int(h) * 3600 + int(m) * 60 + float(s)


def test_verbose_json_shapes():
    result = Transcription("transcribe", "en", 3.0, [_seg(0, 0.0, 3.5)])
    body = formats.to_verbose_json(result, ())
    assert body["language"] == "english" and body["segments"][0]["end"] == 3.0 and "words" not in body
    body = formats.to_verbose_json(result, ("word",))
    assert "segments" not in body and body["words"] == []


def test_language_normalization():
    assert formats.normalize_language("English") == "en"
    assert formats.normalize_language(" de ") == "de"
    assert formats.normalize_language("") is None
    with pytest.raises(ValueError, match="unknown language 'klingon'"):
        formats.normalize_language("klingon")


# SSRF rules -------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "ip, why",
    [("127.0.0.1", "loopback"), ("::1", "loopback"), ("10.1.2.3", "private"), ("192.168.20.30", "private"),
     ("172.16.0.1", "private"), ("169.254.169.254", "link-local"), ("fe80::1", "link-local"),
     ("::ffff:127.0.0.1", "loopback"), ("0.0.0.0", "unspecified"), ("224.0.0.1", "multicast"),
     ("100.64.0.1", "non-global"), ("240.0.0.1", "private"), ("93.184.216.34", None), ("2606:4700::1", None)],
)
def test_address_refusal(ip, why):
    got = address_refusal(ipaddress.ip_address(ip), False, [])
    assert got == why if why is None else got is not None and (why in got or got in ("private", "reserved"))


def test_address_allowlist_and_allow_private():
    nas = [ipaddress.ip_network("192.168.20.0/24")]
    assert address_refusal(ipaddress.ip_address("192.168.20.5"), False, nas) is None
    assert address_refusal(ipaddress.ip_address("192.168.21.5"), False, nas) == "private"
    assert address_refusal(ipaddress.ip_address("10.0.0.1"), True, []) is None
    assert address_refusal(ipaddress.ip_address("0.0.0.0"), True, []) == "unspecified"


@pytest.mark.parametrize("url", ["file:///etc/passwd", "ftp://example.org/a.mp3", "gopher://x/", "/relative.mp3",
                                 "http://", "javascript:alert(1)"])
def test_check_url_refuses(url):
    with pytest.raises(UrlRefused):
        check_url(url)


# settings ---------------------------------------------------------------------------------------
def test_settings_from_env(monkeypatch, tmp_path):
    keys = tmp_path / "keys"
    keys.write_text("# comment\nkey-from-file\n\n")
    monkeypatch.setenv("WHISPER_API_KEYS", "a, b,")
    monkeypatch.setenv("WHISPER_API_KEYS_FILE", str(keys))
    monkeypatch.setenv("WHISPER_API_MODEL_ALIASES", "whisper-1,whisper-large-fp8")
    monkeypatch.setenv("WHISPER_API_WORKERS", "3")
    s = Settings()
    assert s.api_keys() == {"a", "b", "key-from-file"}
    assert s.accepted_model_ids() == ["Systran/faster-whisper-small", "whisper-1", "whisper-large-fp8"]
    assert s.workers == 3 and s.port == 8000


def _cli(env: dict[str, str]) -> subprocess.CompletedProcess:
    exe = Path(sys.executable).parent / "whisper-api"
    return subprocess.run([str(exe), "--check"], env={"PATH": "/usr/bin:/bin", **env}, capture_output=True,
                          text=True, timeout=60, check=False)


@pytest.mark.parametrize(
    "env, message",
    [
        ({"WHISPER_API_DEVICE": "tpu"}, "invalid WHISPER_API_DEVICE"),
        ({"WHISPER_API_COMPUTE_TYPE": "int4"}, "'int4' is not a CTranslate2 compute type"),
        ({"WHISPER_API_URL_ALLOWED_NETWORKS": "nas.local"}, "write CIDRs like 192.168.20.0/24"),
        ({"WHISPER_API_KEYS_FILE": "/nonexistent/keys"}, "WHISPER_API_KEYS_FILE=/nonexistent/keys does not exist"),
        ({"WHISPER_API_SSL_CERTFILE": "/tmp/c.pem"}, "set both WHISPER_API_SSL_CERTFILE and WHISPER_API_SSL_KEYFILE"),
        ({"WHISPER_API_PORT": "http"}, "invalid WHISPER_API_PORT"),
    ],
)
def test_cli_rejects_bad_settings(env, message):
    proc = _cli(env)
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert message in proc.stderr


def test_cli_check_prints_settings_without_keys():
    proc = _cli({"WHISPER_API_KEYS": "secret-1,secret-2"})
    assert proc.returncode == 0, proc.stderr
    assert "WHISPER_API_KEYS=<2 key(s)>" in proc.stdout and "secret-1" not in proc.stdout


def test_health_reports_loading_before_the_model_is_ready():
    """Before start-up completes /health is 503 "loading" and work is refused with Retry-After."""
    from fastapi.testclient import TestClient

    from whisper_api.app import create_app

    app = create_app(Settings(model="/nonexistent"))
    client = TestClient(app)  # no context manager: the lifespan (model load) has not run
    r = client.get("/health")
    assert r.status_code == 503 and r.json()["status"] == "loading"
    r = client.post("/v1/audio/transcriptions", files={"file": ("a.flac", JFK.read_bytes())})
    assert r.status_code == 503 and r.headers["retry-after"] == "5"
    assert r.json()["error"]["code"] == "server_busy"


def test_health_reports_a_failed_load_with_its_reason():
    from fastapi.testclient import TestClient

    from whisper_api.app import create_app

    app = create_app(Settings(model="/nonexistent/model-dir", device="cpu", local_files_only=True))
    with TestClient(app) as client:
        assert app.state.engine.wait_ready(60) is False
        r = client.get("/health")
    assert r.status_code == 503
    body = r.json()
    assert body["status"] == "failed" and "could not load model '/nonexistent/model-dir'" in body["error"]


def test_worker_plan_auto_by_device(monkeypatch):
    """WORKERS=0: one worker on CUDA; on the CPU one worker per CPU, at most 4, each with twice its share
    of the threads (at most all of them); WORKERS set: it, with CPU_THREADS per worker."""
    from whisper_api.engine import AUTO_CPU_WORKERS_MAX, worker_plan

    monkeypatch.setattr(os, "sched_getaffinity", lambda _pid: set(range(2)))
    assert worker_plan(Settings(), "cuda") == (1, 0)
    assert worker_plan(Settings(), "cpu") == (2, 2)  # a request alone has both CPUs
    assert worker_plan(Settings(cpu_threads=3), "cpu") == (3, 2)
    assert worker_plan(Settings(cpu_threads=1), "cpu") == (1, 1)
    monkeypatch.setattr(os, "sched_getaffinity", lambda _pid: set(range(16)))
    assert worker_plan(Settings(), "cpu") == (AUTO_CPU_WORKERS_MAX, 2 * 16 // AUTO_CPU_WORKERS_MAX)
    assert worker_plan(Settings(workers=1, cpu_threads=2), "cpu") == (1, 2)
    assert worker_plan(Settings(workers=3), "cuda") == (3, 0)
