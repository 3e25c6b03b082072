# SPDX-License-Identifier: GPL-3.0-or-later
"""ctranslate2.py: which compute types CTranslate2 runs at a compute capability, and what fits a card.

Expected values from CTranslate2's quantization docs and faster-whisper's own benchmark figures."""
from __future__ import annotations

import pytest

from ansible_collections.homelab.gpu_passthrough.plugins.module_utils import ctranslate2, nvidia
from ansible_collections.homelab.gpu_passthrough.plugins.module_utils.nvidia import NvidiaError


def test_compute_types_by_capability():
    assert ctranslate2.compute_type_ok("float16", "cuda", "5.2") is False
    assert ctranslate2.compute_type_ok("float16", "cuda", "5.3") is True
    assert ctranslate2.compute_type_ok("int8", "cuda", "6.0") is False
    assert ctranslate2.compute_type_ok("int8_float16", "cuda", "6.1") is False
    assert ctranslate2.compute_type_ok("int8_float16", "cuda", "7.5") is True
    assert ctranslate2.compute_type_ok("bfloat16", "cuda", "7.5") is False
    assert ctranslate2.compute_type_ok("int8", "cpu") is True
    assert ctranslate2.compute_type_ok("float16", "cpu") is False
    assert ctranslate2.recommended_compute_type("cpu") == "int8"
    with pytest.raises(NvidiaError, match="unknown compute type"):
        ctranslate2.compute_type_ok("fp8", "cuda", "9.0")
    with pytest.raises(NvidiaError, match="MAJOR.MINOR"):
        nvidia.parse_cc("five")


def test_memory_fit():
    # large-v3 in float16 ~ 4.7 GB, int8 ~ 3 GB (faster-whisper's own benchmark figures)
    assert ctranslate2.memory_compute_type("7.5", 16384, 4800, 3100)[0] == "float16"
    ctype, reason = ctranslate2.memory_compute_type("7.5", 4096, 4800, 3100)
    assert ctype == "int8_float16" and "does not fit" in reason
    assert ctranslate2.memory_compute_type("6.0", 4096, 4800, 3100)[0] is None  # P100 has no int8
    assert ctranslate2.memory_compute_type("6.1", 2048, 4800, 3100)[0] is None
    assert ctranslate2.memory_compute_type("5.2", 8192, 100, 100)[0] is None
    assert ctranslate2.memory_compute_type("8.6", None, 4800, 3100) == (
        "float16", "card memory unknown; assuming the model fits")
