# SPDX-License-Identifier: GPL-3.0-or-later
"""The seed guides' own curl calls, run unchanged except for the address (shared/seeds/ 002 and 000)."""

from __future__ import annotations

import json
import shutil
import subprocess

import pytest
from conftest import JFK_TEXT, SERVED_NAME, encode, jfk_samples, normalize

# Homelab guide (002): `curl ... 192.168.20.30:8000 ...` exactly as printed; only the address changes.
GUIDE_HEALTH = "curl http://192.168.20.30:8000/health"
GUIDE_TRANSCRIBE = """curl -X POST http://192.168.20.30:8000/transcribe \\
  -F 'file=@audio.mp3'"""
GUIDE_OPTIONS = """curl -X POST 'http://192.168.20.30:8000/transcribe?language=en&include_segments=true' \\
  -F 'file=@audio.mp3'"""
GUIDE_URL = """curl -X POST http://192.168.20.30:8000/transcribe/url \\
  -H "Content-Type: application/json" \\
  -d '{"url": "https://example.com/audio.mp3"}'"""
GUIDE_TRANSLATE = """curl -X POST 'http://192.168.20.30:8000/transcribe?task=translate' \\
  -F 'file=@spanish-audio.mp3'"""

# OpenShift guide (000): run with URL=<host:port> as its Step 5 sets it.
OPENSHIFT_MODELS = 'curl -sk "https://$URL/v1/models"'
OPENSHIFT_TRANSCRIBE = """curl -sk "https://$URL/v1/audio/transcriptions" \\
  -F file=@audio.wav \\
  -F model=whisper-large-fp8 \\
  -F response_format=json"""


def run(cmd: str, cwd, env=None) -> dict:
    assert shutil.which("curl"), "curl is needed: apt-get install -y curl"
    proc = subprocess.run(["bash", "-c", cmd], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=300, check=False)
    assert proc.returncode == 0, f"{cmd}\n{proc.stdout}\n{proc.stderr}"
    body = json.loads(proc.stdout)
    assert "error" not in body, body
    return body


@pytest.fixture(scope="module")
def workdir(tmp_path_factory, spanish_speech):
    d = tmp_path_factory.mktemp("curl")
    (d / "audio.mp3").write_bytes(encode(jfk_samples(), "mp3"))
    (d / "audio.wav").write_bytes(encode(jfk_samples(), "wav"))
    from whisper_api.audio import decode

    (d / "spanish-audio.mp3").write_bytes(encode(decode(spanish_speech.read_bytes(), max_duration_s=60).samples,
                                                 "mp3"))
    return d


def here(cmd: str, srv) -> str:
    return cmd.replace("192.168.20.30:8000", f"127.0.0.1:{srv.port}")


def test_guide_health(server, workdir):
    body = run(here(GUIDE_HEALTH, server), workdir)
    assert body["status"] == "healthy" and body["model"] == SERVED_NAME
    assert body["device"] == "cpu" and body["gpu_available"] in (True, False)


def test_guide_transcribe(server, workdir):
    body = run(here(GUIDE_TRANSCRIBE, server), workdir)
    assert set(body) == {"text", "language", "duration", "processing_time", "segments"}
    assert normalize(body["text"]) == normalize(JFK_TEXT) and body["segments"] is None


def test_guide_options(server, workdir):
    body = run(here(GUIDE_OPTIONS, server), workdir)
    assert body["language"] == "en" and body["segments"] and body["segments"][0]["words"]


def test_guide_url(server, workdir, files_127_2):
    """The guide's URL is on the internet; the tests may only reach loopback, so it points at 127.0.0.2."""
    cmd = here(GUIDE_URL, server).replace("https://example.com", files_127_2.url)
    body = run(cmd, workdir)
    assert normalize(body["text"]) == normalize(JFK_TEXT)


def test_guide_translate(server, workdir):
    body = run(here(GUIDE_TRANSLATE, server), workdir)
    assert body["text"] and body["duration"] > 2


def test_openshift_curls(tls_server, workdir):
    env = {"PATH": "/usr/bin:/bin", "URL": f"127.0.0.1:{tls_server.port}"}
    models = run(OPENSHIFT_MODELS, workdir, env)
    assert "whisper-large-fp8" in [m["id"] for m in models["data"]]
    body = run(OPENSHIFT_TRANSCRIBE, workdir, env)
    assert normalize(body["text"]) == normalize(JFK_TEXT)
    assert body["usage"] == {"type": "duration", "seconds": 11}
