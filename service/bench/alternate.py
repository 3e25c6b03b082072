# SPDX-License-Identifier: GPL-3.0-or-later
"""One Wyoming client, then 16, in alternating rounds: whisper-api in each --config against
wyoming-faster-whisper, all servers up at once, so a slow minute of a shared machine falls on every
server alike (bench.py measures one server after the other).

Each round, for each server in turn: workload B's 16 utterances one after the other (one client: the
latency p50/p95 of a request alone), then all 16 at once (the throughput, audio-s/s), and for
whisper-api the 16 at once over HTTP as well. Prints each round and the medians. Same model, int8,
beam 5 and threads as bench.py. Not a test: it prints figures.
Usage: HF_HUB_OFFLINE=1 service/.venv/bin/python service/bench/alternate.py \
         --config "defaults=" --config "2x1=WHISPER_API_WORKERS=2 WHISPER_API_CPU_THREADS=1" [--rounds 4]
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import statistics
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import bench  # noqa: E402
import peers as peerlib  # noqa: E402


def p95(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[max(0, -(-95 * len(ordered) // 100) - 1)]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n", 1)[0])
    ap.add_argument("--config", action="append", default=None, metavar="LABEL=VAR=VALUE ...",
                    help="a whisper-api configuration, served over Wyoming (repeatable; default: 'defaults=')")
    ap.add_argument("--rounds", type=int, default=4)
    ap.add_argument("--threads", type=int, default=os.cpu_count() or 2)
    ap.add_argument("--beam", type=int, default=5)
    ap.add_argument("--peers-dir", type=Path,
                    default=Path(os.environ.get("BENCH_PEERS_DIR") or bench.REPO.parent / ".bench-peers"))
    ap.add_argument("--peers-src", type=Path,
                    default=Path(os.environ.get("BENCH_PEERS_SRC") or bench.REPO.parent / "shared" / "peers"))
    args = ap.parse_args()
    bench.need_tools()
    utterances = bench.workloads(1, 16)["B"]
    model_dir = bench.default_model()
    port = bench.free_port()
    todo = []
    for spec in args.config or ["defaults="]:
        label, env = bench.parse_config(spec)
        peer = bench.service_wyoming_peer(model_dir, args.threads, args.beam, port)
        peer.env.update(env)
        peer.name = f"whisper-api, {label}" + (f" ({' '.join(f'{k}={v}' for k, v in env.items())})" if env else "")
        todo.append(peer)
    found, notes = peerlib.peer_servers(["wyoming-faster-whisper"], args.peers_dir, args.peers_src,
                                        Path(model_dir), args.threads, port)
    todo += found
    for note in notes:
        print(note, file=sys.stderr)
    servers: list[bench.Proc] = []
    load_start = os.getloadavg()
    try:
        for peer in todo:
            port = bench.free_port(port + 2)
            bench._rewrite_port(peer, port)  # noqa: SLF001 - bench's own helper
            server = bench.Proc(peer.argv, peer.env, port, peer.name, cwd=peer.cwd, ready=peer.ready)
            servers.append(server)
            server.wait()
            bench.run_load(peer, server.url, utterances[:1])  # warm-up
        alone: dict[str, list[float]] = {peer.name: [] for peer in todo}
        rates: dict[str, list[float]] = {peer.name: [] for peer in todo}
        http_rates: dict[str, list[float]] = {}
        audio = sum(u.seconds for u in utterances)
        for n in range(args.rounds):
            for peer, server in zip(todo, servers):
                _wall, latencies, _texts = bench.run_load(peer, server.url, utterances, one_client=True)
                alone[peer.name] += latencies
                wall, _lat, _texts = bench.run_load(peer, server.url, utterances)
                rates[peer.name].append(audio / wall)
                line = (f"round {n + 1}: {peer.name}: 1 client p50 {statistics.median(latencies):.3f} s; "
                        f"16 clients {rates[peer.name][-1]:.1f} audio-s/s")
                if peer.form:  # whisper-api: the same 16 over HTTP too
                    http = dataclasses.replace(peer, protocol="openai")
                    wall, _lat, _texts = bench.run_load(http, server.url, utterances)
                    http_rates.setdefault(peer.name, []).append(audio / wall)
                    line += f"; over HTTP {http_rates[peer.name][-1]:.1f}"
                print(line, flush=True)
    finally:
        for server in servers:
            server.stop()
    load_end = os.getloadavg()
    print(f"\n{args.rounds} rounds of {len(utterances)} utterances ({audio:.0f} s of audio), {os.cpu_count()} CPUs, "
          f"{args.threads} threads per server; load average {load_start[0]:.2f} before, {load_end[0]:.2f} after.")
    print("| server | 1 client p50 s | 1 client p95 s | 16 clients audio-s/s | 16 over HTTP audio-s/s |\n"
          "|---|---|---|---|---|")
    for name in alone:
        http = f"{statistics.median(http_rates[name]):.1f}" if name in http_rates else "-"
        print(f"| {name} | {statistics.median(alone[name]):.2f} | {p95(alone[name]):.2f} | "
              f"{statistics.median(rates[name]):.1f} | {http} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
