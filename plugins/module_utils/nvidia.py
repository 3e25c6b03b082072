# -*- coding: utf-8 -*-
# SPDX-License-Identifier: GPL-3.0-or-later
# Copyright: (c) 2026, homelab.gpu_passthrough contributors
"""Pure NVIDIA GPU facts: PCI device id -> chip -> architecture -> driver branch,
open vs proprietary kernel modules, CUDA compute capability, memory where known, and which
cards carry USB-C functions. What CTranslate2 (faster-whisper) can do with a compute
capability is policy and lives in ``ctranslate2.py``; PCI addresses, ids and classes in ``pci.py``.

No AnsibleModule, no I/O: every function takes data and returns data, so the unit tests
can run the decisions on a table of real PCI ids.

Sources:
- device ids and chip codes: the PCI ID repository (pci.ids, https://pci-ids.ucw.cz/, the
  Debian ``pci.ids`` package); the unit tests cross-check every table row and every range
  against the installed pci.ids file;
- compute capability per chip: NVIDIA's CUDA GPUs list (https://developer.nvidia.com/cuda-gpus);
- driver branches: NVIDIA's release notes (580 is the last branch for Maxwell, Pascal and
  Volta; open kernel modules need Turing or newer and are the default from 560; Blackwell
  needs open modules and >= 570);
- USB-C functions: Turing cards with a VirtualLink/USB-C port expose a USB 3.1 host controller
  (class 0c03) and a USB Type-C UCSI controller (class 0c80) next to display and audio
  (pci.ids: TU102 10de:1ad6/1ad7, TU104 1ad8/1ad9, TU116 1aec/1aed).
"""
from __future__ import annotations

import re

from ansible_collections.homelab.gpu_passthrough.plugins.module_utils.pci import (
    NVIDIA_VENDOR_ID,
    PciError,
    normalize_address,
    normalize_vendor_device,
    parse_hex_id,
    subsystem_id,
    vendor_device,
)

# Architecture order (oldest first) and facts per architecture.
ARCHITECTURES = (
    "kepler",
    "maxwell",
    "pascal",
    "volta",
    "turing",
    "ampere",
    "ada",
    "hopper",
    "blackwell",
)

# The last driver branch that supports an architecture (None: still supported).
LAST_BRANCH = {
    "kepler": 470,
    "maxwell": 580,
    "pascal": 580,
    "volta": 580,
}
# The first branch that supports an architecture at all.
FIRST_BRANCH = {
    "blackwell": 570,
}
# Cards with USB-C functions (USB host + UCSI controller in the card's slot): Turing and newer.
USB_C_MIN_ARCH = "turing"
# Open kernel modules: Turing and newer only; mandatory for Blackwell.
OPEN_MODULES_MIN_ARCH = "turing"
OPEN_MODULES_REQUIRED = frozenset({"blackwell"})
# The default branch for architectures that are still current (overridable by callers).
DEFAULT_CURRENT_BRANCH = 580

# Chip code (as pci.ids writes it, without GL/M/BM suffixes) -> (architecture, compute capability).
CHIPS = {
    "GK104": ("kepler", "3.0"),
    "GK106": ("kepler", "3.0"),
    "GK107": ("kepler", "3.0"),
    "GK110": ("kepler", "3.5"),
    "GK180": ("kepler", "3.5"),
    "GK208": ("kepler", "3.5"),
    "GK210": ("kepler", "3.7"),
    "GM107": ("maxwell", "5.0"),
    "GM108": ("maxwell", "5.0"),
    "GM200": ("maxwell", "5.2"),
    "GM204": ("maxwell", "5.2"),
    "GM206": ("maxwell", "5.2"),
    "GP100": ("pascal", "6.0"),
    "GP102": ("pascal", "6.1"),
    "GP104": ("pascal", "6.1"),
    "GP106": ("pascal", "6.1"),
    "GP107": ("pascal", "6.1"),
    "GP108": ("pascal", "6.1"),
    "GV100": ("volta", "7.0"),
    "TU102": ("turing", "7.5"),
    "TU104": ("turing", "7.5"),
    "TU106": ("turing", "7.5"),
    "TU116": ("turing", "7.5"),
    "TU117": ("turing", "7.5"),
    "GA100": ("ampere", "8.0"),
    "GA102": ("ampere", "8.6"),
    "GA103": ("ampere", "8.6"),
    "GA104": ("ampere", "8.6"),
    "GA106": ("ampere", "8.6"),
    "GA107": ("ampere", "8.6"),
    "AD102": ("ada", "8.9"),
    "AD103": ("ada", "8.9"),
    "AD104": ("ada", "8.9"),
    "AD106": ("ada", "8.9"),
    "AD107": ("ada", "8.9"),
    "GH100": ("hopper", "9.0"),
    "GB100": ("blackwell", "10.0"),
    "GB102": ("blackwell", "10.0"),
    "GB110": ("blackwell", "10.3"),
    "GB202": ("blackwell", "12.0"),
    "GB203": ("blackwell", "12.0"),
    "GB205": ("blackwell", "12.0"),
    "GB206": ("blackwell", "12.0"),
    "GB207": ("blackwell", "12.0"),
}

