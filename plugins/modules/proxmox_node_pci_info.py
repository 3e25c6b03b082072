#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright (c) homelab.gpu_passthrough contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
from __future__ import annotations

DOCUMENTATION = r"""
---
module: proxmox_node_pci_info
short_description: PCI devices of a Proxmox VE node and its GPU isolation verdict, through the API
version_added: 0.1.0
description:
  - Reads C(/nodes/{node}/hardware/pci) with an API token (bridges included) and returns the devices in
    the same shape as M(homelab.gpu_passthrough.iommu_info).
  - Selects a GPU (by O(gpu_address), by O(gpu_vendor_device), or the first NVIDIA display controller)
    and returns the isolation verdict with the same keys as M(homelab.gpu_passthrough.gpu_isolation),
    computed by the same shared code, plus the map entry a PCI resource mapping needs.
  - The API gives no PCI topology, driver or boot display flag; the verdict says so in its reasons
    (bridges in the group are accepted, since a bridge cannot hide an endpoint).
  - Unlike M(homelab.gpu_passthrough.gpu_isolation) this module does not fail when the group is not
    isolated; test RV(isolated) (M(homelab.gpu_passthrough.proxmox_pci_mapping) refuses such a GPU).
author:
  - homelab.gpu_passthrough contributors (@homelab)
options:
  node:
    description: Name of the cluster node to read.
    type: str
    required: true
  gpu_address:
    description: PCI address of the GPU (V(0000:03:00.0) or V(03:00.0)). Mutually exclusive with O(gpu_vendor_device).
    type: str
  gpu_vendor_device:
    description: C(vendor:device) of the GPU, for example V(10de:13f1). Mutually exclusive with O(gpu_address).
    type: str
extends_documentation_fragment:
  - homelab.gpu_passthrough.proxmox
  - homelab.gpu_passthrough.proxmox.action_group
  - homelab.gpu_passthrough.read_only
seealso:
  - module: homelab.gpu_passthrough.gpu_isolation
  - module: homelab.gpu_passthrough.proxmox_pci_mapping
"""

EXAMPLES = r"""
- name: Read the node's PCI devices and the GPU's isolation verdict
  homelab.gpu_passthrough.proxmox_node_pci_info:
    api_host: pve.example.org
    api_token_id: automation@pve!ansible
    api_token_secret: "{{ vault_pve_token_secret }}"
    ca_path: files/pve-root-ca.pem
    node: pve
    gpu_vendor_device: "10de:13f1"
  delegate_to: localhost
  register: pci

- name: Stop when the GPU cannot be passed through
  ansible.builtin.assert:
    that: pci.isolated
    fail_msg: "{{ pci.msg }}"
"""

