#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright (c) homelab.gpu_passthrough contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
from __future__ import annotations

DOCUMENTATION = r"""
---
module: gpu_isolation
short_description: Assert that a GPU sits in an IOMMU group it can be passed through from
version_added: 0.1.0
description:
  - Selects a GPU by PCI address (O(gpu_address)), by vendor and device id (O(gpu_vendor_device)),
    or, when neither is given, takes the first NVIDIA display controller.
  - Both selectors must name a display controller (PCI class C(03xx)).
  - The card's functions are those in the GPU's slot with the GPU's vendor and a class a graphics
    card carries (display C(03xx), audio C(0403), and on NVIDIA Turing and newer the USB C(0c03) and
    UCSI C(0c80) functions of their USB-C port). Other devices in the slot, such as an AMD APU's
    platform security processor, USB and HD audio controllers, are not the card's.
  - Fails when the IOMMU is off, when no such device exists, when the GPU's IOMMU group (or the group
    of any other function of the card) also holds a device that is neither a function of the card,
    nor a PCI bridge or root port upstream of it, nor a host bridge that no host driver holds, when
    the running kernel has C(pcie_acs_override) on its command line unless O(accept_acs_override=true),
    and when the GPU is the host's boot display unless O(allow_boot_vga=true).
  - The failure message names every intruding device by address, class and ids and says what to do.
    The ACS override patch weakens isolation and is never applied by this collection.
  - Returns what a passthrough setup needs, the functions to pass through, the C(vfio-pci ids) list,
    the drivers bound now, the IOMMU group and the C(path) of a Proxmox PCI resource mapping; the
    functions and ids also in the failure result when the IOMMU is off (RV(status=iommu_off)), so
    a role can prepare VFIO before the reboot that turns the IOMMU on.
  - With O(gpus), several cards are judged, each on its own (another listed card in a card's group
    is an intruder too, since each card goes to its own VM); the module fails when any card fails,
    and the message names every refused card by address and name with the devices in its group.
    RV(cards) holds each card's verdict; RV(functions), RV(vfio_ids), RV(drivers) and
    RV(unbound_functions) are those of all cards together.
  - RV(bind_by_ids) and RV(bind_by_override) say how vfio-pci can claim the functions without
    taking another device from the host, for a C(vfio-pci ids=) line takes every device with one
    of its ids. A function whose C(vendor:device) is also carried by a device that is not passed
    through (an identical card the host keeps, or another card's identical HDMI audio function) is
    bound by its address (C(driver_override)) instead; see RV(vfio_bystanders).
  - Nothing is changed on the host.
author:
  - homelab.gpu_passthrough contributors (@homelab)
options:
  gpu_address:
    description:
      - PCI address of the GPU, V(0000:01:00.0) or V(01:00.0) (see C(lspci -D)).
      - Mutually exclusive with O(gpu_vendor_device).
    type: str
  gpu_vendor_device:
    description:
      - C(vendor:device) id pair of the GPU, for example V(10de:1d01) (the last bracket of an
        C(lspci -nn) line). Fails when several devices have that pair; then use O(gpu_address).
      - Mutually exclusive with O(gpu_address).
    type: str
  gpus:
    description:
      - Several GPUs, each a PCI address (V(0000:0b:00.0), V(0b:00.0)) or a C(vendor:device) pair
        that is unique on the host (V(10de:128b)); each must name a display controller, and no card
        twice.
      - Mutually exclusive with O(gpu_address) and O(gpu_vendor_device).
    type: list
    elements: str
    version_added: 0.2.0
  allow_boot_vga:
    description:
      - Accept a GPU that is the host's boot display (C(boot_vga) is 1). The host then loses its
        local console when the VM starts.
    type: bool
    default: false
  accept_acs_override:
    description:
      - Accept a host whose running kernel has C(pcie_acs_override) on its command line (read from
        C(proc/cmdline) under O(root)). The ACS override patch makes the kernel report split IOMMU
        groups that the hardware does not isolate, so a VM may reach devices outside its group.
      - With V(false) such a host is refused (RV(status=acs_override)); with V(true) the verdict
        still says so in RV(reasons) and RV(msg).
    type: bool
    default: false
extends_documentation_fragment:
  - homelab.gpu_passthrough.sysfs
  - homelab.gpu_passthrough.read_only
notes:
  - A group that holds the card's own functions and its upstream root port or bridge is acceptable,
    as the Proxmox VE documentation says. Sibling bridges (ports that lead elsewhere) count as intruders.
  - A host bridge (class C(0600)) that no host driver holds, such as AMD's "PCIe Dummy Host Bridge",
    does not block passthrough, because VFIO accepts group members that no host driver holds.
seealso:
  - module: homelab.gpu_passthrough.iommu_info
  - name: Proxmox VE PCI passthrough
    description: IOMMU groups and PCI resource mappings in the Proxmox VE administration guide.
    link: https://pve.proxmox.com/wiki/PCI_Passthrough
"""

