#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright (c) homelab.gpu_passthrough contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
from __future__ import annotations

DOCUMENTATION = r"""
---
module: proxmox_pci_mapping
short_description: Manage a Proxmox VE cluster PCI resource mapping through the API
version_added: 0.1.0
description:
  - Creates, updates or removes C(/cluster/mapping/pci/{id}), the cluster-wide PCI resource mapping
    that a VM references with C(hostpciN) V(mapping=<id>). API tokens cannot attach raw C(host=)
    devices (Proxmox VE allows that only to C(root@pam) with a password), so a mapping is how
    token-based automation passes a GPU through.
  - Give the map entries yourself with O(map), or let the module build the entry of one node from
    that node's C(/nodes/{node}/hardware/pci) data with O(from_node). O(from_node) refuses a GPU whose
    IOMMU group is not isolated, using the same verdict code as M(homelab.gpu_passthrough.gpu_isolation).
  - Entries given in O(map) are compared with the hardware of their node before anything is written
    (ids, IOMMU group, subsystem id; the checks PVE itself makes when a VM using the mapping starts),
    and an unknown node is refused.
  - Updates send the C(digest) read before, so a concurrent change is never overwritten; on a digest
    conflict the module reads the mapping once more and retries once, then fails with a clear message.
  - Authentication is by API token only (C(Authorization) header C(PVEAPIToken=...)). The secret is never logged.
author:
  - homelab.gpu_passthrough contributors (@homelab)
options:
  name:
    description:
      - Id of the mapping (a PVE configuration id, for example V(gpu-quadro-m4000)).
    type: str
    required: true
    aliases: [id]
  description:
    description:
      - Description of the mapping. Left as it is when not given.
    type: str
  state:
    description:
      - V(present) creates or updates the mapping, V(absent) removes it.
    type: str
    choices: [present, absent]
    default: present
  map:
    description:
      - The complete list of map entries. Replaces the entries PVE has.
      - One entry per node and card; several entries of one node are identical cards (a VM gets the first one
        free when it starts). The same device in two entries is refused.
      - Mutually exclusive with O(from_node) and O(from_nodes).
    type: list
    elements: dict
    suboptions:
      node:
        description: Cluster node name.
        type: str
        required: true
      path:
        description:
          - PCI path, V(0000:03:00) for the whole card (all functions) or V(0000:03:00.0) for one function.
        type: str
        required: true
      id:
        description: C(vendor:device) of the device (function .0 for a whole card), e.g. V(10de:13f1).
        type: str
        required: true
      iommugroup:
        description: IOMMU group of the device, as the node reports it.
        type: int
      subsystem_id:
        description: C(subsystem-vendor:subsystem-device) when the device reports one (PVE then requires it).
        type: str
      description:
        description: Description of this node's device (no C(,) or C(=)).
        type: str
  from_node:
    description:
      - Build the entry of one node from its C(/nodes/{node}/hardware/pci) data and replace that node's
        entry; entries of other nodes are kept.
      - Mutually exclusive with O(map) and O(from_nodes).
    type: dict
    suboptions:
      node:
        description: Cluster node name.
        type: str
        required: true
      gpu_address:
        description: PCI address of the GPU on that node. Default is the first NVIDIA display controller.
        type: str
      gpu_vendor_device:
        description: C(vendor:device) of the GPU, e.g. V(10de:13f1), when the address is not known.
        type: str
  from_nodes:
    description:
      - The complete map, one entry per card, each built from its node's C(/nodes/{node}/hardware/pci) data
        as O(from_node) does (a card whose IOMMU group is not isolated is refused, naming the node).
        Entries PVE has for cards not listed are removed.
      - Several cards give one mapping with an entry per node, PVE's model for identical cards in a cluster
        (a VM can then start, and migrate, on any of those nodes); two identical cards of one node are two
        entries of that node, and a VM gets the first one free when it starts.
      - The same card listed twice is refused. Mutually exclusive with O(map) and O(from_node).
    type: list
    elements: dict
    version_added: 0.2.0
    suboptions:
      node:
        description: Cluster node name.
        type: str
        required: true
      gpu_address:
        description: PCI address of the card on that node. Default is the first NVIDIA display controller.
        type: str
      gpu_vendor_device:
        description: C(vendor:device) of the card, e.g. V(10de:13f1), when the address is not known.
        type: str
  check_hardware:
    description:
      - Compare the entries of O(map) with their node's hardware before writing and fail on a difference.
    type: bool
    default: true
extends_documentation_fragment:
  - homelab.gpu_passthrough.proxmox
  - homelab.gpu_passthrough.proxmox.action_group
attributes:
  check_mode:
    support: full
    description: Reads the mapping and the hardware, reports what would change, writes nothing.
  diff_mode:
    support: full
    description: Shows the mapping before and after.
  idempotent:
    support: full
    description: A second run with the same options changes nothing.
notes:
  - The PVE privileges needed are C(Mapping.Modify) on C(/mapping/pci) and C(Sys.Audit) on C(/) (to read
    the hardware). Of the built-in roles only C(PVEMappingAdmin) and C(Administrator) hold C(Mapping.Modify);
    C(PVEAdmin) does not since PVE 8.0.
seealso:
  - module: homelab.gpu_passthrough.proxmox_node_pci_info
  - module: homelab.gpu_passthrough.gpu_isolation
"""

