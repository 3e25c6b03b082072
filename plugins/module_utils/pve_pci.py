# -*- coding: utf-8 -*-
# Copyright (c) homelab.gpu_passthrough contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Pure helpers for Proxmox VE PCI resource mappings (no I/O, no AnsibleModule).

A map entry of ``/cluster/mapping/pci/{id}`` is a property string (pve-guest-common
PVE/Mapping/PCI.pm)::

    node=<node>,path=<dddd:bb:dd[.f][;...]>,id=<vvvv:dddd>[,iommugroup=<int>][,subsystem-id=<vvvv:dddd>][,description=<str>]

Omitting the function in ``path`` maps the whole multifunction card (attributes of function .0).
PVE compares ``id``, ``iommugroup`` (first path only) and ``subsystem-id`` with the node's sysfs when a
VM using the mapping starts; :func:`entry_problems` applies the same rules to the data of
``/nodes/{node}/hardware/pci`` so that a wrong entry is refused before it is written.
"""
from __future__ import annotations

import re

from ansible_collections.homelab.gpu_passthrough.plugins.module_utils.iommu import (
    devices_from_pve_api,
    isolation_verdict,
    select_gpu,
)
from ansible_collections.homelab.gpu_passthrough.plugins.module_utils.pci import (
    PciError,
    by_address,
    normalize_address,
    normalize_vendor_device,
    slot_of,
    subsystem_id,
    vendor_device,
)

MAP_KEYS = ("node", "path", "id", "iommugroup", "subsystem-id", "description")
NODE_RE = re.compile(r"^[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?$")
MAPPING_ID_RE = re.compile(r"^[a-z][a-z0-9_-]+$", re.I)


class MapEntryError(ValueError):
    """A map entry that PVE would refuse, with what to change."""


def check_mapping_id(name):
    if not MAPPING_ID_RE.match(name or ""):
        raise MapEntryError("mapping name %r is not a valid PVE configuration id: start with a letter, then at "
                            "least one letter, digit, '-' or '_' (e.g. gpu-quadro-m4000)" % (name,))
    return name


def normalize_entry(entry):
    """Validate and normalise an entry given as a dict (keys as in the module or as in PVE).

    Accepts ``subsystem_id`` or ``subsystem-id``; drops None values; lower-cases ids and paths.
    Raises MapEntryError naming the key and the expected form.
    """
    if not isinstance(entry, dict):
        raise MapEntryError("a map entry must be a dict with node, path and id, got %r" % (entry,))
    data = {}
    for key, value in entry.items():
        pve_key = "subsystem-id" if key == "subsystem_id" else key
        if value is None or value == "":
            continue
        if pve_key not in MAP_KEYS:
            raise MapEntryError("unknown key %r in map entry %r: allowed keys are node, path, id, iommugroup, "
                                "subsystem_id, description" % (key, entry))
        data[pve_key] = value
    for key in ("node", "path", "id"):
        if key not in data:
            raise MapEntryError("map entry %r lacks %r: every entry needs node, path and id" % (entry, key))
    data["node"] = str(data["node"])
    if not NODE_RE.match(data["node"]):
        raise MapEntryError("node %r in a map entry is not a valid node name" % (data["node"],))
    try:
        data["path"] = ";".join(_normalize_path(p) for p in str(data["path"]).split(";"))
    except PciError:
        raise MapEntryError("path %r is not a PCI path: give dddd:bb:dd for the whole card (e.g. 0000:03:00) or "
                            "dddd:bb:dd.f for one function, several separated by ';'" % (data["path"],)) from None
    for key in ("id", "subsystem-id"):
        if key in data:
            try:
                data[key] = normalize_vendor_device(data[key])
            except PciError:
                raise MapEntryError("%s %r is not of the form vvvv:dddd (hex vendor:device, e.g. 10de:13f1)"
                                    % (key, data[key])) from None
    if "iommugroup" in data:
        try:
            data["iommugroup"] = int(data["iommugroup"])
        except (TypeError, ValueError):
            raise MapEntryError("iommugroup %r is not an integer" % (data["iommugroup"],)) from None
    if "description" in data and re.search(r"[,=]", str(data["description"])):
        raise MapEntryError("the description of a map entry cannot contain ',' or '=': %r" % (data["description"],))
    return data


def _normalize_path(path):
    """One ``path`` element: a whole card ``dddd:bb:dd`` or one function ``dddd:bb:dd.f`` (domain added)."""
    text = path.strip()
    if "." in text:
        return normalize_address(text)
    return slot_of(text + ".0")


def format_map_entry(entry):
    """Property string of a (normalised) entry, keys in PVE's documented order."""
    data = normalize_entry(entry)
    return ",".join("%s=%s" % (k, data[k]) for k in MAP_KEYS if k in data)


