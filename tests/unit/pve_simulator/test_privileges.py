# SPDX-License-Identifier: GPL-3.0-or-later
"""The one privilege list (_proxmox_api_access_grants, roles/proxmox_api_access/vars/main.yml) against
what the collection's API calls need.

* Every call of plugins/module_utils/pve_*.py (found in the code, matched to the official schema's
  paths) is allowed by the list under the permissions the schema states for it (``check``), and the
  privileges its description names are granted or are not needed by what the collection sends.
* No privilege of the list is unused: with any one removed, the simulated PVE API refuses the call of
  the collection that needs it, with PVE's 403 text naming the path and the privilege; with the full
  list the same calls pass (the roles' tests run with exactly this list, tests/pve_simulator/runner.py).
"""
from __future__ import annotations

import ast
import copy
import glob
import json
import os
import re
import sys

import pytest
import yaml
from jinja2.nativetypes import NativeEnvironment

from ansible.module_utils.basic import AnsibleModule
from ansible.module_utils.testing import patch_module_args
from ansible_collections.homelab.gpu_passthrough.plugins.module_utils.pve_client import PveApiError, PveClient
from ansible_collections.homelab.gpu_passthrough.plugins.module_utils.pve_mapping import PciMappingStore
from ansible_collections.homelab.gpu_passthrough.plugins.module_utils.pve_storage import NodeStorage
from ansible_collections.homelab.gpu_passthrough.plugins.module_utils import pve_qemu
from ansible_collections.homelab.gpu_passthrough.plugins.modules import proxmox_vm

sys.path.insert(0, os.path.abspath(os.path.join(os.path.dirname(__file__), os.pardir, os.pardir)))
from pve_simulator.access import VALID_PRIVS, AccessControl  # noqa: E402
from pve_simulator.runner import (  # noqa: E402
    REPO, TEST_SSH_PUBLIC_KEY_FILE, Simulator, access_config, fill_path, load_grants, placeholder_values)
from pve_simulator.server import SCHEMA_FILE  # noqa: E402

GRANTS = load_grants()
VALUES = placeholder_values()
ENTRY = "node=pve,path=0000:03:00,id=10de:13f1,iommugroup=15,subsystem-id=10de:1153"


# ---- the list itself -----------------------------------------------------------------------------
def test_grants_are_real_privileges_on_distinct_paths():
    paths = [g["path"] for g in GRANTS]
    assert len(paths) == len(set(paths)), paths
    for grant in GRANTS:
        assert set(grant) == {"path", "privileges", "why"}, grant
        assert grant["privileges"] and grant["why"].strip(), grant
        unknown = [p for p in grant["privileges"] if p not in VALID_PRIVS]
        assert not unknown, f"{grant['path']}: not PVE privileges: {unknown}"
        assert len(set(grant["privileges"])) == len(grant["privileges"]), grant
        assert set(re.findall(r"\{(\w+)\}", grant["path"])) <= {"node", "storage", "image_storage", "bridge"}, grant["path"]


# ---- the calls of the collection, from its code --------------------------------------------------
def collection_calls():
    """(method, schema path) of every ``client.get/post/put/delete([...])`` in module_utils/pve_*.py."""
    with open(SCHEMA_FILE, encoding="utf-8") as fh:
        endpoints = json.load(fh)["endpoints"]
    found = set()
    for source in sorted(glob.glob(os.path.join(REPO, "plugins", "module_utils", "pve_*.py"))):
        with open(source, encoding="utf-8") as fh:
            tree = ast.parse(fh.read())
        for node in ast.walk(tree):
            if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
                    and node.func.attr in ("get", "post", "put", "delete") and node.args
                    and isinstance(node.args[0], ast.List)):
                continue
            segments = [e.value if isinstance(e, ast.Constant) else None for e in node.args[0].elts]
            matches = [p for p in endpoints if _matches(p, segments)]
            assert len(matches) == 1, f"{source}:{node.lineno}: {segments} matches {matches}"
            found.add((node.func.attr.upper(), matches[0]))
    # PveClient.wait_task polls the task status of every worker task
    found.add(("GET", "/nodes/{node}/tasks/{upid}/status"))
    return sorted(found), endpoints


