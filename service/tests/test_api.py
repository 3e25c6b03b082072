# SPDX-License-Identifier: GPL-3.0-or-later
"""The live service with the real tiny.en model: accuracy, formats, streaming, the OpenAI client."""

from __future__ import annotations

import json

import openai
import pytest
import srt
import webvtt
from conftest import API_KEYS, JFK, JFK_TEXT, SERVED_NAME, TIME_TOLERANCE_S, encode, jfk_samples, normalize, wer


def post(server, path="/v1/audio/transcriptions", data=None, content=None, name="jfk.flac", **kw):
    with server.client() as c:
        return c.post(path, files={"file": (name, JFK.read_bytes() if content is None else content)},
                      data=data or {}, **kw)


def test_health_shape(server):
    with server.client() as c:
        body = c.get("/health").json()
    assert body["status"] == "healthy"
    assert body["model"] == SERVED_NAME
    assert body["device"] == "cpu" and body["compute_type"] == "int8"
    assert isinstance(body["gpu_available"], bool)


def test_jfk_matches_reference_guide_route(server):
    with server.client() as c:
        r = c.post("/transcribe", files={"file": ("jfk.flac", JFK.read_bytes())})
    assert r.status_code == 200, r.text
    body = r.json()
    assert normalize(body["text"]) == normalize(JFK_TEXT)
    assert body["language"] == "en" and body["duration"] == pytest.approx(11.0, abs=0.05)
    assert body["processing_time"] > 0 and body["segments"] is None


def test_guide_segments_have_word_timestamps(server):
    with server.client() as c:
        r = c.post("/transcribe", params={"language": "en", "include_segments": "true"},
                   files={"file": ("jfk.flac", JFK.read_bytes())})
    segs = r.json()["segments"]
    words = [w for s in segs for w in s["words"]]
    assert normalize(" ".join(w["word"] for w in words)) == normalize(JFK_TEXT)
    starts = [w["start"] for w in words]
    assert starts == sorted(starts) and 0 <= starts[0] and words[-1]["end"] <= 11.0 + TIME_TOLERANCE_S


@pytest.mark.parametrize("fmt", ["wav", "mp3", "m4a", "ogg", "webm"])
def test_formats_transcribe(server, fmt):
    r = post(server, data={"model": "whisper-1", "response_format": "text"},
             content=encode(jfk_samples(), fmt), name=f"jfk.{fmt}")
    assert r.status_code == 200, r.text
    assert r.headers["content-type"].startswith("text/plain")
    assert wer(JFK_TEXT, r.text) == 0.0, r.text


def test_json_has_text_and_usage(server):
    r = post(server, data={"model": SERVED_NAME})
    assert r.json()["usage"] == {"type": "duration", "seconds": 11}
    assert normalize(r.json()["text"]) == normalize(JFK_TEXT)


def _check_subtitles(text_srt: str, text_vtt: str, duration: float, reference: str, max_wer: float):
    subs = list(srt.parse(text_srt))
    caps = webvtt.from_string(text_vtt).captions
    assert subs and len(subs) == len(caps)
    prev = 0.0
    for sub in subs:
        start, end = sub.start.total_seconds(), sub.end.total_seconds()
        assert prev <= start <= end <= duration, (prev, start, end, duration)
        prev = start
    for cap in caps:
        assert cap.start <= cap.end
    assert wer(reference, " ".join(s.content for s in subs)) <= max_wer
    assert wer(reference, " ".join(c.text for c in caps)) <= max_wer


def test_srt_vtt_jfk(server):
    s = post(server, data={"response_format": "srt"}).text
    v = post(server, data={"response_format": "vtt"}).text
    assert v.startswith("WEBVTT")
    _check_subtitles(s, v, 11.0, JFK_TEXT, 0.0)


def test_long_espeak_audio(server, long_speech):
    """~45 s of speech: several 30 s windows; subtitles stay ordered and inside the audio."""
    path, text = long_speech
    data = path.read_bytes()
    r = post(server, data={"response_format": "verbose_json"}, content=data, name="long.wav")
    body = r.json()
    assert body["duration"] > 30, "the espeak sample must span more than one 30 s window"
    assert wer(text, body["text"]) < 0.25, body["text"]
    s = post(server, data={"response_format": "srt"}, content=data, name="long.wav").text
    v = post(server, data={"response_format": "vtt"}, content=data, name="long.wav").text
    _check_subtitles(s, v, body["duration"], text, 0.25)


def test_verbose_json_words_and_segments(server):
    r = post(server, data={"response_format": "verbose_json", "timestamp_granularities[]": ["word", "segment"]})
    body = r.json()
    assert body["task"] == "transcribe" and body["language"] == "english"
    assert body["duration"] == pytest.approx(11.0, abs=0.05)
    assert normalize(" ".join(w["word"] for w in body["words"])) == normalize(JFK_TEXT)
    assert all(0 <= w["start"] <= w["end"] <= body["duration"] + TIME_TOLERANCE_S for w in body["words"])
    seg = body["segments"][0]
    assert set(seg) >= {"id", "seek", "start", "end", "text", "tokens", "temperature", "avg_logprob",
                        "compression_ratio", "no_speech_prob"}
    no_words = post(server, data={"response_format": "verbose_json"}).json()
    assert "words" not in no_words and no_words["segments"]


