# SPDX-License-Identifier: GPL-3.0-or-later
"""iommu.py with several GPUs on one host (issue 18, the host side): cards_verdict, select_gpus,
parse_gpu_selector and binding_plan, on real two-GPU listings (shared/fixtures/iommu-corpus):

* 10 X570 AORUS PRO: GTX 1080 Ti 0b:00 (group 30) and GT 710 0c:00 (group 31), both alone;
* 09 B450: RTX 2080 Ti 07:00 alone in group 16, GT 720 06:00 in the chipset's group 15;
* 16 server: two identical RTX A5000 (10de:2231 + audio 10de:1aef) at 4f:00 and 52:00.

Hand-made devices only where no listing shows the case (two cards in one group, labelled so).
"""
from __future__ import annotations

import pytest

from ansible_collections.homelab.gpu_passthrough.plugins.module_utils import iommu, pci

from sysfs_tree import load_corpus, make_device

X570 = "10-x570-aorus-pro-gtx1080ti-gt710"
B450 = "09-b450-chipset-gt720-rtx2080ti"
A5000 = "16-server-broadcom-pex-switch-rtx-a5000"


def _devices(stem):
    return load_corpus(stem)[2]


def _addresses(devices):
    return [d["address"] for d in devices]


def test_two_isolated_cards_both_verdicts_and_the_union_of_ids():
    verdict = iommu.cards_verdict(_devices(X570), ["0000:0b:00.0", "10de:128b"])
    assert verdict["isolated"] is True and verdict["status"] == "isolated" and verdict["refused"] == []
    assert [c["gpu"]["address"] for c in verdict["cards"]] == ["0000:0b:00.0", "0000:0c:00.0"]
    assert [(c["status"], c["group"]) for c in verdict["cards"]] == [("isolated", 30), ("isolated", 31)]
    assert [c["vfio_ids"] for c in verdict["cards"]] == [["10de:1b06", "10de:10ef"], ["10de:128b", "10de:0e0f"]]
    assert verdict["vfio_ids"] == ["10de:0e0f", "10de:10ef", "10de:128b", "10de:1b06"]
    assert verdict["bind_by_ids"] == verdict["vfio_ids"] and verdict["bind_by_override"] == []
    assert _addresses(verdict["functions"]) == ["0000:0b:00.0", "0000:0b:00.1", "0000:0c:00.0", "0000:0c:00.1"]
    assert "Card 1: 0000:0b:00.0" in verdict["message"] and "Card 2: 0000:0c:00.0" in verdict["message"]
    assert "vfio-pci ids (the union of the 2 cards): 10de:0e0f,10de:10ef,10de:128b,10de:1b06." in verdict["message"]


def test_one_card_not_isolated_is_refused_by_name_with_the_devices_in_its_group():
    verdict = iommu.cards_verdict(_devices(B450), ["07:00.0", "06:00.0"])
    assert verdict["isolated"] is False and verdict["status"] == "intruders"
    assert verdict["refused"] == ["0000:06:00.0"]
    assert [c["status"] for c in verdict["cards"]] == ["isolated", "intruders"]
    refused = verdict["cards"][1]
    assert _addresses(refused["intruders"]) == ["0000:02:00.0", "0000:02:00.1", "0000:03:00.0", "0000:03:01.0",
                                                "0000:05:00.0"]
    message = verdict["message"]
    assert message.startswith("Card 0000:06:00.0 (VGA compatible controller [0300], 10de:1288")
    for text in ("IOMMU group 15", "0000:02:00.1 (SATA controller [0106], 1022:43c8",
                 "0000:05:00.0 (Ethernet controller [0200], 10ec:8125", "1 of 2 cards is refused",
                 "(0000:07:00.0 passes)"):
        assert text in message, message
    assert "Card 0000:07:00.0" not in message  # the isolated card is not blamed


def test_the_order_of_the_list_does_not_change_who_is_refused():
    verdict = iommu.cards_verdict(_devices(B450), ["06:00.0", "07:00.0"])
    assert verdict["refused"] == ["0000:06:00.0"] and verdict["status"] == "intruders"


def test_two_identical_cards_one_passed_binds_it_by_address():
    verdict = iommu.cards_verdict(_devices(A5000), ["4f:00.0"])
    assert verdict["isolated"] is True
    assert verdict["vfio_ids"] == ["10de:1aef", "10de:2231"]
    assert verdict["bind_by_ids"] == []
    assert verdict["bind_by_override"] == ["0000:4f:00.0", "0000:4f:00.1"]
    assert _addresses(verdict["vfio_bystanders"]) == ["0000:52:00.0", "0000:52:00.1"]
    assert "bound by address (driver_override)" in verdict["message"]


def test_two_identical_cards_both_passed_bind_by_ids():
    verdict = iommu.cards_verdict(_devices(A5000), ["4f:00.0", "0000:52:00.0"])
    assert [c["group"] for c in verdict["cards"]] == [45, 49]
    assert verdict["bind_by_ids"] == ["10de:1aef", "10de:2231"]
    assert verdict["bind_by_override"] == [] and verdict["vfio_bystanders"] == []
    assert "driver_override" not in verdict["message"]


