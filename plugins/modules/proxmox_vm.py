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
  disk_sizes:
    description:
      - Minimum size in GiB of the VM's disks, by key (for example C(scsi0) V(32)). A smaller disk is grown
        (C(PUT .../resize)) after the VM is created or cloned, and on later runs; a larger one is left as it
        is (PVE cannot shrink disks). A clone keeps its template's disk size and an imported cloud image
        has the image's size (2-3 GiB), so this is what gives the VM room for the driver and the model.
      - A key the VM does not have is an error that names the VM's disks.
    type: dict
    default: {}
  state:
    description:
      - V(present) ensures the VM and its configuration; V(started) also starts it; V(stopped) stops it.
      - V(absent) stops the VM when it runs and destroys it with its disks (C(DELETE /nodes/{node}/qemu/{vmid})
        with C(purge) and C(destroy-unreferenced-disks)); O(config), O(initial_config) and O(clone) are not
        used. A template is never destroyed (the module refuses), nor a VM whose C(name) is not O(name).
    type: str
    choices: [present, started, stopped, absent]
    default: present
extends_documentation_fragment:
  - homelab.gpu_passthrough.proxmox
  - homelab.gpu_passthrough.proxmox.action_group
attributes:
  check_mode:
    support: full
    description: Reads the VM and reports what would change; creates, clones, writes, starts and destroys nothing.
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
  description: Power state after the run (V(running), V(stopped)), or V(absent) with O(state=absent).
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
    DISK_KEY_RE,
    QemuVms,
    config_changes,
    config_value,
    disk_size_bytes,
    disk_storage,
)


class CloneSourceError(ValueError):
    """The template to clone is not on the node."""


def _diff_text(config, keys):
    return "".join("%s: %s\n" % (k, config[k]) for k in sorted(keys) if config.get(k) is not None)


