# -*- coding: utf-8 -*-
# SPDX-License-Identifier: GPL-3.0-or-later
# Copyright: (c) 2026, homelab.gpu_passthrough contributors
"""CTranslate2 (faster-whisper) policy on NVIDIA GPUs: which compute capability runs the stock
CUDA build, which compute types a card supports, which one to recommend and which fits its memory.

The NVIDIA facts it builds on (compute capability parsing, the card table) are in ``nvidia.py``.

Source: CTranslate2's quantization docs (float16 needs CC >= 5.3, int8 on CUDA >= 6.1,
int8_float16 >= 7.0, bfloat16 >= 8.0). The stock CUDA wheels start at CC 5.3.
"""
from __future__ import annotations

from ansible_collections.homelab.gpu_passthrough.plugins.module_utils.nvidia import NvidiaError, parse_cc

# CTranslate2 (faster-whisper) limits.
CT2_MIN_CC = (5, 3)
_CT2_COMPUTE_TYPE_MIN_CC = {
    "float16": (5, 3),
    "int8": (6, 1),
    "int8_float16": (7, 0),
    "int8_float32": (6, 1),
    "bfloat16": (8, 0),
    "int8_bfloat16": (8, 0),
    "float32": (3, 5),
}
CPU_COMPUTE_TYPES = ("int8", "int8_float32", "float32", "int16")


def ct2_cuda_ok(compute_capability):
    """True when stock CTranslate2 CUDA builds run on a GPU with this compute capability."""
    return parse_cc(compute_capability) >= CT2_MIN_CC


def compute_type_ok(compute_type, device, compute_capability=None):
    """Whether CTranslate2 can run compute_type on device ('cuda'/'cpu') with this CC."""
    if device == "cpu":
        return compute_type in CPU_COMPUTE_TYPES or compute_type in ("auto", "default")
    if compute_type in ("auto", "default"):
        return True
    if compute_type not in _CT2_COMPUTE_TYPE_MIN_CC:
        raise NvidiaError(
            "unknown compute type %r; use one of %s" % (
                compute_type, ", ".join(sorted(_CT2_COMPUTE_TYPE_MIN_CC))))
    return parse_cc(compute_capability) >= _CT2_COMPUTE_TYPE_MIN_CC[compute_type]


def recommended_compute_type(device, compute_capability=None):
    """float16 on GPUs with fast FP16; int8 on consumer Pascal (CC 6.1, FP16 runs at 1/64 rate)
    and on the CPU. None when the GPU cannot run CTranslate2 at all."""
    if device == "cpu":
        return "int8"
    cc = parse_cc(compute_capability)
    if cc < CT2_MIN_CC:
        return None
    if cc == (6, 1):
        return "int8"
    return "float16"


def memory_compute_type(compute_capability, memory_mib, need_float16_mib, need_int8_mib):
    """Pick the cheapest compute type whose model footprint fits the card.

    Returns (compute_type or None, reason). float16 first, then int8_float16 (CC >= 7.0) or int8
    (CC >= 6.1) when float16 does not fit; None when nothing fits.
    """
    preferred = recommended_compute_type("cuda", compute_capability)
    if preferred is None:
        return None, "compute capability %s is below CTranslate2's %d.%d" % (
            compute_capability, CT2_MIN_CC[0], CT2_MIN_CC[1])
    if memory_mib is None:
        return preferred, "card memory unknown; assuming the model fits"
    need = need_int8_mib if preferred == "int8" else need_float16_mib
    if need <= memory_mib:
        return preferred, "%s needs ~%d MiB of %d MiB" % (preferred, need, memory_mib)
    if need_int8_mib <= memory_mib:
        for candidate in ("int8_float16", "int8"):
            if compute_type_ok(candidate, "cuda", compute_capability):
                return candidate, "%s does not fit (%d > %d MiB); %s needs ~%d MiB" % (
                    preferred, need, memory_mib, candidate, need_int8_mib)
    return None, "the model needs ~%d MiB even quantized; the card has %d MiB" % (
        need_int8_mib, memory_mib)


def cuda_fields(compute_capability):
    """The CTranslate2 keys nvidia_gpu_info reports for a GPU: ctranslate2_cuda, recommended_compute_type."""
    cc = compute_capability
    return {
        "ctranslate2_cuda": bool(cc) and ct2_cuda_ok(cc),
        "recommended_compute_type": recommended_compute_type("cuda", cc) if cc else None,
    }