def test_single_card_verdict_plans_the_binding_too():
    """The single-GPU path (gpu_address) gets the same plan: the twin's ids stay off ids=."""
    verdict = iommu.isolation_verdict("4f:00.0", _devices(A5000))
    assert verdict["vfio_ids"] == ["10de:2231", "10de:1aef"]  # the card's order, as before
    assert verdict["bind_by_ids"] == [] and verdict["bind_by_override"] == ["0000:4f:00.0", "0000:4f:00.1"]
    assert "0000:52:00.0, 0000:52:00.1 also carry one of these ids" in verdict["message"]
    alone = iommu.isolation_verdict("0b:00.0", _devices(X570))
    assert alone["bind_by_ids"] == alone["vfio_ids"] == ["10de:1b06", "10de:10ef"]
    assert alone["bind_by_override"] == [] and "driver_override" not in alone["message"]


def test_binding_plan_per_function_only_shared_ids_go_by_address():
    """GT 720 (corpus 09) and GT 710 (corpus 10) are both GK208 cards with the HDMI audio 10de:0e0f;
    on the GTX 1080 Ti + GT 710 host, passing the 1080 Ti and a stand-in kept device carrying 0e0f
    (hand-made) moves only that id out of ids=."""
    devices = _devices(X570)
    functions = [d for d in devices if d["address"] in ("0000:0c:00.0", "0000:0c:00.1")]
    kept = make_device("0000:06:00.1", "10de", "0e0f", "040300", 40)  # hand-made: a kept GK208 audio function
    plan = iommu.binding_plan(functions, devices + [kept])
    assert plan["bind_by_ids"] == ["10de:128b"]
    assert plan["bind_by_override"] == ["0000:0c:00.1"] and plan["shared_ids"] == ["10de:0e0f"]
    assert _addresses(plan["bystanders"]) == ["0000:06:00.1"]


def test_another_listed_card_in_a_cards_group_counts_against_it():
    """Hand-made: two cards behind one bridge without ACS share group 1; each goes to its own VM,
    so each is refused and named."""
    port = make_device("0000:00:01.0", "8086", "1901", "060400", 1)
    first = make_device("0000:01:00.0", "10de", "1d01", "030000", 1, ["0000:00:01.0"], boot_vga=False)
    second = make_device("0000:02:00.0", "10de", "1c82", "030000", 1, ["0000:00:01.0"], boot_vga=False)
    verdict = iommu.cards_verdict([port, first, second], ["01:00.0", "02:00.0"])
    assert verdict["refused"] == ["0000:01:00.0", "0000:02:00.0"]
    assert "2 of 2 cards are refused" in verdict["message"]


@pytest.mark.parametrize("text, kind, value", [
    ("0000:0B:00.0", "address", "0000:0b:00.0"),
    (" 0b:00.0 ", "address", "0000:0b:00.0"),
    ("10DE:128B", "vendor_device", "10de:128b"),
    ("0x10de:0x128b", "vendor_device", "10de:128b"),
])
def test_parse_gpu_selector(text, kind, value):
    assert iommu.parse_gpu_selector(text) == (kind, value)


@pytest.mark.parametrize("text, fragment", [
    ("0b:00", "names a slot, not a function"),
    ("nvidia", "is neither a PCI address"),
    ("", "is neither a PCI address"),
])
def test_parse_gpu_selector_refuses_with_both_forms(text, fragment):
    with pytest.raises(pci.PciError) as err:
        iommu.parse_gpu_selector(text)
    assert fragment in str(err.value) and "vendor:device pair (10de:1d01" in str(err.value)


def test_select_gpus_errors_name_the_entry():
    devices = _devices(A5000)
    with pytest.raises(pci.PciError, match="the list of GPUs is empty"):
        iommu.select_gpus(devices, [])
    with pytest.raises(iommu.GpuSelectionError, match=r"GPU list entry 2 \(10de:2231\): 2 devices have vendor:device 10de:2231"):
        iommu.select_gpus(devices, ["4f:00.0", "10de:2231"])
    with pytest.raises(iommu.GpuSelectionError, match=r"GPU list entries 1 \(4f:00.0\) and 2 \(0000:4f:00.0\) both name the card 0000:4f:00.0"):
        iommu.select_gpus(devices, ["4f:00.0", "0000:4f:00.0"])
    with pytest.raises(iommu.GpuSelectionError, match=r"GPU list entry 1 \(10de:1aef\): gpu_vendor_device 10de:1aef names no GPU"):
        iommu.select_gpus(devices, ["10de:1aef"])
    with pytest.raises(iommu.GpuSelectionError, match=r"GPU list entry 2 \(0000:53:00.0\): 0000:53:00.0 is not a GPU"):
        iommu.select_gpus(devices, ["4f:00.0", "0000:53:00.0"])