EXAMPLES = r"""
- name: Check the first NVIDIA GPU
  homelab.gpu_passthrough.gpu_isolation:
  register: gpu

- name: Check a GPU by address
  homelab.gpu_passthrough.gpu_isolation:
    gpu_address: "0000:03:00.0"

- name: Check a GPU on a host that runs the ACS override patch, knowing the groups are not real isolation
  homelab.gpu_passthrough.gpu_isolation:
    gpu_address: "0000:05:00.0"
    accept_acs_override: true

- name: Check a GPU by ids, accepting that it is the boot display
  homelab.gpu_passthrough.gpu_isolation:
    gpu_vendor_device: "10de:13f1"
    allow_boot_vga: true

- name: Check two cards, each on its own
  homelab.gpu_passthrough.gpu_isolation:
    gpus: ["0000:0b:00.0", "10de:128b"]
  register: cards

- name: Use the verdict for vfio-pci
  ansible.builtin.copy:
    dest: /etc/modprobe.d/vfio.conf
    content: "options vfio-pci ids={{ gpu.vfio_ids | join(',') }}\n"
    mode: "0644"
"""

RETURN = r"""
isolated:
  description: V(true) when the GPU can be passed through. The module fails otherwise, so this is
    V(true) whenever the task succeeds; the key is also in the failure result.
  returned: always
  type: bool
  sample: true
status:
  description: V(isolated), V(iommu_off), V(no_iommu_group), V(intruders), V(acs_override), V(boot_vga),
    V(no_such_gpu) or V(bad_input).
  returned: always
  type: str
  sample: isolated
group:
  description: IOMMU group of the GPU.
  returned: when a GPU was found
  type: int
  sample: 52
groups:
  description: IOMMU groups of all functions of the card (usually just RV(group)).
  returned: when a GPU was found
  type: list
  elements: int
  sample: [52]
gpu:
  description: The selected GPU, with the keys of RV(homelab.gpu_passthrough.iommu_info#module:devices).
  returned: when a GPU was found
  type: dict
  sample: {"address": "0000:03:00.0", "vendor_id": "10de", "device_id": "13f1", "class_id": "030000"}
functions:
  description: The functions of the card (the GPU's slot, vendor and a card's classes), what to pass
    through. Also when the IOMMU is off.
  returned: when a GPU was found
  type: list
  elements: dict
  sample: [{"address": "0000:03:00.0"}, {"address": "0000:03:00.1"}]
upstream_bridges:
  description: Bridges and root ports in the group upstream of the GPU (accepted).
  returned: when a GPU was found
  type: list
  elements: dict
  sample: [{"address": "0000:00:01.0", "class_id": "060400"}]
host_bridges:
  description: Host bridges in the group that no host driver holds (accepted, they do not block VFIO).
  returned: when a GPU was found
  type: list
  elements: dict
  sample: [{"address": "0000:00:08.0", "class_id": "060000", "driver": null}]
intruders:
  description: Devices in the group that block passthrough (empty on success).
  returned: when a GPU was found
  type: list
  elements: dict
  sample: []
slot_foreign:
  description: Devices in the GPU's slot that are not functions of the card (another vendor or a class
    a graphics card does not carry); never passed through, intruders when they share the group.
  returned: when a GPU was found
  type: list
  elements: dict
  sample: [{"address": "0000:05:00.2", "vendor_id": "1022", "device_id": "15df", "class_id": "108000"}]
vfio_ids:
  description: Unique C(vendor:device) pairs of the functions, for C(options vfio-pci ids=).
  returned: when a GPU was found
  type: list
  elements: str
  sample: ["10de:13f1", "10de:0fbb"]
vfio_bystanders:
  description: Devices outside the card (the cards, with O(gpus)) with one of RV(vfio_ids) (an
    identical second card); binding by ids would take them from the host too.
  returned: when a GPU was found
  type: list
  elements: dict
  sample: []
bind_by_ids:
  description: The ids for C(options vfio-pci ids=), RV(vfio_ids) less those a device in
    RV(vfio_bystanders) carries (sorted with O(gpus)).
  returned: when a GPU was found
  type: list
  elements: str
  sample: ["10de:13f1", "10de:0fbb"]
  version_added: 0.2.0
bind_by_override:
  description: The addresses of the functions whose ids a device in RV(vfio_bystanders) carries;
    they must be bound to vfio-pci by address (C(driver_override)) before a host driver takes them.
  returned: when a GPU was found
  type: list
  elements: str
  sample: []
  version_added: 0.2.0
cards:
  description: With O(gpus), the verdict of each card in the order given, with the keys of a single
    card's result (RV(gpu), RV(group), RV(functions), RV(vfio_ids), RV(intruders), RV(status),
    RV(msg), ...) but without RV(vfio_bystanders), RV(bind_by_ids) and RV(bind_by_override), which
    are planned for all cards together.
  returned: with O(gpus), when every entry named a GPU
  type: list
  elements: dict
  sample: [{"gpu": {"address": "0000:0b:00.0"}, "isolated": true, "status": "isolated", "vfio_ids": ["10de:1b06", "10de:10ef"]}]
  version_added: 0.2.0
refused:
  description: With O(gpus), the addresses of the cards that cannot be passed through.
  returned: with O(gpus), when every entry named a GPU
  type: list
  elements: str
  sample: ["0000:06:00.0"]
  version_added: 0.2.0
drivers:
  description: Driver bound now to each function (V(null) when none).
  returned: when a GPU was found
  type: dict
  sample: {"0000:03:00.0": "vfio-pci", "0000:03:00.1": "vfio-pci"}
unbound_functions:
  description: The functions not bound to vfio-pci now, as C(address (driver)).
  returned: when a GPU was found
  type: list
  elements: str
  sample: ["0000:03:00.1 (snd_hda_intel)"]
acs_override:
  description: The value of C(pcie_acs_override) on the running kernel's command line, or V(null).
  returned: when a GPU was found
  type: str
  sample: null
mapping_path:
  description: Value for C(path) in a Proxmox PCI resource mapping, the whole card without function.
  returned: when a GPU was found
  type: str
  sample: "0000:03:00"
topology_known:
  description: V(false) when bridges could not be checked for being upstream of the GPU.
  returned: when a GPU was found
  type: bool
  sample: true
boot_vga:
  description: The GPU's boot display flag (V(null) when unknown).
  returned: when a GPU was found
  type: bool
  sample: false
reasons:
  description: Every observation behind the verdict, one sentence each.
  returned: when a GPU was found
  type: list
  elements: str
  sample: []
msg:
  description: One paragraph with the verdict and, on failure, what to do.
  returned: always
  type: str
  sample: "0000:03:00.0 (VGA compatible controller [0300], 10de:13f1) is in IOMMU group 52 with only its own functions 0000:03:00.1: it can be passed through."
iommu:
  description: IOMMU state, as RV(homelab.gpu_passthrough.iommu_info#module:iommu).
  returned: always
  type: dict
  sample: {"enabled": true, "group_count": 60}
"""