EXAMPLES = r"""
- name: Map the node's NVIDIA GPU, refusing it unless its IOMMU group is isolated
  homelab.gpu_passthrough.proxmox_pci_mapping:
    api_host: pve.example.org
    api_token_id: automation@pve!ansible
    api_token_secret: "{{ vault_pve_token_secret }}"
    ca_path: files/pve-root-ca.pem
    name: gpu-quadro-m4000
    description: Quadro M4000 for the whisper VM
    from_node:
      node: pve
      gpu_vendor_device: "10de:13f1"
  delegate_to: localhost

- name: Give the entries explicitly (checked against the node's hardware)
  homelab.gpu_passthrough.proxmox_pci_mapping:
    name: gpu-quadro-m4000
    map:
      - node: pve
        path: "0000:03:00"
        id: "10de:13f1"
        iommugroup: 15
        subsystem_id: "10de:1153"
  delegate_to: localhost

- name: One mapping for identical cards on two nodes of a cluster (each card checked on its node)
  homelab.gpu_passthrough.proxmox_pci_mapping:
    name: gpu-m4000
    from_nodes:
      - node: pve-a
        gpu_address: "0000:03:00.0"
      - node: pve-b
        gpu_vendor_device: "10de:13f1"
  delegate_to: localhost

- name: Remove the mapping
  homelab.gpu_passthrough.proxmox_pci_mapping:
    name: gpu-quadro-m4000
    state: absent
  delegate_to: localhost
"""