# Known cards: device id -> (pci.ids name, chip, memory in MiB of the smallest variant or None).
DEVICES = {
    # Kepler (driver 470 legacy only)
    "1004": ("GeForce GTX 780", "GK110", 3072),
    "102d": ("Tesla K80", "GK210", 12288),
    "128b": ("GeForce GT 710", "GK208", 1024),
    # Maxwell
    "1380": ("GeForce GTX 750 Ti", "GM107", 2048),
    "13c0": ("GeForce GTX 980", "GM204", 4096),
    "13c2": ("GeForce GTX 970", "GM204", 4096),
    "13f0": ("Quadro M5000", "GM204", 8192),
    "13f1": ("Quadro M4000", "GM204", 8192),
    "13f2": ("Tesla M60", "GM204", 8192),
    "1401": ("GeForce GTX 960", "GM206", 2048),
    "1430": ("Quadro M2000", "GM206", 4096),
    "1431": ("Tesla M4", "GM206", 4096),
    "17c2": ("GeForce GTX TITAN X", "GM200", 12288),
    "17c8": ("GeForce GTX 980 Ti", "GM200", 6144),
    "17f0": ("Quadro M6000", "GM200", 12288),
    "17fd": ("Tesla M40", "GM200", 12288),
    # Pascal
    "15f7": ("Tesla P100 PCIe 12GB", "GP100", 12288),
    "15f8": ("Tesla P100 PCIe 16GB", "GP100", 16384),
    "1b06": ("GeForce GTX 1080 Ti", "GP102", 11264),
    "1b38": ("Tesla P40", "GP102", 24576),
    "1b80": ("GeForce GTX 1080", "GP104", 8192),
    "1b81": ("GeForce GTX 1070", "GP104", 8192),
    "1bb1": ("Quadro P4000", "GP104", 8192),
    "1bb3": ("Tesla P4", "GP104", 8192),
    "1c03": ("GeForce GTX 1060 6GB", "GP106", 6144),
    "1c30": ("Quadro P2000", "GP106", 5120),
    "1c81": ("GeForce GTX 1050", "GP107", 2048),
    "1c82": ("GeForce GTX 1050 Ti", "GP107", 4096),
    "1d01": ("GeForce GT 1030", "GP108", 2048),
    # Volta
    "1d81": ("TITAN V", "GV100", 12288),
    "1db1": ("Tesla V100 SXM2 16GB", "GV100", 16384),
    "1db4": ("Tesla V100 PCIe 16GB", "GV100", 16384),
    "1db6": ("Tesla V100 PCIe 32GB", "GV100", 32768),
    # Turing
    "1e04": ("GeForce RTX 2080 Ti", "TU102", 11264),
    "1e07": ("GeForce RTX 2080 Ti Rev. A", "TU102", 11264),
    "1e30": ("Quadro RTX 6000/8000", "TU102", 24576),
    "1e82": ("GeForce RTX 2080", "TU104", 8192),
    "1eb1": ("Quadro RTX 4000", "TU104", 8192),
    "1eb8": ("Tesla T4", "TU104", 16384),
    "1f02": ("GeForce RTX 2070", "TU106", 8192),
    "1f82": ("GeForce GTX 1650", "TU117", 4096),
    "2182": ("GeForce GTX 1660 Ti", "TU116", 6144),
    "2184": ("GeForce GTX 1660", "TU116", 6144),
    # Ampere
    "20b0": ("A100 SXM4 40GB", "GA100", 40960),
    "20b2": ("A100 SXM4 80GB", "GA100", 81920),
    "20b5": ("A100 PCIe 80GB", "GA100", 81920),
    "20b7": ("A30 PCIe", "GA100", 24576),
    "20f1": ("A100 PCIe 40GB", "GA100", 40960),
    "2204": ("GeForce RTX 3090", "GA102", 24576),
    "2206": ("GeForce RTX 3080", "GA102", 10240),
    "2230": ("RTX A6000", "GA102", 49152),
    "2235": ("A40", "GA102", 49152),
    "2236": ("A10", "GA102", 24576),
    "2484": ("GeForce RTX 3070", "GA104", 8192),
    "24b0": ("RTX A4000", "GA104", 16384),
    "2503": ("GeForce RTX 3060", "GA106", 12288),
    "25b6": ("A2 / A16", "GA107", 16384),
    # Ada Lovelace
    "2684": ("GeForce RTX 4090", "AD102", 24576),
    "26b1": ("RTX 6000 Ada Generation", "AD102", 49152),
    "26b5": ("L40", "AD102", 49152),
    "26b9": ("L40S", "AD102", 49152),
    "2704": ("GeForce RTX 4080", "AD103", 16384),
    "2786": ("GeForce RTX 4070", "AD104", 12288),
    "27b8": ("L4", "AD104", 24576),
    "2803": ("GeForce RTX 4060 Ti", "AD106", 8192),
    "2882": ("GeForce RTX 4060", "AD107", 8192),
    # Hopper
    "2321": ("H100L 94GB", "GH100", None),
    "2330": ("H100 SXM5 80GB", "GH100", 81920),
    "2331": ("H100 PCIe", "GH100", 81920),
    "2335": ("H200 SXM 141GB", "GH100", None),
    # Blackwell
    "2901": ("B200", "GB100", None),
    "2b85": ("GeForce RTX 5090", "GB202", 32768),
    "2bb1": ("RTX PRO 6000 Blackwell Workstation Edition", "GB202", 98304),
    "2c02": ("GeForce RTX 5080", "GB203", 16384),
}

