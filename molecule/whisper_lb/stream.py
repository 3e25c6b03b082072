# SPDX-License-Identifier: GPL-3.0-or-later
"""A bounded stream of transcriptions through the load balancer while one backend is stopped and
started again (molecule/whisper_lb verify, issue 18).

Phases, each read from HAProxy's own Prometheus exporter (not from our requests): both backends up ->
the victim's service stopped (systemctl stop, its in-flight request finishes) -> HAProxy marks it DOWN
-> started again -> HAProxy marks it UP (its /health says the model is loaded) -> it serves again.
Prints one JSON object: status counts, per-phase answers per backend, retries and redispatches.
Exit 1 when a request got anything but 200 with the reference words, or the victim served nothing
after it came back, or the stream hit its bound first.
"""
from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
import threading
import time
import urllib.request

import requests

METRIC = re.compile(r'^(\w+)\{([^}]*)\} (\S+)$')


def scrape(url: str) -> dict[tuple[str, frozenset], float]:
    text = urllib.request.urlopen(url, timeout=10).read().decode()
    out = {}
    for line in text.splitlines():
        m = METRIC.match(line)
        if m:
            labels = frozenset(re.findall(r'(\w+)="([^"]*)"', m.group(2)))
            out[(m.group(1), labels)] = float(m.group(3))
    return out


def value(metrics, name, **labels) -> float:
    want = set(labels.items())
    return sum(v for (n, ls), v in metrics.items() if n == name and want <= set(ls))