RETURN = r"""
mapping:
  description: The mapping after the run (V(null) when absent); in check mode, what it would be.
  returned: always
  type: dict
  sample: {"id": "gpu-quadro-m4000", "map": ["node=pve,path=0000:03:00,id=10de:13f1,iommugroup=15,subsystem-id=10de:1153"]}
map_entries:
  description: The map entries as dicts (keys as in PVE).
  returned: always
  type: list
  elements: dict
  sample: [{"node": "pve", "path": "0000:03:00", "id": "10de:13f1", "iommugroup": 15, "subsystem-id": "10de:1153"}]
digest:
  description: Digest of the mapping configuration after the run (V(null) in check mode when it changed).
  returned: always
  type: str
  sample: 5f1e6f5a0c8b8a1d9b3f8f2a6e1c3d4b5a6f7e8d
verdict:
  description:
    - With O(from_node), the isolation verdict of the GPU, the same keys as
      M(homelab.gpu_passthrough.gpu_isolation) returns (isolated, status, group, functions, intruders, ...).
  returned: when O(from_node) is given
  type: dict
  sample: {"isolated": true, "status": "isolated", "group": 15, "mapping_path": "0000:03:00"}
verdicts:
  description:
    - With O(from_nodes), the isolation verdict of each card in the order given, the keys of RV(verdict) and
      C(node).
  returned: when O(from_nodes) is given
  type: list
  elements: dict
  sample: [{"node": "pve-a", "isolated": true, "status": "isolated", "group": 15, "mapping_path": "0000:03:00"}]
retried_after_digest_conflict:
  description: V(true) when PVE reported a concurrent change and the module re-read and retried once.
  returned: always
  type: bool
  sample: false
msg:
  description: What was done.
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
from ansible_collections.homelab.gpu_passthrough.plugins.module_utils.pve_mapping import PciMappingStore
from ansible_collections.homelab.gpu_passthrough.plugins.module_utils.pve_pci import (
    MapEntryError,
    canonical_map,
    check_mapping_id,
    devices_from_hardware_pci,
    entry_from_node,
    entry_problems,
    mapping_state,
    merge_node_entries,
    normalize_entry,
    parse_map_entry,
    repeated_devices,
    state_text,
)

_VERDICT_KEYS = ("isolated", "status", "group", "groups", "gpu", "functions", "upstream_bridges", "intruders",
                 "vfio_ids", "drivers", "mapping_path", "topology_known", "boot_vga", "reasons", "message")


def _refuse_repeated(module, entries, option):
    repeated = repeated_devices(entries)
    if repeated:
        module.fail_json(msg="%s names the same device more than once (%s): a device can serve one VM at a time, so "
                             "give each card once (identical cards of one node are separate entries, each with "
                             "its own path)" % (option, ", ".join("%s on node %s" % (p, n) for n, p in repeated)))


def entries_from_nodes(module, client, specs):
    """The complete map from O(from_nodes): one entry per card, each card's verdict must be isolated."""
    hardware, entries, verdicts = {}, [], []
    for spec in specs:
        node = spec["node"]
        if node not in hardware:
            client.require_node(node)
            hardware[node] = devices_from_hardware_pci(client.hardware_pci(node))
        try:
            entry, verdict = entry_from_node(node, hardware[node], gpu_address=spec.get("gpu_address"),
                                             gpu_vendor_device=spec.get("gpu_vendor_device"))
        except (GpuSelectionError, ValueError) as exc:
            module.fail_json(msg="from_nodes, node %s: %s" % (node, exc))
        short = dict((k, verdict[k]) for k in _VERDICT_KEYS)
        short["node"] = node
        if not verdict["isolated"]:
            msg = "refusing to map %s on node %s: %s" % (verdict["gpu"]["address"], node, verdict["message"])
            module.fail_json(msg=msg, verdicts=verdicts + [short])
        entries.append(entry)
        verdicts.append(short)
    _refuse_repeated(module, entries, "from_nodes")
    return canonical_map(entries), verdicts


def desired_entries(module, client, store_current):
    """Return (list of canonical entry strings, verdict or None)."""
    params = module.params
    verdict = None
    if params["from_nodes"]:
        return entries_from_nodes(module, client, params["from_nodes"])
    if params["from_node"]:
        spec = params["from_node"]
        client.require_node(spec["node"])
        devices = devices_from_hardware_pci(client.hardware_pci(spec["node"]))
        try:
            entry, verdict = entry_from_node(spec["node"], devices, gpu_address=spec.get("gpu_address"),
                                             gpu_vendor_device=spec.get("gpu_vendor_device"))
        except (GpuSelectionError, ValueError) as exc:
            module.fail_json(msg="node %s: %s" % (spec["node"], exc))
        short = dict((k, verdict[k]) for k in _VERDICT_KEYS)
        if not verdict["isolated"]:
            msg = "refusing to map %s on node %s: %s" % (verdict["gpu"]["address"], spec["node"], verdict["message"])
            module.fail_json(msg=msg, verdict=short)
        current_map = (store_current or {}).get("map") or []
        return merge_node_entries(current_map, [entry]), short
    entries = []
    for raw in params["map"]:
        try:
            entries.append(normalize_entry(raw))
        except MapEntryError as exc:
            module.fail_json(msg=str(exc))
    _refuse_repeated(module, entries, "map")
    seen = set(e["node"] for e in entries)
    if params["check_hardware"]:
        for node in sorted(seen):
            client.require_node(node)
            devices = devices_from_hardware_pci(client.hardware_pci(node))
            problems = []
            for entry in (e for e in entries if e["node"] == node):
                problems.extend(entry_problems(entry, devices))
            if problems:
                module.fail_json(msg="the map entry for node %s disagrees with that node's hardware, so Proxmox VE "
                                     "would refuse to start a VM with it: %s. Fix the entry (or use from_node to "
                                     "fill it from the hardware)." % (node, "; ".join(problems)))
    return canonical_map(entries), verdict


