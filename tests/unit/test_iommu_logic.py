# SPDX-License-Identifier: GPL-3.0-or-later
"""iommu.py: addresses, GPU selection, verdict rules (boot VGA, sibling bridges, split groups)."""
from __future__ import annotations

import pytest

from ansible_collections.homelab.gpu_passthrough.plugins.module_utils import iommu

from sysfs_tree import make_device

ROOT_PORT = make_device("0000:00:01.0", "8086", "1901", "060400", 1)
GPU = make_device("0000:01:00.0", "10de", "1d01", "030000", 1, ["0000:00:01.0"], driver="nouveau", boot_vga=False)
AUDIO = make_device("0000:01:00.1", "10de", "0fb8", "040300", 1, ["0000:00:01.0"], driver="snd_hda_intel")
IGPU = make_device("0000:00:02.0", "8086", "3e92", "030000", 0, [], driver="i915", boot_vga=True)
SATA = make_device("0000:00:17.0", "8086", "a282", "010601", 5, [], driver="ahci")


def host(*extra):
    return [dict(d) for d in (ROOT_PORT, GPU, AUDIO, IGPU, SATA) + extra]


@pytest.mark.parametrize("text,expected", [
    ("01:00.0", "0000:01:00.0"),
    ("0000:01:00.0", "0000:01:00.0"),
    (" 0000:0A:1F.7 ", "0000:0a:1f.7"),
    ("10000:e1:00.0", "10000:e1:00.0"),  # VMD domains have 5 digits
])
def test_normalize_pci_address(text, expected):
    assert iommu.normalize_pci_address(text) == expected


@pytest.mark.parametrize("text,hint", [
    ("01:00", "names a slot, not a function"),
    ("1:0.0", "not a PCI address"),
    ("01:00.8", "not a PCI address"),
    ("gpu", "e.g. 0000:01:00.0"),
    (None, "must be a string"),
])
def test_normalize_pci_address_errors_say_how_to_fix(text, hint):
    with pytest.raises(ValueError, match=hint.replace(".", r"\.")):
        iommu.normalize_pci_address(text)


def test_class_names():
    assert iommu.class_name("030000") == "VGA compatible controller"
    assert iommu.class_name("0c0330") == "USB controller"
    assert iommu.class_name("0b4000") == "Processor"
    assert iommu.class_name("ab0000") == "class ab00"
    assert iommu.class_name("") == "unknown class"


def test_select_first_nvidia_display_controller_skips_the_igpu():
    assert iommu.select_gpu(host())["address"] == "0000:01:00.0"


def test_select_by_address_and_by_ids():
    assert iommu.select_gpu(host(), address="01:00.0") is not None
    assert iommu.select_gpu(host(), vendor_device="10DE:1D01")["address"] == "0000:01:00.0"
    assert iommu.select_gpu(host(), address="00:02.0", vendor_device="8086:3e92")["address"] == "0000:00:02.0"


def test_select_errors_name_what_was_searched_and_what_exists():
    with pytest.raises(iommu.GpuSelectionError) as err:
        iommu.select_gpu(host(), address="0000:02:00.0")
    assert "No PCI device at 0000:02:00.0" in str(err.value)
    assert "0000:00:02.0 (VGA compatible controller [0300], 8086:3e92" in str(err.value)
    assert "0000:01:00.0 (VGA compatible controller [0300], 10de:1d01" in str(err.value)

    with pytest.raises(iommu.GpuSelectionError, match="0000:00:17.0 is not a GPU: it is a SATA controller \\[0106\\] \\(8086:a282\\)"):
        iommu.select_gpu(host(), address="00:17.0")
    with pytest.raises(iommu.GpuSelectionError, match="No PCI device with vendor:device 10de:2204"):
        iommu.select_gpu(host(), vendor_device="10de:2204")
    with pytest.raises(iommu.GpuSelectionError, match="disagree"):
        iommu.select_gpu(host(), address="01:00.0", vendor_device="8086:3e92")
    with pytest.raises(ValueError, match="not a vendor:device id pair"):
        iommu.select_gpu(host(), vendor_device="nvidia")
    with pytest.raises(iommu.GpuSelectionError) as err:
        iommu.select_gpu([IGPU, SATA])
    assert str(err.value).startswith("No NVIDIA (vendor 10de) display controller (PCI class 03xx) found among 2 PCI devices")
    assert "0000:00:02.0" in str(err.value)
    with pytest.raises(iommu.GpuSelectionError, match="No display controller"):
        iommu.select_gpu([SATA])