# Device id ranges (inclusive) -> chip family, for display functions not in DEVICES.
# Derived from pci.ids: NVIDIA allocates device ids in blocks per chip generation. Audio, USB and
# other non-display functions share some blocks, so callers classify display functions only.
# (start, end, architecture, compute capability)
RANGES = (
    (0x0FC0, 0x0FFF, "kepler", "3.0"),
    (0x1000, 0x103F, "kepler", "3.5"),
    (0x1180, 0x11FF, "kepler", "3.0"),
    (0x1280, 0x12BF, "kepler", "3.5"),
    (0x1340, 0x13BF, "maxwell", "5.0"),
    (0x13C0, 0x143F, "maxwell", "5.2"),
    (0x15F0, 0x15FF, "pascal", "6.0"),
    (0x1610, 0x167F, "maxwell", "5.2"),
    (0x1720, 0x172F, "pascal", "6.0"),
    (0x1740, 0x17BF, "maxwell", "5.0"),
    (0x17C0, 0x17FF, "maxwell", "5.2"),
    (0x1B00, 0x1D7F, "pascal", "6.1"),
    (0x1D80, 0x1DFF, "volta", "7.0"),
    (0x1E00, 0x1FFF, "turing", "7.5"),
    (0x2080, 0x20FF, "ampere", "8.0"),
    (0x2180, 0x21FF, "turing", "7.5"),
    (0x2200, 0x223F, "ampere", "8.6"),
    (0x2300, 0x23FF, "hopper", "9.0"),
    (0x2400, 0x25FF, "ampere", "8.6"),
    (0x2680, 0x28FF, "ada", "8.9"),
    (0x2900, 0x29FF, "blackwell", "10.0"),
    (0x2B80, 0x2DFF, "blackwell", "12.0"),
    (0x2F00, 0x2F7F, "blackwell", "12.0"),
    (0x3180, 0x31FF, "blackwell", "10.3"),
)


class NvidiaError(ValueError):
    """Bad input or an impossible request; the message says what and how to fix it."""


