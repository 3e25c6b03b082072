# SPDX-License-Identifier: GPL-3.0-or-later
"""Build sysfs/procfs trees shaped like the kernel's, from device dicts or from lspci listings.

Used by the unit tests (tests/unit/plugins/**) and, as a script, by the module integration
playbooks: ``python tests/unit/sysfs_tree.py OUTDIR`` writes one tree per listing of
shared/fixtures/iommu (plus the seed's) to ``OUTDIR/<fixture-stem>/``, ``OUTDIR/no-iommu/`` (the seed's
card with the IOMMU off), and one per listing of shared/fixtures/iommu-corpus to
``OUTDIR/corpus/<stem>/`` with ``OUTDIR/corpus/cases.json`` (what each header expects). The listings
are read from ../shared/fixtures when present, else from the copies in tests/unit/fixtures.

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

import json
import os
import re
import sys

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
if os.path.join(REPO, ".collections") not in sys.path:  # run as a script by mk/modules.mk
    sys.path.insert(0, os.path.join(REPO, ".collections"))

from ansible_collections.homelab.gpu_passthrough.plugins.module_utils import pci  # noqa: E402  pylint: disable=wrong-import-position

FIXTURE_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "fixtures", "iommu")
CORPUS_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "fixtures", "iommu-corpus")
# The listings as the project keeps them (tests/unit/fixtures/* are copies, checked to be equal).
SHARED_DIR = os.path.join(os.path.dirname(REPO), "shared", "fixtures", "iommu")
SHARED_CORPUS_DIR = os.path.join(os.path.dirname(REPO), "shared", "fixtures", "iommu-corpus")

_ADDR = r"(?:[0-9a-fA-F]{4,8}:)?[0-9a-fA-F]{2}:[0-9a-fA-F]{2}\.[0-7]"
_ADDR_RE = re.compile(r"(?<![0-9a-fA-F:])%s(?![0-9a-fA-F])" % _ADDR)
# lspci -nns: "01:00.0 VGA compatible controller [0300]: NVIDIA ... [10de:1d01] (rev a1)", optionally
# with the domain and a trailing "(driver: nvidia)" (one-line "IOMMU Group N: ..." listings).
_LSPCI_RE = re.compile(
    r"^(?P<addr>%s) (?P<classname>.+?) \[(?P<cls>[0-9a-f]{4})\]: "
    r"(?P<desc>.+) \[(?P<vendor>[0-9a-f]{4}):(?P<device>[0-9a-f]{4})\](?: \(rev (?P<rev>[0-9a-f]+)\))?"
    r"(?: \(driver: (?P<driver>[^)]+)\))?$" % _ADDR
)
# r15ch13's gist: "[8086:4c53] [R] 00:00.0  Host bridge     Device 4c53" (no class codes).
_IDS_FIRST_RE = re.compile(
    r"^\[(?P<vendor>[0-9a-f]{4}):(?P<device>[0-9a-f]{4})\]\s+(?:\[R\]\s+)?(?P<addr>%s)\s+"
    r"(?P<classname>\S.*?)\s{2,}(?P<desc>\S.*)$" % _ADDR
)
# Group headers: "IOMMU Group 2:", bare "IOMMU group 2", glob-unexpanded "IOMMU Group *", with the
# device on the same line or not; r15ch13's "Group 0:\t<device>".
_GROUP_RE = re.compile(r"^(?:IOMMU )?Group (?P<group>\d+|\*):?(?:\s+(?P<rest>.*))?$", re.IGNORECASE)
_LOOP_RE = re.compile(r"iommu_groups/(?P<group>\d+)/devices")
_DRIVER_RE = re.compile(r"^Kernel driver in use: (?P<driver>\S+)$")
_ACS_RE = re.compile(r"pcie_acs_override=[^\s\"',;)]+(?:,[^\s\"',;)]+)*")
DEFAULT_CMDLINE = "BOOT_IMAGE=/boot/vmlinuz-6.8.12-4-pve root=/dev/mapper/pve-root ro quiet"

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


def _full_address(addr):
    addr = addr.lower()
    return addr if addr.count(":") == 2 else "0000:" + addr


def _parse_header(lines):
    """Header of a listing: ``{key: [values]}`` (lower-case keys) and the index of its first body line.

    Two styles: ``KEY: value`` lines ended by ``---`` (shared/fixtures/iommu) or ``# key: value``
    lines at the top (shared/fixtures/iommu-corpus).
    """
    header = {}
    if "---" in (line.strip() for line in lines):
        end = [line.strip() for line in lines].index("---")
        for line in lines[:end]:
            key, sep, value = line.partition(": ")
            if sep:
                header.setdefault(key.strip().lower(), []).append(value.strip())
        return header, end + 1
    index = 0
    while index < len(lines) and lines[index].startswith("#"):
        key, sep, value = lines[index].lstrip("#").partition(": ")
        if sep:
            header.setdefault(key.strip().lower(), []).append(value.strip())
        index += 1
    return header, index


def _pvesh_row(cells, columns):
    row = dict(zip(columns, cells))
    entry = {
        "group": int(row["iommugroup"]) if row.get("iommugroup", "").lstrip("-").isdigit() else None,
        "address": _full_address(row["id"]),
        "class4": row["class"].lower().replace("0x", "")[:4],
        "class_id": row["class"].lower().replace("0x", ""),
        "class_name": "",
        "description": row.get("device_name", ""),
        "vendor_id": row["vendor"].lower().replace("0x", ""),
        "device_id": row["device"].lower().replace("0x", ""),
        "driver": None,
        "pvesh": dict(row),
    }
    if entry["group"] is not None and entry["group"] < 0:
        entry["group"] = None
    return entry


def parse_listing(text):
    """Parse a real IOMMU listing in any of the formats people post.

    Formats: ``IOMMU Group N:`` headers with indented ``lspci -nns`` lines (tabs, spaces); bare
    ``IOMMU group N`` headers; one line per device ``IOMMU group N <lspci -nns line>`` in any order;
    one-line ``IOMMU Group N: <domain:address> <lspci -nn text> (driver: X)``; the glob-unexpanded
    ``IOMMU Group *`` of a host without groups (devices get no group); ``lspci -nnk`` blocks
    (``Kernel driver in use: X`` sets the driver of the device above); r15ch13's
    ``Group N:\t[vvvv:dddd] [R] BB:DD.F  Class  Name`` (class from its name, ``USB:`` lines skipped);
    ``pvesh get /nodes/N/hardware/pci`` tables; the seed's ``for dev in .../iommu_groups/N/devices``.

    Returns ``(header, cmdline, entries)``: header ``{key: [values]}`` plus ``"unparsed"``: lines that
    start with a PCI address but match no format (a post cut off mid-line); cmdline the
    ``BOOT_IMAGE=`` line shown, or None; entries dicts with group (None: no IOMMU group), address,
    class4, class_name, description, vendor_id, device_id, driver. Raises ValueError for a device
    line before any group header.
    """
    lines = text.splitlines()
    header, body_start = _parse_header(lines)
    header["unparsed"] = []
    cmdline = None
    entries = []
    group = None
    grouped = False
    columns = None
    for raw in lines[body_start:]:
        line = raw.strip().lstrip("`").strip()
        if not line or line == "...":
            continue
        if line.startswith("BOOT_IMAGE="):
            cmdline = line
            continue
        if line[0] in "\u250c\u251c\u255e\u2514":  # table borders of pvesh
            continue
        if line.startswith("\u2502"):
            cells = [c.strip() for c in line.strip("\u2502").split("\u2502")]
            if "id" in cells and "class" in cells:
                columns = cells
            elif columns:
                entries.append(_pvesh_row(cells, columns))
            continue
        loop = _LOOP_RE.search(line)
        if loop:
            group, grouped = int(loop.group("group")), True
            continue
        driver = _DRIVER_RE.match(line)
        if driver:
            if entries:
                entries[-1]["driver"] = driver.group("driver")
            continue
        head = _GROUP_RE.match(line)
        if head:
            group = None if head.group("group") == "*" else int(head.group("group"))
            grouped = True
            line = (head.group("rest") or "").strip()
            if not line:
                continue
        entry = _device_line(line)
        if entry is None:
            if _ADDR_RE.match(line) or line.startswith("["):
                header["unparsed"].append(raw)
            continue
        if not grouped:
            raise ValueError("device line before any IOMMU group header: %r" % raw)
        entry["group"] = group
        entries.append(entry)
    return header, cmdline, entries


def _device_line(line):
    match = _LSPCI_RE.match(line)
    if match:
        return {
            "address": _full_address(match.group("addr")),
            "class4": match.group("cls"),
            "class_name": match.group("classname"),
            "description": match.group("desc"),
            "vendor_id": match.group("vendor"),
            "device_id": match.group("device"),
            "driver": match.group("driver"),
        }
    match = _IDS_FIRST_RE.match(line)
    if match:
        code = pci.class_code(match.group("classname"))
        if code is None:
            raise ValueError("unknown PCI class name %r in %r: add it to pci.py's class names" % (
                match.group("classname"), line))
        return {
            "address": _full_address(match.group("addr")),
            "class4": code,
            "class_name": match.group("classname"),
            "description": match.group("desc"),
            "vendor_id": match.group("vendor"),
            "device_id": match.group("device"),
            "driver": None,
        }
    return None


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
    directly on their own root bus. drivers: {address: driver} (over the listing's own driver). boot_vga: address of the boot display
    (every other VGA-class device gets boot_vga False; non-VGA devices None). iommu=False drops groups.
    """
    topology = topology or {}
    drivers = drivers or {}
    devices = []
    for entry in entries:
        bus = entry["address"].rsplit(":", 1)[0]
        cls = entry["class4"]
        devices.append(make_device(
            entry["address"], entry["vendor_id"], entry["device_id"], entry.get("class_id") or cls + "00",
            iommu_group=entry["group"] if iommu else None,
            parent_bridges=topology.get(bus, []),
            driver=drivers.get(entry["address"], entry.get("driver")),
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
#   listed ports, the platform and the EXPECT/caveat notes; the verdicts do not depend on the exact
#   choice among sibling ports); boot_vga: the integrated GPU where one exists (both Intel hosts),
#   none otherwise; drivers: only where the source says so.
_GT1030_TOPOLOGY = {
    "0000:01": ["0000:00:01.0"],
    "0000:03": ["0000:00:1c.5"],
    "0000:04": ["0000:00:1c.6"],
    "0000:05": ["0000:00:1d.0"],
}
# AMD 400-series chipset behind CPU root port 00:01.2 (not in the listing); its bridge 02:00.2
# feeds ports 03:00.0/03:01.0/03:04.0 -> buses 04/05/06. The 2080 Ti sits behind CPU port 00:03.1.
_B450_CHIPSET_TOPOLOGY = {
    "0000:02": ["0000:00:01.2"],
    "0000:03": ["0000:00:01.2", "0000:02:00.2"],
    "0000:04": ["0000:00:01.2", "0000:02:00.2", "0000:03:00.0"],
    "0000:05": ["0000:00:01.2", "0000:02:00.2", "0000:03:01.0"],
    "0000:06": ["0000:00:01.2", "0000:02:00.2", "0000:03:04.0"],
    "0000:07": ["0000:00:03.1"],
}
_CPU_X16_PORT = {"0000:01": ["0000:00:01.0"]}  # the CPU's x16 root port 00:01.0 (caveat "group 1 = ...")
FIXTURES = {
    "01-nvidia-gt1030-with-rootport-perline": {
        "topology": _GT1030_TOPOLOGY,
        "boot_vga": "0000:00:02.0",
        "drivers": {},
        "iommu_units": ("dmar0", "dmar1"),
        "interrupts": INTEL_IR_INTERRUPTS,
    },
    "02-nvidia-gt720-shares-group-with-chipset-BAD": {
        "topology": _B450_CHIPSET_TOPOLOGY,
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
# The corpus (shared/fixtures/iommu-corpus): only the topology the GPU's group needs, from the
# caveats; everything else from the listing (drivers, groups) or the defaults of corpus_facts().
CORPUS_TOPOLOGY = {
    # caveat: 00:08.1 (internal GPP bridge to bus 05) is upstream of the iGPU; 00:08.2 is a sibling
    # internal bridge, presumably to bus 06 (the SATA)
    "06-renoir-apu-before-acs-override": {"0000:05": ["0000:00:08.1"], "0000:06": ["0000:00:08.2"]},
    "09-b450-chipset-gt720-rtx2080ti": _B450_CHIPSET_TOPOLOGY,  # the listing of iommu/02
    "14-z370m-itx-gt1030-unsorted": _GT1030_TOPOLOGY,  # the listing of iommu/01
    "18-comet-lake-500series-rtx3070ti": _CPU_X16_PORT,
    "19-skylake-hd530-display-class-gtx1660-tu116": _CPU_X16_PORT,
    "21-haswell-laptop-gtx765m-3d-controller": _CPU_X16_PORT,
    "23-comet-lake-b460-gtx1660super-tu116": _CPU_X16_PORT,
}


def _listing_files(shared, local):
    """``{stem: path}``: the shared copy of each listing when ../shared exists, the local copy else;
    local-only listings (the seed's) too."""
    files = {}
    for directory in (local, shared):
        if os.path.isdir(directory):
            for name in os.listdir(directory):
                if name.endswith(".txt"):
                    files[name[:-4]] = os.path.join(directory, name)
    return files


def fixture_files():
    """File names of the iommu listings (shared/fixtures/iommu plus the seed's), sorted."""
    return sorted(stem + ".txt" for stem in _listing_files(SHARED_DIR, FIXTURE_DIR))


def corpus_stems():
    return sorted(_listing_files(SHARED_CORPUS_DIR, CORPUS_DIR))


def read_listing(stem):
    files = _listing_files(SHARED_DIR, FIXTURE_DIR)
    files.update(_listing_files(SHARED_CORPUS_DIR, CORPUS_DIR))
    with open(files[stem], encoding="utf-8") as handle:
        return parse_listing(handle.read())


def load_fixture(stem, iommu=True):
    """(header, cmdline, devices, facts) for fixture ``stem`` (file name without .txt)."""
    header, cmdline, entries = read_listing(stem)
    facts = FIXTURES[stem]
    devices = devices_from_listing(entries, facts["topology"], facts["drivers"], facts["boot_vga"], iommu=iommu)
    return header, cmdline, devices, facts


def build_fixture(stem, root, iommu=True):
    _header, cmdline, devices, facts = load_fixture(stem, iommu=iommu)
    build_tree(root, devices, cmdline=cmdline or DEFAULT_CMDLINE,
               interrupts=facts["interrupts"] if iommu else PLAIN_INTERRUPTS,
               iommu_units=facts["iommu_units"] if iommu else ())
    return devices


def corpus_case(stem):
    """What a corpus listing's header says, as data: gpu (address or None), status the module must
    report by default (``isolated``, ``intruders``, ``iommu_off`` or ``acs_override``), the foreign
    endpoints it names, the ACS override value, and the status once the override is accepted."""
    header, cmdline, entries = read_listing(stem)
    gpu = _ADDR_RE.search(header["gpu"][0])
    expect = header["expect"][0]
    text = " ".join(" ".join(v) for k, v in header.items() if k != "unparsed") + " " + (cmdline or "")
    acs = _ACS_RE.search(text)
    if expect == "iommu off":
        group_status = "iommu_off"
    elif expect == "isolated":
        group_status = "isolated"
    elif expect.startswith("not isolated:"):
        group_status = "intruders"
    else:
        raise ValueError("%s: unknown expect %r" % (stem, expect))
    intruders = sorted(_full_address(a) for a in _ADDR_RE.findall(expect))
    return {
        "stem": stem,
        "gpu": _full_address(gpu.group(0)) if gpu else None,
        "acs_override": acs.group(0).split("=", 1)[1] if acs else None,
        "status": "acs_override" if acs and group_status == "isolated" else group_status,
        "accepted_status": group_status,
        "intruders": intruders,
        "pvesh": any("pvesh" in e for e in entries),
        "unparsed": len(header["unparsed"]),
    }


def load_corpus(stem):
    """(case, cmdline, devices) of a corpus listing, devices as the sysfs reader returns them."""
    header, cmdline, entries = read_listing(stem)
    case = corpus_case(stem)
    iommu = case["accepted_status"] != "iommu_off"
    devices = devices_from_listing(entries, CORPUS_TOPOLOGY.get(stem, {}), iommu=iommu)
    if case["acs_override"] and not (cmdline and "pcie_acs_override" in cmdline):
        cmdline = "%s pcie_acs_override=%s" % (DEFAULT_CMDLINE, case["acs_override"])
    return case, cmdline or DEFAULT_CMDLINE, devices


def build_corpus(stem, root):
    case, cmdline, devices = load_corpus(stem)
    iommu = case["accepted_status"] != "iommu_off"
    build_tree(root, devices, cmdline=cmdline, interrupts=INTEL_IR_INTERRUPTS if iommu else PLAIN_INTERRUPTS)
    return case, devices


def pvesh_entries(stem):
    """The rows of a pvesh table listing as /nodes/{node}/hardware/pci returns them (0x-prefixed strings,
    iommugroup an integer, -1 without a group)."""
    _header, _cmdline, entries = read_listing(stem)
    rows = []
    for entry in entries:
        row = entry["pvesh"]
        rows.append({"id": row["id"], "class": row["class"], "vendor": row["vendor"], "device": row["device"],
                     "iommugroup": int(row["iommugroup"]), "device_name": row.get("device_name", "")})
    return rows


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
    cases = []
    for stem in corpus_stems():
        case, _devices = build_corpus(stem, os.path.join(out, "corpus", stem))
        cases.append(case)
        print("built %s (%s)" % (os.path.join(out, "corpus", stem), case["status"]))
    with open(os.path.join(out, "corpus", "cases.json"), "w", encoding="utf-8") as handle:
        json.dump(cases, handle, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
