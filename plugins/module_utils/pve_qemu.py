# -*- coding: utf-8 -*-
# Copyright (c) homelab.gpu_passthrough contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""QEMU VMs through the PVE API: configuration values and their comparison (pure), and
:class:`QemuVms`, the lookups and actions on one node (every write that starts a worker task waits
for it). The connection and the errors live in ``pve_client``.
"""
from __future__ import annotations

import re
from urllib.parse import quote, unquote

from ansible_collections.homelab.gpu_passthrough.plugins.module_utils.pve_client import PveApiError

# ---- configuration values (pure) ---------------------------------------------------------------
_NET_MODELS = frozenset(("e1000", "e1000-82540em", "e1000-82544gc", "e1000-82545em", "e1000e", "i82551",
                         "i82557b", "i82559er", "ne2k_isa", "ne2k_pci", "pcnet", "rtl8139", "virtio", "vmxnet3"))
# Drive keys of a QEMU VM config (disks, EFI/TPM state, CD-ROM slots).
DISK_KEY_RE = re.compile(r"^(?:efidisk0|tpmstate0|(?:ide|sata|scsi|virtio)\d+)$")
_DEFAULT_KEYS = (
    (re.compile(r"^hostpci\d+$"), "host"), (re.compile(r"^cpu$"), "cputype"), (re.compile(r"^memory$"), "current"),
    (re.compile(r"^machine$"), "type"), (DISK_KEY_RE, "file"),
    (re.compile(r"^agent$"), "enabled"), (re.compile(r"^vga$"), "type"), (re.compile(r"^boot$"), "legacy"),
    (re.compile(r"^net\d+$"), "model"),
)
# Keys whose stored value gains fields PVE fills in (disk size, generated MAC): compare as a subset.
_SUBSET_KEYS = re.compile(r"^(?:efidisk0|tpmstate0|(?:ide|sata|scsi|virtio)\d+|net\d+)$")


def config_value(key, value):
    """The string PVE stores for ``value`` (booleans as 1/0; sshkeys URL-encoded as the API requires)."""
    if isinstance(value, bool):
        return "1" if value else "0"
    if key == "sshkeys":
        text = str(value).strip("\n")
        return quote(text, safe="")
    return str(value)


def parse_config_value(key, value):
    """Property string -> dict with the option's default key; plain values -> {'': value}."""
    default = next((d for rx, d in _DEFAULT_KEYS if rx.match(key)), None)
    text = str(value)
    if default is None:
        return {"": text}
    out = {}
    for part in [p for p in text.split(",") if p]:
        if "=" in part:
            k, v = part.split("=", 1)
        else:
            k, v = default, part
        if default == "model" and k in _NET_MODELS:
            out["model"] = k
            if v != k:
                out["macaddr"] = v.upper()
            continue
        if k == "macaddr":
            v = v.upper()
        out[k] = v
    return out


def config_matches(key, want, have):
    """True when the stored ``have`` already expresses ``want`` for config key ``key``."""
    if have is None:
        return False
    want_s, have_s = config_value(key, want), str(have)
    if key == "sshkeys":
        return unquote(want_s).strip() == unquote(have_s).strip()
    if want_s == have_s:
        return True
    pw, ph = parse_config_value(key, want_s), parse_config_value(key, have_s)
    if _SUBSET_KEYS.match(key):
        return all(ph.get(k) == v for k, v in pw.items())
    return pw == ph


def config_changes(current, config, initial_config=None):
    """Return (set, delete): values to PUT and keys to delete so that ``current`` matches.

    ``config``: key -> wanted value (None = the key must be absent). ``initial_config``: keys set only
    when the VM lacks them (disks to allocate, values that PVE rewrites such as a fresh net0 MAC).
    """
    to_set, to_delete = {}, []
    for key, want in sorted((config or {}).items()):
        have = current.get(key)
        if want is None:
            if have is not None:
                to_delete.append(key)
        elif not config_matches(key, want, have):
            to_set[key] = config_value(key, want)
    for key, want in sorted((initial_config or {}).items()):
        if want is not None and key not in current and key not in to_set:
            to_set[key] = config_value(key, want)
    return to_set, to_delete


_SIZE_RE = re.compile(r"^(\d+(?:\.\d+)?)([KMGT]?)$")


def disk_size_bytes(value):
    """Bytes of a drive value's ``size=`` (PVE writes it with a K/M/G/T suffix, plain bytes without),
    or None when the value has no size."""
    size = parse_config_value("scsi0", value).get("size")
    found = _SIZE_RE.match(size or "")
    if not found:
        return None
    return int(float(found.group(1)) * 1024 ** " KMGT".index(found.group(2) or " "))