import os

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.homelab.gpu_passthrough.plugins.module_utils import iommu_messages
from ansible_collections.homelab.gpu_passthrough.plugins.module_utils.iommu import (
    GpuSelectionError,
    cards_verdict,
    isolation_verdict,
    select_gpu,
)
from ansible_collections.homelab.gpu_passthrough.plugins.module_utils.pci_sysfs import (
    iommu_state,
    read_pci_devices,
)


def main():
    module = AnsibleModule(
        argument_spec=dict(
            gpu_address=dict(type="str"),
            gpu_vendor_device=dict(type="str"),
            gpus=dict(type="list", elements="str"),
            allow_boot_vga=dict(type="bool", default=False),
            accept_acs_override=dict(type="bool", default=False),
            root=dict(type="path", default="/"),
        ),
        mutually_exclusive=[("gpu_address", "gpu_vendor_device"), ("gpus", "gpu_address"), ("gpus", "gpu_vendor_device")],
        supports_check_mode=True,
    )
    params = module.params
    root = params["root"]
    if not os.path.isdir(root):
        module.fail_json(msg="root %s is not a directory: give the directory that holds sys/ and proc/ "
                             "(/ for this host)" % root)
    state = iommu_state(root)
    devices = read_pci_devices(root)
    if params["gpus"] is not None:
        judge_cards(module, state, devices)
    try:
        gpu = select_gpu(devices, address=params["gpu_address"], vendor_device=params["gpu_vendor_device"])
        selection_error = None
    except GpuSelectionError as exc:
        gpu = None
        selection_error = str(exc)
    except ValueError as exc:
        module.fail_json(msg=str(exc), isolated=False, status="bad_input", iommu=state)

    if gpu is None:
        status = "iommu_off" if not state["enabled"] else "no_such_gpu"
        text = iommu_messages.iommu_off(state, None, selection_error) if not state["enabled"] else selection_error
        module.fail_json(msg=text, isolated=False, status=status, iommu=state)

    verdict = isolation_verdict(gpu["address"], devices, allow_boot_vga=params["allow_boot_vga"],
                                acs_override=state["acs_override"],
                                accept_acs_override=params["accept_acs_override"])
    message = verdict.pop("message")
    verdict["iommu"] = state
    if not state["enabled"]:
        # No groups: nothing can be judged, but the card's functions and ids are known (for a role
        # that prepares vfio-pci before the reboot that turns the IOMMU on).
        verdict.update(isolated=False, status="iommu_off")
        module.fail_json(msg=iommu_messages.iommu_off(state, gpu, None), **verdict)
    if not verdict["isolated"]:
        module.fail_json(msg=message, **verdict)
    module.exit_json(changed=False, msg=message, **verdict)


def judge_cards(module, state, devices):
    """O(gpus): every card's verdict, the union of their functions and ids, how vfio-pci binds them."""
    params = module.params
    try:
        verdict = cards_verdict(devices, params["gpus"], allow_boot_vga=params["allow_boot_vga"],
                                acs_override=state["acs_override"],
                                accept_acs_override=params["accept_acs_override"])
    except GpuSelectionError as exc:
        if not state["enabled"]:
            module.fail_json(msg=iommu_messages.iommu_off(state, None, str(exc)), isolated=False,
                             status="iommu_off", iommu=state)
        module.fail_json(msg=str(exc), isolated=False, status="no_such_gpu", iommu=state)
    except ValueError as exc:
        module.fail_json(msg=str(exc), isolated=False, status="bad_input", iommu=state)
    message = verdict.pop("message")
    verdict["iommu"] = state
    if not state["enabled"]:
        verdict.update(isolated=False, status="iommu_off")
        module.fail_json(msg=iommu_messages.iommu_off(state, [c["gpu"] for c in verdict["cards"]], None), **verdict)
    if not verdict["isolated"]:
        module.fail_json(msg=message, **verdict)
    module.exit_json(changed=False, msg=message, **verdict)


if __name__ == "__main__":
    main()
