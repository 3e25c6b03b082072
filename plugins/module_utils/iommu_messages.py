# -*- coding: utf-8 -*-
# Copyright (c) homelab.gpu_passthrough contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The prose of the isolation verdict: every sentence ``iommu.py`` and the modules show a user.

No decisions are taken here: the functions get what ``iommu.isolation_verdict`` decided and word it.
"""
from __future__ import annotations

from ansible_collections.homelab.gpu_passthrough.plugins.module_utils.pci import (
    address_sort_key,
    class4,
    class_name,
    describe_device,
    is_gpu,
)

ACS_OVERRIDE_NOTE = (
    "the ACS override patch (pcie_acs_override) only makes the kernel report split groups without "
    "real isolation; it weakens security and is never applied by this collection"
)
HOST_BRIDGE_RULE = (
    "a host bridge that no host driver holds (such as AMD's \"PCIe Dummy Host Bridge\", class 0600) "
    "does not block passthrough: VFIO accepts a group member that no host driver holds, and such a "
    "bridge is no endpoint the VM could use"
)
ENABLE_IOMMU = (
    "Enable VT-d (Intel) or AMD-Vi/IOMMU (AMD) in the firmware setup; on Intel with a kernel older "
    "than 6.8 also add intel_iommu=on to the kernel command line (the proxmox_vfio role of this "
    "collection does that), reboot, and run this check again."
)


def _plural(items, one, many):
    return one if len(items) == 1 else many


def _addresses(devices):
    return ", ".join(d["address"] for d in devices)


def display_controllers(devices):
    shown = [describe_device(d) for d in sorted(devices, key=lambda d: address_sort_key(d.get("address")))
             if is_gpu(d)]
    if not shown:
        return "No display controller (PCI class 03xx) exists on this host"
    return "Display controllers on this host: " + "; ".join(shown)


# ---- selection ---------------------------------------------------------------------------------
def no_device_at(address, devices):
    return "No PCI device at %s: check the address with lspci -D. %s." % (address, display_controllers(devices))


def not_a_gpu(address, device, devices, selector="gpu_address"):
    cid = class4(device.get("class_id"))
    return (
        "%s is not a GPU: it is a %s [%s] (%s:%s). %s must name a display controller (PCI class 03xx, "
        "function .0 of the card). %s."
        % (address, class_name(cid), cid or "?", device.get("vendor_id"), device.get("device_id"),
           selector, display_controllers(devices))
    )


def selectors_disagree(address, wanted_vd, device):
    return (
        "gpu_address %s and gpu_vendor_device %s disagree: the device at %s is %s. "
        "Give one of them, or make them match." % (address, wanted_vd, address, describe_device(device))
    )


def no_device_with_ids(wanted_vd, devices):
    return "No PCI device with vendor:device %s: %s. Check the ids with lspci -nn." % (
        wanted_vd, display_controllers(devices))


def ids_not_a_gpu(wanted_vd, matches, devices):
    return (
        "gpu_vendor_device %s names no GPU: %s %s not a display controller (PCI class 03xx). "
        "Give the ids of the card's display function. %s."
        % (wanted_vd, "; ".join(describe_device(d) for d in matches), _plural(matches, "is", "are"),
           display_controllers(devices))
    )


def ids_ambiguous(wanted_vd, matches):
    return "%d devices have vendor:device %s (%s): give gpu_address to choose one." % (
        len(matches), wanted_vd, "; ".join(describe_device(d) for d in matches))


def no_nvidia_gpu(devices):
    return (
        "No NVIDIA (vendor 10de) display controller (PCI class 03xx) found among %d PCI devices: %s. "
        "Give gpu_address or gpu_vendor_device to choose another card." % (len(devices), display_controllers(devices))
    )


# ---- reasons (one sentence per observation) ----------------------------------------------------
def reason_iommu_off(func):
    return ("%s has no IOMMU group and no device has one: the IOMMU is off, so VFIO cannot pass "
            "anything through." % func["address"])


def reason_no_group(func):
    return ("%s has no IOMMU group although other devices have one, so VFIO cannot pass it "
            "(and therefore the card) through." % func["address"])


def reason_split_function(func):
    return ("function %s is in its own IOMMU group %s (checked too: it is passed along with the card)."
            % (func["address"], func["iommu_group"]))


def reason_slot_foreign(dev, gpu, usb_c):
    vendor = str(dev.get("vendor_id") or "")
    if vendor != str(gpu.get("vendor_id") or ""):
        why = "its vendor %s is not the GPU's (%s)" % (vendor or "(unknown)", gpu.get("vendor_id"))
    else:
        allowed = "display (03xx), audio (0403)" + (", USB (0c03) or serial bus (0c80)" if usb_c else "")
        why = "its class %s is not one a graphics card carries: %s" % (class4(dev.get("class_id")) or "?", allowed)
    return ("%s sits in the GPU's slot but is not a function of the card (%s), so it is neither passed "
            "through nor bound to vfio-pci." % (describe_device(dev), why))


def reason_unverified_bridges(bridges):
    return (
        "the PCI topology is unknown (no parent bridge data, e.g. from the Proxmox API), so it could "
        "not be verified that %s %s upstream of the GPU; accepted because a bridge cannot hide a device: "
        "an endpoint behind a bridge without ACS lands in this group and would be listed as an intruder."
        % (_addresses(bridges), _plural(bridges, "is", "are"))
    )


def reason_host_bridges(bridges, driver_known):
    text = "%s %s accepted: %s." % (
        ", ".join(describe_device(d) for d in bridges), _plural(bridges, "is", "are"), HOST_BRIDGE_RULE)
    if not driver_known:
        text += (" The Proxmox API does not report drivers, so it could not be verified that no host driver "
                 "holds %s; if one does, VFIO refuses to start the VM (it never hands the bridge over)."
                 % _plural(bridges, "it", "them"))
    return text


def reason_intruder(dev, bridge, bound_host_bridge):
    if bridge:
        why = "a bridge that is not upstream of the GPU"
    elif bound_host_bridge:
        why = "a host bridge that a host driver (%s) holds" % dev.get("driver")
    else:
        why = "not part of the card"
    return "IOMMU group %s also holds %s: %s." % (dev.get("iommu_group"), describe_device(dev), why)


def reason_acs_override(value, accepted):
    if accepted:
        return ("pcie_acs_override=%s is on the kernel command line: the groups are split by the ACS override "
                "patch, not isolated by the hardware; accepted by accept_acs_override." % value)
    return ("pcie_acs_override=%s is on the kernel command line: the IOMMU groups the kernel reports are "
            "split by the ACS override patch and are not real isolation." % value)


def reason_boot_vga(address, allowed):
    if allowed:
        return "%s is the host's boot display; allowed by allow_boot_vga." % address
    return "%s is the host's boot display (boot_vga=1): the firmware and the host console use it." % address


# ---- the verdict in one paragraph --------------------------------------------------------------
def _gpus_text(gpu):
    if not gpu:
        return ""
    if isinstance(gpu, list):
        return " (GPUs %s)" % "; ".join(describe_device(g) for g in gpu)
    return " (GPU %s)" % describe_device(gpu)


def iommu_off(state, gpu, selection_error):
    """gpu_isolation's message when the kernel created no IOMMU groups (``gpu``: a device, a list of
    devices with several cards, or None)."""
    cmdline = state.get("cmdline") or "(empty)"
    text = (
        "IOMMU is off: the kernel created no IOMMU groups (/sys/kernel/iommu_groups is empty), so no "
        "device can be passed through%s. %s Kernel command line now: %s"
        % (_gpus_text(gpu), ENABLE_IOMMU, cmdline)
    )
    if selection_error:
        text = text.rstrip(".") + ". The GPU was not found either: %s" % selection_error
    return text


def verdict_message(v, problems, iommu_seen):
    """One paragraph: what blocks passthrough and how to fix it, or what can be passed through."""
    gpu = v["gpu"]
    gpu_text = describe_device(gpu)
    sentences = []
    if "no_iommu_group" in problems and not iommu_seen:
        sentences.append("%s is in no IOMMU group, so it cannot be passed through: the IOMMU is off. %s"
                         % (gpu_text, ENABLE_IOMMU))
    elif "no_iommu_group" in problems:
        missing = [f for f in v["functions"] if f.get("iommu_group") is None]
        sentences.append(
            "%s cannot be passed through: %s %s in no IOMMU group although the IOMMU is on for other devices. "
            "Look for DMAR/AMD-Vi errors about %s in the kernel log (journalctl -k), update the firmware, "
            "or try another slot." % (gpu_text, _addresses(missing), _plural(missing, "is", "are"),
                                      _plural(missing, "it", "them"))
        )
    if "intruders" in problems:
        intruders = v["intruders"]
        sentences.append(
            "IOMMU group %s of %s is not isolated: it also holds %d device%s that %s not part of the card: %s. "
            "Passing the GPU through would hand %s to the VM as well, or VFIO refuses to start it. "
            "Fix: move the card to a CPU-attached slot (usually the top x16 slot) or one whose root port "
            "supports ACS, or look in the firmware setup for an option that splits IOMMU groups; then run "
            "this check again. Note: %s."
            % ("/".join(str(g) for g in v["groups"]) or v["group"], gpu_text, len(intruders),
               _plural(intruders, "", "s"), _plural(intruders, "is", "are"),
               "; ".join(describe_device(d) for d in intruders), _plural(intruders, "it", "them"),
               ACS_OVERRIDE_NOTE)
        )
        if v["slot_foreign"]:
            sentences.append(
                "%s %s in the GPU's slot but %s not the card's: a function belongs to the card only with the "
                "GPU's vendor and a class a graphics card carries (display, audio, and the USB/UCSI functions "
                "of NVIDIA Turing+ cards); an APU's slot also holds the platform's security processor, USB "
                "and audio controllers, which the host needs."
                % (_addresses(v["slot_foreign"]), _plural(v["slot_foreign"], "sits", "sit"),
                   _plural(v["slot_foreign"], "is", "are"))
            )
    if "acs_override" in problems:
        sentences.append(
            "The running kernel has pcie_acs_override=%s on its command line: the ACS override patch makes the "
            "kernel report split IOMMU groups that the hardware does not isolate, so this group cannot be "
            "trusted (a VM can reach devices in what looks like another group). Fix: remove "
            "pcie_acs_override from the kernel command line and move the card to a slot whose group is "
            "isolated; or, knowing the risk, accept it explicitly (accept_acs_override: true, role variable "
            "proxmox_vfio_accept_acs_override: true)." % v["acs_override"]
        )
    if "boot_vga" in problems:
        sentences.append(
            "%s is the host's boot display (boot_vga=1): the firmware initialised it and the host console "
            "uses it, so passing it through usually leaves a black screen or a VM that hangs at start. "
            "Fix: select the integrated graphics or another card as the primary display in the firmware "
            "setup (or move this card to another slot), or set allow_boot_vga=true if a headless host is "
            "what you want." % gpu["address"]
        )
    if v["host_bridges"] and sentences:
        sentences.append("Not counted against the group: %s (%s)." % (_addresses(v["host_bridges"]), HOST_BRIDGE_RULE))
    if sentences:
        return " ".join(sentences)
    return _success(v, gpu_text)


def _success(v, gpu_text):
    extra = []
    others = [f["address"] for f in v["functions"] if f is not v["gpu"]]
    if others:
        extra.append("its own functions %s" % ", ".join(others))
    if v["upstream_bridges"]:
        extra.append("%s upstream bridge%s %s" % (
            "its" if v["topology_known"] else "the (unverified)",
            _plural(v["upstream_bridges"], "", "s"), _addresses(v["upstream_bridges"])))
    if v["host_bridges"]:
        extra.append("the driverless host bridge%s %s (%s)" % (
            _plural(v["host_bridges"], "", "s"), _addresses(v["host_bridges"]), HOST_BRIDGE_RULE))
    with_text = " with only " + " and ".join(extra) if extra else " alone"
    group_text = str(v["group"])
    if len(v["groups"]) > 1:
        group_text += " (the card's functions span groups %s, none with a foreign device)" % ", ".join(
            str(g) for g in v["groups"])
    text = (
        "%s is in IOMMU group %s%s: it can be passed through. Map path %s (all functions); "
        "vfio-pci ids %s." % (gpu_text, group_text, with_text, v["mapping_path"], ",".join(v["vfio_ids"]))
    )
    if v["acs_override"]:
        text += (" Warning: pcie_acs_override=%s is on the kernel command line, so these groups are split by "
                 "the ACS override patch and are not real isolation (accepted by accept_acs_override)."
                 % v["acs_override"])
    if v["slot_foreign"]:
        text += " Not part of the card (left to the host): %s." % _addresses(v["slot_foreign"])
    if v.get("bind_by_override"):
        text += (
            " %s also %s one of these ids (not passed through): vfio-pci ids= would take %s too, so %s %s "
            "bound by address (driver_override) instead%s."
            % (_addresses(v["vfio_bystanders"]), _plural(v["vfio_bystanders"], "carries", "carry"),
               _plural(v["vfio_bystanders"], "it", "them"), ", ".join(v["bind_by_override"]),
               _plural(v["bind_by_override"], "is", "are"),
               "; ids= keeps %s" % ",".join(v["bind_by_ids"]) if v["bind_by_ids"] else "")
        )
    return text


# ---- several cards -----------------------------------------------------------------------------
def bad_gpu_selector(text, address_error):
    return (
        "%r is neither a PCI address (0000:01:00.0 or 01:00.0, see lspci -D) nor a vendor:device pair "
        "(10de:1d01, the [....:....] at the end of an lspci -nn line). As an address: %s"
        % (text, address_error)
    )


def empty_gpu_list():
    return ("the list of GPUs is empty: give at least one PCI address (lspci -D) or vendor:device pair "
            "(lspci -nn)")


def gpu_list_entry(number, text, error):
    return "GPU list entry %d (%s): %s" % (number, text, error)


def gpu_named_twice(number, text, earlier, earlier_text, gpu):
    return (
        "GPU list entries %d (%s) and %d (%s) both name the card %s: list each card once."
        % (earlier, earlier_text, number, text, describe_device(gpu))
    )


def cards_message(cards, refused, plan):
    """One paragraph for several cards: every refused card by address and name with its own verdict,
    or every card's verdict and how vfio-pci claims them."""
    if refused:
        passing = [c["gpu"]["address"] for c in cards if c not in refused]
        text = " ".join(
            "Card %s cannot be passed through (%s): %s" % (describe_device(c["gpu"]), c["status"], c["msg"])
            for c in refused)
        text += (
            " %d of %d cards %s refused; every card listed must pass on its own before anything is "
            "configured%s. Fix %s, or take %s out of the list."
            % (len(refused), len(cards), _plural(refused, "is", "are"),
               " (%s %s)" % (", ".join(passing), _plural(passing, "passes", "pass")) if passing else "",
               _plural(refused, "that card", "those cards"), _plural(refused, "it", "them"))
        )
        return text
    text = " ".join("Card %d: %s" % (number, c["msg"]) for number, c in enumerate(cards, 1))
    ids = sorted(plan["bind_by_ids"])
    text += " vfio-pci ids%s: %s." % (
        " (the union of the %d cards)" % len(cards) if len(cards) > 1 else "",
        ",".join(ids) or "none, every function is bound by address")
    if plan["bind_by_override"]:
        text += (
            " %s %s also carried by %s, which %s not passed through: vfio-pci ids= would take %s too, "
            "so %s %s bound by address (driver_override) instead."
            % (",".join(plan["shared_ids"]), _plural(plan["shared_ids"], "is", "are"),
               "; ".join(describe_device(d) for d in plan["bystanders"]),
               _plural(plan["bystanders"], "is", "are"), _plural(plan["bystanders"], "it", "them"),
               ", ".join(plan["bind_by_override"]), _plural(plan["bind_by_override"], "is", "are"))
        )
    return text
