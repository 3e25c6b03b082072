# -*- coding: utf-8 -*-
# Copyright (c) homelab.gpu_passthrough contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The GPU VMs of a proxmox_gpu_vm run as a filter (the derivation lives in module_utils/pve_qemu.py)."""
from __future__ import annotations

from ansible.errors import AnsibleFilterError

from ansible_collections.homelab.gpu_passthrough.plugins.module_utils import pve_qemu


def gpu_vm_guests(vms, name, vmid=0, node="", pci_mapping="", pci_mappings=None, ipconfig0="", ssh_host=""):
    try:
        return pve_qemu.gpu_guests(vms, name, vmid=vmid, node=node, pci_mapping=pci_mapping,
                                   pci_mappings=pci_mappings, ipconfig0=ipconfig0, ssh_host=ssh_host)
    except pve_qemu.GuestSpecError as e:
        raise AnsibleFilterError(str(e))


class FilterModule(object):
    """GPU VM filters."""

    def filters(self):
        return {"gpu_vm_guests": gpu_vm_guests}
