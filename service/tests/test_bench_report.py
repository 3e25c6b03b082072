# SPDX-License-Identifier: GPL-3.0-or-later
"""The benchmark's arithmetic and output (bench/report.py, bench/bench.py's option parsing,
bench/peers.py's lock export): fast, no server, no model, no peer installed.

The benchmark itself (make bench-service) is not a test: it prints figures."""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[1] / "bench"
sys.path.insert(0, str(BENCH))
import bench  # noqa: E402
import peers  # noqa: E402
import report  # noqa: E402

REPO = BENCH.parents[1]
FIXTURES = Path(__file__).parent / "fixtures"
TEN = "the quick brown fox jumps over the lazy old dog"


# WER ---------------------------------------------------------------------------------------------
def test_wer_is_zero_for_the_same_words_whatever_the_case_and_punctuation():
    assert report.wer([TEN], ["The quick, brown fox jumps over the lazy old dog!"]) == 0.0


@pytest.mark.parametrize("hyp, expected", [
    ("the quick brown cat jumps over the lazy old dog", 0.1),  # one substitution
    ("the quick brown fox jumps over the lazy dog", 0.1),  # one deletion
    ("the quick brown fox jumps over and over the lazy old dog", 0.2),  # two insertions
    ("", 1.0),
])
def test_wer_counts_word_edits(hyp, expected):
    assert report.wer([TEN], [hyp]) == pytest.approx(expected)


def test_wer_of_a_workload_weighs_each_request_by_its_words():
    """Corpus WER: 1 edit in 2 words plus 0 in 10 words is 1/12, not the mean of 0.5 and 0."""
    assert report.wer(["hello world", TEN], ["hello word", TEN]) == pytest.approx(1 / 12)


def test_wer_refuses_mismatched_lists_and_empty_references():
    with pytest.raises(ValueError, match="2 references but 1 transcripts"):
        report.wer([TEN, TEN], [TEN])
    with pytest.raises(ValueError, match="no words"):
        report.wer(["..."], ["anything"])


# percentiles -------------------------------------------------------------------------------------
@pytest.mark.parametrize("values, q, expected", [
    ([1.0, 2.0, 3.0, 4.0], 50, 2.5),
    ([4.0, 1.0, 3.0, 2.0], 50, 2.5),  # order does not matter
    ([float(i) for i in range(1, 21)], 95, 19.05),  # numpy.percentile(range(1, 21), 95)
    ([float(i) for i in range(1, 101)], 99, 99.01),
    ([7.0], 99, 7.0),
    ([1.0, 9.0], 0, 1.0),
    ([1.0, 9.0], 100, 9.0),
])
def test_percentile_is_linear_between_ranks(values, q, expected):
    assert report.percentile(values, q) == pytest.approx(expected)


def test_percentile_refuses_no_values_and_out_of_range():
    with pytest.raises(ValueError, match="no values"):
        report.percentile([], 50)
    with pytest.raises(ValueError, match="outside 0-100"):
        report.percentile([1.0], 101)


# rows and JSON -----------------------------------------------------------------------------------
def _row(server="whisper-api, defaults", workload="A", health=(0.002, 0.004, 0.030)):
    return report.row(server, workload, audio_s=200.0, wall_s=8.0, latencies=[6.0, 7.0, 7.5, 8.0],
                      refs=[TEN] * 4, hyps=[TEN, TEN, TEN, "the quick brown fox"], health=list(health) if health else None)


def test_row_has_the_issue_keys_and_figures():
    r = _row()
    assert tuple(r) == report.KEYS
    assert r["audio_s_per_s"] == 25.0
    assert r["p50_s"] == pytest.approx(7.25)
    assert r["p95_s"] == pytest.approx(7.925)
    assert r["wer"] == pytest.approx(6 / 40)
    assert r["health_p99_ms"] == pytest.approx(29.5)  # p99 of 2, 4, 30 ms, in ms


def test_row_without_a_health_route_has_null():
    assert _row(health=None)["health_p99_ms"] is None


def test_row_refuses_an_unknown_workload():
    with pytest.raises(ValueError, match="workload 'C'"):
        _row(workload="C")


def test_write_json_writes_a_list_of_the_rows(tmp_path):
    rows = [_row(), _row(workload="B"), _row("wyoming-faster-whisper 3.8.1", "A", health=None)]
    out = tmp_path / "results.json"
    report.write_json(rows, out)
    back = json.loads(out.read_text(encoding="utf-8"))
    assert back == rows
    assert back[2]["health_p99_ms"] is None and "null" in out.read_text(encoding="utf-8")


def test_write_json_refuses_other_keys(tmp_path):
    bad = {**_row(), "extra": 1}
    with pytest.raises(ValueError, match="expected"):
        report.write_json([bad], tmp_path / "x.json")
    assert not (tmp_path / "x.json").exists()


