# SPDX-License-Identifier: GPL-3.0-or-later
"""Property tests: random PCI hosts (root ports, switches, multifunction cards, random IOMMU groups,
host bridges with and without a driver, and GPU slots that also hold functions of another vendor or
class, like an APU's PSP/USB/audio) written as sysfs trees and read back; the verdict never crashes
and never calls a group with a foreign device isolated. The oracle below is written independently
of iommu.py's and pci.py's implementation (it takes only NVIDIA's architecture facts from nvidia.py)."""
from __future__ import annotations

import os
import tempfile

from hypothesis import HealthCheck, event, given, settings, strategies as st

from ansible_collections.homelab.gpu_passthrough.plugins.module_utils import iommu, nvidia, pci, pci_sysfs

from sysfs_tree import build_tree, make_device

CLASSES = ["030000", "030200", "038000", "040300", "0c0330", "010601", "020000", "060400", "060000",
           "060100", "0c8000", "108000", "120000", "ff0000"]
VENDORS = ["10de", "1002", "8086", "1022", "10ec"]
# display ids from pci.ids: Turing TU102 (USB-C functions), Pascal GP102, AMD Renoir, Intel UHD 630
GPU_IDS = [("10de", "1e04"), ("10de", "1b06"), ("1002", "1636"), ("8086", "3e92")]
hex4 = st.text(alphabet="0123456789abcdef", min_size=4, max_size=4)


@st.composite
def gpu_slot(draw, bus, chain, group):
    """A GPU's slot: the display function, then functions that are the card's or not (another vendor,
    or the card's vendor with a class no graphics card carries), mostly in the GPU's group."""
    vendor, device = draw(st.sampled_from(GPU_IDS))
    gpu_group = draw(group)
    devices = [make_device("0000:%02x:00.0" % bus, vendor, device, draw(st.sampled_from(["030000", "030200", "038000"])),
                           gpu_group, chain, boot_vga=draw(st.booleans()), driver=draw(st.sampled_from([None, "vfio-pci"])))]
    for func in range(1, draw(st.integers(0, 6)) + 1):
        own_vendor = draw(st.booleans())
        devices.append(make_device(
            "0000:%02x:00.%d" % (bus, func), vendor if own_vendor else draw(st.sampled_from(VENDORS)),
            draw(hex4), draw(st.sampled_from(["040300", "0c0330", "0c8000", "108000", "020000", "030000"])),
            gpu_group if draw(st.integers(0, 3)) else draw(group), chain,
            driver=draw(st.sampled_from([None, "vfio-pci", "snd_hda_intel", "xhci_hcd"]))))
    return devices


