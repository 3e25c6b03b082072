# SPDX-License-Identifier: GPL-3.0-or-later
"""The Wyoming protocol (WHISPER_API_WYOMING) with the real ``wyoming`` client (``AsyncTcpClient``, what
Home Assistant uses) against a real whisper-api process with the tiny.en model: describe/info, jfk.flac
streamed in 100 ms chunks, audio converted from 44.1 kHz stereo, each bad stream ending its connection
with a logged reason while the service stays healthy, HTTP and Wyoming at the same time, the metrics'
protocol label."""

from __future__ import annotations

import asyncio
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import numpy as np
import pytest
from pydantic import ValidationError
from wyoming.asr import Transcribe, Transcript
from wyoming.audio import AudioChunk, AudioStart, AudioStop
from wyoming.client import AsyncTcpClient
from wyoming.error import Error
from wyoming.event import Event
from wyoming.info import Describe, Info

import whisper_api
from conftest import JFK, JFK_TEXT, SERVED_NAME, _server, free_port, jfk_samples, normalize, wer
from whisper_api.settings import Settings

LIMIT_S = 30  # the server's WHISPER_API_MAX_DURATION_S


@pytest.fixture(scope="session")
def wyoming_server(model_dir):
    """HTTP and Wyoming in one process, one worker, 30 s of audio at most."""
    port = free_port()
    srv = _server("wyoming", model_dir, wyoming="true", wyoming_port=str(port), max_duration_s=str(LIMIT_S),
                  workers="1")
    srv.wyoming_port = port
    srv.wait_healthy()
    yield srv
    srv.stop()


def pcm16(samples: np.ndarray) -> bytes:
    return (np.clip(samples, -1, 1) * 32767).astype("<i2").tobytes()


async def stream(port: int, pcm: bytes, *, rate: int = 16000, width: int = 2, channels: int = 1,
                 chunk_ms: int = 100, language: str | None = "en", start: bool = True, stop: bool = True):
    """Transcribe + audio-start + audio-chunks of chunk_ms + audio-stop; the first transcript or error
    event, and what the connection gives after it (None once the server closed it). A bad stream is sent
    up to its bad event only: a server closing a socket with unread data resets it (RST), and a reset
    connection may lose the error event before the client reads it."""
    step = rate * chunk_ms // 1000 * width * channels
    async with AsyncTcpClient("127.0.0.1", port) as client:
        await client.write_event(Transcribe(language=language).event())
        if start:
            await client.write_event(AudioStart(rate=rate, width=width, channels=channels).event())
        for i in range(0, len(pcm), step):
            await client.write_event(AudioChunk(rate=rate, width=width, channels=channels,
                                                audio=pcm[i:i + step]).event())
        if stop:
            await client.write_event(AudioStop().event())
        while True:
            event = await asyncio.wait_for(client.read_event(), 120)
            if event is None or Transcript.is_type(event.type) or Error.is_type(event.type):
                break
        after = None
        if event is not None and Error.is_type(event.type):
            after = await asyncio.wait_for(client.read_event(), 10)
        return event, after


def transcribe(port: int, pcm: bytes, **kw) -> str:
    event, _after = asyncio.run(stream(port, pcm, **kw))
    assert event is not None and Transcript.is_type(event.type), event
    return Transcript.from_event(event).text


def wait_for_log(srv, needle: str, timeout: float = 30) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        log = srv.log()
        if needle in log:
            return log
        time.sleep(0.1)
    pytest.fail(f"the server never logged {needle!r}:\n{srv.log()}")


def metric(srv, name: str) -> float:
    for line in httpx.get(srv.url + "/metrics", timeout=10).text.splitlines():
        if line.startswith(name + " "):
            return float(line.rsplit(" ", 1)[1])
    return 0.0


