# SPDX-License-Identifier: GPL-3.0-or-later
"""pci_sysfs.py on built trees and on this machine's real /sys."""
from __future__ import annotations

import os

from ansible_collections.homelab.gpu_passthrough.plugins.module_utils import pci_sysfs

from sysfs_tree import INTEL_IR_INTERRUPTS, PLAIN_INTERRUPTS, build_tree, make_device


def _tree(tmp_path, **kwargs):
    devices = [
        make_device("0000:00:01.0", "8086", "1901", "060400", 1, [], driver="pcieport"),
        make_device("0000:01:00.0", "10de", "13f1", "030000", 1, ["0000:00:01.0"], driver="vfio-pci",
                    boot_vga=False, subsystem_vendor_id="10de", subsystem_device_id="1152"),
        make_device("0000:01:00.1", "10de", "0fbb", "040300", 1, ["0000:00:01.0"]),
    ]
    build_tree(str(tmp_path), devices, **kwargs)
    return devices


def test_reader_round_trip(tmp_path):
    devices = _tree(tmp_path, cmdline="BOOT_IMAGE=/vmlinuz quiet intel_iommu=on iommu=pt")
    assert pci_sysfs.read_pci_devices(str(tmp_path)) == devices
    gpu = pci_sysfs.read_pci_devices(str(tmp_path))[1]
    assert gpu["parent_bridges"] == ["0000:00:01.0"]
    assert gpu["driver"] == "vfio-pci" and gpu["boot_vga"] is False and gpu["subsystem_device_id"] == "1152"


def test_iommu_state_intel_with_remapping(tmp_path):
    _tree(tmp_path, cmdline="BOOT_IMAGE=/vmlinuz quiet intel_iommu=on iommu=pt pcie_acs_override -- x=1",
          interrupts=INTEL_IR_INTERRUPTS, iommu_units=("dmar0", "dmar1"), intel_ecap="f050da")
    state = pci_sysfs.iommu_state(str(tmp_path))
    assert state["enabled"] is True and state["group_count"] == 1 and state["groups"] == [1]
    assert state["interrupt_remapping"] is True
    assert state["interrupt_remapping_supported"] is True  # 0xf050da has bit 3 set
    assert state["vendor"] == "intel" and state["units"] == ["dmar0", "dmar1"]
    assert state["cmdline_options"] == {"intel_iommu": "on", "iommu": "pt", "pcie_acs_override": True}
    assert state["acs_override"] is True and state["cmdline_error"] is None


def test_cmdline_is_split_the_way_the_kernel_does(tmp_path):
    # the cmdline of shared/fixtures/iommu-corpus/07 (kernel 6.3.0-acso), plus a quoted value and init args
    _tree(tmp_path, cmdline='BOOT_IMAGE=/vmlinuz-6.3.0-acso root=/dev/nvme0n1p2 quiet pcie_acs_override=downstream,multifunction '
                            'video="efifb:off vesafb:off" vfio-pci.ids=10de:1d01 -- iommu=off')
    state = pci_sysfs.iommu_state(str(tmp_path))
    assert state["cmdline_options"] == {"pcie_acs_override": "downstream,multifunction",
                                        "video": "efifb:off vesafb:off", "vfio-pci.ids": "10de:1d01"}
    assert state["acs_override"] == "downstream,multifunction"
    _tree(tmp_path / "dash", cmdline="quiet pcie-acs-override=id:10de:1d01")  # - and _ are alike
    assert pci_sysfs.iommu_state(str(tmp_path / "dash"))["acs_override"] == "id:10de:1d01"


def test_unbalanced_quote_never_hides_the_acs_override(tmp_path):
    _tree(tmp_path, cmdline='quiet video="efifb:off pcie_acs_override=downstream')
    state = pci_sysfs.iommu_state(str(tmp_path))
    assert "unbalanced double quote" in state["cmdline_error"]
    assert state["acs_override"] is True
    assert state["default_domain_type"] == "DMA-FQ" and state["domain_types"] == {"DMA-FQ": 1}


def test_iommu_state_without_remapping_support(tmp_path):
    _tree(tmp_path, interrupts=PLAIN_INTERRUPTS, iommu_units=("dmar0",), intel_ecap="f050d2")
    state = pci_sysfs.iommu_state(str(tmp_path))
    assert state["interrupt_remapping"] is False
    assert state["interrupt_remapping_supported"] is False