def normalize_id(value):
    """'0x13F1', '13f1', '10de:13f1' -> '13f1'. Raises NvidiaError on anything else."""
    text = str(value).strip()
    try:
        if ":" in text:
            vendor, _sep, text = normalize_vendor_device(text).partition(":")
            if vendor != NVIDIA_VENDOR_ID:
                raise NvidiaError("PCI id %r is not an NVIDIA id (vendor must be 10de)" % (value,))
        return parse_hex_id(text, 4)
    except PciError:
        raise NvidiaError(
            "PCI device id %r is not 4 hex digits (expected e.g. '13f1' or '10de:13f1')" % (value,)) from None


def parse_cc(value):
    """'5.2' -> (5, 2). Raises NvidiaError on anything else."""
    match = re.fullmatch(r"\s*(\d+)\.(\d+)\s*", str(value))
    if not match:
        raise NvidiaError(
            "compute capability %r is not MAJOR.MINOR (e.g. '5.2', as nvidia-smi "
            "--query-gpu=compute_cap prints it)" % (value,))
    return int(match.group(1)), int(match.group(2))


def arch_index(arch):
    if arch not in ARCHITECTURES:
        raise NvidiaError("unknown NVIDIA architecture %r; known: %s" % (arch, ", ".join(ARCHITECTURES)))
    return ARCHITECTURES.index(arch)


def classify(device_id):
    """Facts about an NVIDIA GPU from its PCI device id.

    Returns a dict: device_id, name, chip, architecture, compute_capability ('5.2' or None),
    memory_mib (None when unknown), source ('table', 'range' or 'unknown').
    """
    did = normalize_id(device_id)
    if did in DEVICES:
        name, chip, memory = DEVICES[did]
        arch, cc = CHIPS[chip]
        return {
            "device_id": did, "name": name, "chip": chip, "architecture": arch,
            "compute_capability": cc, "memory_mib": memory, "source": "table",
        }
    value = int(did, 16)
    for start, end, arch, cc in RANGES:
        if start <= value <= end:
            return {
                "device_id": did, "name": None, "chip": None, "architecture": arch,
                "compute_capability": cc, "memory_mib": None, "source": "range",
            }
    return {
        "device_id": did, "name": None, "chip": None, "architecture": None,
        "compute_capability": None, "memory_mib": None, "source": "unknown",
    }


def _branch_int(branch, what="driver branch"):
    text = str(branch).strip()
    if not re.fullmatch(r"\d{3}", text):
        raise NvidiaError("%s %r is not a 3-digit NVIDIA branch number (e.g. 580)" % (what, branch))
    return int(text)


def driver_decision(arch, current_branch=DEFAULT_CURRENT_BRANCH, branch=None, open_modules=None):
    """Choose the driver branch and kernel module flavour for an architecture.

    arch: one of ARCHITECTURES. current_branch: the branch used for architectures that are
    still supported. branch / open_modules: user overrides (None: decide).
    Returns dict(branch:int, open_modules:bool, supported:bool, reason:str).
    Raises NvidiaError when an override cannot work on this architecture.
    """
    index = arch_index(arch)
    current = _branch_int(current_branch, "current branch")
    last = LAST_BRANCH.get(arch)
    first = FIRST_BRANCH.get(arch)
    open_ok = index >= arch_index(OPEN_MODULES_MIN_ARCH)
    open_required = arch in OPEN_MODULES_REQUIRED

    if last is not None:
        auto_branch = min(current, last)
        reason = "%s: %d is the last driver branch for this architecture" % (arch, last)
    else:
        auto_branch = current
        reason = "%s: current branch %d" % (arch, current)
    chosen = auto_branch if branch is None else _branch_int(branch)
    if last is not None and chosen > last:
        raise NvidiaError(
            "driver branch %d does not support %s GPUs (the last branch for them is %d): "
            "set the branch to %d or leave it unset" % (chosen, arch, last, last))
    if first is not None and chosen < first:
        raise NvidiaError(
            "driver branch %d does not support %s GPUs (they need >= %d): set a newer branch"
            % (chosen, arch, first))

    if open_modules is None:
        use_open = open_ok
    else:
        use_open = bool(open_modules)
    if use_open and not open_ok:
        raise NvidiaError(
            "open kernel modules need a Turing or newer GPU; this one is %s: "
            "use the proprietary modules (open_modules: false)" % arch)
    if open_required and not use_open:
        raise NvidiaError(
            "%s GPUs only work with the open kernel modules: set open_modules to true" % arch)
    if use_open:
        reason += "; open kernel modules (Turing+, default since 560)"
    else:
        reason += "; proprietary kernel modules" + (
            "" if open_ok else " (open modules need Turing or newer)")
    supported = arch != "kepler"
    if not supported:
        reason += "; Kepler is legacy (470) and is not packaged for current Debian/Ubuntu/CUDA"
    return {"branch": chosen, "open_modules": use_open, "supported": supported, "reason": reason}