def wait_idle(srv, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        health = httpx.get(srv.url + "/health", timeout=10).json()
        if health["busy_workers"] == 0 and health["queue_depth"] == 0:
            return
        time.sleep(0.2)
    pytest.fail(f"the engine is still busy after {timeout} s")


def assert_healthy_and_serving(srv) -> None:
    """/health 200 and the next stream transcribed right: a bad stream ends its own connection only."""
    assert httpx.get(srv.url + "/health", timeout=10).status_code == 200
    assert normalize(transcribe(srv.wyoming_port, pcm16(jfk_samples()))) == normalize(JFK_TEXT)


def test_jfk_streamed_in_100ms_chunks(wyoming_server):
    text = transcribe(wyoming_server.wyoming_port, pcm16(jfk_samples()), chunk_ms=100)
    assert normalize(text) == normalize(JFK_TEXT), text


def test_describe_answers_info_with_the_model(wyoming_server):
    async def describe():
        async with AsyncTcpClient("127.0.0.1", wyoming_server.wyoming_port) as client:
            await client.write_event(Describe().event())
            return await asyncio.wait_for(client.read_event(), 30)

    event = asyncio.run(describe())
    assert Info.is_type(event.type), event
    info = Info.from_event(event)
    (program,) = info.asr
    assert program.name == "whisper-api" and program.installed and program.version == whisper_api.__version__
    (model,) = program.models
    assert model.name == SERVED_NAME and model.installed, model
    assert model.languages == ["en"], "tiny.en is English-only"


def test_44100_hz_stereo_is_converted(wyoming_server):
    mono = jfk_samples()
    t = np.arange(int(len(mono) * 44100 / 16000)) / 44100
    resampled = np.interp(t, np.arange(len(mono)) / 16000, mono)
    stereo = np.repeat(resampled[:, None], 2, axis=1).reshape(-1)  # L R L R ...
    text = transcribe(wyoming_server.wyoming_port, pcm16(stereo), rate=44100, channels=2)
    assert wer(JFK_TEXT, text) == 0.0, text


# Each bad stream: (how it is sent, seconds of audio up to the bad event, the error text's start, which the
# log says too). The error event comes first, then the server closes the connection (read_event gives None).
BAD_STREAMS = {
    "32-bit samples": (dict(width=4), 0, "audio-start says sample width 4 byte(s)"),
    "six channels": (dict(channels=6), 0, "audio-start says 6 channel(s)"),
    "4 kHz": (dict(rate=4000), 0, "audio-start says 4000 Hz"),
    "chunk without audio-start": (dict(start=False), 0.1, "audio-chunk without audio-start"),
    "over the duration limit": ({}, LIMIT_S + 0.1, f"the stream is longer than the limit of {LIMIT_S} s"),
}


@pytest.mark.parametrize("case", list(BAD_STREAMS))
def test_bad_stream_ends_its_connection_with_a_logged_reason(wyoming_server, case):
    kw, seconds, reason = BAD_STREAMS[case]
    rate, width, channels = kw.get("rate", 16000), kw.get("width", 2), kw.get("channels", 1)
    pcm = bytes(round(seconds * rate) * width * channels)  # silence: the stream is what is wrong
    event, after = asyncio.run(stream(wyoming_server.wyoming_port, pcm, stop=False, **kw))
    assert event is not None and Error.is_type(event.type), event
    assert Error.from_event(event).text.startswith(reason), event
    assert after is None, f"the connection stayed open after the error: {after}"
    wait_for_log(wyoming_server, reason)
    assert_healthy_and_serving(wyoming_server)


async def send(port: int, events: list[Event]):
    """Send events, then read the answer and what follows it (None once the server closed)."""
    async with AsyncTcpClient("127.0.0.1", port) as client:
        for event in events:
            await client.write_event(event)
        answer = await asyncio.wait_for(client.read_event(), 30)
        return answer, await asyncio.wait_for(client.read_event(), 10)


START = AudioStart(rate=16000, width=2, channels=1).event()
BAD_EVENTS = {
    "audio-stop without audio-start": ([AudioStop().event()], "audio-stop without audio-start"),
    "a chunk of another format": ([START, AudioChunk(rate=8000, width=2, channels=1, audio=bytes(1600)).event()],
                                  "audio-chunk of 8000 Hz, width 2, 1 channel(s) in a stream started as 16000 Hz"),
    "half a sample": ([START, AudioChunk(rate=16000, width=2, channels=1, audio=bytes(3)).event()],
                      "audio-chunk of 3 bytes is not whole 2-byte samples"),
    "an unknown language": ([Transcribe(language="klingon").event()], "transcribe: unknown language 'klingon'"),
    "a malformed audio-start": ([Event(type="audio-start", data={"rate": 16000})],
                                "a malformed audio-start event (KeyError"),
}


@pytest.mark.parametrize("case", list(BAD_EVENTS))
def test_bad_event_ends_its_connection_with_a_logged_reason(wyoming_server, case):
    events, reason = BAD_EVENTS[case]
    answer, after = asyncio.run(send(wyoming_server.wyoming_port, events))
    assert answer is not None and Error.is_type(answer.type), answer
    assert Error.from_event(answer).text.startswith(reason), answer
    assert after is None, f"the connection stayed open after the error: {after}"
    wait_for_log(wyoming_server, reason)
    assert httpx.get(wyoming_server.url + "/health", timeout=10).status_code == 200


def test_client_vanishing_mid_stream(wyoming_server):
    async def vanish():
        pcm = pcm16(jfk_samples())
        client = AsyncTcpClient("127.0.0.1", wyoming_server.wyoming_port)
        await client.connect()
        await client.write_event(AudioStart(rate=16000, width=2, channels=1).event())
        for i in range(0, 16000 * 2 * 3, 3200):  # 3 s of audio, then gone without audio-stop
            await client.write_event(AudioChunk(rate=16000, width=2, channels=1, audio=pcm[i:i + 3200]).event())
        await client.disconnect()

    asyncio.run(vanish())
    wait_for_log(wyoming_server, "went away in the middle of a stream (3.0 s of audio received")
    assert_healthy_and_serving(wyoming_server)


def test_client_vanishing_before_its_transcript_cancels_it(wyoming_server):
    async def vanish():
        pcm = pcm16(np.concatenate([jfk_samples(), jfk_samples()]))  # 22 s: seconds of decoding on the CPU
        client = AsyncTcpClient("127.0.0.1", wyoming_server.wyoming_port)
        await client.connect()
        await client.write_event(AudioStart(rate=16000, width=2, channels=1).event())
        for i in range(0, len(pcm), 3200):
            await client.write_event(AudioChunk(rate=16000, width=2, channels=1, audio=pcm[i:i + 3200]).event())
        await client.write_event(AudioStop().event())
        await client.disconnect()

    audio_key = 'whisper_api_audio_seconds_total{protocol="wyoming"}'
    before = metric(wyoming_server, audio_key)
    asyncio.run(vanish())
    wait_for_log(wyoming_server, "went away before its transcript; the transcription was cancelled")
    wait_idle(wyoming_server)
    assert metric(wyoming_server, audio_key) == before, "the cancelled job was transcribed all the same"
    assert_healthy_and_serving(wyoming_server)


def test_http_and_wyoming_at_the_same_time(wyoming_server):
    """One request by each protocol at once, on the one engine: both complete with the reference text."""
    async def both():
        async def http():
            async with httpx.AsyncClient(base_url=wyoming_server.url, timeout=180) as client:
                r = await client.post("/v1/audio/transcriptions", files={"file": ("jfk.flac", JFK.read_bytes())},
                                      data={"model": "whisper-1"})
                return r.status_code, r.json()["text"], time.monotonic()

        async def wyoming():
            event, _after = await stream(wyoming_server.wyoming_port, pcm16(jfk_samples()))
            return Transcript.from_event(event).text, time.monotonic()

        started = time.monotonic()
        return started, await asyncio.gather(http(), wyoming())

    _started, ((status, http_text, _t1), (wyoming_text, _t2)) = asyncio.run(both())
    assert status == 200
    assert normalize(http_text) == normalize(JFK_TEXT), http_text
    assert normalize(wyoming_text) == normalize(JFK_TEXT), wyoming_text


def test_metrics_count_wyoming_by_protocol(wyoming_server):
    transcribe(wyoming_server.wyoming_port, pcm16(jfk_samples()))
    asyncio.run(stream(wyoming_server.wyoming_port, b"", width=4, stop=False))
    samples = {}
    for line in httpx.get(wyoming_server.url + "/metrics", timeout=10).text.splitlines():
        if line and not line.startswith("#"):
            name, _sep, value = line.rpartition(" ")
            samples[name] = float(value)
    key = 'whisper_api_requests_total{method="-",protocol="wyoming",route="transcribe",status="%s"}'
    assert samples[key % "200"] >= 1 and samples[key % "400"] >= 1, samples
    assert samples['whisper_api_audio_seconds_total{protocol="wyoming"}'] >= 11.0
    assert samples['whisper_api_processing_seconds_count{protocol="wyoming"}'] >= 1


def test_wyoming_port_equal_to_the_http_port_is_refused():
    with pytest.raises(ValidationError, match="WHISPER_API_WYOMING_PORT=8000 is the HTTP port"):
        Settings(wyoming=True, wyoming_port=8000, port=8000)
    assert Settings(wyoming=False, wyoming_port=8000, port=8000).wyoming_port == 8000


def test_wyoming_port_taken_stops_the_service_with_the_reason(model_dir, tmp_path):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        env = {"WHISPER_API_MODEL": model_dir, "WHISPER_API_WYOMING": "true", "WHISPER_API_WYOMING_PORT": str(port),
               "WHISPER_API_PORT": str(free_port()), "HF_HUB_OFFLINE": "1", "PATH": "/usr/bin:/bin"}
        proc = subprocess.run([str(Path(sys.executable).parent / "whisper-api")], env=env, capture_output=True, check=False,
                              text=True, timeout=120)
    assert proc.returncode != 0
    assert f"the Wyoming server cannot listen on 127.0.0.1:{port}" in proc.stdout + proc.stderr, proc.stderr[-3000:]


def test_zeroconf_announcement_registers(model_dir):
    """WYOMING_ZEROCONF registers _wyoming._tcp with the Wyoming address and port. Whether Home Assistant
    sees it needs multicast on a real network; this machine's loopback does not carry it, so discovery
    itself is not checked here: the announcement's registration is."""
    port = free_port()
    srv = _server("wyoming-zeroconf", model_dir, wyoming="true", wyoming_port=str(port), wyoming_zeroconf="true",
                  log_level="info")
    try:
        srv.wait_healthy()
        log = wait_for_log(srv, "Wyoming announced over mDNS as whisper-api-")
        assert f"._wyoming._tcp.local. at 127.0.0.1:{port}" in log, log
        assert "zeroconf announcement failed" not in log
    finally:
        srv.stop()
