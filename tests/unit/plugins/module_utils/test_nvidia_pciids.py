# SPDX-License-Identifier: GPL-3.0-or-later
"""Cross-check plugins/module_utils/nvidia.py against the PCI ID repository.

The fixtures in tests/unit/fixtures/pci-ids/ are the NVIDIA (10de) section of pci.ids, device lines
with ids >= 0fc0 (Kepler on), verbatim from two public versions of the database (pci.ids is
GPL-2.0-or-later / BSD-3-Clause):
- nvidia-10de-bookworm-2023.04.11.txt: Debian bookworm package ``pci.ids`` 0.0~2023.04.11-1
  (/usr/share/misc/pci.ids), and
- nvidia-10de-pciids-006181e.txt: lines added or named after it, from github.com/pciutils/pciids
  commit 006181e2c5d5b9a3b57d252aa5b3d827971d41a9 (H200, GH200, Blackwell).
Every DEVICES row must exist here with the same chip, and every display device of a known chip
that falls in a RANGES block must get that chip's architecture and compute capability.
"""
from __future__ import annotations

import os
import re

import pytest

from ansible_collections.homelab.gpu_passthrough.plugins.module_utils import nvidia

FIXTURES = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))),
                        "fixtures", "pci-ids")
BOOKWORM = os.path.join(FIXTURES, "nvidia-10de-bookworm-2023.04.11.txt")
NEWER = os.path.join(FIXTURES, "nvidia-10de-pciids-006181e.txt")

# Non-display functions and SoC parts that share NVIDIA's id blocks.
_NOT_A_GPU = re.compile(
    r"Audio|USB|UCSI|NVSwitch|Tegra|SATA|Root|[Bb]ridge|Controller|Endpoint|Jetson|GB10\]")
_CHIP = re.compile(r"^(G[KMPVAHB]\d{3}|TU\d{3}|AD\d{3})")


def _entries():
    rows = {}
    text = ""
    for path in (BOOKWORM, NEWER):
        with open(path, encoding="utf-8") as handle:
            text += handle.read()
    for line in text.splitlines():
        device_id, _sep, name = line.partition("  ")
        rows[device_id] = name
    return rows


ENTRIES = _entries()


def _chip_of(name):
    # "GM204GL [Quadro M4000]" -> "GM204"; "GN21-X11 / AD103M ..." has no leading chip code
    match = _CHIP.match(name)
    return match.group(1) if match else None


def test_extract_is_complete_enough():
    assert len(ENTRIES) > 700
    assert ENTRIES["13f1"] == "GM204GL [Quadro M4000]"


@pytest.mark.parametrize("device_id", sorted(nvidia.DEVICES))
def test_table_rows_match_pci_ids(device_id):
    name, chip, _memory = nvidia.DEVICES[device_id]
    assert device_id in ENTRIES, "%s is not an NVIDIA device id in pci.ids" % device_id
    listed = ENTRIES[device_id]
    assert _chip_of(listed) == chip, (device_id, listed, chip)
    assert name in listed, (device_id, listed, name)


def _gpu_rows():
    for device_id, name in sorted(ENTRIES.items()):
        chip = _chip_of(name)
        if chip is None or _NOT_A_GPU.search(name) or chip not in nvidia.CHIPS:
            continue
        yield device_id, name, chip


def test_every_listed_gpu_of_a_known_chip_is_classified_right():
    checked = 0
    wrong = []
    for device_id, name, chip in _gpu_rows():
        arch, cc = nvidia.CHIPS[chip]
        info = nvidia.classify(device_id)
        checked += 1
        if (info["architecture"], info["compute_capability"]) != (arch, cc):
            wrong.append((device_id, name, info["architecture"], info["compute_capability"], arch, cc))
    assert checked > 600
    assert not wrong, wrong


def test_ranges_do_not_overlap_and_are_sorted():
    previous_end = -1
    for start, end, arch, cc in nvidia.RANGES:
        assert start <= end
        assert start > previous_end
        assert arch in nvidia.ARCHITECTURES
        nvidia.parse_cc(cc)
        previous_end = end


def test_every_range_holds_at_least_one_listed_gpu_of_its_architecture():
    for start, end, arch, _cc in nvidia.RANGES:
        hits = [d for d, _n, chip in _gpu_rows()
                if start <= int(d, 16) <= end and nvidia.CHIPS[chip][0] == arch]
        assert hits, "range %04x-%04x (%s) has no listed GPU" % (start, end, arch)
