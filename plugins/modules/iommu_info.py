#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright (c) homelab.gpu_passthrough contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
from __future__ import annotations

DOCUMENTATION = r"""
---
module: iommu_info
short_description: Report IOMMU state, IOMMU groups and PCI devices from sysfs
version_added: 0.1.0
description:
  - Reads C(/sys/bus/pci/devices), C(/sys/kernel/iommu_groups), C(/sys/class/iommu),
    C(/proc/interrupts) and C(/proc/cmdline) and reports what it finds. Nothing is changed.
  - Reports whether the IOMMU is on (the kernel created IOMMU groups), whether interrupt remapping
    is active, every PCI device with its ids, class, driver, IOMMU group, boot display flag and
    upstream bridges, and the display controllers (GPU candidates).
  - A host without IOMMU groups is not an error; RV(iommu.enabled) is then V(false).
    Use M(homelab.gpu_passthrough.gpu_isolation) to fail when a GPU cannot be passed through.
author:
  - homelab.gpu_passthrough contributors (@homelab)
extends_documentation_fragment:
  - homelab.gpu_passthrough.sysfs
  - homelab.gpu_passthrough.read_only
notes:
  - Interrupt remapping is taken from the C(IR-) prefix of interrupt chip names in
    C(/proc/interrupts) (C(IR-IO-APIC), C(IR-PCI-MSI)), which the kernel uses on Intel and AMD
    when remapping is active.
seealso:
  - module: homelab.gpu_passthrough.gpu_isolation
"""

EXAMPLES = r"""
- name: Read IOMMU and PCI state
  homelab.gpu_passthrough.iommu_info:
  register: iommu

- name: Say whether the IOMMU is on
  ansible.builtin.debug:
    msg: >-
      IOMMU {{ 'on' if iommu.iommu.enabled else 'off' }},
      {{ iommu.iommu.group_count }} groups, interrupt remapping {{ iommu.iommu.interrupt_remapping }}

- name: List the GPU candidates
  ansible.builtin.debug:
    msg: "{{ iommu.display_controllers | map(attribute='address') | list }}"
"""