def _matches(schema_path, segments):
    parts = schema_path.strip("/").split("/")
    return len(parts) == len(segments) and all(
        seg is None and part.startswith("{") or seg == part for part, seg in zip(parts, segments))


CALLS, ENDPOINTS = collection_calls()
SAMPLE = {"node": "pve", "vmid": 150, "newid": 151, "id": "gpu", "upid": "UPID:pve:x", "storage": VALUES["image_storage"]}
# privileges a call's description names that the collection's requests do not need
NOT_NEEDED = {
    ("POST", "/nodes/{node}/qemu", "VM.Backup"): "only for a restore (option 'archive'), never sent",
    ("GET", "/nodes/{node}/tasks/{upid}/status", "Sys.Audit"): "the token owns the tasks it starts",
    ("GET", "/nodes/{node}/tasks/{upid}/log", "Sys.Audit"): "the token owns the tasks it starts",
    ("POST", "/nodes/{node}/storage/{storage}/download-url", "Sys.Modify"):
        "the old alternative (with Sys.Audit on /) to Sys.AccessNetwork on the node, which is granted",
    ("GET", "/cluster/mapping/pci", "Mapping.Audit"): "any of Mapping.Modify/Use/Audit lists a mapping",
    ("GET", "/nodes/{node}/storage", "Datastore.Audit"):
        "either of Datastore.Audit/AllocateSpace lists a storage; AllocateSpace is granted on the VM's storage",
}


def _grants_model():
    config = access_config("grants@pve!check", "s", "r")
    return AccessControl.from_config(config)


def test_the_collection_makes_the_calls_this_test_checks():
    assert ("PUT", "/nodes/{node}/qemu/{vmid}/config") in CALLS and ("POST", "/cluster/mapping/pci") in CALLS
    assert ("GET", "/nodes/{node}/hardware/pci") in CALLS and ("POST", "/nodes/{node}/qemu/{vmid}/clone") in CALLS


@pytest.mark.parametrize("method, path", CALLS, ids=[f"{m} {p}" for m, p in CALLS])
def test_every_call_is_allowed_by_the_grants_as_the_schema_states(method, path):
    perms = ENDPOINTS[path]["info"][method]["permissions"]
    ac = _grants_model()
    # the schema's check, evaluated like pve-access-control (raises PermissionDenied when not granted)
    ac.check_api2(perms, "grants@pve!check", dict(SAMPLE))
    named = [p for p in re.findall(r"'?([A-Z][A-Za-z]+\.[A-Za-z.]+[A-Za-z])'?", perms.get("description", ""))
             if p in VALID_PRIVS]
    granted = {p for g in GRANTS for p in g["privileges"]}
    for priv in named:
        assert priv in granted or (method, path, priv) in NOT_NEEDED, (
            f"{method} {path}: the schema names {priv} ({perms['description']!r}); grant it or say why not")


# ---- no privilege unused: remove one, the call that needs it is refused ---------------------------
def _render(value, context):
    env = NativeEnvironment()
    env.filters["combine"] = lambda a, *others: {k: v for d in (a,) + others for k, v in d.items()}
    if isinstance(value, dict):
        return {k: _render(v, context) for k, v in value.items()}
    if isinstance(value, str) and "{{" in value:
        return env.from_string(value).render(**context)
    return value


