# SPDX-License-Identifier: GPL-3.0-or-later
"""faster-whisper models on the Hugging Face Hub: one home for the size names, the files a model
needs, the hub's URL layout and a resumable download into a controller directory.

Facts, read from the installed packages (service/.venv, the versions service/requirements.lock pins):
- size name -> hub id: ``faster_whisper.utils._MODELS`` (faster-whisper 1.2.1);
- the files a model needs: the ``allow_patterns`` of ``faster_whisper.utils.download_model``;
- the URL layout: ``huggingface_hub.constants.HUGGINGFACE_CO_URL_TEMPLATE``
  (``{endpoint}/{repo_id}/resolve/{revision}/{filename}``) and ``HfApi.model_info``
  (``{endpoint}/api/models/{repo_id}/revision/{revision}``, ``blobs=True`` adds each file's ``size``
  and, for LFS files, ``lfs.sha256``), ``ENDPOINT`` defaulting to https://huggingface.co.

No AnsibleModule here: the network is an injected ``opener(url, headers) -> response`` (a file-like
object with ``read(n)`` and ``.status``/``.code``), so the tests run it against a local stand-in of
the hub.
"""
from __future__ import annotations

import fnmatch
import hashlib
import json
import os
import re
import time

# faster_whisper.utils._MODELS (faster-whisper 1.2.1)
MODELS = {
    "tiny.en": "Systran/faster-whisper-tiny.en",
    "tiny": "Systran/faster-whisper-tiny",
    "base.en": "Systran/faster-whisper-base.en",
    "base": "Systran/faster-whisper-base",
    "small.en": "Systran/faster-whisper-small.en",
    "small": "Systran/faster-whisper-small",
    "medium.en": "Systran/faster-whisper-medium.en",
    "medium": "Systran/faster-whisper-medium",
    "large-v1": "Systran/faster-whisper-large-v1",
    "large-v2": "Systran/faster-whisper-large-v2",
    "large-v3": "Systran/faster-whisper-large-v3",
    "large": "Systran/faster-whisper-large-v3",
    "distil-large-v2": "Systran/faster-distil-whisper-large-v2",
    "distil-medium.en": "Systran/faster-distil-whisper-medium.en",
    "distil-small.en": "Systran/faster-distil-whisper-small.en",
    "distil-large-v3": "Systran/faster-distil-whisper-large-v3",
    "distil-large-v3.5": "distil-whisper/distil-large-v3.5-ct2",
    "large-v3-turbo": "mobiuslabsgmbh/faster-whisper-large-v3-turbo",
    "turbo": "mobiuslabsgmbh/faster-whisper-large-v3-turbo",
}

# faster_whisper.utils.download_model: allow_patterns
MODEL_FILES = ["config.json", "preprocessor_config.json", "model.bin", "tokenizer.json", "vocabulary.*"]
# What a directory needs to be loadable by CTranslate2 (the role's preflight checks the same two).
REQUIRED_FILES = ["model.bin", "config.json"]

DEFAULT_HUB_URL = "https://huggingface.co"
MARKER = ".hub.json"
PARTIAL = ".partial"
_REPO_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*/[A-Za-z0-9][A-Za-z0-9._-]*$")


class HubError(Exception):
    """Something the user can fix; the message says what was found and what to do."""


def repo_id(name):
    """The hub id for a size name (``small`` -> ``Systran/faster-whisper-small``) or a hub id itself."""
    name = (name or "").strip()
    if "/" in name:
        if not _REPO_ID.match(name):
            raise HubError("%r is not a hub id: expected OWNER/NAME, e.g. Systran/faster-whisper-small" % name)
        return name
    if name in MODELS:
        return MODELS[name]
    raise HubError("unknown model size %r: use one of %s, or a hub id OWNER/NAME of a CTranslate2 "
                   "(faster-whisper) model" % (name, ", ".join(MODELS)))


def dir_name(name):
    """The folder a model gets in the controller cache: the hub id with '/' as '--'."""
    return repo_id(name).replace("/", "--")


def api_url(hub_url, repo, revision):
    return "%s/api/models/%s/revision/%s?blobs=true" % (hub_url.rstrip("/"), repo, _quote(revision))


