# -*- coding: utf-8 -*-
# Copyright (c) homelab.gpu_passthrough contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Pure IOMMU isolation logic: PCI address handling, GPU selection and the isolation verdict.

Data in, data out: nothing here reads files or talks to Ansible. A *device* is a plain dict::

    address              "0000:01:00.0"  (full domain form, lower case)
    vendor_id            "10de"
    device_id            "1d01"
    subsystem_vendor_id  "" when unknown
    subsystem_device_id  "" when unknown
    class_id             "030000" (class, subclass, prog-if; 6 hex digits)
    driver               str or None
    iommu_group          int or None
    boot_vga             bool or None
    is_bridge            bool
    parent_bridges       upstream bridge addresses from the root complex outward, or None when the
                         topology is unknown (data from the Proxmox API /nodes/{node}/hardware/pci)
    description          str, may be ""

Devices come from ``pci_sysfs.read_pci_devices`` (sysfs) or from ``devices_from_pve_api`` (PVE API).

Isolation rule: the GPU's IOMMU group (and the group of every other function of the card) may hold
only the card's own functions (same domain:bus:slot) and PCI bridges / root ports upstream of the
card. Any other device is an *intruder*. When the topology is unknown (``parent_bridges`` is None),
a bridge in the group is accepted, because a bridge cannot hide an endpoint: an endpoint behind a
bridge without ACS lands in the same group and is reported as an intruder itself. The verdict then
says in ``reasons`` that upstream-ness could not be verified.
"""
from __future__ import annotations

import re

NVIDIA_VENDOR_ID = "10de"

ACS_OVERRIDE_NOTE = (
    "the ACS override patch (pcie_acs_override) only makes the kernel report split groups without "
    "real isolation; it weakens security and is never applied by this collection"
)

# PCI class/subclass names (from the PCI ID repository's class list, the ones seen on real hosts).
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
# PCI-to-PCI bridges (root ports, switch ports, chipset bridges): class 06, subclass 04 or 09.
BRIDGE_SUBCLASSES = ("0604", "0609")
# What counts as a GPU when one is chosen by address: display controllers and processing accelerators.
GPU_CLASS_PREFIXES = ("03", "12")

_ADDRESS_RE = re.compile(
    r"^(?:(?P<domain>[0-9a-f]{4,8}):)?(?P<bus>[0-9a-f]{2}):(?P<slot>[0-9a-f]{2})\.(?P<func>[0-7])$"
)
_SLOT_RE = re.compile(r"^(?:[0-9a-f]{4,8}:)?[0-9a-f]{2}:[0-9a-f]{2}$")
_VENDOR_DEVICE_RE = re.compile(r"^(?P<vendor>[0-9a-f]{4}):(?P<device>[0-9a-f]{4})$")


class GpuSelectionError(ValueError):
    """No device (or no single device) matches what was asked for; the message says what exists."""


def normalize_pci_address(text):
    """Return the full lower-case form ``DDDD:BB:SS.F`` of a PCI address.

    Accepts ``01:00.0``, ``0000:01:00.0`` (any case, surrounding blanks). Raises ValueError with a
    message that says what was wrong and shows the expected form.
    """
    if not isinstance(text, str):
        raise ValueError(
            "PCI address must be a string like 0000:01:00.0, got %s %r" % (type(text).__name__, text)
        )
    value = text.strip().lower()
    match = _ADDRESS_RE.match(value)
    if not match:
        if _SLOT_RE.match(value):
            raise ValueError(
                "PCI address %r names a slot, not a function: add the function number, "
                "e.g. %s.0 (lspci -D lists full addresses)" % (text, value)
            )
        raise ValueError(
            "%r is not a PCI address: expected [domain:]bus:slot.function in hex, "
            "e.g. 0000:01:00.0 or 01:00.0 (see lspci -D)" % (text,)
        )
    domain = match.group("domain") or "0000"
    return "%s:%s:%s.%s" % (domain, match.group("bus"), match.group("slot"), match.group("func"))


def slot_of(address):
    """``0000:01:00.0`` -> ``0000:01:00`` (what a PVE PCI mapping's ``path`` wants for a whole card)."""
    return normalize_pci_address(address).rsplit(".", 1)[0]


def address_sort_key(address):
    """Numeric sort key for a PCI address (domain, bus, slot, function)."""
    try:
        norm = normalize_pci_address(address)
    except ValueError:
        return (1 << 40, 0, 0, 0, str(address))
    domain, bus, rest = norm.split(":")
    slot, func = rest.split(".")
    return (int(domain, 16), int(bus, 16), int(slot, 16), int(func, 16), "")


def normalize_vendor_device(text):
    """``10DE:1D01`` -> ``10de:1d01``; ValueError with the expected form otherwise."""
    value = str(text).strip().lower()
    if value.startswith("0x"):
        value = value[2:]
    value = value.replace(":0x", ":")
    if not _VENDOR_DEVICE_RE.match(value):
        raise ValueError(
            "%r is not a vendor:device id pair: expected two 4-digit hex ids like 10de:1d01 "
            "(the [....:....] at the end of an lspci -nn line)" % (text,)
        )
    return value


def class_name(class_id):
    """Human name of a PCI class id (``030000`` or ``0300``); ``"class XXXX"`` when unknown."""
    cid = (class_id or "").lower()
    if not cid:
        return "unknown class"
    name = _SUBCLASS_NAMES.get(cid[:4])
    if name:
        return name
    name = _CLASS_NAMES.get(cid[:2])
    if name:
        return name
    return "class %s" % cid[:4]


def is_display_controller(device):
    return str(device.get("class_id") or "").lower().startswith("03")


def is_bridge_class(class_id):
    return str(class_id or "").lower()[:4] in BRIDGE_SUBCLASSES


def vendor_device(device):
    return "%s:%s" % (device.get("vendor_id") or "????", device.get("device_id") or "????")


def describe_device(device):
    """One-line description a newcomer can match against lspci: address, class name [code], ids."""
    cid = str(device.get("class_id") or "")
    parts = ["%s [%s]" % (class_name(cid), cid[:4] or "?"), vendor_device(device)]
    if device.get("description"):
        parts.append(str(device["description"]))
    if device.get("driver"):
        parts.append("driver %s" % device["driver"])
    return "%s (%s)" % (device.get("address"), ", ".join(parts))


def _list_display_controllers(devices):
    shown = [describe_device(d) for d in sorted(devices, key=lambda d: address_sort_key(d.get("address")))
             if is_display_controller(d)]
    if not shown:
        return "No display controller (PCI class 03xx) exists on this host"
    return "Display controllers on this host: " + "; ".join(shown)


def _by_address(devices):
    index = {}
    for device in devices:
        try:
            index[normalize_pci_address(device.get("address"))] = device
        except ValueError:
            continue
    return index


def select_gpu(devices, address=None, vendor_device=None):
    """Choose the GPU to pass through.

    * ``address``: the device at that PCI address (must be a display controller or accelerator);
    * ``vendor_device``: the single device with that ``vendor:device`` pair (ambiguous when several);
    * neither: the first NVIDIA (10de) display controller (class 03xx) in address order.

    Raises GpuSelectionError naming what was searched and which display controllers exist, or
    ValueError for malformed input.
    """
    devices = list(devices or [])
    ordered = sorted(devices, key=lambda d: address_sort_key(d.get("address")))
    wanted_vd = normalize_vendor_device(vendor_device) if vendor_device not in (None, "") else None
    if address not in (None, ""):
        norm = normalize_pci_address(address)
        device = _by_address(devices).get(norm)
        if device is None:
            raise GpuSelectionError(
                "No PCI device at %s: check the address with lspci -D. %s."
                % (norm, _list_display_controllers(devices))
            )
        if not str(device.get("class_id") or "").lower().startswith(GPU_CLASS_PREFIXES):
            cid = str(device.get("class_id") or "")
            raise GpuSelectionError(
                "%s is not a GPU: it is a %s [%s] (%s). Give the address of the display controller "
                "(function .0 of the card). %s."
                % (norm, class_name(cid), cid[:4] or "?", vendor_device_of(device), _list_display_controllers(devices))
            )
        if wanted_vd and vendor_device_of(device) != wanted_vd:
            raise GpuSelectionError(
                "gpu_address %s and gpu_vendor_device %s disagree: the device at %s is %s. "
                "Give one of them, or make them match." % (norm, wanted_vd, norm, describe_device(device))
            )
        return device
    if wanted_vd:
        matches = [d for d in ordered if vendor_device_of(d) == wanted_vd]
        if not matches:
            raise GpuSelectionError(
                "No PCI device with vendor:device %s: %s. Check the ids with lspci -nn."
                % (wanted_vd, _list_display_controllers(devices))
            )
        if len(matches) > 1:
            raise GpuSelectionError(
                "%d devices have vendor:device %s (%s): give gpu_address to choose one."
                % (len(matches), wanted_vd, "; ".join(describe_device(d) for d in matches))
            )
        return matches[0]
    for device in ordered:
        if is_display_controller(device) and str(device.get("vendor_id") or "").lower() == NVIDIA_VENDOR_ID:
            return device
    raise GpuSelectionError(
        "No NVIDIA (vendor 10de) display controller (PCI class 03xx) found among %d PCI devices: %s. "
        "Give gpu_address or gpu_vendor_device to choose another card." % (len(devices), _list_display_controllers(devices))
    )


def vendor_device_of(device):
    return "%s:%s" % (str(device.get("vendor_id") or "").lower(), str(device.get("device_id") or "").lower())


def _unique(seq):
    seen = set()
    out = []
    for item in seq:
        if item not in seen:
            seen.add(item)
            out.append(item)
    return out


def isolation_verdict(gpu_address, devices, allow_boot_vga=False):
    """Decide whether the GPU at ``gpu_address`` can be passed through safely.

    Returns a dict: isolated, status, group, groups, gpu, functions, upstream_bridges, intruders,
    vfio_ids, drivers, mapping_path, topology_known, boot_vga, reasons, message.

    ``status`` is one of ``isolated``, ``no_iommu_group`` (IOMMU off or device outside any group),
    ``intruders``, ``boot_vga``; when several problems exist, the first in that order wins and
    ``reasons`` lists all of them.
    """
    devices = list(devices or [])
    gpu_addr = normalize_pci_address(gpu_address)
    index = _by_address(devices)
    gpu = index.get(gpu_addr)
    if gpu is None:
        raise GpuSelectionError(
            "No PCI device at %s: check the address with lspci -D. %s." % (gpu_addr, _list_display_controllers(devices))
        )
    slot = slot_of(gpu_addr)
    functions = sorted(
        (d for a, d in index.items() if a.rsplit(".", 1)[0] == slot),
        key=lambda d: address_sort_key(d.get("address")),
    )
    function_addrs = [normalize_pci_address(d["address"]) for d in functions]
    group = gpu.get("iommu_group")
    parent_bridges = gpu.get("parent_bridges")
    topology_known = parent_bridges is not None
    upstream_set = set()
    if topology_known:
        for func in functions:
            for bridge in func.get("parent_bridges") or []:
                try:
                    upstream_set.add(normalize_pci_address(bridge))
                except ValueError:
                    continue

    reasons = []
    problems = []
    intruders = []
    upstream_bridges = []
    unverified_bridges = []
    groups = _unique(f.get("iommu_group") for f in functions if f.get("iommu_group") is not None)
    groups = sorted(groups)
    boot_vga = gpu.get("boot_vga")

    iommu_seen = any(d.get("iommu_group") is not None for d in index.values())
    for func in functions:
        if func.get("iommu_group") is None:
            if "no_iommu_group" not in problems:
                problems.append("no_iommu_group")
            if not iommu_seen:
                reasons.append(
                    "%s has no IOMMU group and no device has one: the IOMMU is off, so VFIO cannot pass "
                    "anything through." % func["address"]
                )
            else:
                reasons.append(
                    "%s has no IOMMU group although other devices have one, so VFIO cannot pass it "
                    "(and therefore the card) through." % func["address"]
                )
    members = sorted(
        (d for a, d in index.items() if d.get("iommu_group") is not None and d.get("iommu_group") in groups),
        key=lambda d: address_sort_key(d.get("address")),
    )
    for dev in members:
        addr = normalize_pci_address(dev["address"])
        if addr in function_addrs:
            continue
        bridge = bool(dev.get("is_bridge")) or is_bridge_class(dev.get("class_id"))
        if bridge and topology_known and addr in upstream_set:
            upstream_bridges.append(dev)
        elif bridge and not topology_known:
            upstream_bridges.append(dev)
            unverified_bridges.append(dev)
        else:
            intruders.append(dev)
    for func in functions:
        if group is not None and func.get("iommu_group") is not None and func.get("iommu_group") != group:
            reasons.append(
                "function %s is in its own IOMMU group %s (checked too: it is passed along with the card)."
                % (func["address"], func["iommu_group"])
            )
    if unverified_bridges:
        reasons.append(
            "the PCI topology is unknown (no parent bridge data, e.g. from the Proxmox API), so it could "
            "not be verified that %s %s upstream of the GPU; accepted because a bridge cannot hide a device: "
            "an endpoint behind a bridge without ACS lands in this group and would be listed as an intruder."
            % (", ".join(d["address"] for d in unverified_bridges),
               "is" if len(unverified_bridges) == 1 else "are")
        )
    if intruders:
        problems.append("intruders")
        for dev in intruders:
            why = "a bridge that is not upstream of the GPU" if (
                dev.get("is_bridge") or is_bridge_class(dev.get("class_id"))) else "not part of the card"
            reasons.append("IOMMU group %s also holds %s: %s." % (dev.get("iommu_group"), describe_device(dev), why))
    if boot_vga and not allow_boot_vga:
        problems.append("boot_vga")
        reasons.append(
            "%s is the host's boot display (boot_vga=1): the firmware and the host console use it." % gpu_addr
        )
    elif boot_vga:
        reasons.append("%s is the host's boot display; allowed by allow_boot_vga." % gpu_addr)

    order = ["no_iommu_group", "intruders", "boot_vga"]
    status = next((p for p in order if p in problems), "isolated")
    verdict = {
        "isolated": status == "isolated",
        "status": status,
        "group": group,
        "groups": groups,
        "gpu": gpu,
        "functions": functions,
        "upstream_bridges": upstream_bridges,
        "intruders": intruders,
        "vfio_ids": _unique(vendor_device_of(f) for f in functions),
        "drivers": dict((f["address"], f.get("driver")) for f in functions),
        "mapping_path": slot,
        "topology_known": topology_known,
        "boot_vga": boot_vga,
        "reasons": reasons,
    }
    verdict["message"] = _message(verdict, problems, iommu_seen)
    return verdict


def _message(v, problems, iommu_seen):
    gpu = v["gpu"]
    gpu_text = describe_device(gpu)
    sentences = []
    if "no_iommu_group" in problems and not iommu_seen:
        sentences.append(
            "%s is in no IOMMU group, so it cannot be passed through: the IOMMU is off. Enable VT-d (Intel) "
            "or AMD-Vi/IOMMU (AMD) in the firmware setup; on Intel with a kernel older than 6.8 also add "
            "intel_iommu=on to the kernel command line (the proxmox_vfio role of this collection does that), "
            "reboot, and run this check again." % gpu_text
        )
    elif "no_iommu_group" in problems:
        missing = [f["address"] for f in v["functions"] if f.get("iommu_group") is None]
        sentences.append(
            "%s cannot be passed through: %s %s in no IOMMU group although the IOMMU is on for other devices. "
            "Look for DMAR/AMD-Vi errors about %s in the kernel log (journalctl -k), update the firmware, "
            "or try another slot." % (gpu_text, ", ".join(missing), "is" if len(missing) == 1 else "are",
                                      "it" if len(missing) == 1 else "them")
        )
    if "intruders" in problems:
        names = "; ".join(describe_device(d) for d in v["intruders"])
        sentences.append(
            "IOMMU group %s of %s is not isolated: it also holds %d device%s that %s not part of the card: %s. "
            "Passing the GPU through would hand %s to the VM as well, or VFIO refuses to start it. "
            "Fix: move the card to a CPU-attached slot (usually the top x16 slot) or one whose root port "
            "supports ACS, or look in the firmware setup for an option that splits IOMMU groups; then run "
            "this check again. Note: %s."
            % (
                "/".join(str(g) for g in v["groups"]) or v["group"],
                gpu_text,
                len(v["intruders"]),
                "" if len(v["intruders"]) == 1 else "s",
                "is" if len(v["intruders"]) == 1 else "are",
                names,
                "it" if len(v["intruders"]) == 1 else "them",
                ACS_OVERRIDE_NOTE,
            )
        )
    if "boot_vga" in problems:
        sentences.append(
            "%s is the host's boot display (boot_vga=1): the firmware initialised it and the host console "
            "uses it, so passing it through usually leaves a black screen or a VM that hangs at start. "
            "Fix: select the integrated graphics or another card as the primary display in the firmware "
            "setup (or move this card to another slot), or set allow_boot_vga=true if a headless host is "
            "what you want." % gpu["address"]
        )
    if sentences:
        return " ".join(sentences)
    extra = []
    others = [f["address"] for f in v["functions"] if f is not gpu]
    if others:
        extra.append("its own functions %s" % ", ".join(others))
    if v["upstream_bridges"]:
        extra.append("%s upstream bridge%s %s" % (
            "its" if v["topology_known"] else "the (unverified)",
            "" if len(v["upstream_bridges"]) == 1 else "s",
            ", ".join(d["address"] for d in v["upstream_bridges"])))
    with_text = " with only " + " and ".join(extra) if extra else " alone"
    group_text = str(v["group"])
    if len(v["groups"]) > 1:
        group_text += " (the card's functions span groups %s, none with a foreign device)" % ", ".join(
            str(g) for g in v["groups"])
    return (
        "%s is in IOMMU group %s%s: it can be passed through. Map path %s (all functions); "
        "vfio-pci ids %s." % (gpu_text, group_text, with_text, v["mapping_path"], ",".join(v["vfio_ids"]))
    )


def _hex_id(value, width):
    text = str(value or "").strip().lower()
    if text.startswith("0x"):
        text = text[2:]
    if not text or not re.match(r"^[0-9a-f]+$", text):
        return ""
    return text.zfill(width)[-width:] if len(text) <= width else text


def devices_from_pve_api(entries):
    """Convert ``GET /nodes/{node}/hardware/pci`` entries into device dicts.

    The API gives no driver, boot_vga or topology, so those are None (``parent_bridges`` None means
    "topology unknown" to ``isolation_verdict``). Note the API hides bridges (class 06) unless called
    with ``pci-class-blacklist=""``; without bridges the verdict is unchanged, since bridges are
    accepted when the topology is unknown.
    """
    devices = []
    for entry in entries or []:
        group = entry.get("iommugroup")
        try:
            group = int(group)
        except (TypeError, ValueError):
            group = None
        if group is not None and group < 0:
            group = None
        class_id = _hex_id(entry.get("class"), 6)
        names = [str(entry.get(k)) for k in ("vendor_name", "device_name") if entry.get(k)]
        devices.append({
            "address": normalize_pci_address(str(entry.get("id", ""))),
            "vendor_id": _hex_id(entry.get("vendor"), 4),
            "device_id": _hex_id(entry.get("device"), 4),
            "subsystem_vendor_id": _hex_id(entry.get("subsystem_vendor"), 4),
            "subsystem_device_id": _hex_id(entry.get("subsystem_device"), 4),
            "class_id": class_id,
            "driver": None,
            "iommu_group": group,
            "boot_vga": None,
            "is_bridge": is_bridge_class(class_id),
            "parent_bridges": None,
            "description": " ".join(names),
        })
    return devices