def role_vm_params(clone_template=""):
    """proxmox_gpu_vm's config and initial_config, rendered from its defaults and vars (test values)."""
    role = os.path.join(REPO, "roles", "proxmox_gpu_vm")
    with open(os.path.join(role, "defaults", "main.yml"), encoding="utf-8") as fh:
        context = yaml.safe_load(fh)
    with open(TEST_SSH_PUBLIC_KEY_FILE, encoding="utf-8") as fh:
        context.update(proxmox_gpu_vm_node="pve", proxmox_gpu_vm_ssh_public_key=fh.read().strip(),
                       proxmox_gpu_vm_pci_mapping="gpu", proxmox_gpu_vm_clone_template=clone_template)
    # the one VM the role's preflight works out (filter gpu_vm_guests), with its hostpci0
    context["__proxmox_gpu_vm_guest"] = pve_qemu.gpu_guests(
        [], context["proxmox_gpu_vm_name"], vmid=context["proxmox_gpu_vm_vmid"], node=context["proxmox_gpu_vm_node"],
        pci_mapping=context["proxmox_gpu_vm_pci_mapping"], pci_mappings=context["proxmox_gpu_vm_pci_mappings"],
        ipconfig0=context["proxmox_gpu_vm_ipconfig0"], ssh_host=context["proxmox_gpu_vm_ssh_host"])[0]
    with open(os.path.join(role, "vars", "main.yml"), encoding="utf-8") as fh:
        role_vars = yaml.safe_load(fh)
    for key, value in role_vars.items():  # in file order: later vars use earlier ones
        context[key] = _render(value, context)
    # tasks/vm.yml: config is _proxmox_gpu_vm_config combined with the VM's hostpciN
    config = dict(context["_proxmox_gpu_vm_config"], **context["__proxmox_gpu_vm_guest"]["hostpci"])
    return config, context["_proxmox_gpu_vm_initial_config"]


def vm_manager(sim, client, **params):
    args = dict(api_host="127.0.0.1", api_port=sim.port, api_token_id=sim.token_id, api_token_secret=sim.token_secret,
                ca_path=sim.ca_path, node="pve", name="whisper-gpu", vmid=150, _ansible_check_mode=False)
    args.update(params)
    with patch_module_args(args):
        module = AnsibleModule(argument_spec=proxmox_vm.argument_spec(), supports_check_mode=True)
    return proxmox_vm.ProxmoxVmManager(module, client)


def root_client(sim):
    return PveClient(host="127.0.0.1", port=sim.port, token_id=sim.root_token_id, token_secret=sim.root_token_secret,
                     ca_path=sim.ca_path, poll_interval=0.05)


def _create_vm(sim, client, state="present"):
    config, initial = role_vm_params()
    manager = vm_manager(sim, client, config=config, initial_config=initial, state=state)
    manager.present()
    if state == "started":
        manager.started()


def _clone_vm(sim, client, template="debian12-cloud"):
    config, initial = role_vm_params(clone_template=template)
    vm_manager(sim, client, clone=template, clone_storage=VALUES["storage"], config=config,
               initial_config=initial).present()


def _clone_bare_template(sim, client):
    """A template without EFI disk and cloud-init drive (made by root): the role adds them to the clone."""
    root = root_client(sim)
    root.wait_task(root.post(["nodes", "pve", "qemu"], vmid=9100, name="bare-cloud", scsi0="local-lvm:3",
                             net0="virtio,bridge=vmbr0", serial0="socket", scsihw="virtio-scsi-single"))
    root.wait_task(root.post(["nodes", "pve", "qemu", 9100, "template"]))
    _clone_vm(sim, client, template="bare-cloud")


def _grow_disk(sim, client):
    """The VM exists (cloned by root, the template's 3G disk); the role's disk size grows its scsi0."""
    root = root_client(sim)
    root.wait_task(root.post(["nodes", "pve", "qemu", 9000, "clone"], newid=150, name="whisper-gpu", full=1))
    vm_manager(sim, client, disk_sizes={"scsi0": 32}).present()


IMAGE_URL = "https://cloud.example.invalid/debian-12-generic-amd64.qcow2"


def _download_image(sim, client):
    """The cloud image route's download (the simulated node serves IMAGE_URL from a local file)."""
    NodeStorage(client, "pve").download(VALUES["image_storage"], "import", IMAGE_URL, "debian-12-generic-amd64.qcow2")