def file_url(hub_url, repo, revision, filename):
    return "%s/%s/resolve/%s/%s" % (hub_url.rstrip("/"), repo, _quote(revision), filename)


def _quote(text):
    return re.sub(r"[^A-Za-z0-9._-]", lambda m: "%%%02X" % ord(m.group(0)), text)


def select_files(siblings):
    """The model's files from the hub's ``siblings`` list: [{name, size, sha256}] (sha256 for LFS files)."""
    files = []
    for s in siblings:
        name = s.get("rfilename", "")
        if "/" in name or not any(fnmatch.fnmatchcase(name, p) for p in MODEL_FILES):
            continue
        lfs = s.get("lfs") or {}
        size = lfs.get("size", s.get("size"))
        files.append({"name": name, "size": int(size) if size is not None else None, "sha256": lfs.get("sha256")})
    return sorted(files, key=lambda f: f["name"])


def human(n):
    n = float(n or 0)
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1000 or unit == "GB":
            return ("%d %s" % (n, unit)) if unit == "B" else ("%.1f %s" % (n, unit))
        n /= 1000.0
    return "%.1f GB" % n


def read_marker(dest):
    try:
        with open(os.path.join(dest, MARKER)) as f:
            return json.load(f)
    except (OSError, ValueError):
        return None


def cached(dest, repo, revision):
    """The marker of a complete earlier fetch of the same repo and revision whose files are all
    there with their sizes, or None."""
    marker = read_marker(dest)
    if not marker or marker.get("repo_id") != repo or marker.get("revision") != revision:
        return None
    for f in marker.get("files", []):
        path = os.path.join(dest, f["name"])
        if not os.path.isfile(path) or (f.get("size") is not None and os.path.getsize(path) != f["size"]):
            return None
    return marker


