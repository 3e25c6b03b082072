# SPDX-License-Identifier: GPL-3.0-or-later
"""Build sysfs/procfs trees shaped like the kernel's, from device dicts or from lspci listings.

Used by the unit tests (tests/unit/test_iommu_*.py) and, as a script, by the module integration
playbooks: ``python tests/unit/sysfs_tree.py OUTDIR`` writes one tree per fixture listing to
``OUTDIR/<fixture-stem>/`` plus ``OUTDIR/no-iommu/`` (the seed's card with the IOMMU off).

Layout written (relative symlinks, as in the kernel)::

    sys/devices/pciDDDD:BB/<bridge>/.../<device>/{vendor,device,subsystem_vendor,subsystem_device,
        class,boot_vga?,driver->,iommu_group->}
    sys/bus/pci/devices/<address> -> ../../../devices/pciDDDD:BB/.../<address>
    sys/bus/pci/drivers/<driver>/
    sys/kernel/iommu_groups/<N>/{type,devices/<address> -> ...}
    sys/class/iommu/<unit> (optional)
    proc/cmdline, proc/interrupts
"""
from __future__ import annotations

import os
import re
import sys

FIXTURE_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "fixtures", "iommu")

_LSPCI_RE = re.compile(
    r"^(?P<addr>(?:[0-9a-f]{4}:)?[0-9a-f]{2}:[0-9a-f]{2}\.[0-7]) (?P<classname>.+?) \[(?P<cls>[0-9a-f]{4})\]: "
    r"(?P<desc>.+) \[(?P<vendor>[0-9a-f]{4}):(?P<device>[0-9a-f]{4})\](?: \(rev (?P<rev>[0-9a-f]+)\))?$"
)
_PERLINE_RE = re.compile(r"^IOMMU group (?P<group>\d+) (?P<rest>.+)$")
_HEADER_RE = re.compile(r"^IOMMU Group (?P<group>\d+):\s*$", re.IGNORECASE)
_LOOP_RE = re.compile(r"iommu_groups/(?P<group>\d+)/devices")

INTEL_IR_INTERRUPTS = (
    "           CPU0       CPU1\n"
    "  0:         36          0  IR-IO-APIC    2-edge      timer\n"
    "120:          0          0  IR-PCI-MSI-0000:00:17.0    0-edge      ahci[0000:00:17.0]\n"
)
PLAIN_INTERRUPTS = (
    "           CPU0       CPU1\n"
    "  0:         36          0   IO-APIC    2-edge      timer\n"
    " 28:          0          0  PCI-MSIX-0000:00:01.0   0-edge      virtio0-config\n"
)


def parse_listing(text):
    """Parse an lspci listing in any of the fixture formats.

    Returns ``(header, cmdline, entries)``: header is {"SOURCE": str, "EXPECT": [str], "FORMAT": str},
    cmdline is the /proc/cmdline line when the listing shows one (a line starting BOOT_IMAGE=), and
    entries are dicts: group, address, class4, class_name, description, vendor_id, device_id.
    """
    header = {"SOURCE": "", "EXPECT": [], "FORMAT": ""}
    cmdline = None
    entries = []
    group = None
    lines = text.splitlines()
    body_start = 0
    for index, line in enumerate(lines):
        if line.strip() == "---":
            body_start = index + 1
            break
        key, _sep, value = line.partition(": ")
        if key == "EXPECT":
            header["EXPECT"].append(value)
        elif key in header:
            header[key] = value
    for raw in lines[body_start:]:
        line = raw.strip()
        if not line:
            continue
        if line.startswith("BOOT_IMAGE="):
            cmdline = line
            continue
        loop = _LOOP_RE.search(line)
        if loop:
            group = int(loop.group("group"))
            continue
        head = _HEADER_RE.match(line)
        if head:
            group = int(head.group("group"))
            continue
        perline = _PERLINE_RE.match(line)
        if perline:
            group = int(perline.group("group"))
            line = perline.group("rest")
        match = _LSPCI_RE.match(line)
        if not match:
            continue
        if group is None:
            raise ValueError("lspci line before any IOMMU group: %r" % raw)
        addr = match.group("addr")
        if addr.count(":") == 1:
            addr = "0000:" + addr
        entries.append({
            "group": group,
            "address": addr,
            "class4": match.group("cls"),
            "class_name": match.group("classname"),
            "description": match.group("desc"),
            "vendor_id": match.group("vendor"),
            "device_id": match.group("device"),
        })
    return header, cmdline, entries


def make_device(address, vendor_id, device_id, class_id, iommu_group=None, parent_bridges=(),
                driver=None, boot_vga=None, subsystem_vendor_id="", subsystem_device_id="", description=""):
    """A device dict in the collection's shape (description is not stored in sysfs)."""
    return {
        "address": address,
        "vendor_id": vendor_id,
        "device_id": device_id,
        "subsystem_vendor_id": subsystem_vendor_id,
        "subsystem_device_id": subsystem_device_id,
        "class_id": class_id,
        "driver": driver,
        "iommu_group": iommu_group,
        "boot_vga": boot_vga,
        "is_bridge": class_id[:4] in ("0604", "0609"),
        "parent_bridges": list(parent_bridges) if parent_bridges is not None else None,
        "description": description,
    }