def _create_vm_from_image(sim, client):
    """A VM whose disk imports an image in the image storage (downloaded there by root)."""
    NodeStorage(root_client(sim), "pve").download(VALUES["image_storage"], "import", IMAGE_URL,
                                                  "debian-12-generic-amd64.qcow2")
    config, initial = role_vm_params()
    initial = dict(initial, scsi0="%s:0,import-from=%s:import/debian-12-generic-amd64.qcow2" % (
        VALUES["storage"], VALUES["image_storage"]))
    vm_manager(sim, client, config=config, initial_config=initial).present()


def _map_gpu(sim, client):
    PciMappingStore(client).create("gpu", [ENTRY], "GPU")


def _list_pci(sim, client):
    client.get(["nodes", "pve", "hardware", "pci"])


# (path of the grant, privilege) -> (what the collection does, the 403 reason PVE gives)
CASES = {
    ("/", "Sys.Audit"): (_list_pci, "Permission check failed (/, Sys.Audit|Sys.Modify)"),
    ("/mapping/pci", "Mapping.Modify"): (_map_gpu, "Permission check failed (/mapping/pci, Mapping.Modify)"),
    ("/mapping/pci", "Mapping.Use"): (_create_vm, "Permission check failed (/mapping/pci/gpu, Mapping.Use)"),
    # qemu-server create_vm refuses a missing VM.Allocate with raise_perm_exc() and no path
    ("/vms", "VM.Allocate"): (_create_vm, "Permission check failed"),
    ("/vms", "VM.Audit"): (_create_vm, "Permission check failed (/vms/150, VM.Audit)"),
    ("/vms", "VM.Clone"): (_clone_vm, "Permission check failed (/vms/9000, VM.Clone)"),
    ("/vms", "VM.Config.CDROM"): (_clone_bare_template, "Permission check failed (/vms/150, VM.Config.CDROM)"),
    ("/vms", "VM.Config.CPU"): (_create_vm, "Permission check failed (/vms/150, VM.Config.CPU)"),
    ("/vms", "VM.Config.Cloudinit"): (_clone_bare_template,
                                      "Permission check failed (/vms/150, VM.Config.Cloudinit)"),
    ("/vms", "VM.Config.Disk"): (_create_vm, "Permission check failed (/vms/150, VM.Config.Disk)"),
    ("/vms", "VM.Config.HWType"): (_create_vm, "Permission check failed (/vms/150, VM.Config.HWType)"),
    ("/vms", "VM.Config.Memory"): (_create_vm, "Permission check failed (/vms/150, VM.Config.Memory)"),
    ("/vms", "VM.Config.Network"): (_create_vm, "Permission check failed (/vms/150, VM.Config.Network)"),
    ("/vms", "VM.Config.Options"): (_create_vm, "Permission check failed (/vms/150, VM.Config.Options)"),
    ("/vms", "VM.PowerMgmt"): (lambda s, c: _create_vm(s, c, state="started"),
                               "Permission check failed (/vms/150, VM.PowerMgmt)"),
    # (a new VM's disks: proxmox_vm stops before the create, see the test below)
    ("/storage/{storage}", "Datastore.AllocateSpace"): (
        _grow_disk, "Permission check failed (/storage/local-lvm, Datastore.AllocateSpace)"),
    ("/storage/{image_storage}", "Datastore.AllocateTemplate"): (
        _download_image, "Permission check failed (/storage/local, Datastore.AllocateTemplate)"),
    # pve-storage check_volume_access for the import-from source (an import volume, read like an ISO)
    ("/storage/{image_storage}", "Datastore.Audit"): (
        _create_vm_from_image, "Permission check failed (/storage/local, Datastore.AllocateSpace|Datastore.Audit)"),
    # the schema's check is an "or" (Sys.AccessNetwork on the node, or Sys.Audit and Sys.Modify on /), so
    # PVE's 403 names no path (RPCEnvironment.pm exec_api2_perm_check); the module adds what it needs
    ("/nodes/{node}", "Sys.AccessNetwork"): (_download_image, "Permission check failed"),
    ("/sdn/zones/localnetwork/{bridge}", "SDN.Use"): (
        _create_vm, "Permission check failed (/sdn/zones/localnetwork/vmbr0, SDN.Use)"),
}
GRANTED = [(g["path"], p) for g in GRANTS for p in g["privileges"]]