RETURN = r"""
iommu:
  description: IOMMU state of the host.
  returned: always
  type: dict
  contains:
    enabled:
      description: V(true) when the kernel created IOMMU groups, that is the IOMMU is on.
      type: bool
      sample: true
    group_count:
      description: Number of IOMMU groups.
      type: int
      sample: 15
    groups:
      description: IOMMU group numbers, sorted.
      type: list
      elements: int
      sample: [0, 1, 2]
    interrupt_remapping:
      description: V(true) when interrupt remapping is active, V(false) when interrupts are not
        remapped, V(null) when it cannot be told.
      type: bool
      sample: true
    interrupt_remapping_source:
      description: Which evidence RV(iommu.interrupt_remapping) is based on.
      type: str
      sample: "proc/interrupts: IR- interrupt chips present"
    interrupt_remapping_supported:
      description: Intel only, from bit 3 of C(intel-iommu/ecap) of every DMAR unit; V(null) otherwise.
      type: bool
      sample: true
    units:
      description: IOMMU hardware units in C(/sys/class/iommu).
      type: list
      elements: str
      sample: [dmar0, dmar1]
    vendor:
      description: V(intel), V(amd) or V(null) when no unit is visible.
      type: str
      sample: intel
    cmdline:
      description: The kernel command line of the running kernel.
      type: str
      sample: BOOT_IMAGE=/boot/vmlinuz-6.8.12-4-pve root=/dev/mapper/pve-root ro quiet intel_iommu=on
    cmdline_options:
      description: The IOMMU/VFIO related words of the command line (C(intel_iommu), C(amd_iommu),
        C(iommu), C(pcie_acs_override), C(vfio-pci.ids), ...). A bare word maps to V(true).
      type: dict
      sample: {"intel_iommu": "on", "iommu": "pt"}
    cmdline_error:
      description: Why the command line could not be split into words (an unbalanced quote), or V(null).
      type: str
      sample: null
    acs_override:
      description: The value of C(pcie_acs_override) on the command line (V(true) when bare), V(null)
        when absent. With it the kernel reports split IOMMU groups that are not real isolation.
      type: raw
      sample: downstream,multifunction
    default_domain_type:
      description: Most common C(type) of the IOMMU groups (V(DMA), V(DMA-FQ), V(identity)), or V(null).
      type: str
      sample: DMA-FQ
    domain_types:
      description: Count of groups per domain type.
      type: dict
      sample: {"DMA-FQ": 14, "identity": 1}
devices:
  description: Every PCI device, sorted by address.
  returned: always
  type: list
  elements: dict
  contains:
    address:
      description: Full PCI address.
      type: str
      sample: "0000:01:00.0"
    vendor_id:
      description: Vendor id, 4 hex digits.
      type: str
      sample: 10de
    device_id:
      description: Device id, 4 hex digits.
      type: str
      sample: 1d01
    subsystem_vendor_id:
      description: Subsystem vendor id, or an empty string when unknown.
      type: str
      sample: "1043"
    subsystem_device_id:
      description: Subsystem device id, or an empty string when unknown.
      type: str
      sample: "85f4"
    class_id:
      description: Class, subclass and programming interface, 6 hex digits.
      type: str
      sample: "030000"
    class_name:
      description: Name of the class.
      type: str
      sample: VGA compatible controller
    driver:
      description: Driver bound now, or V(null).
      type: str
      sample: vfio-pci
    iommu_group:
      description: IOMMU group, or V(null) when the IOMMU is off.
      type: int
      sample: 2
    boot_vga:
      description: V(true) for the firmware's boot display, V(null) for devices without the flag.
      type: bool
      sample: false
    is_bridge:
      description: V(true) for PCI-to-PCI bridges and PCIe root or switch ports.
      type: bool
      sample: false
    parent_bridges:
      description: Upstream bridges from the root complex outward.
      type: list
      elements: str
      sample: ["0000:00:01.0"]
    description:
      description: Vendor and device name from the PCI ID database (C(/usr/share/misc/pci.ids) or
        C(/usr/share/hwdata/pci.ids) under O(root)) as lspci prints them; empty without the database.
      type: str
      sample: NVIDIA Corporation GP108 [GeForce GT 1030]
groups:
  description: IOMMU groups with the addresses of their devices.
  returned: always
  type: list
  elements: dict
  sample: [{"group": 2, "devices": ["0000:00:01.0", "0000:01:00.0", "0000:01:00.1"]}]
display_controllers:
  description: The devices of PCI class 03 (GPU candidates), same keys as RV(devices).
  returned: always
  type: list
  elements: dict
  sample: []
"""

import os

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.homelab.gpu_passthrough.plugins.module_utils.pci import class_name, is_gpu
from ansible_collections.homelab.gpu_passthrough.plugins.module_utils.pci_sysfs import (
    iommu_groups,
    iommu_state,
    read_pci_devices,
)


def main():
    module = AnsibleModule(
        argument_spec=dict(
            root=dict(type="path", default="/"),
        ),
        supports_check_mode=True,
    )
    root = module.params["root"]
    if not os.path.isdir(root):
        module.fail_json(msg="root %s is not a directory: give the directory that holds sys/ and proc/ "
                             "(/ for this host)" % root)
    devices = read_pci_devices(root)
    if not devices:
        module.warn("no PCI devices under %s: is root the directory that holds sys/ and proc/?"
                    % os.path.join(root, "sys/bus/pci/devices"))
    for device in devices:
        device["class_name"] = class_name(device["class_id"])
    module.exit_json(
        changed=False,
        iommu=iommu_state(root),
        devices=devices,
        groups=iommu_groups(devices),
        display_controllers=[d for d in devices if is_gpu(d)],
    )


if __name__ == "__main__":
    main()
