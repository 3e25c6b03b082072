# SPDX-License-Identifier: GPL-3.0-or-later
"""plugins/filter/transcript.py: transcripts compare by words, and the comparison has teeth.

Real variants of the same speech (what tiny.en int8 printed for jfk.flac on different CPUs) must
compare equal; any transcript with one word changed, dropped or added must not."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from ansible_collections.homelab.gpu_passthrough.plugins.filter.transcript import (
    FilterModule, transcript_wer, transcript_words)

REPO = Path(__file__).resolve().parents[4]
JFK_TEXT = (REPO / "service" / "tests" / "data" / "jfk.txt").read_text(encoding="utf-8").strip()

# Seen from the model for jfk.flac: punctuation and case differ, the words do not.
SAME_SPEECH = [
    "And so my fellow Americans, ask not what your country can do for you, ask what you can do for your country.",
    " And so, my fellow Americans, ask not what your country can do for you, ask what you can do for your country.",
    "and so my fellow americans ask not what your country can do for you ask what you can do for your country",
    "And so, my fellow Americans... ask not what your country can do for you; ask what you can do for your country!",
]


@pytest.mark.parametrize("variant", SAME_SPEECH)
def test_punctuation_and_case_do_not_count(variant):
    assert transcript_words(variant) == transcript_words(JFK_TEXT)
    assert transcript_wer(variant, JFK_TEXT) == 0.0


def _one_word_changed(text):
    words = text.split()
    for i in range(len(words)):
        yield " ".join(words[:i] + ["banana"] + words[i + 1:])          # substituted
        yield " ".join(words[:i] + words[i + 1:])                        # dropped
        yield " ".join(words[:i] + ["banana"] + words[i:])               # inserted


def test_one_changed_word_fails_the_comparison():
    """The normalisation is not toothless: every single-word edit anywhere in the reference is caught,
    by the word-list comparison and by the WER (> 0)."""
    variants = list(_one_word_changed(JFK_TEXT))
    assert len(variants) == 3 * len(JFK_TEXT.split())
    for bad in variants:
        assert transcript_words(bad) != transcript_words(JFK_TEXT), bad
        assert transcript_wer(bad, JFK_TEXT) == pytest.approx(1 / len(JFK_TEXT.split())), bad


def test_words_keep_inner_apostrophes_and_digits():
    assert transcript_words("Don\u2019t stop: it's 7 o'clock -- 'quoted'") == [
        "don't", "stop", "it's", "7", "o'clock", "quoted"]
    assert transcript_words("") == [] and transcript_words(None) == []
    with pytest.raises(TypeError, match="expects a string"):
        transcript_words(42)


@pytest.mark.parametrize("hyp, ref, want", [
    ("a b c d", "a b c d", 0.0),
    ("a x c d", "a b c d", 0.25),
    ("a c d", "a b c d", 0.25),
    ("a b c d e f", "a b c d", 0.5),
    ("", "a b", 1.0),
    ("", "", 0.0),
    ("x", "", 1.0),
])
def test_wer_values(hyp, ref, want):
    assert transcript_wer(hyp, ref) == pytest.approx(want)


def test_filters_are_registered():
    assert set(FilterModule().filters()) == {"transcript_words", "transcript_wer"}


def test_filters_through_ansible():
    """The verify stages call them as Jinja filters: the same result through ansible-core."""
    expr = ("{{ {'same': (a | homelab.gpu_passthrough.transcript_words) == (b | homelab.gpu_passthrough.transcript_words),"
            " 'wer': a | homelab.gpu_passthrough.transcript_wer(c)} | to_json }}")
    env = dict(os.environ, ANSIBLE_CONFIG=str(REPO / "ansible.cfg"), ANSIBLE_NOCOLOR="1")
    res = subprocess.run(
        [str(Path(sys.executable).with_name("ansible")), "localhost", "-o", "-m", "ansible.builtin.debug",
         "-a", "msg=" + expr, "-e", json.dumps({"a": SAME_SPEECH[1], "b": JFK_TEXT, "c": JFK_TEXT.replace("fellow", "yellow")})],
        cwd=REPO, env=env, capture_output=True, text=True, check=False, timeout=120)
    assert res.returncode == 0, res.stdout + res.stderr
    msg = json.loads(res.stdout.split("=>", 1)[1])["msg"]
    got = json.loads(msg) if isinstance(msg, str) else msg
    assert got == {"same": True, "wer": pytest.approx(1 / 22)}, res.stdout