def state(metrics, proxy, server) -> str:
    for (n, ls), v in metrics.items():
        d = dict(ls)
        if n == "haproxy_server_status" and d.get("proxy") == proxy and d.get("server") == server and v == 1:
            return d.get("state", "?")
    return "?"


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--lb", required=True)
    ap.add_argument("--metrics", required=True)
    ap.add_argument("--key", required=True)
    ap.add_argument("--audio", required=True)
    ap.add_argument("--words", required=True, help="the reference transcript")
    ap.add_argument("--proxy", default="whisper_api")
    ap.add_argument("--servers", required=True, help="comma-separated backend names")
    ap.add_argument("--victim", required=True)
    ap.add_argument("--stop", required=True, help="command that stops the victim's service")
    ap.add_argument("--start", required=True, help="command that starts it again")
    ap.add_argument("--concurrency", type=int, default=3)
    ap.add_argument("--max-requests", type=int, default=80)
    ap.add_argument("--timeout", type=float, default=300)
    a = ap.parse_args()
    servers = a.servers.split(",")
    audio = open(a.audio, "rb").read()
    want = re.findall(r"[a-z']+", a.words.lower())

    lock = threading.Lock()
    results: list[tuple[int, bool, float]] = []   # (status, words ok, finished at)
    issued = [0]
    stop = threading.Event()

    def worker():
        while not stop.is_set():
            with lock:
                if issued[0] >= a.max_requests:
                    return
                issued[0] += 1
            try:
                r = requests.post(a.lb + "/v1/audio/transcriptions", files={"file": ("jfk.flac", audio)},
                                  data={"model": "whisper-1"}, headers={"Authorization": "Bearer " + a.key}, timeout=120)
                ok = r.status_code == 200 and re.findall(r"[a-z']+", r.json().get("text", "").lower()) == want
                status = r.status_code
            except requests.RequestException as exc:  # counted as a lost request
                print(f"request failed: {exc}", file=sys.stderr)
                status, ok = 0, False
            with lock:
                results.append((status, ok, time.monotonic()))

    def done() -> int:
        with lock:
            return len(results)

    def wait(cond, what: str, deadline: float) -> None:
        while not cond():
            if time.monotonic() > deadline or issued[0] >= a.max_requests and done() >= issued[0]:
                raise TimeoutError(what)
            time.sleep(0.5)

    def served(metrics, server) -> float:
        return value(metrics, "haproxy_server_http_responses_total", proxy=a.proxy, server=server)

    m0 = scrape(a.metrics)
    assert all(state(m0, a.proxy, s) == "UP" for s in servers), {s: state(m0, a.proxy, s) for s in servers}
    t0 = time.monotonic()
    deadline = t0 + a.timeout
    threads = [threading.Thread(target=worker, daemon=True) for _worker in range(a.concurrency)]
    for t in threads:
        t.start()
    phases = {}
    error = None
    started = [False]
    try:
        wait(lambda: done() >= 2 * a.concurrency, "warm-up answers", deadline)
        m_before = scrape(a.metrics)
        subprocess.run(a.stop, shell=True, check=True)
        t_stop = time.monotonic()
        wait(lambda: state(scrape(a.metrics), a.proxy, a.victim) == "DOWN", f"{a.victim} DOWN", deadline)
        t_down = time.monotonic()
        m_down = scrape(a.metrics)
        n_down = done()
        wait(lambda: done() >= n_down + 2 * a.concurrency, "answers with the victim down", deadline)
        m_down_end = scrape(a.metrics)
        subprocess.run(a.start, shell=True, check=True)
        started[0] = True
        t_start = time.monotonic()
        wait(lambda: state(scrape(a.metrics), a.proxy, a.victim) == "UP", f"{a.victim} UP again", deadline)
        t_up = time.monotonic()
        m_up = scrape(a.metrics)
        wait(lambda: served(scrape(a.metrics), a.victim) >= served(m_up, a.victim) + 2, f"{a.victim} serving again", deadline)
        phases = {
            "both up (before the stop)": {s: served(m_before, s) - served(m0, s) for s in servers},
            "stopping (stop -> DOWN)": {s: served(m_down, s) - served(m_before, s) for s in servers},
            "victim down": {s: served(m_down_end, s) - served(m_down, s) for s in servers},
        }
        timings = {"stop_to_down_s": round(t_down - t_stop, 1), "start_to_up_s": round(t_up - t_start, 1)}
    except TimeoutError as exc:
        error = f"the stream ended before: {exc}"
        timings = {}
        if not started[0]:  # leave the victim running for what comes after
            subprocess.run(a.start, shell=True, check=False)
    stop.set()
    for t in threads:
        t.join(timeout=180)
    m_end = scrape(a.metrics)
    if phases:
        phases["restarting (start -> UP)"] = {s: served(m_up, s) - served(m_down_end, s) for s in servers}
        phases["back up (UP -> end)"] = {s: served(m_end, s) - served(m_up, s) for s in servers}
    statuses: dict[str, int] = {}
    for status, _ok, _t in results:
        statuses[str(status)] = statuses.get(str(status), 0) + 1
    report = {
        "requests": len(results), "statuses": statuses,
        "transcripts_ok": sum(ok for _s, ok, _t in results),
        "answers_per_backend_per_phase": phases, **timings,
        "retries": value(m_end, "haproxy_backend_retry_warnings_total", proxy=a.proxy)
        - value(m0, "haproxy_backend_retry_warnings_total", proxy=a.proxy),
        "redispatches": value(m_end, "haproxy_backend_redispatch_warnings_total", proxy=a.proxy)
        - value(m0, "haproxy_backend_redispatch_warnings_total", proxy=a.proxy),
        "seconds": round(time.monotonic() - t0, 1),
    }
    if error or statuses.keys() - {"200"}:
        report["server_states_at_end"] = {s: state(m_end, a.proxy, s) for s in servers}
        report["answers_per_server_and_code"] = {
            f"{dict(ls)['server']} {dict(ls)['code']}": v - m0.get((n, ls), 0) for (n, ls), v in m_end.items()
            if n == "haproxy_server_http_responses_total" and dict(ls).get("proxy") == a.proxy and v}
        report["backend_answers_per_code"] = {
            dict(ls)["code"]: v - m0.get((n, ls), 0) for (n, ls), v in m_end.items()
            if n == "haproxy_backend_http_responses_total" and dict(ls).get("proxy") == a.proxy and v}
    print(json.dumps(report))
    failures = []
    if error:
        failures.append(error)
    if statuses.keys() - {"200"}:
        failures.append(f"answers other than 200: {statuses}")
    if report["transcripts_ok"] != len(results):
        failures.append("a 200 with a wrong transcript")
    if phases and phases["victim down"][a.victim] != 0:
        failures.append(f"{a.victim} answered while HAProxy had it DOWN")
    if phases and phases["back up (UP -> end)"][a.victim] < 1:
        failures.append(f"{a.victim} got no traffic after it came back")
    for f in failures:
        print("FAIL: " + f, file=sys.stderr)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