def test_two_identical_cards_by_ids_is_ambiguous():
    twin = make_device("0000:02:00.0", "10de", "1d01", "030000", 7, ["0000:00:01.1"])
    with pytest.raises(iommu.GpuSelectionError, match="2 devices have vendor:device 10de:1d01.*give gpu_address"):
        iommu.select_gpu(host(twin), vendor_device="10de:1d01")


def test_verdict_success_fields():
    verdict = iommu.isolation_verdict("01:00.0", host())
    assert verdict["isolated"] is True
    assert verdict["drivers"] == {"0000:01:00.0": "nouveau", "0000:01:00.1": "snd_hda_intel"}
    assert verdict["vfio_ids"] == ["10de:1d01", "10de:0fb8"]
    assert verdict["mapping_path"] == "0000:01:00"
    assert verdict["topology_known"] is True


def test_sibling_bridge_with_known_topology_is_an_intruder():
    sibling = make_device("0000:00:01.1", "8086", "1905", "060400", 1)
    verdict = iommu.isolation_verdict("01:00.0", host(sibling))
    assert verdict["status"] == "intruders"
    assert [d["address"] for d in verdict["intruders"]] == ["0000:00:01.1"]
    assert any("not upstream of the GPU" in r for r in verdict["reasons"])


def test_host_bridge_and_isa_bridge_are_not_acceptable_bridges():
    for cls in ("060000", "060100"):
        other = make_device("0000:00:00.0", "8086", "3ec2", cls, 1)
        assert iommu.isolation_verdict("01:00.0", host(other))["status"] == "intruders"


def test_foreign_device_in_the_audio_functions_group_blocks_too():
    devices = host()
    devices[2]["iommu_group"] = 5  # audio shares group 5 with the SATA controller
    verdict = iommu.isolation_verdict("01:00.0", devices)
    assert verdict["status"] == "intruders"
    assert verdict["groups"] == [1, 5]
    assert [d["address"] for d in verdict["intruders"]] == ["0000:00:17.0"]
    assert "IOMMU group 1/5 of 0000:01:00.0" in verdict["message"]


def test_boot_vga_refused_unless_allowed():
    devices = host()
    devices[1]["boot_vga"] = True
    verdict = iommu.isolation_verdict("01:00.0", devices)
    assert (verdict["isolated"], verdict["status"]) == (False, "boot_vga")
    assert "boot display (boot_vga=1)" in verdict["message"] and "allow_boot_vga" in verdict["message"]
    allowed = iommu.isolation_verdict("01:00.0", devices, allow_boot_vga=True)
    assert allowed["isolated"] is True
    assert any("allowed by allow_boot_vga" in r for r in allowed["reasons"])


def test_all_problems_are_listed_and_the_first_wins():
    devices = host(make_device("0000:00:14.0", "8086", "a2af", "0c0330", 1))
    devices[1]["boot_vga"] = True
    verdict = iommu.isolation_verdict("01:00.0", devices)
    assert verdict["status"] == "intruders"
    assert "0000:00:14.0 (USB controller [0c03], 8086:a2af)" in verdict["message"]
    assert "boot display" in verdict["message"]


def test_function_without_group_blocks():
    devices = host()
    devices[2]["iommu_group"] = None
    verdict = iommu.isolation_verdict("01:00.0", devices)
    assert verdict["status"] == "no_iommu_group"
    assert any("0000:01:00.1 has no IOMMU group although other devices have one" in r for r in verdict["reasons"])
    assert "0000:01:00.1 is in no IOMMU group although the IOMMU is on" in verdict["message"]


def test_unknown_gpu_address_in_verdict():
    with pytest.raises(iommu.GpuSelectionError, match="No PCI device at 0000:09:00.0"):
        iommu.isolation_verdict("09:00.0", host())


def test_devices_from_pve_api():
    entries = [
        {"id": "0000:01:00.0", "class": "0x030000", "vendor": "0x10de", "device": "0x1d01",
         "subsystem_vendor": "0x1043", "subsystem_device": "0x85f4", "iommugroup": 2,
         "vendor_name": "NVIDIA Corporation", "device_name": "GP108 [GeForce GT 1030]"},
        {"id": "0000:00:17.0", "class": "0x010601", "vendor": "0x8086", "device": "0xa282", "iommugroup": -1},
    ]
    gpu, sata = iommu.devices_from_pve_api(entries)
    assert gpu == {
        "address": "0000:01:00.0", "vendor_id": "10de", "device_id": "1d01", "subsystem_vendor_id": "1043",
        "subsystem_device_id": "85f4", "class_id": "030000", "driver": None, "iommu_group": 2,
        "boot_vga": None, "is_bridge": False, "parent_bridges": None,
        "description": "NVIDIA Corporation GP108 [GeForce GT 1030]",
    }
    assert sata["iommu_group"] is None and sata["subsystem_vendor_id"] == ""