def disk_storage(value):
    """The storage id of a drive value (``local-lvm:vm-100-disk-0,size=8G`` -> ``local-lvm``), or None."""
    volume = parse_config_value("scsi0", value).get("file", "")
    return volume.split(":", 1)[0] if ":" in volume and not volume.startswith("/") else None


# ---- GPU guests: which VMs, with which cards (pure) --------------------------------------------
# qemu-server's hostpci0..hostpci15 (the schema supplement's max_devices 16)
MAX_HOSTPCI = 16
_MAPPING_ID_RE = re.compile(r"^[a-z][a-z0-9_-]+$", re.I)
_DNS_NAME_RE = re.compile(r"^[A-Za-z0-9]([A-Za-z0-9-]*[A-Za-z0-9])?(\.[A-Za-z0-9]([A-Za-z0-9-]*[A-Za-z0-9])?)*$")
_STATIC_IP_RE = re.compile(r"(?:^|,)ip=([0-9.]+)/")
_VM_KEYS = ("name", "vmid", "node", "pci_mapping", "pci_mappings", "ipconfig0", "ssh_host")


class GuestSpecError(ValueError):
    """A list of GPU VMs that cannot be built, with what to change."""


def hostpci_config(mappings):
    """``{hostpci0: 'mapping=<id>,pcie=1', hostpci1: ...}``: one PCIe device per mapping id, in order."""
    return dict(("hostpci%d" % idx, "mapping=%s,pcie=1" % mid) for idx, mid in enumerate(mappings))


def gpu_guests(vms, name, vmid=0, node="", pci_mapping="", pci_mappings=None, ipconfig0="", ssh_host=""):
    """The GPU VMs a role run manages, each a dict: name, vmid (0: next free), node, pci_mappings,
    hostpci (the config keys), ipconfig0, ssh_host (the address to reach it).

    Without ``vms`` that is the one VM the plain arguments describe. With ``vms`` (one dict per VM:
    pci_mapping or pci_mappings, and optionally name, vmid, node, ipconfig0, ssh_host), what an item
    leaves out is derived from the arguments, stably for a given list: the name ``<name>-<n>`` and,
    when ``vmid`` is not 0, the id ``vmid + n - 1`` (n = 1 for the first item); node, ipconfig0 and the
    mappings as given. Raises GuestSpecError naming the item and what to change.
    """
    base = dict(name=name, vmid=int(vmid or 0), node=node, pci_mapping=pci_mapping,
                pci_mappings=list(pci_mappings or []), ipconfig0=ipconfig0, ssh_host=ssh_host)
    items = list(vms or [])
    derive = bool(items)
    guests = []
    for pos, item in enumerate(items or [{}], 1):
        where = "proxmox_gpu_vm_vms item %d" % pos if derive else "proxmox_gpu_vm"
        if not isinstance(item, dict):
            raise GuestSpecError("%s must be a dict with pci_mapping (or pci_mappings) and optionally name, vmid, "
                                 "node, ipconfig0, ssh_host; got %r" % (where, item))
        unknown = sorted(set(item) - set(_VM_KEYS))
        if unknown:
            raise GuestSpecError("%s: unknown key(s) %s; the keys are %s" % (where, ", ".join(unknown), ", ".join(_VM_KEYS)))
        spec = dict(base)
        if derive:
            spec.update(name="%s-%d" % (name, pos), vmid=base["vmid"] + pos - 1 if base["vmid"] else 0,
                        pci_mapping="", pci_mappings=[], ssh_host="")
        spec.update((k, v) for k, v in item.items() if v not in (None, "", []))
        mappings = list(spec["pci_mappings"]) or ([spec["pci_mapping"]] if spec["pci_mapping"] else [])
        if not mappings:
            raise GuestSpecError("%s has no card: give pci_mapping (a mapping id) or pci_mappings (several, one "
                                 "hostpciN each)" % where)
        bad = [m for m in mappings if not _MAPPING_ID_RE.match(str(m))]
        if bad:
            raise GuestSpecError("%s: %s is not a mapping id (a letter, then letters, digits, '-' or '_')"
                                 % (where, ", ".join(repr(b) for b in bad)))
        if len(mappings) > MAX_HOSTPCI:
            raise GuestSpecError("%s: %d mappings, but a VM has at most %d PCI devices (hostpci0..hostpci%d)"
                                 % (where, len(mappings), MAX_HOSTPCI, MAX_HOSTPCI - 1))
        if not _DNS_NAME_RE.match(str(spec["name"])):
            raise GuestSpecError("%s: the VM name %r is not a DNS name" % (where, spec["name"]))
        try:
            spec["vmid"] = int(spec["vmid"])
        except (TypeError, ValueError):
            raise GuestSpecError("%s: vmid %r is not a number" % (where, spec["vmid"])) from None
        if spec["vmid"] != 0 and spec["vmid"] < 100:
            raise GuestSpecError("%s: vmid %d: give 0 (the next free id) or 100 and above" % (where, spec["vmid"]))
        found = _STATIC_IP_RE.search(str(spec["ipconfig0"]))
        spec["ssh_host"] = spec["ssh_host"] or (found.group(1) if found else "")
        spec["pci_mappings"] = mappings
        spec["hostpci"] = hostpci_config(mappings)
        del spec["pci_mapping"]
        guests.append(spec)
    for key, what in (("name", "name"), ("vmid", "vmid"), ("ssh_host", "address (ipconfig0's ip or ssh_host)")):
        values = [g[key] for g in guests if g[key] not in (0, "")]
        twice = sorted(set(str(v) for v in values if values.count(v) > 1))
        if twice:
            raise GuestSpecError("proxmox_gpu_vm_vms: two VMs have the same %s (%s): give each VM its own"
                                 % (what, ", ".join(twice)))
    return guests


