# -*- coding: utf-8 -*-
# Copyright (c) homelab.gpu_passthrough contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""GPU selection and the IOMMU isolation verdict (decisions only; the prose is in iommu_messages.py).

Data in, data out: nothing here reads files or talks to Ansible. Devices are the dicts described in
pci.py, from ``pci_sysfs.read_pci_devices`` (sysfs) or ``devices_from_pve_api`` (PVE API).

Isolation rule. The card is the GPU's display function plus the *functions of the card*
(``pci.is_card_function``: same slot, same vendor, a class a graphics card carries). The IOMMU
groups of those functions may hold, besides them, only

* PCI bridges / root ports upstream of the card (when the topology is unknown, i.e.
  ``parent_bridges`` is None, any PCI bridge: a bridge cannot hide an endpoint, since an endpoint
  behind a bridge without ACS lands in the same group and is reported itself);
* host bridges (class 0600) that no host driver holds, such as AMD's "PCIe Dummy Host Bridge":
  VFIO accepts group members that no driver holds.

Anything else is an *intruder*, including same-slot functions of another vendor or class (an
APU's platform security processor, USB and HD audio controllers). With ``pcie_acs_override`` on the
running kernel's command line the groups are not real isolation: refused unless accepted.
"""
from __future__ import annotations

from ansible_collections.homelab.gpu_passthrough.plugins.module_utils import iommu_messages as messages
from ansible_collections.homelab.gpu_passthrough.plugins.module_utils.nvidia import has_usb_c_functions
from ansible_collections.homelab.gpu_passthrough.plugins.module_utils.pci import (
    NVIDIA_VENDOR_ID,
    PciError,
    address_sort_key,
    by_address,
    hex_id,
    is_bridge,
    is_bridge_class,
    is_card_function,
    is_gpu,
    is_host_bridge,
    normalize_address,
    normalize_vendor_device,
    slot_of,
    vendor_device as ids_of,
)

# Status values, in the order in which the first problem found wins.
STATUS_ORDER = ("no_iommu_group", "intruders", "acs_override", "boot_vga")


class GpuSelectionError(ValueError):
    """No device (or no single device) matches what was asked for; the message says what exists."""


def _sorted(devices):
    return sorted(devices, key=lambda d: address_sort_key(d.get("address")))


def select_gpu(devices, address=None, vendor_device=None):
    """Choose the GPU to pass through. Both selectors must name a display controller (``pci.is_gpu``).

    * ``address``: the device at that PCI address;
    * ``vendor_device``: the single display controller with that ``vendor:device`` pair;
    * neither: the first NVIDIA (10de) display controller in address order.

    Raises GpuSelectionError naming what was searched and which display controllers exist, or
    ValueError (pci.PciError) for malformed input.
    """
    devices = list(devices or [])
    ordered = _sorted(devices)
    wanted_vd = normalize_vendor_device(vendor_device) if vendor_device not in (None, "") else None
    if address not in (None, ""):
        norm = normalize_address(address)
        device = by_address(devices).get(norm)
        if device is None:
            raise GpuSelectionError(messages.no_device_at(norm, devices))
        if not is_gpu(device):
            raise GpuSelectionError(messages.not_a_gpu(norm, device, devices))
        if wanted_vd and ids_of(device) != wanted_vd:
            raise GpuSelectionError(messages.selectors_disagree(norm, wanted_vd, device))
        return device
    if wanted_vd:
        matches = [d for d in ordered if ids_of(d) == wanted_vd]
        if not matches:
            raise GpuSelectionError(messages.no_device_with_ids(wanted_vd, devices))
        gpus = [d for d in matches if is_gpu(d)]
        if not gpus:
            raise GpuSelectionError(messages.ids_not_a_gpu(wanted_vd, matches, devices))
        if len(gpus) > 1:
            raise GpuSelectionError(messages.ids_ambiguous(wanted_vd, gpus))
        return gpus[0]
    for device in ordered:
        if is_gpu(device) and str(device.get("vendor_id") or "").lower() == NVIDIA_VENDOR_ID:
            return device
    raise GpuSelectionError(messages.no_nvidia_gpu(devices))


def _unique(seq):
    seen = set()
    out = []
    for item in seq:
        if item not in seen:
            seen.add(item)
            out.append(item)
    return out


def _classify_members(members, upstream_set, topology_known):
    """Split the non-card members of the card's groups: (upstream bridges, unverified bridges,
    accepted host bridges, intruders)."""
    upstream, unverified, host_bridges, intruders = [], [], [], []
    for dev in members:
        addr = normalize_address(dev["address"])
        if is_bridge(dev):
            if not topology_known:
                upstream.append(dev)
                unverified.append(dev)
            elif addr in upstream_set:
                upstream.append(dev)
            else:
                intruders.append(dev)
        elif is_host_bridge(dev) and (not topology_known or not dev.get("driver")):
            host_bridges.append(dev)
        else:
            intruders.append(dev)
    return upstream, unverified, host_bridges, intruders


def isolation_verdict(gpu_address, devices, allow_boot_vga=False, acs_override=None, accept_acs_override=False,
                      binding=True):
    """Decide whether the GPU at ``gpu_address`` can be passed through safely.

    ``binding``: add the card's ``binding_plan`` (vfio_bystanders, bind_by_ids, bind_by_override)
    and word it in the message; ``cards_verdict`` turns it off and plans all cards together.

    ``acs_override``: the value of ``pcie_acs_override`` on the running kernel's command line (None
    when absent or unknown); refused unless ``accept_acs_override``.

    Returns a dict: isolated, status, group, groups, gpu, functions, upstream_bridges, host_bridges,
    intruders, slot_foreign, vfio_ids, vfio_bystanders, bind_by_ids, bind_by_override, drivers,
    unbound_functions, mapping_path, topology_known, boot_vga, acs_override, reasons, message. ``functions`` and ``vfio_ids`` are
    filled even when the IOMMU is off (status ``no_iommu_group``).

    ``status`` is the first problem in STATUS_ORDER, or ``isolated``; ``reasons`` lists all.
    """
    devices = list(devices or [])
    gpu_addr = normalize_address(gpu_address)
    index = by_address(devices)
    gpu = index.get(gpu_addr)
    if gpu is None:
        raise GpuSelectionError(messages.no_device_at(gpu_addr, devices))
    usb_c = has_usb_c_functions(gpu)
    slot = slot_of(gpu_addr)
    in_slot = _sorted(d for a, d in index.items() if slot_of(a) == slot)
    functions = [d for d in in_slot if d is gpu or is_card_function(gpu, d, usb_c=usb_c)]
    function_addrs = set(normalize_address(d["address"]) for d in functions)
    slot_foreign = [d for d in in_slot if normalize_address(d["address"]) not in function_addrs]
    group = gpu.get("iommu_group")
    topology_known = gpu.get("parent_bridges") is not None
    upstream_set = set()
    if topology_known:
        for func in functions:
            upstream_set.update(normalize_address(b) for b in func.get("parent_bridges") or [])

    reasons = []
    problems = []
    groups = sorted(_unique(f.get("iommu_group") for f in functions if f.get("iommu_group") is not None))
    iommu_seen = any(d.get("iommu_group") is not None for d in index.values())
    for func in functions:
        if func.get("iommu_group") is None:
            if "no_iommu_group" not in problems:
                problems.append("no_iommu_group")
            reasons.append(messages.reason_no_group(func) if iommu_seen else messages.reason_iommu_off(func))
        elif group is not None and func.get("iommu_group") != group:
            reasons.append(messages.reason_split_function(func))
    for dev in slot_foreign:
        reasons.append(messages.reason_slot_foreign(dev, gpu, usb_c))
    members = _sorted(d for a, d in index.items()
                      if a not in function_addrs and d.get("iommu_group") is not None and d.get("iommu_group") in groups)
    upstream, unverified, host_bridges, intruders = _classify_members(members, upstream_set, topology_known)
    if unverified:
        reasons.append(messages.reason_unverified_bridges(unverified))
    if host_bridges:
        reasons.append(messages.reason_host_bridges(host_bridges, driver_known=topology_known))
    if intruders:
        problems.append("intruders")
        for dev in intruders:
            reasons.append(messages.reason_intruder(dev, is_bridge(dev), is_host_bridge(dev)))
    if acs_override not in (None, False):
        acs_override = "" if acs_override is True else str(acs_override)
        reasons.append(messages.reason_acs_override(acs_override, accept_acs_override))
        if not accept_acs_override:
            problems.append("acs_override")
    else:
        acs_override = None
    boot_vga = gpu.get("boot_vga")
    if boot_vga:
        reasons.append(messages.reason_boot_vga(gpu_addr, allow_boot_vga))
        if not allow_boot_vga:
            problems.append("boot_vga")

    status = next((p for p in STATUS_ORDER if p in problems), "isolated")
    vfio_ids = _unique(ids_of(f) for f in functions)
    plan = binding_plan(functions, devices) if binding else None
    verdict = {
        "isolated": status == "isolated",
        "status": status,
        "group": group,
        "groups": groups,
        "gpu": gpu,
        "functions": functions,
        "upstream_bridges": upstream,
        "host_bridges": host_bridges,
        "intruders": intruders,
        "slot_foreign": slot_foreign,
        "vfio_ids": vfio_ids,
        "drivers": dict((f["address"], f.get("driver")) for f in functions),
        "unbound_functions": ["%s (%s)" % (f["address"], f.get("driver") or "no driver")
                              for f in functions if f.get("driver") != "vfio-pci"],
        "mapping_path": slot,
        "topology_known": topology_known,
        "boot_vga": boot_vga,
        "acs_override": acs_override,
        "reasons": reasons,
    }
    if plan is not None:
        verdict.update(vfio_bystanders=plan["bystanders"], bind_by_ids=plan["bind_by_ids"],
                       bind_by_override=plan["bind_by_override"])
    verdict["message"] = messages.verdict_message(verdict, problems, iommu_seen)
    return verdict


def binding_plan(functions, devices):
    """How vfio-pci claims ``functions`` at boot without taking any other device from the host.

    ``options vfio-pci ids=`` binds every device that carries one of the ids, so an id that a device
    outside ``functions`` also carries (an identical card the host keeps, or another card's
    identical HDMI audio function) cannot go there: the functions with such an id are bound by
    their address instead (``driver_override``), the others by id.

    Returns a dict: bind_by_ids (the ids for ``ids=``, in the order of ``functions``),
    bind_by_override (the addresses of the functions bound by address, address order), shared_ids
    (the ids left out of ``ids=``) and bystanders (the devices outside ``functions`` that carry
    one of their ids).
    """
    passed = set(normalize_address(f["address"]) for f in functions)
    ids = _unique(ids_of(f) for f in functions)
    bystanders = [d for d in _sorted(by_address(devices).values())
                  if normalize_address(d["address"]) not in passed and ids_of(d) in ids]
    shared = set(ids_of(d) for d in bystanders)
    return {
        "bind_by_ids": [i for i in ids if i not in shared],
        "bind_by_override": [f["address"] for f in _sorted(functions) if ids_of(f) in shared],
        "shared_ids": [i for i in ids if i in shared],
        "bystanders": bystanders,
    }


def parse_gpu_selector(text):
    """An entry of a list of GPUs: a PCI address (``0000:01:00.0``, ``01:00.0``) or a
    ``vendor:device`` pair (``10de:1d01``). Returns ``("address", "0000:01:00.0")`` or
    ``("vendor_device", "10de:1d01")``; PciError naming both accepted forms otherwise."""
    value = str(text if text is not None else "").strip()
    try:
        return "address", normalize_address(value)
    except PciError as exc:
        address_error = str(exc)
    try:
        return "vendor_device", normalize_vendor_device(value)
    except PciError:
        raise PciError(messages.bad_gpu_selector(text, address_error)) from None


def select_gpus(devices, selectors):
    """The GPUs named by ``selectors`` (each an address or a vendor:device pair, see
    ``parse_gpu_selector``), in the order given. Each entry follows ``select_gpu``'s rules (a
    vendor:device pair must be unique on the host). Raises GpuSelectionError (naming the entry)
    when an entry finds no GPU or names a card an earlier entry named, PciError for a malformed
    entry or an empty list."""
    selectors = list(selectors or [])
    if not selectors:
        raise PciError(messages.empty_gpu_list())
    gpus = []
    for number, text in enumerate(selectors, 1):
        try:
            kind, value = parse_gpu_selector(text)
        except PciError as exc:
            raise PciError(messages.gpu_list_entry(number, text, str(exc))) from None
        try:
            gpu = select_gpu(devices, **{kind: value})
        except GpuSelectionError as exc:
            raise GpuSelectionError(messages.gpu_list_entry(number, text, str(exc))) from None
        for earlier, other in enumerate(gpus, 1):
            if slot_of(other["address"]) == slot_of(gpu["address"]):
                raise GpuSelectionError(messages.gpu_named_twice(number, text, earlier, selectors[earlier - 1], gpu))
        gpus.append(gpu)
    return gpus


def cards_verdict(devices, selectors, allow_boot_vga=False, acs_override=None, accept_acs_override=False):
    """The isolation verdict of several cards on one host, each judged on its own by
    ``isolation_verdict`` (another passed card in a card's group is an intruder too: each card
    goes to its own VM).

    Returns a dict: isolated (every card is), status (``isolated`` or the first refused card's),
    cards (each card's verdict, its message as ``msg``), refused (the addresses of the refused
    cards), gpu (the first card's GPU), functions (all cards' functions), vfio_ids (the sorted
    union of their ids), vfio_bystanders / bind_by_ids (sorted) / bind_by_override (from
    ``binding_plan`` on all cards' functions together), drivers, unbound_functions, acs_override,
    reasons (each prefixed with its card's address) and message. Raises like ``select_gpus``.
    """
    devices = list(devices or [])
    cards = []
    for gpu in select_gpus(devices, selectors):
        verdict = isolation_verdict(gpu["address"], devices, allow_boot_vga=allow_boot_vga,
                                    acs_override=acs_override, accept_acs_override=accept_acs_override,
                                    binding=False)
        verdict["msg"] = verdict.pop("message")
        cards.append(verdict)
    functions = _sorted(f for card in cards for f in card["functions"])
    plan = binding_plan(functions, devices)
    refused = [card for card in cards if not card["isolated"]]
    drivers = {}
    for card in cards:
        drivers.update(card["drivers"])
    result = {
        "isolated": not refused,
        "status": refused[0]["status"] if refused else "isolated",
        "cards": cards,
        "refused": [card["gpu"]["address"] for card in refused],
        "gpu": cards[0]["gpu"],
        "functions": functions,
        "vfio_ids": sorted(set(ids_of(f) for f in functions)),
        "vfio_bystanders": plan["bystanders"],
        "bind_by_ids": sorted(plan["bind_by_ids"]),
        "bind_by_override": plan["bind_by_override"],
        "drivers": drivers,
        "unbound_functions": [u for card in cards for u in card["unbound_functions"]],
        "acs_override": cards[0]["acs_override"],
        "reasons": ["%s: %s" % (card["gpu"]["address"], r) for card in cards for r in card["reasons"]],
    }
    result["message"] = messages.cards_message(cards, refused, plan)
    return result


def devices_from_pve_api(entries):
    """Convert ``GET /nodes/{node}/hardware/pci`` entries into device dicts.

    The API gives no driver, boot_vga or topology, so those are None (``parent_bridges`` None means
    "topology unknown" to ``isolation_verdict``). Note the API hides bridges (class 06) unless called
    with ``pci-class-blacklist=""``; without bridges the verdict is unchanged, since bridges are
    accepted when the topology is unknown. Devices without an IOMMU group report ``-1``.
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
        class_id = hex_id(entry.get("class"), 6)
        names = [str(entry.get(k)) for k in ("vendor_name", "device_name") if entry.get(k)]
        devices.append({
            "address": normalize_address(str(entry.get("id", ""))),
            "vendor_id": hex_id(entry.get("vendor"), 4),
            "device_id": hex_id(entry.get("device"), 4),
            "subsystem_vendor_id": hex_id(entry.get("subsystem_vendor"), 4),
            "subsystem_device_id": hex_id(entry.get("subsystem_device"), 4),
            "class_id": class_id,
            "driver": None,
            "iommu_group": group,
            "boot_vga": None,
            "is_bridge": is_bridge_class(class_id),
            "parent_bridges": None,
            "description": " ".join(names),
        })
    return devices