def test_every_granted_privilege_has_its_case_and_no_case_is_stale():
    assert sorted(GRANTED) == sorted(CASES), "a privilege of the list without a call that needs it, or a stale case"


def _run(tmp_path, grants, action):
    image = tmp_path / "image.qcow2"
    image.parent.mkdir(parents=True, exist_ok=True)
    image.write_bytes(b"simulated cloud image")
    sim = Simulator(str(tmp_path / "simulated-pve"), grants=grants, downloads={IMAGE_URL: str(image)}).start()
    try:
        client = PveClient(host="127.0.0.1", port=sim.port, token_id=sim.token_id, token_secret=sim.token_secret,
                           ca_path=sim.ca_path, poll_interval=0.05)
        if action is not _map_gpu:  # the mapping the VM uses exists (made by root)
            PciMappingStore(root_client(sim)).create("gpu", [ENTRY], "GPU")
        action(sim, client)
    finally:
        sim.stop()


@pytest.mark.parametrize("path, priv", sorted(CASES), ids=[f"{p} {v}" for p, v in sorted(CASES)])
def test_without_the_privilege_the_call_that_needs_it_is_refused(tmp_path, path, priv):
    action, reason = CASES[(path, priv)]
    grants = copy.deepcopy(GRANTS)
    for grant in grants:
        if grant["path"] == path:
            grant["privileges"].remove(priv)
    grants = [g for g in grants if g["privileges"]]
    with pytest.raises(PveApiError) as info:
        _run(tmp_path / "without", grants, action)
    assert info.value.status == 403 and info.value.reason == reason, str(info.value)
    assert "Proxmox API token and privileges" in str(info.value)  # the advice points to the README section
    # with the whole list the same calls pass
    _run(tmp_path / "with", GRANTS, action)


def test_the_paths_are_filled_from_the_roles_variables():
    assert fill_path("/storage/{storage}", VALUES) == "/storage/local-lvm"
    assert fill_path("/sdn/zones/localnetwork/{bridge}", VALUES) == "/sdn/zones/localnetwork/vmbr0"
    assert fill_path("/storage/{image_storage}", VALUES) == "/storage/local"


def test_without_datastore_allocatespace_a_new_vm_stops_before_its_create(tmp_path):
    """Storages the token may not allocate on are not in GET /nodes/{node}/storage: proxmox_vm names the
    storage, the node's usable ones and the privilege before any create (nothing half-made)."""
    grants = copy.deepcopy(GRANTS)
    for grant in grants:
        if grant["path"] == "/storage/{storage}":
            grant["privileges"].remove("Datastore.AllocateSpace")
    grants = [g for g in grants if g["privileges"]]
    sim = Simulator(str(tmp_path / "simulated-pve"), grants=grants).start()
    try:
        client = PveClient(host="127.0.0.1", port=sim.port, token_id=sim.token_id, token_secret=sim.token_secret,
                           ca_path=sim.ca_path, poll_interval=0.05)
        PciMappingStore(root_client(sim)).create("gpu", [ENTRY], "GPU")
        with pytest.raises(ValueError) as info:
            _create_vm(sim, client)
        assert "storage 'local-lvm': not on node pve" in str(info.value)
        assert "Datastore.AllocateSpace on /storage/<name>" in str(info.value)
        assert [v["vmid"] for v in root_client(sim).get(["nodes", "pve", "qemu"])] == [9000]
    finally:
        sim.stop()
