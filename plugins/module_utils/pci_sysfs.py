# -*- coding: utf-8 -*-
# Copyright (c) homelab.gpu_passthrough contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Read PCI devices and IOMMU state from sysfs/procfs under an injectable root (default ``/``).

Only files are read; nothing is executed and nothing is written. Missing or unreadable files give
empty/None fields rather than errors, so a partial tree (a container, a fixture) still reports.

Sources:

* devices: ``<root>/sys/bus/pci/devices/*`` (symlinks into ``/sys/devices/pciDDDD:BB/...``; the
  PCI addresses on the resolved path before the device itself are its upstream bridges);
  ``vendor``, ``device``, ``subsystem_vendor``, ``subsystem_device``, ``class``, ``boot_vga`` files;
  the ``driver`` and ``iommu_group`` links.
* IOMMU on/off: groups in ``<root>/sys/kernel/iommu_groups`` (the kernel creates them only when an
  IOMMU is active); domain type from ``<root>/sys/kernel/iommu_groups/*/type``.
* Interrupt remapping: ``<root>/proc/interrupts``. With remapping active, the kernel's interrupt
  chips carry an ``IR-`` prefix (``IR-IO-APIC``, ``IR-PCI-MSI``/``IR-PCI-MSIX-...``) on Intel and
  AMD alike; IO-APIC/MSI lines without it mean remapping is off. No such lines: None (unknown).
  Intel hardware support is read from ``/sys/class/iommu/dmar*/intel-iommu/ecap`` bit 3 (IR).
* Kernel command line: ``<root>/proc/cmdline``.
* Device names (``description``): the PCI ID database of pciutils/hwdata,
  ``<root>/usr/share/misc/pci.ids`` or ``<root>/usr/share/hwdata/pci.ids``, when present; lspci's
  form "Vendor Device" ("NVIDIA Corporation GP108 [GeForce GT 1030]"); "" without the file.
