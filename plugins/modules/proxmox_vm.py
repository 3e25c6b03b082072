#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright (c) homelab.gpu_passthrough contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
from __future__ import annotations

DOCUMENTATION = r"""
---
module: proxmox_vm
short_description: Create or clone a Proxmox VE QEMU VM, converge its configuration and power state
version_added: 0.1.0
description:
  - A thin module over the Proxmox VE API (API token authentication) for what the
    C(homelab.gpu_passthrough.proxmox_gpu_vm) role needs. It creates the VM (C(POST /nodes/{node}/qemu))
    or clones it from a template (C(POST .../clone)), then sets the keys of O(config) that differ
    (C(PUT .../config) with the digest read before), and starts or stops it. Every worker task (UPID)
    is waited for; a failed task fails the module with PVE's message.
  - The VM is found by O(vmid) or, without it, by its unique O(name) on O(node).
  - Values are PVE configuration strings, for example C(hostpci0) V(mapping=gpu,pcie=1),
    C(machine) V(q35), C(bios) V(ovmf), C(cpu) V(host), C(balloon) V(0). C(sshkeys) is given as plain text
    (one key per line); the module URL-encodes it as the API requires.
  - Keys of O(initial_config) are set only when the VM lacks them (disks to allocate such as
    C(efidisk0) V(local-lvm:1,efitype=4m), a cloud-init drive C(ide2) V(local-lvm:cloudinit), a NIC whose
    MAC PVE generates), so later runs do not fight PVE's rewritten values.
author:
  - homelab.gpu_passthrough contributors (@homelab)
options:
  task_timeout:
    description: Seconds to wait for each worker task (create, clone, start).
    type: int
    default: 300
  node:
    description: Node that holds (or will hold) the VM.
    type: str
    required: true
  name:
    description: VM name (a DNS name). Identifies the VM when O(vmid) is not given.
    type: str
    required: true
  vmid:
    description: VM id. When the VM does not exist and this is not given, the next free id is used.
    type: int
  clone:
    description:
      - Name or id of a template (on O(node)) to clone when the VM does not exist, for example a
        cloud-init image template. Without it the VM is created from O(initial_config) and O(config).
    type: str
  full_clone:
    description: Make a full copy of the template's disks (V(false) makes a linked clone).
    type: bool
    default: true
  clone_storage:
    description: Target storage of a full clone.
    type: str
  config:
    description:
      - PVE configuration keys and the values they must have. A V(null) value removes the key.
    type: dict
    default: {}
  initial_config:
    description:
      - Keys set only when the VM does not have them yet (disk allocations, NICs).
    type: dict
    default: {}
  state:
    description:
      - V(present) ensures the VM and its configuration; V(started) also starts it; V(stopped) stops it.
    type: str
    choices: [present, started, stopped]
    default: present
extends_documentation_fragment:
  - homelab.gpu_passthrough.proxmox
attributes:
  check_mode:
    support: full
    description: Reads the VM and reports what would change; creates, clones, writes and starts nothing.
  diff_mode:
    support: full
    description: Shows the configuration keys before and after.
  idempotent:
    support: full
    description: A second run with the same options changes nothing.
notes:
  - A running VM takes some changes (such as C(hostpci0)) only at its next start; RV(pending_restart) says so.
seealso:
  - module: homelab.gpu_passthrough.proxmox_pci_mapping
"""

EXAMPLES = r"""
- name: Clone a cloud-init template into a GPU VM and start it
  homelab.gpu_passthrough.proxmox_vm:
    api_host: pve.example.org
    api_token_id: automation@pve!ansible
    api_token_secret: "{{ vault_pve_token_secret }}"
    ca_path: files/pve-root-ca.pem
    node: pve
    name: whisper-gpu
    clone: debian12-cloud
    initial_config:
      efidisk0: local-lvm:1,efitype=4m,pre-enrolled-keys=0
    config:
      machine: q35
      bios: ovmf
      cpu: host
      memory: 16384
      balloon: 0
      hostpci0: mapping=gpu-quadro-m4000,pcie=1
      ciuser: ansible
      sshkeys: "{{ lookup('ansible.builtin.file', '~/.ssh/id_ed25519.pub') }}"
      ipconfig0: ip=192.168.1.50/24,gw=192.168.1.1
    state: started
  delegate_to: localhost
"""

RETURN = r"""
vmid:
  description: Id of the VM (in check mode, V(null) when it would be created without a given O(vmid)).
  returned: always
  type: int
  sample: 101
created:
  description: V(true) when the VM was created or cloned by this run.
  returned: always
  type: bool
config:
  description: The VM configuration after the run (without C(digest)).
  returned: always
  type: dict
status:
  description: Power state after the run (V(running), V(stopped)).
  returned: always
  type: str
pending_restart:
  description: V(true) when the VM was running while its configuration changed.
  returned: always
  type: bool
msg:
  description: What was done.
  returned: always
  type: str
"""