@st.composite
def pci_hosts(draw):
    max_group = draw(st.integers(0, 5))
    group = st.one_of(st.none(), st.integers(0, max_group)) if draw(st.booleans()) else st.integers(0, max_group)
    devices = []
    next_bus = 1

    def endpoint(address, chain):
        cls = draw(st.sampled_from(CLASSES))
        return make_device(address, draw(st.sampled_from(VENDORS)), draw(hex4), cls, draw(group), chain,
                           boot_vga=draw(st.booleans()) if cls == "030000" else None,
                           driver=draw(st.sampled_from([None, "vfio-pci", "nouveau", "ahci"])))

    for slot in range(draw(st.integers(0, 2))):  # endpoints on the root bus
        devices.append(endpoint("0000:00:%02x.0" % (0x10 + slot), []))
    for func in range(draw(st.integers(0, 2))):  # host bridges; k10temp holds AMD's 00:18.3
        devices.append(make_device("0000:00:18.%d" % func, "1022", "1440", "060000", draw(group), [],
                                   driver=draw(st.sampled_from([None, None, "k10temp"]))))
    for port_no in range(draw(st.integers(1, 4))):
        port = "0000:00:%02x.%d" % (1 + port_no // 2, port_no % 2)
        devices.append(make_device(port, "8086", "1901", "060400", draw(group), []))
        chain = [port]
        if draw(st.booleans()):  # a PCIe switch: upstream port, downstream port
            upstream = "0000:%02x:00.0" % next_bus
            downstream = "0000:%02x:00.0" % (next_bus + 1)
            next_bus += 2
            devices.append(make_device(upstream, "1002", "1478", "060400", draw(group), chain))
            devices.append(make_device(downstream, "1002", "1479", "060400", draw(group), chain + [upstream]))
            chain = chain + [upstream, downstream]
        bus = next_bus
        next_bus += 1
        if draw(st.booleans()):
            devices.extend(draw(gpu_slot(bus, chain, group)))
            continue
        for slot in range(draw(st.integers(0, 2))):
            for func in range(draw(st.integers(1, 4))):
                devices.append(endpoint("0000:%02x:%02x.%d" % (bus, slot, func), chain))
    return devices


def _slot(address):
    return address.rsplit(".", 1)[0]


def _usb_c(vendor, device_id):
    """Whether the card of this display function carries USB-C functions: NVIDIA Turing and newer."""
    arch = nvidia.classify(device_id)["architecture"] if vendor == "10de" else None
    return bool(arch) and nvidia.ARCHITECTURES.index(arch) >= nvidia.ARCHITECTURES.index("turing")


def _card_functions(gpu, devices):
    """Oracle of issue 13's rule: the GPU's slot, the GPU's vendor, display/audio (+ USB/UCSI on
    NVIDIA Turing and newer)."""
    allowed = ("03", "0403")
    if _usb_c(gpu["vendor_id"], gpu["device_id"]):
        allowed += ("0c03", "0c80")
    return [d for d in devices if d is gpu or (
        _slot(d["address"]) == _slot(gpu["address"]) and d["vendor_id"] == gpu["vendor_id"]
        and d["class_id"][:4].startswith(allowed))]


def oracle_foreign(gpu_address, devices, topology_known):
    """Devices that share a group with a function of the card and are neither a function of the card,
    nor (topology known) a PCI-to-PCI bridge on a function's path / (unknown) any PCI-to-PCI bridge,
    nor a host bridge without a driver (or, topology unknown, any host bridge: drivers are unknown too)."""
    gpu = next(d for d in devices if d["address"] == gpu_address)
    funcs = _card_functions(gpu, devices)
    groups = {d["iommu_group"] for d in funcs if d["iommu_group"] is not None}
    upstream = {b for d in funcs for b in (d["parent_bridges"] or [])}
    foreign = []
    for dev in devices:
        if dev["iommu_group"] is None or dev["iommu_group"] not in groups or dev in funcs:
            continue
        p2p = dev["class_id"][:4] in ("0604", "0609")
        if p2p and (not topology_known or dev["address"] in upstream):
            continue
        if dev["class_id"][:4] == "0600" and (not topology_known or not dev["driver"]):
            continue
        foreign.append(dev["address"])
    return funcs, foreign


def check_verdict(gpu, devices, topology_known):
    for allow in (False, True):
        verdict = iommu.isolation_verdict(gpu["address"], devices, allow_boot_vga=allow)
        event("verdict: %s" % verdict["status"])  # shown by --hypothesis-show-statistics
        funcs, foreign = oracle_foreign(gpu["address"], devices, topology_known)
        assert sorted(d["address"] for d in verdict["intruders"]) == sorted(foreign)
        if verdict["isolated"]:
            assert not foreign, "isolated although %s share the group" % foreign
            assert gpu["iommu_group"] is not None
            assert all(f["iommu_group"] is not None for f in funcs)
        else:
            expected_bad = (foreign or gpu["iommu_group"] is None or any(f["iommu_group"] is None for f in funcs)
                            or (gpu["boot_vga"] and not allow))
            assert expected_bad, verdict["reasons"]
            assert verdict["message"] and verdict["reasons"]
        for address in foreign:
            assert address in verdict["message"]
        assert verdict["mapping_path"] == _slot(gpu["address"])
        assert len(verdict["vfio_ids"]) == len(set(verdict["vfio_ids"]))
        assert sorted(f["address"] for f in verdict["functions"]) == sorted(f["address"] for f in funcs)
        for dev in devices:  # a same-slot function that is not the card's is never passed through
            if _slot(dev["address"]) == _slot(gpu["address"]) and dev not in funcs:
                assert dev["address"] not in [f["address"] for f in verdict["functions"]]
                endpoint = dev["class_id"][:2] != "06"
                if endpoint and dev["iommu_group"] is not None and dev["iommu_group"] == gpu["iommu_group"]:
                    assert not verdict["isolated"] and dev["address"] in foreign


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(pci_hosts())
def test_random_sysfs_trees_round_trip_and_verdicts_hold(devices):
    with tempfile.TemporaryDirectory() as root:
        build_tree(root, devices)
        read = pci_sysfs.read_pci_devices(root)
        assert read == sorted(devices, key=lambda d: iommu.address_sort_key(d["address"]))
        state = pci_sysfs.iommu_state(root)
        assert state["group_count"] == len({d["iommu_group"] for d in devices if d["iommu_group"] is not None})
    for gpu in read:
        if pci.is_gpu(gpu):
            check_verdict(gpu, read, topology_known=True)


@settings(max_examples=200, deadline=None)
@given(pci_hosts())
def test_random_hosts_as_pve_api_data(devices):
    api = [{"id": d["address"], "class": "0x" + d["class_id"], "vendor": "0x" + d["vendor_id"],
            "device": "0x" + d["device_id"], "iommugroup": -1 if d["iommu_group"] is None else d["iommu_group"]}
           for d in devices]
    converted = iommu.devices_from_pve_api(api)
    for gpu in converted:
        if pci.is_gpu(gpu):
            check_verdict(gpu, converted, topology_known=False)
    displays = [d for d in converted if d["class_id"].startswith("03") and d["vendor_id"] == "10de"]
    try:
        chosen = iommu.select_gpu(converted)
        assert chosen is displays[0] or chosen["address"] == min(
            (d["address"] for d in displays), key=iommu.address_sort_key)
    except iommu.GpuSelectionError as exc:
        assert not displays
        assert "No NVIDIA" in str(exc)


@settings(max_examples=60, deadline=None)
@given(st.dictionaries(st.sampled_from(["vendor", "device", "class", "boot_vga", "subsystem_vendor"]),
                       st.binary(max_size=20)),
       st.binary(max_size=200))
def test_garbage_sysfs_content_never_crashes(files, interrupts):
    with tempfile.TemporaryDirectory() as root:
        build_tree(root, [make_device("0000:01:00.0", "10de", "1d01", "030000", 1, ["0000:00:01.0"], boot_vga=True)])
        entry = os.path.join(root, "sys", "bus", "pci", "devices", "0000:01:00.0")
        for name, content in files.items():
            with open(os.path.join(entry, name), "wb") as handle:
                handle.write(content)
        with open(os.path.join(root, "proc", "interrupts"), "wb") as handle:
            handle.write(interrupts)
        for name in ("cmdline",):
            with open(os.path.join(root, "proc", name), "wb") as handle:
                handle.write(interrupts)
        devices = pci_sysfs.read_pci_devices(root)
        state = pci_sysfs.iommu_state(root)
    assert len(devices) == 1 and state["enabled"] is True
    assert state["interrupt_remapping"] in (True, False, None)
    verdict = iommu.isolation_verdict("0000:01:00.0", devices)
    assert verdict["status"] in ("isolated", "boot_vga")


@st.composite
def apu_like_hosts(draw):
    """A GPU behind its root port whose slot, in the GPU's group, also holds at least one function of
    another vendor or of a class a graphics card does not carry (issue 13: AMD APU slots)."""
    port = make_device("0000:00:08.1", "1022", "1635", "060400", 2, [])
    vendor, device = draw(st.sampled_from(GPU_IDS))
    gpu = make_device("0000:05:00.0", vendor, device, "030000", 2, ["0000:00:08.1"])
    foreign_vendor = draw(st.sampled_from([v for v in VENDORS if v != vendor]))
    if draw(st.booleans()):  # another vendor, any class (even display or audio)
        foreign = (foreign_vendor, draw(st.sampled_from(["040300", "0c0330", "108000", "030000", "0c8000"])))
    else:  # the GPU's vendor, a class no graphics card carries (USB/UCSI: none but Turing+ cards do)
        classes = ["108000", "020000", "010601", "130000"] + ([] if _usb_c(vendor, device) else ["0c0330", "0c8000"])
        foreign = (vendor, draw(st.sampled_from(classes)))
    func = draw(st.integers(1, 7))
    intruder = make_device("0000:05:00.%d" % func, foreign[0], draw(hex4), foreign[1], 2, ["0000:00:08.1"])
    own = [make_device("0000:05:00.%d" % f, vendor, draw(hex4), "040300", 2, ["0000:00:08.1"])
           for f in range(1, 8) if f != func and draw(st.booleans())]
    return [port, gpu, intruder] + own, intruder


@settings(max_examples=150, deadline=None)
@given(apu_like_hosts(), st.booleans())
def test_foreign_functions_in_the_gpu_slot_are_never_accepted(host_and_intruder, as_api):
    devices, intruder = host_and_intruder
    if as_api:
        devices = iommu.devices_from_pve_api([
            {"id": d["address"], "class": "0x" + d["class_id"], "vendor": "0x" + d["vendor_id"],
             "device": "0x" + d["device_id"], "iommugroup": d["iommu_group"]} for d in devices])
    verdict = iommu.isolation_verdict("0000:05:00.0", devices)
    event("foreign %s:%s class %s" % (intruder["vendor_id"], "....", intruder["class_id"][:4]))
    assert verdict["isolated"] is False
    assert verdict["status"] == "intruders"
    assert intruder["address"] in [d["address"] for d in verdict["intruders"]]
    assert intruder["address"] not in [f["address"] for f in verdict["functions"]]
    assert intruder["address"] in verdict["message"]