def parse_map_entry(text):
    """Parse a map property string as PVE stores it; the inverse of :func:`format_map_entry`."""
    data = {}
    for part in [p for p in str(text).split(",") if p]:
        if "=" not in part:
            key, value = "node", part  # node is the default key of the format
        else:
            key, value = part.split("=", 1)
        if key in data:
            raise MapEntryError("duplicate key %r in map entry %r" % (key, text))
        data[key] = value
    return normalize_entry(data)


def canonical_map(entries):
    """Sorted list of canonical property strings (order of entries is irrelevant to PVE)."""
    return sorted(format_map_entry(e) if isinstance(e, dict) else format_map_entry(parse_map_entry(e))
                  for e in entries)


def devices_from_hardware_pci(entries):
    """Device dicts (the shape iommu.isolation_verdict takes) from /nodes/{node}/hardware/pci."""
    return devices_from_pve_api(entries)


def entry_problems(entry, devices):
    """What PVE's assert_valid would object to, comparing an entry with the node's devices.

    Returns a list of sentences (empty when the entry matches the hardware).
    """
    data = normalize_entry(entry)
    index = by_address(devices)
    problems = []
    for idx, path in enumerate(data["path"].split(";")):
        address = normalize_address(path if "." in path else path + ".0")
        dev = index.get(address)
        if dev is None:
            problems.append("node %s has no PCI device %s (path %s)" % (data["node"], address, path))
            continue
        correct = {"id": vendor_device(dev)}
        if idx == 0:
            correct["iommugroup"] = dev["iommu_group"]
        if subsystem_id(dev):
            correct["subsystem-id"] = subsystem_id(dev)
        for prop in ("id", "iommugroup", "subsystem-id"):
            if prop == "iommugroup" and idx > 0:
                continue
            want = correct.get(prop)
            have = data.get(prop)
            if want is None and have is None:
                continue
            if want is None:
                problems.append("'%s' is set to %s but %s on %s reports none: remove it" % (
                    prop, have, address, data["node"]))
            elif have is None:
                problems.append("'%s' is missing: %s on %s reports %s (PVE refuses to start a VM with an entry "
                                "that lacks it)" % (prop, address, data["node"], want))
            elif str(want) != str(have):
                problems.append("'%s' does not match the hardware: the entry says %s, %s on %s reports %s" % (
                    prop, have, address, data["node"], want))
    return problems


def entry_from_node(node, devices, gpu_address=None, gpu_vendor_device=None, allow_boot_vga=False):
    """Select the GPU among ``devices`` of ``node`` and build its map entry and isolation verdict.

    Returns ``(entry, verdict)``; the entry maps the whole card (path without function) with the
    ids, IOMMU group and subsystem id of function .0. Raises iommu.GpuSelectionError / ValueError.
    The API reports neither the boot display nor the kernel command line, so ``allow_boot_vga``
    has no effect on API data and the ACS override is not visible here (see gpu_isolation).
    """
    gpu = select_gpu(devices, address=gpu_address or None, vendor_device=gpu_vendor_device or None)
    verdict = isolation_verdict(gpu["address"], devices, allow_boot_vga=bool(allow_boot_vga))
    first = by_address(devices).get(verdict["mapping_path"] + ".0", gpu)
    entry = {"node": node, "path": verdict["mapping_path"], "id": vendor_device(first)}
    if first.get("iommu_group") is not None:
        entry["iommugroup"] = first["iommu_group"]
    if subsystem_id(first):
        entry["subsystem-id"] = subsystem_id(first)
    return normalize_entry(entry), verdict


def mapping_state(mapping):
    """Comparable state of a mapping as returned by PVE (None when absent)."""
    if mapping is None:
        return None
    state = {"map": canonical_map(mapping.get("map") or [])}
    if mapping.get("description") not in (None, ""):
        state["description"] = mapping["description"]
    return state


def repeated_devices(entries):
    """The ``(node, path element)`` pairs that more than one entry names, sorted.

    PVE keeps several entries of one node in a mapping (identical cards; a VM gets the first one free
    when it starts), but the same device twice can only ever serve one VM.
    """
    seen, repeated = set(), set()
    for entry in entries:
        data = normalize_entry(entry)
        for path in data["path"].split(";"):
            key = (data["node"], path.split(".", 1)[0])
            if key in seen:
                repeated.add(key)
            seen.add(key)
    return sorted(repeated)


def merge_node_entries(current_map, node_entries):
    """Replace the entries of the nodes named in ``node_entries`` and keep the other nodes' entries."""
    nodes = set(e["node"] for e in node_entries)
    kept = [e for e in (parse_map_entry(m) for m in current_map or []) if e["node"] not in nodes]
    return canonical_map(kept + list(node_entries))


def state_text(name, state):
    """A readable block for diff output."""
    if state is None:
        return ""
    lines = ["%s:" % name]
    if "description" in state:
        lines.append("  description: %s" % state["description"])
    lines.append("  map:")
    lines.extend("    - %s" % m for m in state["map"])
    return "\n".join(lines) + "\n"
