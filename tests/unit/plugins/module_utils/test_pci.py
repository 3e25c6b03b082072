# SPDX-License-Identifier: GPL-3.0-or-later
"""pci.py, the one home of PCI addresses, ids, classes, "is a GPU" and "is a function of the card"."""
from __future__ import annotations

import pytest

from ansible_collections.homelab.gpu_passthrough.plugins.module_utils import pci

from sysfs_tree import make_device


@pytest.mark.parametrize("text,expected", [
    ("01:00.0", "0000:01:00.0"),
    ("0000:01:00.0", "0000:01:00.0"),
    (" 0000:0A:1F.7 ", "0000:0a:1f.7"),
    ("00000000:03:00.0", "0000:03:00.0"),  # nvidia-smi's pci.bus_id: the same device as sysfs's name
    ("10000:e1:00.0", "10000:e1:00.0"),  # VMD domains have 5 digits
])
def test_normalize_address(text, expected):
    assert pci.normalize_address(text) == expected


@pytest.mark.parametrize("text,hint", [
    ("01:00", "names a slot, not a function"),
    ("1:0.0", "not a PCI address"),
    ("01:00.8", "not a PCI address"),
    ("gpu", "e.g. 0000:01:00.0"),
    (None, "must be a string"),
])
def test_normalize_address_errors_say_how_to_fix(text, hint):
    with pytest.raises(pci.PciError, match=hint.replace(".", r"\.")):
        pci.normalize_address(text)


def test_slots_and_sort_order():
    assert pci.slot_of("03:00.1") == "0000:03:00"
    assert sorted(["0000:0a:00.0", "0000:02:00.1", "bad", "0000:02:00.0"], key=pci.address_sort_key) == [
        "0000:02:00.0", "0000:02:00.1", "0000:0a:00.0", "bad"]


def test_ids():
    assert pci.normalize_vendor_device("0x10DE:0x13F1") == "10de:13f1"
    for bad in ("10de-13f1", "10de:13f", "nvidia", "10de:13f1:00"):
        with pytest.raises(pci.PciError, match="not a vendor:device id pair"):
            pci.normalize_vendor_device(bad)
    assert pci.parse_hex_id("0x13F1", 4) == "13f1"
    with pytest.raises(pci.PciError, match="not 4 hex digits"):
        pci.parse_hex_id("13f", 4)
    # sysfs / API data: zero-filled, "" when malformed
    assert (pci.hex_id("0x030000", 6), pci.hex_id("0x10de", 4), pci.hex_id("zz", 4), pci.hex_id(None, 4)) == (
        "030000", "10de", "", "")
    assert pci.vendor_device({"vendor_id": "10DE", "device_id": "1D01"}) == "10de:1d01"


def test_class_names_and_codes():
    assert pci.class_name("030000") == "VGA compatible controller"
    assert pci.class_name("0x0c0330") == "USB controller"
    assert pci.class_name("0b4000") == "Processor"
    assert pci.class_name("ab0000") == "class ab00"
    assert pci.class_name("") == "unknown class"
    assert pci.class_code("Serial bus controller") == "0c80"
    assert pci.class_code("Non-Volatile memory controller") == "0108"
    assert pci.class_code("Flux capacitor") is None


@pytest.mark.parametrize("class_id,gpu", [
    ("030000", True), ("030200", True),  # VGA; 3D controller (datacenter cards, laptop GPUs)
    ("038000", True),                    # Display controller: Intel HD Graphics 530 (corpus 19)
    ("040300", False), ("120000", False), ("", False),
])
def test_is_gpu_is_display_class_03xx(class_id, gpu):
    assert pci.is_gpu({"class_id": class_id}) is gpu


APU = make_device("0000:05:00.0", "1002", "1636", "030000")  # Renoir iGPU (corpus 06)


@pytest.mark.parametrize("device,usb_c,own", [
    (make_device("0000:05:00.1", "1002", "1637", "040300"), False, True),   # its HDMI audio
    (make_device("0000:05:00.2", "1022", "15df", "108000"), False, False),  # PSP: other vendor and class
    (make_device("0000:05:00.3", "1022", "1639", "0c0330"), True, False),   # USB of the platform (1022)
    (make_device("0000:05:00.6", "1022", "15e3", "040300"), False, False),  # HD audio of the platform
    (make_device("0000:05:00.4", "1002", "0000", "0c0330"), False, False),  # USB without usb_c
    (make_device("0000:05:00.4", "1002", "0000", "0c0330"), True, True),    # USB with usb_c
    (make_device("0000:05:00.5", "1002", "0000", "020000"), True, False),   # a NIC class, never
    (make_device("0000:06:00.1", "1002", "1637", "040300"), False, False),  # another slot
    (make_device("0000:05:00.1", "", "", "040300"), False, False),          # unknown vendor
])
def test_is_card_function(device, usb_c, own):
    assert pci.is_card_function(APU, device, usb_c=usb_c) is own


def test_describe_device():
    dev = make_device("0000:05:00.2", "1022", "15df", "108000", description="Platform Security Processor",
                      driver="ccp")
    assert pci.describe_device(dev) == (
        "0000:05:00.2 (Encryption controller [1080], 1022:15df, Platform Security Processor, driver ccp)")