class Fetcher(object):
    """Fetch one model from the hub into ``dest``; ``progress(text)`` is told what happens.

    Resumable: a file is written to ``dest/.partial/NAME`` and continued with an HTTP Range request
    after an interruption (also in a later run), checked against the hub's size (and sha256 for LFS
    files), then moved into place. A complete fetch writes ``dest/.hub.json``; a later run with the
    same repo and revision finds it and asks the hub nothing.
    """

    def __init__(self, opener, hub_url, dest, progress=None, chunk=1 << 20, attempts=3, report_every=5.0):
        self.opener = opener
        self.hub_url = hub_url or DEFAULT_HUB_URL
        self.dest = dest
        self.progress = progress or (lambda text: None)
        self.chunk = chunk
        self.attempts = attempts
        self.report_every = report_every
        self.downloaded = 0

    def plan(self, repo, revision):
        """Ask the hub for the model's files: (commit sha, [files])."""
        url = api_url(self.hub_url, repo, revision)
        try:
            resp = self.opener(url, {})
            info = json.loads(resp.read().decode("utf-8"))
        except HubError:
            raise
        except Exception as e:  # the opener's own errors (HTTP 401/404, DNS, TLS) carry the detail
            raise HubError("cannot read the file list of %s at %s (%s): %s. Check the model name, the hub URL "
                           "and that this controller reaches it" % (repo, url, revision, _why(e)))
        files = select_files(info.get("siblings") or [])
        names = [f["name"] for f in files]
        missing = [r for r in REQUIRED_FILES if r not in names]
        if missing:
            raise HubError("%s (%s) has no %s: not a CTranslate2 (faster-whisper) model. Its files: %s" % (
                repo, revision, " or ".join(missing), ", ".join(s.get("rfilename", "?") for s in info.get("siblings") or []) or "none"))
        return info.get("sha") or revision, files

    def missing(self, files):
        """The files not yet in ``dest`` with the right size."""
        out = []
        for f in files:
            path = os.path.join(self.dest, f["name"])
            if not (os.path.isfile(path) and (f["size"] is None or os.path.getsize(path) == f["size"])):
                out.append(f)
        return out

    def fetch(self, repo, revision, sha, files):
        """Download what is missing; returns the names downloaded."""
        todo = self.missing(files)
        total = sum(f["size"] or 0 for f in todo)
        if todo:
            self.progress("%s: %d file(s) to fetch, %s, from %s" % (repo, len(todo), human(total), self.hub_url))
        partial_dir = os.path.join(self.dest, PARTIAL)
        for f in todo:
            if not os.path.isdir(partial_dir):
                os.makedirs(partial_dir)
            self._fetch_file(repo, sha, f, os.path.join(partial_dir, f["name"]))
            os.rename(os.path.join(partial_dir, f["name"]), os.path.join(self.dest, f["name"]))
        if os.path.isdir(partial_dir) and not os.listdir(partial_dir):
            os.rmdir(partial_dir)
        marker = {"repo_id": repo, "revision": revision, "sha": sha, "hub_url": self.hub_url,
                  "files": [{"name": f["name"], "size": f["size"]} for f in files]}
        tmp = os.path.join(self.dest, MARKER + ".tmp")
        with open(tmp, "w") as out:
            json.dump(marker, out, indent=1, sort_keys=True)
        os.rename(tmp, os.path.join(self.dest, MARKER))
        return [f["name"] for f in todo]

    def _fetch_file(self, repo, sha, f, part):
        url = file_url(self.hub_url, repo, sha, f["name"])
        size = f["size"]
        last_error = None
        for attempt in range(1, self.attempts + 1):
            have = os.path.getsize(part) if os.path.exists(part) else 0
            if size is not None and have > size:
                os.remove(part)
                have = 0
            if size is not None and have == size:
                break
            try:
                self._stream(url, f["name"], part, have, size)
                last_error = None
            except HubError:
                raise
            except Exception as e:  # a dropped connection: resume from what arrived
                last_error = e
                self.progress("%s: interrupted at %s (%s), attempt %d of %d" % (
                    f["name"], human(os.path.getsize(part) if os.path.exists(part) else 0), _why(e), attempt, self.attempts))
                continue
            if size is None or os.path.getsize(part) == size:
                break
            last_error = "got %d of %d bytes" % (os.path.getsize(part), size)
        got = os.path.getsize(part) if os.path.exists(part) else 0
        if last_error is not None or (size is not None and got != size):
            raise HubError("%s of %s: %s after %d attempts (%s of %s kept in %s; run again to resume)" % (
                f["name"], repo, _why(last_error) if last_error else "incomplete", self.attempts, human(got),
                human(size), part))
        if f.get("sha256"):
            digest = _sha256(part)
            if digest != f["sha256"]:
                os.remove(part)
                raise HubError("%s of %s: sha256 %s, the hub says %s; the download was removed, run again" % (
                    f["name"], repo, digest, f["sha256"]))

    def _stream(self, url, name, part, have, size):
        headers = {"Range": "bytes=%d-" % have} if have else {}
        resp = self.opener(url, headers)
        status = getattr(resp, "status", None) or getattr(resp, "code", None) or 200
        mode = "ab"
        if have and status != 206:  # the server ignored the Range: start over
            have, mode = 0, "wb"
        if have:
            self.progress("%s: resuming at %s of %s" % (name, human(have), human(size)))
        start = time.time()
        last = start
        done = have
        with open(part, mode) as out:
            while True:
                block = resp.read(self.chunk)
                if not block:
                    break
                out.write(block)
                done += len(block)
                self.downloaded += len(block)
                now = time.time()
                if now - last >= self.report_every:
                    last = now
                    self.progress(_line(name, done, size, done - have, now - start))
        if size is not None and done < size:
            raise IOError("the connection ended after %s of %s" % (human(done), human(size)))
        self.progress(_line(name, done, size, done - have, time.time() - start, final=True))


def _line(name, done, size, moved, seconds, final=False):
    rate = moved / seconds if seconds > 0 else 0
    pct = " (%d%%)" % (100 * done // size) if size else ""
    return "%s: %s%s of %s%s, %s/s" % (
        name, "done, " if final else "", human(done), human(size) if size is not None else "?", pct, human(rate))


def _sha256(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _why(e):
    return "%s" % (getattr(e, "reason", None) or e)