class ProxmoxVmManager(object):
    """One VM on one node, converged step by step (the shape of community.docker's DockerNetworkManager).

    :meth:`present` finds the VM (by vmid, else by its unique name), creates or clones it when it is
    missing, and sets the configuration keys that differ; :meth:`started` and :meth:`stopped` then
    set the power state. In check mode every step reads and records what it would do, and writes
    nothing. :attr:`results` is what the module returns. The manager raises PveApiError (and
    ValueError for bad input); :attr:`vmid` tells which VM an error is about, once known.
    """

    def __init__(self, module, client):
        self.module = module
        self.params = module.params
        self.check_mode = module.check_mode
        self.client = client
        self.node = self.params["node"]
        self.name = self.params["name"]
        self.vms = QemuVms(client, self.node)
        self.vmid = None
        self.created = False
        self.actions = []
        self.before = {}
        self.current = {}
        self.running = False
        self.status = "stopped"
        self.pending_restart = False

    # ---- steps ---------------------------------------------------------------------------------
    def present(self):
        """The VM exists (created or cloned when missing) and has the wanted configuration."""
        p = self.params
        self.client.require_node(self.node)
        found = self.vms.find(vmid=p["vmid"], name=None if p["vmid"] else self.name)
        self.vmid = int(found["vmid"]) if found else p["vmid"]
        if found is None:
            self._create()
        else:
            self.current = self.vms.config(self.vmid)
            self.before = dict(self.current)
        if not (self.created and self.check_mode):
            self.running = self.vms.status(self.vmid).get("status") == "running"
        self._converge_config()
        self._grow_disks()
        self.status = "running" if self.running else "stopped"

    def absent(self):
        """The VM does not exist: stopped first when it runs, then destroyed with its disks. Refuses a
        template and a VM found by vmid whose name is not :attr:`name` (never someone else's VM)."""
        p = self.params
        self.client.require_node(self.node)
        found = self.vms.find(vmid=p["vmid"], name=None if p["vmid"] else self.name)
        self.status = "absent"
        if found is None:
            self.vmid = p["vmid"]
            return
        self.vmid = int(found["vmid"])
        self.current = self.vms.config(self.vmid)
        self.before = dict(self.current)
        if str(self.current.get("template", "0")) == "1":
            raise ValueError("refusing to destroy VM %s (%s) on %s: it is a template; remove it by hand (qm destroy %s) "
                             "if that is really meant" % (self.vmid, self.name, self.node, self.vmid))
        if self.current.get("name") != self.name:
            raise ValueError("refusing to destroy VM %s on %s: it is named %r, not %r; check vmid and name"
                             % (self.vmid, self.node, self.current.get("name"), self.name))
        if self.vms.status(self.vmid).get("status") == "running":
            self.actions.append("stopped")
            if not self.check_mode:
                self.vms.stop(self.vmid)
        self.actions.append("destroyed")
        if not self.check_mode:
            self.vms.destroy(self.vmid)
        self.current = {}

    def started(self):
        """After :meth:`present`: the VM runs (waits for the start task)."""
        if not self.running:
            self.actions.append("started")
            if not self.check_mode:
                self.vms.start(self.vmid)
            self.status = "running"

    def stopped(self):
        """After :meth:`present`: the VM is stopped (waits for the stop task)."""
        if self.running:
            self.actions.append("stopped")
            if not self.check_mode:
                self.vms.stop(self.vmid)
            self.status = "stopped"

    # ---- what the steps are made of ----------------------------------------------------------
    def _clone_source(self):
        clone = self.params["clone"]
        source = self.vms.find(vmid=int(clone)) if clone.isdigit() else self.vms.find(name=clone)
        if source is None:
            raise CloneSourceError("clone source %r is not a VM or template on node %s: give the name or id of "
                                   "the cloud-init template (qm list)" % (clone, self.node))
        return source

    def _check_storages(self):
        """Every storage a new VM's disks go to holds VM disks on this node (and the token may use it);
        else stop before anything is created, naming the node's storages for VM disks."""
        p = self.params
        wanted = set(disk_storage(str(v)) for k, v in list(p["initial_config"].items()) + list(p["config"].items())
                     if v is not None and DISK_KEY_RE.match(k) and not str(v).startswith("none")
                     # an ISO in a CD-ROM slot is read from its storage, not allocated there
                     and ("media=cdrom" not in str(v) or ":cloudinit" in str(v)))
        if p["clone"] and p["full_clone"] and p["clone_storage"]:
            wanted.add(p["clone_storage"])
        wanted.discard(None)
        if not wanted:
            return
        have = self.vms.disk_storages()
        missing = sorted(wanted - set(have))
        if missing:
            raise ValueError(
                "storage %s: not on node %s, not holding VM disks (content images), or not usable by this token; "
                "storages for VM disks there that this token may use: %s. Check the name (pvesm status on the node: "
                "local-lvm on an ext4/xfs install, local-zfs on a ZFS install) and the token's "
                "Datastore.AllocateSpace on /storage/<name>" % (
                    ", ".join(repr(m) for m in missing), self.node, ", ".join(have) or "none"))

    def _grow_disks(self):
        """Grow each disk of disk_sizes that is smaller than wanted (never shrinks)."""
        for key, gib in sorted(self.params["disk_sizes"].items()):
            gib = int(gib)
            if self.created and self.check_mode:
                self.actions.append("grow %s to %dG if smaller" % (key, gib))
                continue
            value = self.current.get(key)
            if value is None:
                disks = sorted(k for k in self.current if DISK_KEY_RE.match(k) and "media=cdrom" not in str(self.current[k]))
                raise ValueError("VM %s (%s) has no disk %s to grow to %dG; its disks: %s" % (
                    self.name, self.vmid, key, gib, ", ".join(disks) or "none"))
            size = disk_size_bytes(str(value))
            if size is not None and size >= gib * 1024 ** 3:
                continue
            self.actions.append("grew %s to %dG" % (key, gib))
            if self.check_mode:
                continue
            self.vms.resize(self.vmid, key, gib, digest=self.current.get("digest"))
            self.current = self.vms.config(self.vmid)

    def _create(self):
        p = self.params
        self.created = True
        self._check_storages()
        source = None
        if p["clone"]:
            source = self._clone_source()
            self.actions.append("cloned %s" % p["clone"])
        else:
            self.actions.append("created")
        if self.check_mode:
            self.current = {}
            return
        self.vmid = self.vmid or self.vms.next_id()
        if source is not None:
            self.vms.clone(int(source["vmid"]), self.vmid, self.name, full=p["full_clone"], storage=p["clone_storage"])
        else:
            params = dict((k, config_value(k, v)) for k, v in p["initial_config"].items() if v is not None)
            params.update((k, config_value(k, v)) for k, v in p["config"].items() if v is not None)
            params["name"] = self.name
            self.vms.create(self.vmid, params)
        self.current = self.vms.config(self.vmid)

    def _wanted(self):
        wanted = dict(self.params["config"])
        wanted.setdefault("name", self.name)
        return wanted

    def _converge_config(self):
        to_set, to_delete = config_changes(self.current, self._wanted(), self.params["initial_config"])
        if not (to_set or to_delete):
            return
        self.actions.append("set %s" % ", ".join(sorted(list(to_set) + ["-" + k for k in to_delete])))
        self.pending_restart = self.running
        if self.check_mode:
            self.current = dict(self.current)
            self.current.update(to_set)
            for key in to_delete:
                self.current.pop(key, None)
            return
        self._write_config(to_set, to_delete)
        self.current = self.vms.config(self.vmid)

    def _write_config(self, to_set, to_delete):
        """PUT the changes with the digest read before; on a digest conflict read again and retry once."""
        for attempt in (1, 2):
            try:
                self.vms.update(self.vmid, to_set, to_delete, digest=self.current.get("digest"))
                return
            except PveApiError as exc:
                if attempt == 2 or not is_digest_conflict(exc):
                    raise
                self.current = self.vms.config(self.vmid)
                to_set, to_delete = config_changes(self.current, self._wanted(), self.params["initial_config"])
                if not (to_set or to_delete):
                    return

    # ---- result ------------------------------------------------------------------------------
    @property
    def results(self):
        after = dict((k, v) for k, v in self.current.items() if k != "digest")
        where = "VM %s (%s) on %s" % (self.name, self.vmid, self.node)
        result = dict(changed=bool(self.actions), vmid=self.vmid, created=self.created, config=after,
                      status=self.status, pending_restart=self.pending_restart,
                      msg="%s: %s" % (where, "; ".join(self.actions)) if self.actions else "%s is as wanted" % where)
        if self.module._diff:
            keys = set(k for k in list(self.before) + list(after) if k != "digest")
            result["diff"] = dict(before=_diff_text(self.before, keys), after=_diff_text(after, keys),
                                  before_header="VM %s" % self.name, after_header="VM %s" % self.name)
        return result