def _want_state(want_map, description, current):
    state = {"map": canonical_map(want_map)}
    desc = description if description is not None else (current or {}).get("description")
    if desc not in (None, ""):
        state["description"] = desc
    return state


def main():
    argument_spec = connection_argspec(env_fallback)
    argument_spec.update(
        name=dict(type="str", required=True, aliases=["id"]),
        description=dict(type="str"),
        state=dict(type="str", choices=["present", "absent"], default="present"),
        map=dict(type="list", elements="dict", options=dict(
            node=dict(type="str", required=True),
            path=dict(type="str", required=True),
            id=dict(type="str", required=True),
            iommugroup=dict(type="int"),
            subsystem_id=dict(type="str"),
            description=dict(type="str"),
        )),
        from_node=dict(type="dict", options=dict(
            node=dict(type="str", required=True),
            gpu_address=dict(type="str"),
            gpu_vendor_device=dict(type="str"),
        )),
        from_nodes=dict(type="list", elements="dict", options=dict(
            node=dict(type="str", required=True),
            gpu_address=dict(type="str"),
            gpu_vendor_device=dict(type="str"),
        )),
        check_hardware=dict(type="bool", default=True),
    )
    module = AnsibleModule(
        argument_spec=argument_spec,
        mutually_exclusive=[("map", "from_node", "from_nodes")],
        required_if=[("state", "present", ("map", "from_node", "from_nodes"), True)],
        supports_check_mode=True,
    )
    params = module.params
    name = params["name"]
    try:
        check_mapping_id(name)
        client = client_from_params(params)
        store = PciMappingStore(client)
        current = store.get(name)
        before = mapping_state(current)
        result = dict(changed=False, retried_after_digest_conflict=False)
        if params["state"] == "absent":
            if current is not None and not module.check_mode:
                store.delete(name)
            result.update(changed=current is not None, mapping=None, map_entries=[], digest=None,
                          msg=("removed mapping %s" % name) if current is not None else "mapping %s is absent" % name)
            if module._diff:
                result["diff"] = dict(before=state_text(name, before), after="",
                                      before_header="mapping %s" % name, after_header="mapping %s" % name)
            module.exit_json(**result)

        want_map, verdict = desired_entries(module, client, current)
        after = _want_state(want_map, params["description"], current)
        changed = before != after
        if isinstance(verdict, list):
            result["verdicts"] = verdict
        elif verdict is not None:
            result["verdict"] = verdict
        mapping = current
        if changed and not module.check_mode:
            desc = params["description"]
            retried, mapping = store.ensure(name, want_map, description=desc, current=current)
            result["retried_after_digest_conflict"] = retried
            after = mapping_state(mapping)
        elif changed:
            mapping = dict(id=name, map=after["map"], digest=None)
            if "description" in after:
                mapping["description"] = after["description"]
        mapping = dict(mapping or {})
        mapping["id"] = name
        mapping.pop("type", None)
        result.update(
            changed=changed,
            mapping=dict((k, v) for k, v in mapping.items() if k != "digest"),
            map_entries=[parse_map_entry(m) for m in after["map"]],
            digest=mapping.get("digest"),
            msg=("%s mapping %s" % ("created" if current is None else "updated", name)) if changed
            else "mapping %s is up to date" % name,
        )
        if module._diff:
            result["diff"] = dict(before=state_text(name, before), after=state_text(name, after),
                                  before_header="mapping %s" % name, after_header="mapping %s" % name)
        module.exit_json(**result)
    except (PveApiError, MapEntryError) as exc:
        module.fail_json(msg=str(exc))
    except ValueError as exc:
        module.fail_json(msg=str(exc))


if __name__ == "__main__":
    main()
