# SPDX-License-Identifier: GPL-3.0-or-later
"""The benchmark's arithmetic and output: corpus word error rate, percentiles, the JSON rows, the README table.

Pure functions (no servers, no model): service/tests/test_bench_report.py tests them.
"""

from __future__ import annotations

import importlib.util
import json
import math
from pathlib import Path

KEYS = ("server", "workload", "audio_s_per_s", "p50_s", "p95_s", "wer", "health_p99_ms")
WORKLOADS = ("A", "B")
BEGIN = "<!-- bench-service:begin (written by make bench-service; edits here are overwritten) -->"
END = "<!-- bench-service:end -->"


def _load_transcript_filters():
    """The repository's one transcript normaliser (plugins/filter/transcript.py, standard library only)."""
    path = Path(__file__).resolve().parents[2] / "plugins" / "filter" / "transcript.py"
    spec = importlib.util.spec_from_file_location("homelab_transcript_filters", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


_TRANSCRIPT = _load_transcript_filters()


def wer(refs: list[str], hyps: list[str]) -> float:
    """Corpus word error rate: the word edits of every (reference, transcript) pair over the words of
    every reference, on the words of plugins/filter/transcript.py (case and punctuation dropped)."""
    if len(refs) != len(hyps):
        raise ValueError(f"{len(refs)} references but {len(hyps)} transcripts")
    words = [len(_TRANSCRIPT.transcript_words(r)) for r in refs]
    if not all(words):
        raise ValueError("a reference text has no words")
    edits = sum(round(_TRANSCRIPT.transcript_wer(h, r) * n) for r, h, n in zip(refs, hyps, words))
    return edits / sum(words)


def percentile(values: list[float], q: float) -> float:
    """The q-th percentile (0-100), linear between the closest ranks (numpy's default method)."""
    if not values:
        raise ValueError("percentile of no values")
    if not 0 <= q <= 100:
        raise ValueError(f"percentile {q} is outside 0-100")
    xs = sorted(values)
    pos = (len(xs) - 1) * q / 100
    lo, hi = math.floor(pos), math.ceil(pos)
    return xs[lo] + (xs[hi] - xs[lo]) * (pos - lo)


def row(server: str, workload: str, audio_s: float, wall_s: float, latencies: list[float], refs: list[str],
        hyps: list[str], health: list[float] | None) -> dict:
    """One JSON object of the results: audio seconds per wall-clock second, latency p50/p95 in s, the
    WER, and /health p99 in ms (None for a server without a health route)."""
    if workload not in WORKLOADS:
        raise ValueError(f"workload {workload!r} is not one of {WORKLOADS}")
    if wall_s <= 0:
        raise ValueError(f"wall time {wall_s} is not positive")
    return {
        "server": server,
        "workload": workload,
        "audio_s_per_s": round(audio_s / wall_s, 2),
        "p50_s": round(percentile(latencies, 50), 3),
        "p95_s": round(percentile(latencies, 95), 3),
        "wer": round(wer(refs, hyps), 4),
        "health_p99_ms": round(percentile(health, 99) * 1000, 1) if health else None,
    }


def write_json(rows: list[dict], path: Path) -> None:
    """The results as a JSON list, one object per server and workload, exactly the keys of KEYS."""
    for r in rows:
        if tuple(r) != KEYS:
            raise ValueError(f"result row has keys {list(r)}, expected {list(KEYS)}")
        if r["workload"] not in WORKLOADS:
            raise ValueError(f"result row has workload {r['workload']!r}, expected one of {WORKLOADS}")
    path.write_text(json.dumps(rows, indent=1) + "\n", encoding="utf-8")


def _fmt(value, spec: str) -> str:
    return "-" if value is None else format(value, spec)


def table(rows: list[dict]) -> str:
    """A Markdown table, one line per server (in the order of rows), workloads A and B side by side."""
    by: dict[str, dict[str, dict]] = {}
    for r in rows:
        by.setdefault(r["server"], {})[r["workload"]] = r
    head = ("| server | A: audio-s/s | A p50 s | A p95 s | A WER | B: audio-s/s | B p50 s | B p95 s | B WER "
            "| /health p99 ms (A / B) |")
    lines = [head, "|" + "---|" * (head.count("|") - 1)]
    for server, w in by.items():
        cells = [server]
        for name in WORKLOADS:
            r = w.get(name, {})
            cells += [_fmt(r.get("audio_s_per_s"), ".1f"), _fmt(r.get("p50_s"), ".2f"), _fmt(r.get("p95_s"), ".2f"),
                      _fmt(r.get("wer"), ".3f")]
        cells.append(" / ".join(_fmt(w.get(name, {}).get("health_p99_ms"), ".1f") for name in WORKLOADS))
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def replace_section(text: str, body: str) -> str:
    """text with what lies between the BEGIN and END markers replaced by body."""
    start, end = text.find(BEGIN), text.find(END)
    if start < 0 or end < 0 or end < start or text.count(BEGIN) != 1 or text.count(END) != 1:
        raise ValueError(f"the README must hold the markers {BEGIN!r} and {END!r} once each, in that order")
    return text[:start] + BEGIN + "\n" + body.strip("\n") + "\n" + text[end:]


def write_readme(path: Path, body: str) -> None:
    path.write_text(replace_section(path.read_text(encoding="utf-8"), body), encoding="utf-8")