# the README table --------------------------------------------------------------------------------
def test_table_has_one_line_per_server_with_both_workloads():
    rows = [_row(), _row(workload="B"), _row("faster-whisper, sequential", "A", None),
            _row("faster-whisper, sequential", "B", None)]
    lines = report.table(rows).splitlines()
    assert len(lines) == 4 and lines[1].count("---") == lines[0].count("|") - 1
    assert lines[2].startswith("| whisper-api, defaults | 25.0 | 7.25 | 7.92 | 0.150 | 25.0 |")
    assert lines[2].endswith("| 29.5 / 29.5 |")
    assert lines[3].endswith("| - / - |")


def test_table_shows_a_missing_workload_as_a_dash():
    line = report.table([_row(workload="B")]).splitlines()[2]
    assert line.startswith("| whisper-api, defaults | - | - | - | - | 25.0 |")


def test_replace_section_replaces_only_between_the_markers():
    text = f"# T\n\nbefore\n{report.BEGIN}\nold table\n{report.END}\nafter\n"
    new = report.replace_section(text, "new table")
    assert new == f"# T\n\nbefore\n{report.BEGIN}\nnew table\n{report.END}\nafter\n"
    assert report.replace_section(new, "new table") == new  # a second run changes nothing


@pytest.mark.parametrize("text", [
    "no markers at all",
    f"{report.END}\n{report.BEGIN}\n",  # the wrong order
    f"{report.BEGIN}\n{report.BEGIN}\n{report.END}\n",  # twice
])
def test_replace_section_refuses_missing_or_misplaced_markers(text):
    with pytest.raises(ValueError, match="markers"):
        report.replace_section(text, "table")


def test_the_readmes_show_the_committed_results():
    """The table between the markers of README.md and service/README.md is the one report.table
    renders from service/bench/results.json: the committed figures and the README agree."""
    rows = json.loads((BENCH / "results.json").read_text(encoding="utf-8"))
    assert {r["workload"] for r in rows} == {"A", "B"} and all(tuple(r) == report.KEYS for r in rows)
    assert any("whisper-api" in r["server"] for r in rows)
    for readme in (REPO / "README.md", REPO / "service" / "README.md"):
        text = readme.read_text(encoding="utf-8")
        section = text[text.index(report.BEGIN):text.index(report.END)]
        assert report.table(rows) in section, f"{readme}: the table differs from service/bench/results.json"
        assert re.search(r"Load average \(1 min\) [\d.]+ before, [\d.]+ after", section), readme


# options and peers -------------------------------------------------------------------------------
def test_parse_config_takes_whisper_api_assignments():
    assert bench.parse_config("batched=WHISPER_API_BATCHED=true WHISPER_API_BATCH_SIZE=8") == (
        "batched", {"WHISPER_API_BATCHED": "true", "WHISPER_API_BATCH_SIZE": "8"})
    assert bench.parse_config("defaults=") == ("defaults", {})


@pytest.mark.parametrize("spec", ["defaults", "=WHISPER_API_X=1", "x=BATCHED=true", "x=WHISPER_API_X"])
def test_parse_config_refuses_what_it_cannot_pass(spec):
    with pytest.raises(SystemExit, match="--config"):
        bench.parse_config(spec)


def test_poetry_lock_requirements_is_the_main_group_for_this_platform():
    """A lock shaped like whisper-asr-webservice's: dev group left out, Windows-only left out, the
    +cpu build of the cpu extra taken (as its PyPI release), the +cu126 one left out, av substituted."""
    env = {"sys_platform": "linux", "platform_system": "Linux", "platform_machine": "x86_64"}
    reqs = peers.poetry_lock_requirements(FIXTURES / "bench-poetry.lock", {"cpu"}, env)
    assert reqs == ["av==14.2.0", "fastapi==0.115.14", "nvidia-cublas-cu12==12.6.4.1", "torch==2.7.1"]


def test_the_service_ports_stay_in_the_benchmark_range():
    port = bench.free_port()
    assert port in bench.PORTS and bench.PORTS == range(19000, 20000)


def test_the_service_wyoming_server_is_measured_over_wyoming_on_workload_b():
    """whisper-api-wyoming: the defaults plus WHISPER_API_WYOMING on a port of its own in the range, the
    wyoming client of this venv, workload B only; its rows carry "whisper-api" and "wyoming"."""
    assert "whisper-api-wyoming" in bench.SERVERS
    peer = bench.service_wyoming_peer("/models/tiny.en", 2, 5, bench.free_port())
    assert "whisper-api" in peer.name and "wyoming" in peer.name, peer.name
    assert peer.protocol == "wyoming" and peer.workloads == ("B",) and peer.python == Path(sys.executable)
    assert peer.env["WHISPER_API_WYOMING"] == "true"
    wyoming_port = int(peer.env["WHISPER_API_WYOMING_PORT"])
    assert wyoming_port in bench.PORTS and wyoming_port != int(peer.env["WHISPER_API_PORT"])
    bench._rewrite_port(peer, 19500)  # pylint: disable=protected-access
    assert peer.env["WHISPER_API_PORT"] == "19500" and int(peer.env["WHISPER_API_WYOMING_PORT"]) > 19500
    row = report.row(peer.name + bench.ONE_CLIENT, "B", 10.0, 5.0, [1.0, 2.0], [TEN, TEN], [TEN, TEN], None)
    assert row["server"].endswith(", wyoming, 1 client") and tuple(row) == report.KEYS
