# -*- coding: utf-8 -*-
# Copyright (c) homelab.gpu_passthrough contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The one home of PCI concepts: addresses, hex ids, vendor:device pairs, class codes and names,
"is this a GPU" and "is this a function of the card".

Pure data in, data out; every other module_utils file and every module imports these.

A *device* is a plain dict (see ``pci_sysfs.read_pci_device``)::

    address              "0000:01:00.0"  (full domain form, lower case)
    vendor_id            "10de"          (4 hex digits, "" when unknown)
    device_id            "1d01"
    subsystem_vendor_id  "" when unknown
    subsystem_device_id  "" when unknown
    class_id             "030000" (class, subclass, prog-if; 6 hex digits, "" when unknown)
    driver               str or None
    iommu_group          int or None
    boot_vga             bool or None
    is_bridge            bool
    parent_bridges       upstream bridge addresses from the root complex outward, or None when the
                         topology is unknown (data from the Proxmox API /nodes/{node}/hardware/pci)
    description          str, may be ""
"""
from __future__ import annotations

import re

NVIDIA_VENDOR_ID = "10de"

# PCI class/subclass names (the PCI ID repository's class list, the ones seen on real hosts).
_SUBCLASS_NAMES = {
    "0000": "Non-VGA unclassified device",
    "0001": "VGA compatible unclassified device",
    "0100": "SCSI storage controller",
    "0101": "IDE interface",
    "0104": "RAID bus controller",
    "0105": "ATA controller",
    "0106": "SATA controller",
    "0107": "Serial Attached SCSI controller",
    "0108": "Non-Volatile memory controller",
    "0180": "Mass storage controller",
    "0200": "Ethernet controller",
    "0207": "Infiniband controller",
    "0280": "Network controller",
    "0300": "VGA compatible controller",
    "0301": "XGA compatible controller",
    "0302": "3D controller",
    "0380": "Display controller",
    "0400": "Multimedia video controller",
    "0401": "Multimedia audio controller",
    "0403": "Audio device",
    "0480": "Multimedia controller",
    "0500": "RAM memory",
    "0501": "FLASH memory",
    "0580": "Memory controller",
    "0600": "Host bridge",
    "0601": "ISA bridge",
    "0604": "PCI bridge",
    "0607": "CardBus bridge",
    "0609": "Semi-transparent PCI-to-PCI bridge",
    "0680": "Bridge",
    "0700": "Serial controller",
    "0780": "Communication controller",
    "0805": "SD Host controller",
    "0806": "IOMMU",
    "0880": "System peripheral",
    "0c03": "USB controller",
    "0c04": "Fibre Channel",
    "0c05": "SMBus",
    "0c80": "Serial bus controller",
    "0d11": "Bluetooth",
    "0d80": "Wireless controller",
    "1080": "Encryption controller",
    "1180": "Signal processing controller",
    "1200": "Processing accelerators",
    "1300": "Non-Essential Instrumentation",
}
_CLASS_NAMES = {
    "00": "Unclassified device",
    "01": "Mass storage controller",
    "02": "Network controller",
    "03": "Display controller",
    "04": "Multimedia controller",
    "05": "Memory controller",
    "06": "Bridge",
    "07": "Communication controller",
    "08": "Generic system peripheral",
    "09": "Input device controller",
    "0a": "Docking station",
    "0b": "Processor",
    "0c": "Serial bus controller",
    "0d": "Wireless controller",
    "0e": "Intelligent controller",
    "0f": "Satellite communications controller",
    "10": "Encryption controller",
    "11": "Signal processing controller",
    "12": "Processing accelerators",
    "13": "Non-Essential Instrumentation",
    "ff": "Unassigned class",
}

# A GPU is a display controller: class 03 (VGA 0300, XGA 0301, 3D controller 0302 - datacenter
# cards and laptop GPUs -, Display controller 0380 - e.g. Intel HD Graphics 530).
DISPLAY_CLASS = "03"
HOST_BRIDGE_CLASS = "0600"
# PCI-to-PCI bridges (root ports, switch ports, chipset bridges): class 06, subclass 04 or 09.
BRIDGE_SUBCLASSES = ("0604", "0609")
# Classes the functions of a graphics card carry: display (03xx) and its HDMI/DP audio (0403) ...
CARD_FUNCTION_CLASSES = (DISPLAY_CLASS, "0403")
# ... and, on cards with a USB-C (VirtualLink) port - NVIDIA Turing and newer -, its USB host
# controller (0c03) and USB Type-C UCSI controller (0c80).
USB_C_FUNCTION_CLASSES = ("0c03", "0c80")

_ADDRESS_RE = re.compile(
    r"^(?:(?P<domain>[0-9a-f]{4,8}):)?(?P<bus>[0-9a-f]{2}):(?P<slot>[0-9a-f]{2})\.(?P<func>[0-7])$"
)
_SLOT_RE = re.compile(r"^(?:[0-9a-f]{4,8}:)?[0-9a-f]{2}:[0-9a-f]{2}$")
_HEX_RE = re.compile(r"^[0-9a-f]+$")


class PciError(ValueError):
    """Malformed PCI input; the message says what was wrong and shows the expected form."""


def normalize_address(text):
    """Return the full lower-case form ``DDDD:BB:SS.F`` of a PCI address.

    Accepts ``01:00.0``, ``0000:01:00.0``, nvidia-smi's ``00000000:01:00.0`` and VMD domains
    (``10000:e1:00.0``), any case, surrounding blanks. The domain is written with at least four
    digits, as sysfs names devices. Raises PciError saying what was wrong.
    """
    if not isinstance(text, str):
        raise PciError(
            "PCI address must be a string like 0000:01:00.0, got %s %r" % (type(text).__name__, text)
        )
    value = text.strip().lower()
    match = _ADDRESS_RE.match(value)
    if not match:
        if _SLOT_RE.match(value):
            raise PciError(
                "PCI address %r names a slot, not a function: add the function number, "
                "e.g. %s.0 (lspci -D lists full addresses)" % (text, value)
            )
        raise PciError(
            "%r is not a PCI address: expected [domain:]bus:slot.function in hex, "
            "e.g. 0000:01:00.0 or 01:00.0 (see lspci -D)" % (text,)
        )
    domain = int(match.group("domain") or "0", 16)
    return "%04x:%s:%s.%s" % (domain, match.group("bus"), match.group("slot"), match.group("func"))


def is_address(text):
    """Whether ``text`` is a full PCI address as sysfs names devices (``0000:01:00.0``)."""
    try:
        return isinstance(text, str) and text.count(":") == 2 and normalize_address(text) == text.lower()
    except PciError:
        return False


def slot_of(address):
    """``0000:01:00.0`` -> ``0000:01:00`` (what a PVE PCI mapping's ``path`` wants for a whole card)."""
    return normalize_address(address).rsplit(".", 1)[0]


def address_sort_key(address):
    """Numeric sort key for a PCI address (domain, bus, slot, function); bad ones sort last."""
    try:
        norm = normalize_address(address)
    except PciError:
        return (1 << 40, 0, 0, 0, str(address))
    domain, bus, rest = norm.split(":")
    slot, func = rest.split(".")
    return (int(domain, 16), int(bus, 16), int(slot, 16), int(func, 16), "")


def by_address(devices):
    """``{normalized address: device}``; devices with a malformed address are left out."""
    index = {}
    for device in devices:
        try:
            index[normalize_address(device.get("address"))] = device
        except PciError:
            continue
    return index


def _bare_hex(value):
    text = str(value if value is not None else "").strip().lower()
    return text[2:] if text.startswith("0x") else text


def parse_hex_id(value, width, what="PCI id"):
    """User input ``0x10DE`` / ``10de`` -> ``10de``: exactly ``width`` hex digits, PciError otherwise."""
    text = _bare_hex(value)
    if len(text) != width or not _HEX_RE.match(text):
        raise PciError("%s %r is not %d hex digits (e.g. %s)" % (what, value, width, "10de13f1"[:width]))
    return text


def hex_id(value, width):
    """Data read from sysfs or the API (``0x10de``, ``0x030000``) -> ``width`` hex digits, zero-filled;
    ``""`` when missing or malformed."""
    text = _bare_hex(value)
    if not text or len(text) > width or not _HEX_RE.match(text):
        return ""
    return text.zfill(width)


def normalize_vendor_device(text):
    """``10DE:1D01`` / ``0x10de:0x1d01`` -> ``10de:1d01``; PciError with the expected form otherwise."""
    value = str(text).strip().lower()
    vendor, sep, device = value.partition(":")
    try:
        if not sep:
            raise PciError("no colon")
        return "%s:%s" % (parse_hex_id(vendor, 4), parse_hex_id(device, 4))
    except PciError:
        raise PciError(
            "%r is not a vendor:device id pair: expected two 4-digit hex ids like 10de:1d01 "
            "(the [....:....] at the end of an lspci -nn line)" % (text,)
        ) from None


def vendor_device(device):
    """``vendor:device`` of a device dict, lower case (``"":""`` parts when unknown)."""
    return "%s:%s" % (str(device.get("vendor_id") or "").lower(), str(device.get("device_id") or "").lower())


def subsystem_id(device):
    """``vendor:device`` of a device dict's subsystem, or None when the subsystem is unknown."""
    vendor, device_id = device.get("subsystem_vendor_id"), device.get("subsystem_device_id")
    return "%s:%s" % (vendor, device_id) if vendor and device_id else None


def class4(class_id):
    """Class + subclass (4 hex digits) of ``0x030000`` / ``030000`` / ``0300``; ``""`` when unknown."""
    text = _bare_hex(class_id)
    return text[:4] if len(text) >= 4 and _HEX_RE.match(text) else ""


def class_name(class_id):
    """Human name of a PCI class id (``030000`` or ``0300``); ``"class XXXX"`` when unnamed."""
    cid = class4(class_id)
    if not cid:
        return "unknown class"
    return _SUBCLASS_NAMES.get(cid) or _CLASS_NAMES.get(cid[:2]) or "class %s" % cid


def class_code(name):
    """Inverse of :func:`class_name` for subclass names (``"USB controller"`` -> ``0c03``); None when unknown."""
    wanted = str(name or "").strip().lower()
    for code, text in _SUBCLASS_NAMES.items():
        if text.lower() == wanted:
            return code
    return None


def is_display_class(class_id):
    """The one definition of a GPU's class: a display controller, class 03xx."""
    return class4(class_id).startswith(DISPLAY_CLASS)


def is_gpu(device):
    """Whether a device dict is a GPU (display controller, class 03xx)."""
    return is_display_class(device.get("class_id"))


def is_bridge_class(class_id):
    """PCI-to-PCI bridge (root port, switch port, chipset bridge)."""
    return class4(class_id) in BRIDGE_SUBCLASSES


def is_bridge(device):
    return bool(device.get("is_bridge")) or is_bridge_class(device.get("class_id"))


def is_host_bridge(device):
    return class4(device.get("class_id")) == HOST_BRIDGE_CLASS


def is_card_function(gpu, device, usb_c=False):
    """Whether ``device`` is a function of the graphics card whose display function is ``gpu``.

    It must sit in the GPU's slot (same domain, bus and device number), have the GPU function's
    vendor, and have a class a graphics card carries: display (03xx) or audio (0403), and with
    ``usb_c`` (cards with a USB-C port, NVIDIA Turing+: ``nvidia.has_usb_c_functions``) also USB
    (0c03) and serial bus (0c80, the UCSI controller). An AMD APU's slot also holds the platform
    security processor, USB and HD audio controllers of vendor 1022: those are not the card's.
    """
    try:
        if slot_of(device.get("address")) != slot_of(gpu.get("address")):
            return False
    except PciError:
        return False
    vendor = str(device.get("vendor_id") or "").lower()
    if not vendor or vendor != str(gpu.get("vendor_id") or "").lower():
        return False
    cid = class4(device.get("class_id"))
    classes = CARD_FUNCTION_CLASSES + (USB_C_FUNCTION_CLASSES if usb_c else ())
    return any(cid.startswith(c) for c in classes) if cid else False


def describe_device(device):
    """One-line description a newcomer can match against lspci: address, class name [code], ids."""
    cid = class4(device.get("class_id"))
    ids = "%s:%s" % (device.get("vendor_id") or "????", device.get("device_id") or "????")
    parts = ["%s [%s]" % (class_name(cid), cid or "?"), ids]
    if device.get("description"):
        parts.append(str(device["description"]))
    if device.get("driver"):
        parts.append("driver %s" % device["driver"])
    return "%s (%s)" % (device.get("address"), ", ".join(parts))
