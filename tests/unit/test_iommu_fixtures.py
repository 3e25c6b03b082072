# SPDX-License-Identifier: GPL-3.0-or-later
"""Verdicts on sysfs trees built from real lspci listings (tests/unit/fixtures/iommu, copied with
their SOURCE lines from shared/fixtures/iommu, plus seed 002's group 52 listing).

Each expectation below encodes one EXPECT line of its file; test_every_expect_line_is_encoded
fails when a listing or an EXPECT line is added without an expectation here.
"""
from __future__ import annotations

import pytest

from ansible_collections.homelab.gpu_passthrough.plugins.module_utils import iommu, pci_sysfs

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
        # USB, SATA, the two sibling chipset ports, and the RTL8125 NIC
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
        assert header["SOURCE"], stem
        assert header["EXPECT"], stem
        for line in header["EXPECT"]:
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