def devices_from_listing(entries, topology=None, drivers=None, boot_vga=None, iommu=True):
    """Device dicts from parsed listing entries.

    topology: {bus "DDDD:BB": [bridge addresses from the root complex outward]}; buses not named sit
    directly on their own root bus. drivers: {address: driver}. boot_vga: address of the boot display
    (every other VGA-class device gets boot_vga False; non-VGA devices None). iommu=False drops groups.
    """
    topology = topology or {}
    drivers = drivers or {}
    devices = []
    for entry in entries:
        bus = entry["address"].rsplit(":", 1)[0]
        cls = entry["class4"]
        devices.append(make_device(
            entry["address"], entry["vendor_id"], entry["device_id"], cls + "00",
            iommu_group=entry["group"] if iommu else None,
            parent_bridges=topology.get(bus, []),
            driver=drivers.get(entry["address"]),
            boot_vga=(entry["address"] == boot_vga) if cls == "0300" else None,
            description=entry["description"],
        ))
    return devices


def _write(path, text):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w", encoding="utf-8") as handle:
        handle.write(text)


def _relink(target, link):
    os.makedirs(os.path.dirname(link), exist_ok=True)
    os.symlink(os.path.relpath(target, os.path.dirname(link)), link)


def build_tree(root, devices, cmdline="", interrupts=PLAIN_INTERRUPTS, group_type="DMA-FQ",
               iommu_units=(), intel_ecap=None):
    """Write a sysfs/procfs tree for ``devices`` under ``root``; returns root.

    Devices whose parent_bridges is None are placed directly on their root bus. Bridges named in
    parent_bridges but absent from ``devices`` get a directory only (a listing that hides them).
    iommu_units: names for sys/class/iommu (``dmar0`` gets an intel-iommu/ecap of ``intel_ecap``,
    ``ivhd0`` an amd-iommu dir).
    """
    sysdir = os.path.join(root, "sys")
    os.makedirs(os.path.join(sysdir, "bus", "pci", "devices"), exist_ok=True)
    os.makedirs(os.path.join(sysdir, "kernel", "iommu_groups"), exist_ok=True)
    for device in devices:
        addr = device["address"]
        chain = list(device.get("parent_bridges") or [])
        top = chain[0] if chain else addr
        domain, bus = top.split(":")[0], top.split(":")[1]
        devdir = os.path.join(sysdir, "devices", "pci%s:%s" % (domain, bus), *chain, addr)
        os.makedirs(devdir, exist_ok=True)
        for name, key in (("vendor", "vendor_id"), ("device", "device_id"),
                          ("subsystem_vendor", "subsystem_vendor_id"), ("subsystem_device", "subsystem_device_id")):
            if device.get(key):  # unknown ids: no file, as for a listing that does not show them
                _write(os.path.join(devdir, name), "0x%s\n" % device[key])
        _write(os.path.join(devdir, "class"), "0x%s\n" % device["class_id"])
        if device.get("boot_vga") is not None:
            _write(os.path.join(devdir, "boot_vga"), "1\n" if device["boot_vga"] else "0\n")
        if device.get("driver"):
            drvdir = os.path.join(sysdir, "bus", "pci", "drivers", device["driver"])
            os.makedirs(drvdir, exist_ok=True)
            _relink(drvdir, os.path.join(devdir, "driver"))
        if device.get("iommu_group") is not None:
            gdir = os.path.join(sysdir, "kernel", "iommu_groups", str(device["iommu_group"]))
            os.makedirs(os.path.join(gdir, "devices"), exist_ok=True)
            if group_type and not os.path.exists(os.path.join(gdir, "type")):
                _write(os.path.join(gdir, "type"), group_type + "\n")
            _relink(gdir, os.path.join(devdir, "iommu_group"))
            _relink(devdir, os.path.join(gdir, "devices", addr))
        _relink(devdir, os.path.join(sysdir, "bus", "pci", "devices", addr))
    for unit in iommu_units:
        udir = os.path.join(sysdir, "devices", "virtual", "iommu", unit)
        if unit.startswith("dmar"):
            _write(os.path.join(udir, "intel-iommu", "ecap"), "%s\n" % (intel_ecap or "f050da"))
        else:
            os.makedirs(os.path.join(udir, "amd-iommu"), exist_ok=True)
        _relink(udir, os.path.join(sysdir, "class", "iommu", unit))
    _write(os.path.join(root, "proc", "cmdline"), (cmdline or "") + "\n")
    if interrupts is not None:
        _write(os.path.join(root, "proc", "interrupts"), interrupts)
    return root


