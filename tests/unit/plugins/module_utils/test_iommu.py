# SPDX-License-Identifier: GPL-3.0-or-later
"""iommu.py: GPU selection and verdict rules (card functions, host bridges, ACS override, boot VGA,
sibling bridges, split groups) on hand-made hosts; real listings are in test_iommu_listings.py."""
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
    with pytest.raises(iommu.GpuSelectionError, match="gpu_vendor_device 8086:a282 names no GPU: 0000:00:17.0 "
                                                      "\\(SATA controller \\[0106\\], 8086:a282"):
        iommu.select_gpu(host(), vendor_device="8086:a282")
    with pytest.raises(iommu.GpuSelectionError) as err:
        iommu.select_gpu([IGPU, SATA])  # noqa
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


def test_isa_bridge_and_a_host_bridge_with_a_driver_are_intruders():
    isa = make_device("0000:00:1f.0", "8086", "a2c9", "060100", 1)
    assert iommu.isolation_verdict("01:00.0", host(isa))["status"] == "intruders"
    # k10temp binds AMD's 00:18.3 (class 0600): a host driver holds it, so VFIO cannot take the group
    held = make_device("0000:00:18.3", "1022", "1443", "060000", 1, driver="k10temp")
    verdict = iommu.isolation_verdict("01:00.0", host(held))
    assert [d["address"] for d in verdict["intruders"]] == ["0000:00:18.3"]
    assert any("a host bridge that a host driver (k10temp) holds" in r for r in verdict["reasons"])


def test_driverless_host_bridge_does_not_block_and_the_message_says_why():
    # AMD "Renoir PCIe Dummy Host Bridge" 1022:1632 (shared/fixtures/iommu-corpus/06): no driver
    dummy = make_device("0000:00:08.0", "1022", "1632", "060000", 1)
    verdict = iommu.isolation_verdict("01:00.0", host(dummy))
    assert verdict["isolated"] is True
    assert [d["address"] for d in verdict["host_bridges"]] == ["0000:00:08.0"]
    assert "0000:00:08.0" in verdict["message"] and "VFIO accepts a group member that no host driver holds" in verdict["message"]
    # through the API the driver is unknown: accepted, and the reasons say it could not be verified
    api = iommu.devices_from_pve_api([
        {"id": d["address"], "class": "0x" + d["class_id"], "vendor": "0x" + d["vendor_id"],
         "device": "0x" + d["device_id"], "iommugroup": d["iommu_group"]} for d in host(dummy)])
    verdict = iommu.isolation_verdict("01:00.0", api)
    assert verdict["isolated"] is True
    assert any("could not be verified that no host driver holds" in r for r in verdict["reasons"])


@pytest.mark.parametrize("extra,why", [
    # an APU's slot: PSP, USB and HD audio of AMD (1022) next to the Radeon (1002) display function
    (make_device("0000:01:00.2", "1022", "15df", "108000", 1, ["0000:00:01.0"]), "vendor 1022 is not the GPU's (10de)"),
    (make_device("0000:01:00.3", "1022", "15e0", "0c0330", 1, ["0000:00:01.0"]), "vendor 1022"),
    # same vendor, but not a class a card carries (a Pascal card has no USB-C functions)
    (make_device("0000:01:00.2", "10de", "1ad6", "0c0330", 1, ["0000:00:01.0"]), "class 0c03 is not one a graphics card carries"),
    (make_device("0000:01:00.4", "10de", "0000", "020000", 1, ["0000:00:01.0"]), "class 0200"),
])
def test_same_slot_functions_of_another_vendor_or_class_are_intruders(extra, why):
    verdict = iommu.isolation_verdict("01:00.0", host(extra))
    assert verdict["status"] == "intruders"
    assert [d["address"] for d in verdict["intruders"]] == [extra["address"]]
    assert [d["address"] for d in verdict["slot_foreign"]] == [extra["address"]]
    assert extra["address"] not in [f["address"] for f in verdict["functions"]]
    assert "%s:%s" % (extra["vendor_id"], extra["device_id"]) not in verdict["vfio_ids"]
    assert any(why in r for r in verdict["reasons"]), verdict["reasons"]
    assert extra["address"] in verdict["message"]


def test_turing_usb_c_functions_are_the_cards():
    gpu = make_device("0000:01:00.0", "10de", "1e04", "030000", 1, ["0000:00:01.0"])
    funcs = [make_device("0000:01:00.%d" % n, "10de", did, cls, 1, ["0000:00:01.0"])
             for n, did, cls in ((1, "10f7", "040300"), (2, "1ad6", "0c0330"), (3, "1ad7", "0c8000"))]
    verdict = iommu.isolation_verdict("01:00.0", [ROOT_PORT, gpu] + funcs)
    assert verdict["isolated"] is True
    assert verdict["vfio_ids"] == ["10de:1e04", "10de:10f7", "10de:1ad6", "10de:1ad7"]


def test_acs_override_is_refused_unless_accepted():
    verdict = iommu.isolation_verdict("01:00.0", host(), acs_override="downstream,multifunction")
    assert (verdict["isolated"], verdict["status"]) == (False, "acs_override")
    assert "pcie_acs_override=downstream,multifunction" in verdict["message"]
    assert "accept_acs_override: true" in verdict["message"]
    accepted = iommu.isolation_verdict("01:00.0", host(), acs_override="downstream",
                                       accept_acs_override=True)
    assert accepted["isolated"] is True and accepted["acs_override"] == "downstream"
    assert "not real isolation" in accepted["message"]
    # intruders win over the override: the group is bad either way
    sata = dict(SATA, iommu_group=1)
    both = iommu.isolation_verdict("01:00.0", [d for d in host() if d["address"] != SATA["address"]] + [sata],
                                   acs_override=True)
    assert both["status"] == "intruders" and "pcie_acs_override" in both["message"]


def test_iommu_off_still_gives_the_functions_and_ids():
    devices = [dict(d, iommu_group=None) for d in host()]
    verdict = iommu.isolation_verdict("01:00.0", devices)
    assert verdict["status"] == "no_iommu_group"
    assert [f["address"] for f in verdict["functions"]] == ["0000:01:00.0", "0000:01:00.1"]
    assert verdict["vfio_ids"] == ["10de:1d01", "10de:0fb8"]
    assert verdict["unbound_functions"] == ["0000:01:00.0 (nouveau)", "0000:01:00.1 (snd_hda_intel)"]


def test_identical_second_card_is_a_vfio_bystander():
    twin = make_device("0000:02:00.0", "10de", "1d01", "030000", 7, ["0000:00:01.1"])
    verdict = iommu.isolation_verdict("01:00.0", host(twin))
    assert [d["address"] for d in verdict["vfio_bystanders"]] == ["0000:02:00.0"]


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
