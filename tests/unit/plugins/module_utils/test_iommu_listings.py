# SPDX-License-Identifier: GPL-3.0-or-later
"""Verdicts on sysfs trees built from real IOMMU listings.

* shared/fixtures/iommu (copies with their SOURCE lines in tests/unit/fixtures/iommu) plus seed
  002's group 52 listing: each expectation below encodes one EXPECT line of its file;
  test_every_expect_line_is_encoded fails when a listing or an EXPECT line is added without one.
* shared/fixtures/iommu-corpus (copy in tests/unit/fixtures/iommu-corpus): the verdict comes from
  each file's ``# expect:`` header (sysfs_tree.corpus_case), through the sysfs path and, for the
  pvesh tables, through the API path.

The listings are read from ../shared/fixtures when it exists, else from the copies.
"""
from __future__ import annotations

import filecmp
import os
import re

import pytest

from ansible_collections.homelab.gpu_passthrough.plugins.module_utils import iommu, pci, pci_sysfs, pve_pci

import sysfs_tree

EXPECTATIONS = [
    # (fixture stem, EXPECT line prefix, gpu address, expected verdict fields)
    ("01-nvidia-gt1030-with-rootport-perline", "GPU 01:00.0 [10de:1d01] in group 2", "0000:01:00.0", {
        "isolated": True, "status": "isolated", "group": 2,
        "functions": ["0000:01:00.0", "0000:01:00.1"],
        "upstream_bridges": ["0000:00:01.0"], "intruders": [],
        "vfio_ids": ["10de:1d01", "10de:0fb8"], "mapping_path": "0000:01:00",
    }),
    ("02-nvidia-gt720-shares-group-with-chipset-BAD", "group 15 = GT 720", "0000:06:00.0", {
        "isolated": False, "status": "intruders", "group": 15,
        "functions": ["0000:06:00.0", "0000:06:00.1"],
        "upstream_bridges": ["0000:02:00.2", "0000:03:04.0"],
        # USB, SATA, the two sibling chipset ports, and the RTL8125 NIC (sibling bridges are named
        # too: with the topology known, only the bridges above the card are accepted)
        "intruders": ["0000:02:00.0", "0000:02:00.1", "0000:03:00.0", "0000:03:01.0", "0000:05:00.0"],
        "vfio_ids": ["10de:1288", "10de:0e0f"], "mapping_path": "0000:06:00",
    }),
    ("02-nvidia-gt720-shares-group-with-chipset-BAD", "group 16 = RTX 2080 Ti", "0000:07:00.0", {
        "isolated": True, "status": "isolated", "group": 16,
        "functions": ["0000:07:00.0", "0000:07:00.1", "0000:07:00.2", "0000:07:00.3"],
        "upstream_bridges": [], "intruders": [],
        "vfio_ids": ["10de:1e04", "10de:10f7", "10de:1ad6", "10de:1ad7"], "mapping_path": "0000:07:00",
    }),
    ("03-amd-rx560-clean-gpu-audio-group-tabbed", "group 23 = RX 560", "0000:04:00.0", {
        "isolated": True, "status": "isolated", "group": 23,
        "functions": ["0000:04:00.0", "0000:04:00.1"], "upstream_bridges": [], "intruders": [],
        "vfio_ids": ["1002:67ff", "1002:aae0"], "mapping_path": "0000:04:00",
    }),
    ("03-amd-rx560-clean-gpu-audio-group-tabbed", "RX 6700 XT 03:00.0", "0000:03:00.0", {
        "isolated": True, "status": "isolated", "group": 21, "groups": [21, 22],
        "functions": ["0000:03:00.0", "0000:03:00.1"], "upstream_bridges": [], "intruders": [],
        "vfio_ids": ["1002:73df", "1002:ab28"], "mapping_path": "0000:03:00",
    }),
    ("04-seed002-quadro-m4000-group52", "group 52 = Quadro M4000", "0000:03:00.0", {
        "isolated": True, "status": "isolated", "group": 52,
        "functions": ["0000:03:00.0", "0000:03:00.1"], "upstream_bridges": [], "intruders": [],
        "vfio_ids": ["10de:13f1", "10de:0fbb"], "mapping_path": "0000:03:00",
    }),
]


