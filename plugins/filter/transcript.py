# -*- coding: utf-8 -*-
# Copyright (c) homelab.gpu_passthrough contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Compare transcripts the way a listener would: by words, not by the characters a model printed.

The one home of transcript normalisation for the whole repository: the roles' and playbooks' verify
steps use it as Ansible filters, and the Python tests (service/tests, tests/readme) load this file
directly (it needs nothing but the standard library). A model prints slightly different punctuation
and case on different CPUs (tiny.en int8: ``so,`` on one machine, ``so`` on another); the words
stay the same, so comparisons are made on words, and a changed word still fails them.
"""
from __future__ import annotations

import re

# A word: letters and digits, with apostrophes inside it ("don't", "o'clock"). Everything else
# (punctuation, dashes, quotes, whitespace) separates words.
_WORD = re.compile(r"[a-z0-9]+(?:'[a-z0-9]+)*")


def transcript_words(text):
    """The words of a transcript: lower case, punctuation dropped, apostrophes inside words kept."""
    if text is None:
        return []
    if not isinstance(text, str):
        raise TypeError("transcript_words expects a string, got %s" % type(text).__name__)
    return _WORD.findall(text.lower().replace("\u2019", "'"))


def transcript_wer(hypothesis, reference):
    """Word error rate of ``hypothesis`` against ``reference``: (substitutions + deletions +
    insertions) / words in the reference, on normalised words. 0.0 means the same words."""
    ref, hyp = transcript_words(reference), transcript_words(hypothesis)
    if not ref:
        return 0.0 if not hyp else 1.0
    row = list(range(len(hyp) + 1))
    for i, r_word in enumerate(ref, 1):
        prev_diag, row[0] = row[0], i
        for j, h_word in enumerate(hyp, 1):
            prev_diag, row[j] = row[j], min(row[j] + 1, row[j - 1] + 1, prev_diag + (r_word != h_word))
    return float(row[len(hyp)]) / len(ref)


class FilterModule(object):
    """Transcript comparison filters."""

    def filters(self):
        return {
            "transcript_words": transcript_words,
            "transcript_wer": transcript_wer,
        }