# Per-fixture facts the listings do not show, inferred and documented here:
# topology: which bridges a bus sits behind (lspci -nns does not print it; chosen from the
#   listed ports, the platform and the EXPECT notes; the verdicts do not depend on the exact choice
#   among sibling ports); boot_vga: the integrated GPU where one exists (both Intel hosts), none
#   otherwise; drivers: only where the source says so.
FIXTURES = {
    "01-nvidia-gt1030-with-rootport-perline": {
        "topology": {
            "0000:01": ["0000:00:01.0"],
            "0000:03": ["0000:00:1c.5"],
            "0000:04": ["0000:00:1c.6"],
            "0000:05": ["0000:00:1d.0"],
        },
        "boot_vga": "0000:00:02.0",
        "drivers": {},
        "iommu_units": ("dmar0", "dmar1"),
        "interrupts": INTEL_IR_INTERRUPTS,
    },
    "02-nvidia-gt720-shares-group-with-chipset-BAD": {
        # AMD 400-series chipset behind CPU root port 00:01.2 (not in the listing); its bridge 02:00.2
        # feeds ports 03:00.0/03:01.0/03:04.0 -> buses 04/05/06. The 2080 Ti sits behind CPU port 00:03.1.
        "topology": {
            "0000:02": ["0000:00:01.2"],
            "0000:03": ["0000:00:01.2", "0000:02:00.2"],
            "0000:04": ["0000:00:01.2", "0000:02:00.2", "0000:03:00.0"],
            "0000:05": ["0000:00:01.2", "0000:02:00.2", "0000:03:01.0"],
            "0000:06": ["0000:00:01.2", "0000:02:00.2", "0000:03:04.0"],
            "0000:07": ["0000:00:03.1"],
        },
        "boot_vga": None,
        "drivers": {},
        "iommu_units": ("ivhd0",),
        "interrupts": INTEL_IR_INTERRUPTS.replace("ahci[0000:00:17.0]", "xhci_hcd"),
    },
    "03-amd-rx560-clean-gpu-audio-group-tabbed": {
        # RX 6700 XT behind its own switch (01:00.0 upstream, 02:00.0 downstream) on root port 00:01.0;
        # RX 560 on root port 00:01.1.
        "topology": {
            "0000:01": ["0000:00:01.0"],
            "0000:02": ["0000:00:01.0", "0000:01:00.0"],
            "0000:03": ["0000:00:01.0", "0000:01:00.0", "0000:02:00.0"],
            "0000:04": ["0000:00:01.1"],
            "0000:05": ["0000:00:06.0"],
            "0000:0c": ["0000:00:1d.0", "0000:0b:00.0"],
            "0000:0d": ["0000:00:1d.0", "0000:0b:00.0", "0000:0c:00.0"],
        },
        "boot_vga": "0000:00:02.0",
        "drivers": {"0000:04:00.0": "vfio-pci", "0000:04:00.1": "vfio-pci"},
        "iommu_units": ("dmar0", "dmar1"),
        "interrupts": INTEL_IR_INTERRUPTS,
    },
    "04-seed002-quadro-m4000-group52": {
        # The seed shows only group 52; its root port is not shown, so the card sits on its own root bus.
        "topology": {},
        "boot_vga": None,
        "drivers": {"0000:03:00.0": "vfio-pci", "0000:03:00.1": "vfio-pci"},
        "iommu_units": ("dmar0",),
        "interrupts": INTEL_IR_INTERRUPTS,
    },
}


def fixture_files():
    return sorted(f for f in os.listdir(FIXTURE_DIR) if f.endswith(".txt"))


def load_fixture(stem, iommu=True):
    """(header, cmdline, devices, facts) for fixture ``stem`` (file name without .txt)."""
    with open(os.path.join(FIXTURE_DIR, stem + ".txt"), encoding="utf-8") as handle:
        header, cmdline, entries = parse_listing(handle.read())
    facts = FIXTURES[stem]
    devices = devices_from_listing(entries, facts["topology"], facts["drivers"], facts["boot_vga"], iommu=iommu)
    return header, cmdline, devices, facts


def build_fixture(stem, root, iommu=True):
    header, cmdline, devices, facts = load_fixture(stem, iommu=iommu)
    build_tree(root, devices, cmdline=cmdline or "BOOT_IMAGE=/boot/vmlinuz-6.8.12-4-pve root=/dev/mapper/pve-root ro quiet",
               interrupts=facts["interrupts"] if iommu else PLAIN_INTERRUPTS,
               iommu_units=facts["iommu_units"] if iommu else ())
    return devices


def main(argv):
    if len(argv) != 2:
        sys.stderr.write("usage: sysfs_tree.py OUTDIR  (writes one sysfs tree per fixture listing)\n")
        return 2
    out = argv[1]
    for name in fixture_files():
        stem = name[:-4]
        build_fixture(stem, os.path.join(out, stem))
        print("built %s" % os.path.join(out, stem))
    build_fixture("04-seed002-quadro-m4000-group52", os.path.join(out, "no-iommu"), iommu=False)
    print("built %s" % os.path.join(out, "no-iommu"))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