"""
from __future__ import annotations

import os

from ansible_collections.homelab.gpu_passthrough.plugins.module_utils.kernel_cmdline import (
    CmdlineError,
    kernel_tokens,
    normalize_key,
    split_arg,
)
from ansible_collections.homelab.gpu_passthrough.plugins.module_utils.pci import (
    address_sort_key,
    hex_id,
    is_address,
    is_bridge_class,
    normalize_address,
)

PCI_IDS_PATHS = ("usr/share/misc/pci.ids", "usr/share/hwdata/pci.ids")
_CMDLINE_KEYS = ("intel_iommu", "amd_iommu", "iommu", "iommu.passthrough", "iommu.strict",
                 "pcie_acs_override", "vfio-pci.ids", "vfio_pci.ids", "video")
_CMDLINE_KEYS_NORMALIZED = frozenset(normalize_key(k) for k in _CMDLINE_KEYS)


def _path(root, *parts):
    return os.path.join(root or "/", *parts)


def _read(path):
    try:
        with open(path, "r", encoding="utf-8", errors="replace") as handle:
            return handle.read().strip()
    except (OSError, ValueError):
        return None


def _hex(path, width):
    return hex_id(_read(path), width)


def _link_name(path):
    try:
        return os.path.basename(os.readlink(path).rstrip("/")) or None
    except OSError:
        return None


def _parent_bridges(root, entry_path):
    """Upstream bridges from the resolved sysfs path, or None when it cannot be resolved."""
    if not os.path.islink(entry_path):
        return None
    devices_dir = os.path.realpath(_path(root, "sys", "devices"))
    target = os.path.realpath(entry_path)
    rel = os.path.relpath(target, devices_dir)
    if rel.startswith(os.pardir):
        return None
    parts = rel.split(os.sep)
    bridges = []
    for part in parts[:-1]:
        if is_address(part):
            bridges.append(normalize_address(part))
    return bridges


def read_pci_device(root, address):
    """One device dict (see iommu.py) for ``<root>/sys/bus/pci/devices/<address>``."""
    entry = _path(root, "sys", "bus", "pci", "devices", address)
    class_id = _hex(os.path.join(entry, "class"), 6)
    boot_vga_text = _read(os.path.join(entry, "boot_vga"))
    group_name = _link_name(os.path.join(entry, "iommu_group"))
    try:
        group = int(group_name) if group_name is not None else None
    except ValueError:
        group = None
    return {
        "address": normalize_address(address),
        "vendor_id": _hex(os.path.join(entry, "vendor"), 4),
        "device_id": _hex(os.path.join(entry, "device"), 4),
        "subsystem_vendor_id": _hex(os.path.join(entry, "subsystem_vendor"), 4),
        "subsystem_device_id": _hex(os.path.join(entry, "subsystem_device"), 4),
        "class_id": class_id,
        "driver": _link_name(os.path.join(entry, "driver")),
        "iommu_group": group,
        "boot_vga": None if boot_vga_text in (None, "") else boot_vga_text == "1",
        "is_bridge": is_bridge_class(class_id),
        "parent_bridges": _parent_bridges(root, entry),
        "description": "",
    }


def pci_id_names(root, pairs):
    """``{(vendor, device): "Vendor Device"}`` for the wanted pairs from pci.ids; {} without the file.

    Reads the database once, stopping at its class section; unknown devices of a known vendor get
    lspci's "Vendor Device 1d01" form.
    """
    wanted_vendors = set(v for v, _d in pairs)
    path = None
    for rel in PCI_IDS_PATHS:
        candidate = _path(root, rel)
        if os.path.isfile(candidate):
            path = candidate
            break
    if path is None or not wanted_vendors:
        return {}
    vendors = {}
    devices = {}
    current = None
    try:
        with open(path, "r", encoding="utf-8", errors="replace") as handle:
            for line in handle:
                if not line.strip() or line.startswith("#"):
                    continue
                if line.startswith("C "):
                    break
                if not line.startswith("\t"):
                    vid, _sep, name = line.strip().partition("  ")
                    current = vid.lower() if vid.lower() in wanted_vendors else None
                    if current:
                        vendors[current] = name.strip()
                elif current and not line.startswith("\t\t"):
                    did, _sep, name = line.strip().partition("  ")
                    devices[(current, did.lower())] = name.strip()
    except OSError:
        return {}
    names = {}
    for vendor, device in pairs:
        if vendor in vendors:
            names[(vendor, device)] = "%s %s" % (vendors[vendor], devices.get((vendor, device), "Device %s" % device))
    return names


def read_pci_devices(root="/"):
    """Every PCI device under ``<root>/sys/bus/pci/devices``, sorted by address. [] when none.

    ``description`` comes from pci.ids under ``root`` when present (see pci_id_names)."""
    base = _path(root, "sys", "bus", "pci", "devices")
    try:
        names = os.listdir(base)
    except OSError:
        return []
    devices = []
    for name in names:
        if not is_address(name):
            continue
        devices.append(read_pci_device(root, name))
    devices.sort(key=lambda d: address_sort_key(d["address"]))
    names = pci_id_names(root, set((d["vendor_id"], d["device_id"]) for d in devices if d["vendor_id"]))
    for device in devices:
        device["description"] = names.get((device["vendor_id"], device["device_id"]), "")
    return devices


def parse_cmdline_options(cmdline):
    """IOMMU/VFIO related ``key=value`` (or bare ``key``) words of a kernel command line.

    Tokens as the kernel splits them (``kernel_cmdline.split_cmdline``); keys as written, where ``-``
    and ``_`` are alike, as for the kernel; nothing after ``--`` (init's arguments). Raises
    CmdlineError on an unbalanced quote.
    """
    options = {}
    for word in kernel_tokens(cmdline or ""):
        key, value = split_arg(word)
        if normalize_key(key) in _CMDLINE_KEYS_NORMALIZED:
            options[key] = True if value is None else value
    return options


def acs_override(options):
    """The value of ``pcie_acs_override`` (True when bare) among parsed options, None when absent."""
    for key, value in options.items():
        if normalize_key(key) == "pcie_acs_override":
            return value
    return None


def _interrupt_remapping(root):
    text = _read(_path(root, "proc", "interrupts"))
    if text is None:
        return None, "unknown: <root>/proc/interrupts not readable"
    remapped = False
    plain = False
    for line in text.splitlines():
        for word in line.split():
            if word.startswith("IR-"):
                remapped = True
            elif word.startswith(("IO-APIC", "PCI-MSI")):
                plain = True
    if remapped:
        return True, "proc/interrupts: IR- interrupt chips present"
    if plain:
        return False, "proc/interrupts: IO-APIC/MSI interrupts without IR- prefix"
    return None, "unknown: no IO-APIC/MSI lines in proc/interrupts"


def _iommu_units(root):
    base = _path(root, "sys", "class", "iommu")
    try:
        names = sorted(os.listdir(base))
    except OSError:
        return [], None, None
    units = []
    vendor = None
    ir_supported = None
    for name in names:
        unit = os.path.join(base, name)
        if os.path.isdir(os.path.join(unit, "intel-iommu")):
            vendor = "intel"
            ecap = _read(os.path.join(unit, "intel-iommu", "ecap"))
            try:
                bit = bool(int(ecap, 16) & (1 << 3)) if ecap else None
            except ValueError:
                bit = None
            if bit is not None:
                ir_supported = bit if ir_supported is None else (ir_supported and bit)
        elif os.path.isdir(os.path.join(unit, "amd-iommu")):
            vendor = "amd"
        units.append(name)
    return units, vendor, ir_supported


def iommu_state(root="/"):
    """IOMMU facts: enabled, group_count, groups, interrupt remapping, cmdline, default domain type."""
    groups_dir = _path(root, "sys", "kernel", "iommu_groups")
    try:
        group_names = [n for n in os.listdir(groups_dir) if n.isdigit()]
    except OSError:
        group_names = []
    groups = sorted(int(n) for n in group_names)
    types = {}
    for group in groups:
        kind = _read(os.path.join(groups_dir, str(group), "type"))
        if kind:
            types[kind] = types.get(kind, 0) + 1
    default_type = None
    if types:
        default_type = sorted(types.items(), key=lambda item: (-item[1], item[0]))[0][0]
    remapping, remapping_source = _interrupt_remapping(root)
    units, vendor, ir_supported = _iommu_units(root)
    cmdline = _read(_path(root, "proc", "cmdline"))
    try:
        options = parse_cmdline_options(cmdline)
        cmdline_error = None
    except CmdlineError as exc:
        # The kernel got this line, so the quote is not ours to fix; never miss the ACS override.
        options = {"pcie_acs_override": True} if "pcie_acs_override" in (cmdline or "").replace("-", "_") else {}
        cmdline_error = str(exc)
    return {
        "enabled": bool(groups),
        "group_count": len(groups),
        "groups": groups,
        "interrupt_remapping": remapping,
        "interrupt_remapping_source": remapping_source,
        "interrupt_remapping_supported": ir_supported,
        "units": units,
        "vendor": vendor,
        "cmdline": cmdline or "",
        "cmdline_options": options,
        "cmdline_error": cmdline_error,
        "acs_override": acs_override(options),
        "default_domain_type": default_type,
        "domain_types": types,
    }


def iommu_groups(devices):
    """``[{"group": N, "devices": [addresses]}]`` sorted by group, from device dicts."""
    by_group = {}
    for device in devices:
        if device.get("iommu_group") is not None:
            by_group.setdefault(device["iommu_group"], []).append(device["address"])
    return [{"group": g, "devices": sorted(a, key=address_sort_key)} for g, a in sorted(by_group.items())]
