# SPDX-License-Identifier: GPL-3.0-or-later
"""Property tests: random PCI hosts (root ports, switches, multifunction cards, random IOMMU groups)
written as sysfs trees and read back; the verdict never crashes and never calls a group with a
foreign device isolated. The oracle below is written independently of iommu.py's implementation."""
from __future__ import annotations

import os
import tempfile

from hypothesis import HealthCheck, event, given, settings, strategies as st

from ansible_collections.homelab.gpu_passthrough.plugins.module_utils import iommu, pci_sysfs

from sysfs_tree import build_tree, make_device

CLASSES = ["030000", "030200", "038000", "040300", "0c0330", "010601", "020000", "060400", "060000",
           "060100", "0c8000", "120000", "ff0000"]
VENDORS = ["10de", "1002", "8086", "1022", "10ec"]
hex4 = st.text(alphabet="0123456789abcdef", min_size=4, max_size=4)


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
        for slot in range(draw(st.integers(0, 2))):
            for func in range(draw(st.integers(1, 4))):
                devices.append(endpoint("0000:%02x:%02x.%d" % (bus, slot, func), chain))
    return devices


def _slot(address):
    return address.rsplit(".", 1)[0]


def oracle_foreign(gpu_address, devices, topology_known):
    """Devices that share a group with a function of the card and are neither a function of the card
    nor (topology known) a PCI-to-PCI bridge on a function's path / (unknown) any PCI-to-PCI bridge."""
    funcs = [d for d in devices if _slot(d["address"]) == _slot(gpu_address)]
    groups = {d["iommu_group"] for d in funcs if d["iommu_group"] is not None}
    upstream = {b for d in funcs for b in (d["parent_bridges"] or [])}
    foreign = []
    for dev in devices:
        if dev["iommu_group"] is None or dev["iommu_group"] not in groups or dev in funcs:
            continue
        p2p = dev["class_id"][:4] in ("0604", "0609")
        if p2p and (not topology_known or dev["address"] in upstream):
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
        check_verdict(gpu, read, topology_known=True)


@settings(max_examples=200, deadline=None)
@given(pci_hosts())
def test_random_hosts_as_pve_api_data(devices):
    api = [{"id": d["address"], "class": "0x" + d["class_id"], "vendor": "0x" + d["vendor_id"],
            "device": "0x" + d["device_id"], "iommugroup": -1 if d["iommu_group"] is None else d["iommu_group"]}
           for d in devices]
    converted = iommu.devices_from_pve_api(api)
    for gpu in converted:
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