def gpu_summary(device, current_branch=DEFAULT_CURRENT_BRANCH, smi=None):
    """Merge a PCI device dict (from pci_sysfs.read_pci_devices) with the table and, when given,
    nvidia-smi's view of the same card (dict with compute_cap, memory_total_mib, name).

    Returns the dict nvidia_gpu_info reports for one GPU (without the CTranslate2 fields,
    see ``ctranslate2.cuda_fields``).
    """
    info = classify(device["device_id"])
    result = {
        "address": device.get("address"),
        "vendor_id": NVIDIA_VENDOR_ID,
        "device_id": info["device_id"],
        "pci_id": vendor_device({"vendor_id": NVIDIA_VENDOR_ID, "device_id": info["device_id"]}),
        "subsystem_id": subsystem_id(device),
        "driver": device.get("driver"),
        "name": info["name"] or device.get("description"),
        "chip": info["chip"],
        "architecture": info["architecture"],
        "compute_capability": info["compute_capability"],
        "compute_capability_source": info["source"] if info["compute_capability"] else None,
        "memory_mib": info["memory_mib"],
        "known_by": info["source"],
    }
    if smi:
        if smi.get("compute_cap"):
            parse_cc(smi["compute_cap"])
            result["compute_capability"] = smi["compute_cap"]
            result["compute_capability_source"] = "nvidia-smi"
        if smi.get("memory_total_mib"):
            result["memory_mib"] = int(smi["memory_total_mib"])
        if smi.get("name"):
            result["name"] = smi["name"]
    if result["architecture"]:
        try:
            decision = driver_decision(result["architecture"], current_branch)
        except NvidiaError as exc:  # pragma: no cover - defaults always decide
            decision = {"branch": None, "open_modules": None, "supported": False, "reason": str(exc)}
    else:
        decision = {"branch": None, "open_modules": None, "supported": False,
                    "reason": "device id %s is not in the table: set the branch and module "
                              "flavour explicitly" % info["device_id"]}
    result["driver_branch"] = decision["branch"]
    result["open_modules"] = decision["open_modules"]
    result["driver_supported"] = decision["supported"]
    result["driver_reason"] = decision["reason"]
    return result


def has_usb_c_functions(device):
    """Whether the card whose display function is ``device`` (a device dict) is an NVIDIA card of
    an architecture that carries USB-C functions (Turing and newer). False for unknown ids."""
    if str(device.get("vendor_id") or "").lower() != NVIDIA_VENDOR_ID:
        return False
    try:
        arch = classify(device.get("device_id"))["architecture"]
    except NvidiaError:
        return False
    return arch is not None and arch_index(arch) >= arch_index(USB_C_MIN_ARCH)


def parse_smi_csv(text):
    """Parse `nvidia-smi --query-gpu=pci.bus_id,name,compute_cap,memory.total
    --format=csv,noheader,nounits` into {normalized pci address: dict}."""
    result = {}
    for line in text.splitlines():
        if not line.strip():
            continue
        parts = [p.strip() for p in line.split(",")]
        if len(parts) != 4:
            raise NvidiaError("unexpected nvidia-smi line %r (expected 4 comma-separated fields)" % line)
        bus_id, name, cap, mem = parts
        try:
            address = normalize_address(bus_id)
        except PciError as exc:
            raise NvidiaError("unexpected nvidia-smi line %r: %s" % (line, exc)) from None
        result[address] = {
            "name": name,
            "compute_cap": None if cap in ("", "[N/A]") else cap,
            "memory_total_mib": int(mem) if mem.isdigit() else None,
        }
    return result