# ---- VMs on one node (API calls) ---------------------------------------------------------------
class QemuVms(object):
    """VM lookups and actions on one node (thin over the API; every write waits for its task)."""

    def __init__(self, client, node):
        self.client = client
        self.node = node

    def list(self):
        return self.client.get(["nodes", self.node, "qemu"])

    def find(self, vmid=None, name=None):
        """The list entry of the VM by vmid or (unique) name on this node, or None."""
        vms = self.list()
        if vmid is not None:
            return next((v for v in vms if int(v["vmid"]) == int(vmid)), None)
        hits = [v for v in vms if v.get("name") == name]
        if len(hits) > 1:
            raise PveApiError("%d VMs on node %s are named %r (vmids %s): give vmid to choose one" % (
                len(hits), self.node, name, ", ".join(str(v["vmid"]) for v in hits)))
        return hits[0] if hits else None

    def config(self, vmid):
        return self.client.get(["nodes", self.node, "qemu", vmid, "config"])

    def status(self, vmid):
        return self.client.get(["nodes", self.node, "qemu", vmid, "status", "current"])

    def next_id(self):
        return int(self.client.get(["cluster", "nextid"]))

    def create(self, vmid, params):
        upid = self.client.post(["nodes", self.node, "qemu"], vmid=vmid, **params)
        return self.client.wait_task(upid, what="creating VM %s" % vmid)

    def clone(self, source, newid, name, full=True, storage=None):
        upid = self.client.post(["nodes", self.node, "qemu", source, "clone"], newid=newid, name=name,
                                full=1 if full else 0, storage=storage)
        return self.client.wait_task(upid, what="cloning VM %s to %s" % (source, newid))

    def update(self, vmid, to_set, to_delete, digest=None):
        params = dict(to_set)
        if to_delete:
            params["delete"] = ",".join(to_delete)
        self.client.put(["nodes", self.node, "qemu", vmid, "config"], digest=digest, **params)

    def start(self, vmid):
        upid = self.client.post(["nodes", self.node, "qemu", vmid, "status", "start"])
        return self.client.wait_task(upid, what="starting VM %s" % vmid)

    def stop(self, vmid):
        upid = self.client.post(["nodes", self.node, "qemu", vmid, "status", "stop"])
        return self.client.wait_task(upid, what="stopping VM %s" % vmid)

    def destroy(self, vmid):
        """Remove a stopped VM with its disks (also unreferenced ones) and its jobs/HA entries."""
        upid = self.client.delete(["nodes", self.node, "qemu", vmid], purge=1, **{"destroy-unreferenced-disks": 1})
        return self.client.wait_task(upid, what="destroying VM %s" % vmid)

    def resize(self, vmid, disk, size_gib, digest=None):
        """Grow ``disk`` to ``size_gib`` GiB (PVE refuses to shrink); waits for the task."""
        upid = self.client.put(["nodes", self.node, "qemu", vmid, "resize"], disk=disk, size="%dG" % size_gib,
                               digest=digest)
        return self.client.wait_task(upid, what="resizing %s of VM %s" % (disk, vmid))

    def disk_storages(self):
        """Ids of the node's storages that hold VM disks (content images) and that the caller may see."""
        return sorted(s["storage"] for s in self.client.get(["nodes", self.node, "storage"], content="images"))