RETURN = r"""
devices:
  description: All PCI devices of the node, keys as M(homelab.gpu_passthrough.iommu_info) returns them
    (C(driver), C(boot_vga) and C(parent_bridges) are V(null), the API does not report them).
  returned: always
  type: list
  elements: dict
  sample: [{"address": "0000:03:00.0", "vendor_id": "10de", "device_id": "13f1", "iommu_group": 15}]
gpu_found:
  description: V(false) when no GPU was given and the node has no NVIDIA display controller.
  returned: always
  type: bool
isolated:
  description: V(true) when the GPU can be passed through (V(null) when no GPU was found).
  returned: always
  type: bool
status:
  description: V(isolated), V(no_iommu_group), V(intruders), or V(no_gpu).
  returned: always
  type: str
group:
  description: IOMMU group of the GPU.
  returned: when a GPU was found
  type: int
groups:
  description: IOMMU groups of all functions of the card.
  returned: when a GPU was found
  type: list
  elements: int
gpu:
  description: The selected GPU.
  returned: when a GPU was found
  type: dict
functions:
  description: The functions of the card (the GPU's slot, vendor and a class a graphics card carries).
  returned: when a GPU was found
  type: list
  elements: dict
upstream_bridges:
  description: Bridges in the group (accepted but unverified, the API gives no topology).
  returned: when a GPU was found
  type: list
  elements: dict
host_bridges:
  description: Host bridges in the group, accepted because a host bridge that no host driver holds does
    not block VFIO (unverified, the API does not report drivers).
  returned: when a GPU was found
  type: list
  elements: dict
intruders:
  description: Devices in the group that block passthrough.
  returned: when a GPU was found
  type: list
  elements: dict
slot_foreign:
  description: Devices in the GPU's slot that are not functions of the card (another vendor, or a class
    a graphics card does not carry, such as an AMD APU's PSP, USB and HD audio controllers).
  returned: when a GPU was found
  type: list
  elements: dict
vfio_ids:
  description: Unique C(vendor:device) pairs of the functions.
  returned: when a GPU was found
  type: list
  elements: str
drivers:
  description: Always V(null) per function (the API does not report drivers).
  returned: when a GPU was found
  type: dict
mapping_path:
  description: C(path) for a PCI resource mapping (whole card).
  returned: when a GPU was found
  type: str
  sample: "0000:03:00"
topology_known:
  description: Always V(false) through the API.
  returned: when a GPU was found
  type: bool
boot_vga:
  description: Always V(null) through the API.
  returned: when a GPU was found
  type: bool
reasons:
  description: Every observation behind the verdict.
  returned: when a GPU was found
  type: list
  elements: str
vfio_bystanders:
  description: Devices outside the card with one of RV(vfio_ids).
  returned: when a GPU was found
  type: list
  elements: dict
bind_by_ids:
  description: RV(vfio_ids) less those a device in RV(vfio_bystanders) carries (for C(vfio-pci ids=)).
  returned: when a GPU was found
  type: list
  elements: str
  version_added: 0.2.0
bind_by_override:
  description: The card's functions whose ids a device in RV(vfio_bystanders) carries (to bind by address).
  returned: when a GPU was found
  type: list
  elements: str
  version_added: 0.2.0
unbound_functions:
  description: The functions as C(address (no driver)) (the API does not report drivers).
  returned: when a GPU was found
  type: list
  elements: str
acs_override:
  description: Always V(null) through the API, which does not show the node's kernel command line;
    M(homelab.gpu_passthrough.gpu_isolation) on the node checks it.
  returned: when a GPU was found
  type: str
map_entry:
  description: The map entry for this GPU (keys as in PVE), what M(homelab.gpu_passthrough.proxmox_pci_mapping) would write.
  returned: when a GPU was found
  type: dict
  sample: {"node": "pve", "path": "0000:03:00", "id": "10de:13f1", "iommugroup": 15, "subsystem-id": "10de:1153"}
msg:
  description: The verdict in one paragraph.
  returned: always
  type: str
"""

from ansible.module_utils.basic import AnsibleModule, env_fallback

from ansible_collections.homelab.gpu_passthrough.plugins.module_utils.iommu import GpuSelectionError
from ansible_collections.homelab.gpu_passthrough.plugins.module_utils.pve_client import (
    PveApiError,
    client_from_params,
    connection_argspec,
)
from ansible_collections.homelab.gpu_passthrough.plugins.module_utils.pve_pci import (
    devices_from_hardware_pci,
    entry_from_node,
)


def main():
    argument_spec = connection_argspec(env_fallback)
    argument_spec.update(
        node=dict(type="str", required=True),
        gpu_address=dict(type="str"),
        gpu_vendor_device=dict(type="str"),
    )
    module = AnsibleModule(argument_spec=argument_spec, mutually_exclusive=[("gpu_address", "gpu_vendor_device")],
                           supports_check_mode=True)
    params = module.params
    try:
        client = client_from_params(params)
        client.require_node(params["node"])
        devices = devices_from_hardware_pci(client.hardware_pci(params["node"]))
    except (PveApiError, ValueError) as exc:
        module.fail_json(msg=str(exc))
    explicit = params["gpu_address"] or params["gpu_vendor_device"]
    try:
        entry, verdict = entry_from_node(params["node"], devices, gpu_address=params["gpu_address"],
                                         gpu_vendor_device=params["gpu_vendor_device"])
    except (GpuSelectionError, ValueError) as exc:
        if explicit:
            module.fail_json(msg="node %s: %s" % (params["node"], exc), devices=devices)
        module.exit_json(changed=False, devices=devices, gpu_found=False, isolated=None, status="no_gpu",
                         msg="node %s: %s" % (params["node"], exc))
    result = dict((k, v) for k, v in verdict.items() if k != "message")
    module.exit_json(changed=False, devices=devices, gpu_found=True, map_entry=entry, msg=verdict["message"],
                     **result)


if __name__ == "__main__":
    main()