def _addresses(devices):
    return [d["address"] for d in devices]


def _check(verdict, expected):
    for key, value in expected.items():
        got = verdict[key]
        if key in ("functions", "upstream_bridges", "intruders"):
            got = _addresses(got)
        assert got == value, "%s: expected %r, got %r\nreasons: %s" % (key, value, got, verdict["reasons"])


def test_every_listing_and_expect_line_is_encoded():
    stems = [f[:-4] for f in sysfs_tree.fixture_files()]
    assert len(stems) == 4
    assert sorted(sysfs_tree.FIXTURES) == stems
    for stem in stems:
        header = sysfs_tree.load_fixture(stem)[0]
        assert header["source"], stem
        assert header["expect"], stem
        assert header["unparsed"] == [], stem
        for line in header["expect"]:
            covered = [e for e in EXPECTATIONS if e[0] == stem and line.startswith(e[1])]
            assert len(covered) == 1, "EXPECT line of %s has no test expectation: %s" % (stem, line)


@pytest.mark.parametrize("stem,expect_prefix,gpu,expected", EXPECTATIONS, ids=[e[0][:2] + "-" + e[2] for e in EXPECTATIONS])
def test_verdict_from_sysfs_tree(tmp_path, stem, expect_prefix, gpu, expected):
    built = sysfs_tree.build_fixture(stem, str(tmp_path))
    devices = pci_sysfs.read_pci_devices(str(tmp_path))
    # the reader gives back exactly what the tree was built from (description is not in sysfs)
    assert sorted((dict(d, description="") for d in built), key=lambda d: d["address"]) == devices
    verdict = iommu.isolation_verdict(gpu, devices)
    print("\n[%s] %s\n  -> %s" % (stem, expect_prefix, verdict["message"]))
    _check(verdict, expected)
    state = pci_sysfs.iommu_state(str(tmp_path))
    assert state["enabled"] is True
    assert state["group_count"] == len({d["iommu_group"] for d in built})
    assert state["interrupt_remapping"] is True


@pytest.mark.parametrize("stem,expect_prefix,gpu,expected", EXPECTATIONS, ids=[e[0][:2] + "-" + e[2] for e in EXPECTATIONS])
def test_same_verdict_from_pve_api_shaped_data(stem, expect_prefix, gpu, expected):
    """The verdict takes API data too: no topology, no drivers, bridges hidden by PVE's default filter."""
    _header, _cmdline, devices, _facts = sysfs_tree.load_fixture(stem)
    api = [{
        "id": d["address"], "class": "0x" + d["class_id"], "vendor": "0x" + d["vendor_id"],
        "device": "0x" + d["device_id"], "iommugroup": d["iommu_group"],
        "vendor_name": "", "device_name": d["description"],
    } for d in devices if not d["class_id"].startswith("06")]  # pci-class-blacklist default 05;06;0b
    converted = iommu.devices_from_pve_api(api)
    verdict = iommu.isolation_verdict(gpu, converted)
    assert verdict["topology_known"] is False
    expected = dict(expected, upstream_bridges=[])
    if expected["intruders"]:
        expected["intruders"] = [a for a in expected["intruders"]
                                 if not next(d for d in devices if d["address"] == a)["class_id"].startswith("06")]
    _check(verdict, expected)


def test_pve_api_with_bridges_accepts_them_but_says_unverified():
    _header, _cmdline, devices, _facts = sysfs_tree.load_fixture("01-nvidia-gt1030-with-rootport-perline")
    api = [{"id": d["address"], "class": "0x" + d["class_id"], "vendor": "0x" + d["vendor_id"],
            "device": "0x" + d["device_id"], "iommugroup": d["iommu_group"]} for d in devices]
    verdict = iommu.isolation_verdict("01:00.0", iommu.devices_from_pve_api(api))
    assert verdict["isolated"] is True
    assert _addresses(verdict["upstream_bridges"]) == ["0000:00:01.0"]
    assert any("could not be verified" in r and "0000:00:01.0" in r for r in verdict["reasons"])
    assert "unverified" in verdict["message"]