def test_iommu_state_amd_and_unknown_remapping(tmp_path):
    _tree(tmp_path, interrupts="           CPU0\nNMI:          0   Non-maskable interrupts\n", iommu_units=("ivhd0",))
    state = pci_sysfs.iommu_state(str(tmp_path))
    assert state["vendor"] == "amd" and state["interrupt_remapping_supported"] is None
    assert state["interrupt_remapping"] is None
    assert state["interrupt_remapping_source"].startswith("unknown")


def test_empty_and_missing_roots(tmp_path):
    assert pci_sysfs.read_pci_devices(str(tmp_path / "nothing")) == []
    state = pci_sysfs.iommu_state(str(tmp_path / "nothing"))
    assert state["enabled"] is False and state["interrupt_remapping"] is None and state["cmdline"] == ""


def test_garbage_files_do_not_crash(tmp_path):
    _tree(tmp_path)
    entry = os.path.join(str(tmp_path), "sys", "bus", "pci", "devices", "0000:01:00.0")
    with open(os.path.join(entry, "class"), "w", encoding="utf-8") as handle:
        handle.write("zz\n")
    with open(os.path.join(entry, "vendor"), "w", encoding="utf-8") as handle:
        handle.write("0x10de0000000\n")
    os.remove(os.path.join(entry, "device"))
    gpu = pci_sysfs.read_pci_devices(str(tmp_path))[1]
    assert (gpu["class_id"], gpu["vendor_id"], gpu["device_id"]) == ("", "", "")


def test_groups_listing():
    devices = [make_device("0000:00:01.0", "8086", "1901", "060400", 3),
               make_device("0000:00:00.0", "8086", "1900", "060000", 3),
               make_device("0000:00:02.0", "8086", "3e92", "030000", None)]
    assert pci_sysfs.iommu_groups(devices) == [{"group": 3, "devices": ["0000:00:00.0", "0000:00:01.0"]}]


def test_real_sys_of_this_machine():
    """The real /sys: every device listed by the kernel is read, none crashes; groups match the kernel's."""
    devices = pci_sysfs.read_pci_devices("/")
    names = sorted(os.listdir("/sys/bus/pci/devices")) if os.path.isdir("/sys/bus/pci/devices") else []
    assert [d["address"] for d in devices] == names
    for device in devices:
        assert len(device["vendor_id"]) == 4 and len(device["class_id"]) == 6
    state = pci_sysfs.iommu_state("/")
    groups = os.listdir("/sys/kernel/iommu_groups") if os.path.isdir("/sys/kernel/iommu_groups") else []
    assert state["enabled"] is bool(groups)
    assert state["group_count"] == len(groups)
    with open("/proc/cmdline", encoding="utf-8") as handle:
        assert state["cmdline"] == handle.read().strip()


PCI_IDS = """#
# List of PCI ID's (excerpt)
#
10de  NVIDIA Corporation
\t13f1  GM204GL [Quadro M4000]
\t\t10de 1153  Quadro M4000
\t0fbb  GM204 High Definition Audio Controller
8086  Intel Corporation
C 03  Display controller
\t00  VGA compatible controller
"""


def test_descriptions_from_pci_ids(tmp_path):
    _tree(tmp_path)
    path = tmp_path / "usr" / "share" / "misc" / "pci.ids"
    path.parent.mkdir(parents=True)
    path.write_text(PCI_IDS, encoding="utf-8")
    names = [d["description"] for d in pci_sysfs.read_pci_devices(str(tmp_path))]
    assert names == ["Intel Corporation Device 1901", "NVIDIA Corporation GM204GL [Quadro M4000]",
                     "NVIDIA Corporation GM204 High Definition Audio Controller"]


def test_real_pci_ids_when_installed():
    """With pciutils' database on this machine, every vendor it knows gets a name."""
    devices = pci_sysfs.read_pci_devices("/")
    have_db = any(os.path.isfile(os.path.join("/", p)) for p in pci_sysfs.PCI_IDS_PATHS)
    if not have_db:
        assert all(d["description"] == "" for d in devices)
    else:
        assert all(d["description"] for d in devices if d["vendor_id"] in ("8086", "1af4", "10de", "1002", "1022"))