from ansible.module_utils.basic import AnsibleModule, env_fallback

from ansible_collections.homelab.gpu_passthrough.plugins.module_utils.pve_client import (
    TASK_ARGSPEC,
    PveApiError,
    client_from_params,
    connection_argspec,
    is_digest_conflict,
)
from ansible_collections.homelab.gpu_passthrough.plugins.module_utils.pve_qemu import (
    QemuVms,
    config_changes,
    config_value,
)


def _diff_text(config, keys):
    return "".join("%s: %s\n" % (k, config[k]) for k in sorted(keys) if config.get(k) is not None)


def main():
    argument_spec = connection_argspec(env_fallback)
    argument_spec.update(TASK_ARGSPEC)
    argument_spec.update(
        node=dict(type="str", required=True),
        name=dict(type="str", required=True),
        vmid=dict(type="int"),
        clone=dict(type="str"),
        full_clone=dict(type="bool", default=True),
        clone_storage=dict(type="str"),
        config=dict(type="dict", default={}),
        initial_config=dict(type="dict", default={}),
        state=dict(type="str", choices=["present", "started", "stopped"], default="present"),
    )
    module = AnsibleModule(argument_spec=argument_spec, supports_check_mode=True)
    p = module.params
    node, name = p["node"], p["name"]
    actions = []
    try:
        client = client_from_params(p)
        client.require_node(node)
        vms = QemuVms(client, node)
        found = vms.find(vmid=p["vmid"], name=None if p["vmid"] else name)
        created = False
        vmid = int(found["vmid"]) if found else p["vmid"]
        before = {}
        if found is None:
            created = True
            if p["clone"]:
                source = vms.find(vmid=int(p["clone"])) if p["clone"].isdigit() else vms.find(name=p["clone"])
                if source is None:
                    module.fail_json(msg="clone source %r is not a VM or template on node %s: give the name or id "
                                         "of the cloud-init template (qm list)" % (p["clone"], node))
                actions.append("cloned %s" % p["clone"])
            else:
                actions.append("created")
            if module.check_mode:
                current = {}
            else:
                vmid = vmid or vms.next_id()
                if p["clone"]:
                    vms.clone(int(source["vmid"]), vmid, name, full=p["full_clone"], storage=p["clone_storage"])
                else:
                    params = dict((k, config_value(k, v)) for k, v in p["initial_config"].items() if v is not None)
                    params.update((k, config_value(k, v)) for k, v in p["config"].items() if v is not None)
                    params["name"] = name
                    vms.create(vmid, params)
                current = vms.config(vmid)
        else:
            current = vms.config(vmid)
            before = dict(current)
        wanted = dict(p["config"])
        wanted.setdefault("name", name)
        to_set, to_delete = config_changes(current, wanted, p["initial_config"])
        if created and module.check_mode:
            running = False
        else:
            running = vms.status(vmid).get("status") == "running"
        pending_restart = False
        if to_set or to_delete:
            actions.append("set %s" % ", ".join(sorted(list(to_set) + ["-" + k for k in to_delete])))
            pending_restart = running
            if not module.check_mode:
                for attempt in (1, 2):
                    try:
                        vms.update(vmid, to_set, to_delete, digest=current.get("digest"))
                        break
                    except PveApiError as exc:
                        if attempt == 2 or not is_digest_conflict(exc):
                            raise
                        current = vms.config(vmid)
                        to_set, to_delete = config_changes(current, wanted, p["initial_config"])
                        if not (to_set or to_delete):
                            break
                current = vms.config(vmid)
            else:
                current = dict(current)
                current.update(to_set)
                for key in to_delete:
                    current.pop(key, None)
        status = "running" if running else "stopped"
        if p["state"] == "started" and not running:
            actions.append("started")
            if not module.check_mode:
                vms.start(vmid)
            status = "running"
        elif p["state"] == "stopped" and running:
            actions.append("stopped")
            if not module.check_mode:
                vms.stop(vmid)
            status = "stopped"
        after = dict((k, v) for k, v in current.items() if k != "digest")
        result = dict(changed=bool(actions), vmid=vmid, created=created, config=after, status=status,
                      pending_restart=pending_restart,
                      msg=("VM %s (%s) on %s: %s" % (name, vmid, node, "; ".join(actions))) if actions
                      else "VM %s (%s) on %s is as wanted" % (name, vmid, node))
        if module._diff:
            keys = set(k for k in list(before) + list(after) if k != "digest")
            result["diff"] = dict(before=_diff_text(before, keys), after=_diff_text(after, keys),
                                  before_header="VM %s" % name, after_header="VM %s" % name)
        module.exit_json(**result)
    except PveApiError as exc:
        module.fail_json(msg=str(exc), vmid=locals().get("vmid"))
    except ValueError as exc:
        module.fail_json(msg=str(exc))


if __name__ == "__main__":
    main()