def test_translation_route(server):
    r = post(server, "/v1/audio/translations", data={"model": "whisper-1"})
    assert r.status_code == 200 and normalize(r.json()["text"]) == normalize(JFK_TEXT)


def test_models_routes(server):
    with server.client() as c:
        listed = c.get("/v1/models").json()
        one = c.get("/v1/models/whisper-1").json()
        missing = c.get("/v1/models/gpt-9")
    assert listed["object"] == "list" and [m["id"] for m in listed["data"]] == [SERVED_NAME, "whisper-1"]
    assert one == {"id": "whisper-1", "object": "model", "created": one["created"], "owned_by": "whisper-api"}
    assert missing.status_code == 404 and missing.json()["error"]["code"] == "model_not_found"


def test_sse_stream(server, long_speech):
    path, text = long_speech
    with server.client() as c, c.stream("POST", "/v1/audio/transcriptions",
                                        files={"file": ("long.wav", path.read_bytes())},
                                        data={"stream": "true"}) as r:
        assert r.status_code == 200 and r.headers["content-type"].startswith("text/event-stream")
        events = [json.loads(line[6:]) for line in r.iter_lines() if line.startswith("data: ")]
    deltas = [e for e in events if e["type"] == "transcript.text.delta"]
    assert len(deltas) >= 2 and events[-1]["type"] == "transcript.text.done"
    assert normalize("".join(d["delta"] for d in deltas)) == normalize(events[-1]["text"])
    assert wer(text, events[-1]["text"]) < 0.25


def test_sse_stream_bad_audio_is_a_plain_400(server):
    r = post(server, data={"stream": "true"}, content=b"not audio" * 100, name="x.mp3")
    assert r.status_code == 400 and "could not be decoded as audio" in r.json()["error"]["message"]


# The official OpenAI client ---------------------------------------------------------------------
def test_openai_client_without_key(server):
    client = openai.OpenAI(base_url=server.url + "/v1", api_key="unused-when-auth-is-off", max_retries=0)
    with JFK.open("rb") as f:
        t = client.audio.transcriptions.create(model="whisper-1", file=f)
    assert normalize(t.text) == normalize(JFK_TEXT)
    with JFK.open("rb") as f:
        v = client.audio.transcriptions.create(model="whisper-1", file=f, response_format="verbose_json",
                                               timestamp_granularities=["word"])
    assert normalize(" ".join(w.word for w in v.words)) == normalize(JFK_TEXT)
    assert v.duration == pytest.approx(11.0, abs=0.05)
    with JFK.open("rb") as f:
        s = client.audio.transcriptions.create(model="whisper-1", file=f, response_format="srt")
    assert list(srt.parse(s))
    with JFK.open("rb") as f:
        tr = client.audio.translations.create(model="whisper-1", file=f)
    assert normalize(tr.text) == normalize(JFK_TEXT)
    assert [m.id for m in client.models.list()] == [SERVED_NAME, "whisper-1"]


def test_openai_client_stream(server):
    client = openai.OpenAI(base_url=server.url + "/v1", api_key="x", max_retries=0)
    with JFK.open("rb") as f:
        events = list(client.audio.transcriptions.create(model="whisper-1", file=f, stream=True))
    assert events[-1].type == "transcript.text.done"
    assert normalize(events[-1].text) == normalize(JFK_TEXT)
    assert {e.type for e in events[:-1]} == {"transcript.text.delta"}


def test_openai_client_error_classes(server):
    client = openai.OpenAI(base_url=server.url + "/v1", api_key="x", max_retries=0)
    with pytest.raises(openai.NotFoundError) as nf, JFK.open("rb") as f:
        client.audio.transcriptions.create(model="whisper-9000", file=f)
    assert nf.value.code == "model_not_found" and nf.value.param == "model"
    with pytest.raises(openai.BadRequestError) as br:
        client.audio.transcriptions.create(model="whisper-1", file=("empty.wav", b""))
    assert "empty (0 bytes)" in br.value.message
    with pytest.raises(openai.BadRequestError) as bf, JFK.open("rb") as f:
        client.audio.transcriptions.create(model="whisper-1", file=f, response_format="docx")
    assert bf.value.param == "response_format"


def test_openai_client_with_key(auth_server):
    for key in API_KEYS:  # one from WHISPER_API_KEYS, one from WHISPER_API_KEYS_FILE
        client = openai.OpenAI(base_url=auth_server.url + "/v1", api_key=key, max_retries=0)
        with JFK.open("rb") as f:
            assert normalize(client.audio.transcriptions.create(model="whisper-1", file=f).text) == normalize(JFK_TEXT)
    bad = openai.OpenAI(base_url=auth_server.url + "/v1", api_key="sk-wrong-key-000000", max_retries=0)
    with pytest.raises(openai.AuthenticationError) as err, JFK.open("rb") as f:
        bad.audio.transcriptions.create(model="whisper-1", file=f)
    assert err.value.code == "invalid_api_key" and "sk-wrong-key" not in err.value.message
    with pytest.raises(openai.AuthenticationError):
        bad.models.list()