def test_bad_group_message_names_every_intruder_for_a_newcomer(tmp_path):
    sysfs_tree.build_fixture("02-nvidia-gt720-shares-group-with-chipset-BAD", str(tmp_path))
    devices = pci_sysfs.read_pci_devices(str(tmp_path))
    gpu = iommu.select_gpu(devices)  # first NVIDIA display controller
    assert gpu["address"] == "0000:06:00.0"
    message = iommu.isolation_verdict(gpu["address"], devices)["message"]
    print("\n" + message)
    assert message.startswith("IOMMU group 15 of 0000:06:00.0 (VGA compatible controller [0300], 10de:1288)")
    for text in ("0000:02:00.0 (USB controller [0c03], 1022:43d5)",
                 "0000:02:00.1 (SATA controller [0106], 1022:43c8)",
                 "0000:05:00.0 (Ethernet controller [0200], 10ec:8125)",
                 "0000:03:00.0 (PCI bridge [0604], 1022:43c7)",
                 "move the card to a CPU-attached slot",
                 "never applied by this collection"):
        assert text in message
    assert "0000:02:00.2" not in message  # the upstream chipset bridge is accepted


def test_no_iommu_tree(tmp_path):
    built = sysfs_tree.build_fixture("04-seed002-quadro-m4000-group52", str(tmp_path), iommu=False)
    devices = pci_sysfs.read_pci_devices(str(tmp_path))
    assert len(devices) == len(built) == 2
    assert all(d["iommu_group"] is None for d in devices)
    state = pci_sysfs.iommu_state(str(tmp_path))
    assert (state["enabled"], state["group_count"], state["interrupt_remapping"]) == (False, 0, False)
    verdict = iommu.isolation_verdict("03:00.0", devices)
    assert (verdict["isolated"], verdict["status"], verdict["group"]) == (False, "no_iommu_group", None)
    assert "the IOMMU is off" in verdict["message"]


# ---- the corpus --------------------------------------------------------------------------------
CORPUS = sysfs_tree.corpus_stems()
_DEVICE_LINE = re.compile(r"(^|\s|\]\s+|\u2502 \S+ \u2502 \S+ \u2502 )(?:[0-9a-f]{4}:)?[0-9a-f]{2}:[0-9a-f]{2}\.[0-7]\s")


def _endpoints(devices):
    return sorted(d["address"] for d in devices if not pci.is_bridge(d))


def test_corpus_has_every_listing_and_the_copies_equal_the_shared_ones():
    assert len(CORPUS) == 20, CORPUS
    for local, shared in ((sysfs_tree.FIXTURE_DIR, sysfs_tree.SHARED_DIR),
                          (sysfs_tree.CORPUS_DIR, sysfs_tree.SHARED_CORPUS_DIR)):
        if not os.path.isdir(shared):
            pytest.skip("no ../shared/fixtures here: the local copies are used as they are")
        names = sorted(os.listdir(shared))
        assert sorted(n for n in os.listdir(local) if n in names) == names, "copy lacks a shared file"
        match, mismatch, errors = filecmp.cmpfiles(shared, local, names, shallow=False)
        assert (mismatch, errors) == ([], []), "copies differ from ../shared/fixtures: %s" % (mismatch + errors)


@pytest.mark.parametrize("stem", CORPUS)
def test_corpus_listing_is_parsed_completely(stem):
    """Every device line of the listing becomes an entry; the one line a poster cut off is reported."""
    with open(os.path.join(sysfs_tree.CORPUS_DIR, stem + ".txt"), encoding="utf-8") as handle:
        body = [line for line in handle.read().splitlines() if not line.startswith("#")]
    device_lines = [line for line in body if _DEVICE_LINE.search(line.lstrip("`"))]
    header, _cmdline, entries = sysfs_tree.read_listing(stem)
    assert len(entries) + len(header["unparsed"]) == len(device_lines), device_lines
    expected_unparsed = 1 if stem.startswith("03-") else 0  # "[1002:a..." cut off by the poster
    assert len(header["unparsed"]) == expected_unparsed, header["unparsed"]
    assert len({e["address"] for e in entries}) == len(entries)