def argument_spec():
    spec = connection_argspec(env_fallback)
    spec.update(TASK_ARGSPEC)
    spec.update(
        node=dict(type="str", required=True),
        name=dict(type="str", required=True),
        vmid=dict(type="int"),
        clone=dict(type="str"),
        full_clone=dict(type="bool", default=True),
        clone_storage=dict(type="str"),
        config=dict(type="dict", default={}),
        initial_config=dict(type="dict", default={}),
        disk_sizes=dict(type="dict", default={}),
        state=dict(type="str", choices=["present", "started", "stopped", "absent"], default="present"),
    )
    return spec


def main():
    module = AnsibleModule(argument_spec=argument_spec(), supports_check_mode=True)
    manager = None
    try:
        manager = ProxmoxVmManager(module, client_from_params(module.params))
        if module.params["state"] == "absent":
            manager.absent()
            module.exit_json(**manager.results)
        manager.present()
        if module.params["state"] == "started":
            manager.started()
        elif module.params["state"] == "stopped":
            manager.stopped()
        module.exit_json(**manager.results)
    except PveApiError as exc:
        module.fail_json(msg=str(exc), vmid=manager.vmid if manager else None)
    except ValueError as exc:
        module.fail_json(msg=str(exc))


if __name__ == "__main__":
    main()