@pytest.mark.parametrize("stem", CORPUS)
def test_corpus_verdict_through_sysfs(tmp_path, stem):
    case, built = sysfs_tree.build_corpus(stem, str(tmp_path))
    devices = pci_sysfs.read_pci_devices(str(tmp_path))
    assert len(devices) == len(built)
    state = pci_sysfs.iommu_state(str(tmp_path))
    if case["status"] == "iommu_off":
        assert state["enabled"] is False and all(d["iommu_group"] is None for d in devices)
        assert case["gpu"] is None or iommu.isolation_verdict(case["gpu"], devices)["status"] == "no_iommu_group"
        return
    assert state["acs_override"] == case["acs_override"]
    verdict = iommu.isolation_verdict(case["gpu"], devices, acs_override=state["acs_override"])
    print("\n[%s] %s\n  -> %s" % (stem, case["status"], verdict["message"]))
    assert verdict["status"] == case["status"], verdict["reasons"]
    # the foreign endpoints the header names, no more, no fewer (bridges not upstream may be named too)
    assert _endpoints(verdict["intruders"]) == case["intruders"], verdict["reasons"]
    for address in case["intruders"]:
        assert address in verdict["message"]
    if case["acs_override"]:
        assert "pcie_acs_override=%s" % case["acs_override"] in verdict["message"]
        accepted = iommu.isolation_verdict(case["gpu"], devices, acs_override=state["acs_override"],
                                           accept_acs_override=True)
        assert accepted["status"] == case["accepted_status"]
    # what vfio-pci gets: only the card's functions (the GPU's slot, vendor and a card's classes)
    gpu = verdict["gpu"]
    assert all(f["address"].rsplit(".", 1)[0] == gpu["address"].rsplit(".", 1)[0]
               and f["vendor_id"] == gpu["vendor_id"] for f in verdict["functions"])
    assert verdict["vfio_ids"] == list(dict.fromkeys(pci.vendor_device(f) for f in verdict["functions"]))


@pytest.mark.parametrize("stem", [s for s in CORPUS if sysfs_tree.corpus_case(s)["pvesh"]])
def test_corpus_pvesh_tables_through_the_api_path(stem):
    case = sysfs_tree.corpus_case(stem)
    entries = sysfs_tree.pvesh_entries(stem)
    devices = pve_pci.devices_from_hardware_pci(entries)
    assert len(devices) == len(entries) and all(d["parent_bridges"] is None for d in devices)
    entry, verdict = pve_pci.entry_from_node("pve", devices, gpu_address=case["gpu"])
    assert verdict["status"] == case["status"] and _endpoints(verdict["intruders"]) == case["intruders"]
    gpu = verdict["gpu"]
    assert entry == {"node": "pve", "path": pci.slot_of(case["gpu"]), "id": pci.vendor_device(gpu),
                     "iommugroup": gpu["iommu_group"]}
    # the first NVIDIA display controller is the same GPU when none is named
    assert pve_pci.entry_from_node("pve", devices)[1]["gpu"]["address"] == case["gpu"]


def test_apu_message_names_the_psp_usb_and_audio_functions(tmp_path):
    """Issue 13 point 1: the Renoir APU's slot holds AMD's PSP, two USB controllers and HD audio."""
    sysfs_tree.build_corpus("06-renoir-apu-before-acs-override", str(tmp_path))
    devices = pci_sysfs.read_pci_devices(str(tmp_path))
    verdict = iommu.isolation_verdict("05:00.0", devices)
    message = verdict["message"]
    print("\n" + message)
    assert verdict["status"] == "intruders"
    for text in ("0000:05:00.2 (Encryption controller [1080], 1022:15df)",
                 "0000:05:00.3 (USB controller [0c03], 1022:1639)",
                 "0000:05:00.4 (USB controller [0c03], 1022:1639)",
                 "0000:05:00.6 (Audio device [0403], 1022:15e3)",
                 "0000:06:00.0 (SATA controller [0106], 1022:7901)"):
        assert text in message
    # the HDMI audio (1002:1637) is the card's own; the dummy host bridge and the GPP bridge do not block
    assert [f["address"] for f in verdict["functions"]] == ["0000:05:00.0", "0000:05:00.1"]
    assert verdict["vfio_ids"] == ["1002:1636", "1002:1637"]
    assert [d["address"] for d in verdict["host_bridges"]] == ["0000:00:08.0"]
    assert [d["address"] for d in verdict["upstream_bridges"]] == ["0000:00:08.1"]
    assert "VFIO accepts a group member that no host driver holds" in message
