# SPDX-License-Identifier: GPL-3.0-or-later
"""proxmox_vm: ProxmoxVmManager and main() against the simulated PVE API.

The manager gets a real AnsibleModule (its arguments given the way Ansible gives them, through
ansible.module_utils.testing.patch_module_args) and a real PveClient connected to the simulated API;
every assertion about what was written is checked by reading the simulated API back.
"""
from __future__ import annotations

import json
import os
import sys

import pytest
from ansible.module_utils.basic import AnsibleModule
from ansible.module_utils.testing import patch_module_args

from ansible_collections.homelab.gpu_passthrough.plugins.module_utils import pve_client, pve_qemu
from ansible_collections.homelab.gpu_passthrough.plugins.modules import proxmox_vm

sys.path.insert(0, os.path.abspath(os.path.join(os.path.dirname(__file__), os.pardir, os.pardir, os.pardir)))
# the fixtures, imported for pytest:
from pve_simulator.pytest_plugin import sim, sim_client  # noqa: E402,F401  pylint: disable=unused-import

CONFIG = {"machine": "q35", "bios": "ovmf", "cpu": "host", "memory": 4096, "balloon": 0,
          "hostpci0": "mapping=gpu-test,pcie=1"}
INITIAL = {"efidisk0": "local-lvm:1,efitype=4m,pre-enrolled-keys=0", "scsi0": "local-lvm:8",
           "net0": "virtio,bridge=vmbr0"}
ENTRY = "node=pve,path=0000:03:00,id=10de:13f1,iommugroup=15,subsystem-id=10de:1153"


def module_args(sim, check_mode=False, diff=False, **params):  # noqa: F811
    args = dict(api_host="127.0.0.1", api_port=sim.port, api_token_id=sim.token_id,
                api_token_secret=sim.token_secret, ca_path=sim.ca_path, node="pve",
                _ansible_check_mode=check_mode, _ansible_diff=diff)
    args.update(params)
    return args


def manager(sim, sim_client, check_mode=False, diff=False, **params):  # noqa: F811
    with patch_module_args(module_args(sim, check_mode, diff, **params)):
        module = AnsibleModule(argument_spec=proxmox_vm.argument_spec(), supports_check_mode=True)
    return proxmox_vm.ProxmoxVmManager(module, sim_client())


def run(sim, sim_client, state="present", **kwargs):  # noqa: F811
    """present(), then the power step of ``state``, the way main() dispatches; returns the manager."""
    m = manager(sim, sim_client, state=state, **kwargs)
    m.present()
    if state == "started":
        m.started()
    elif state == "stopped":
        m.stopped()
    return m


def vmids(sim_client):  # noqa: F811
    return sorted(v["vmid"] for v in sim_client().get("nodes/pve/qemu"))


@pytest.fixture
def mapping(sim_client):  # noqa: F811
    sim_client().post("cluster/mapping/pci", id="gpu-test", map=[ENTRY])


def test_present_check_mode_reports_creation_and_creates_nothing(sim, sim_client):  # noqa: F811
    m = run(sim, sim_client, check_mode=True, diff=True, name="vm-new", config=CONFIG, initial_config=INITIAL)
    r = m.results
    assert r["changed"] and r["created"] and r["vmid"] is None and r["status"] == "stopped"
    assert r["config"]["hostpci0"] == "mapping=gpu-test,pcie=1" and r["config"]["name"] == "vm-new"
    assert r["diff"]["before"] == "" and "memory: 4096\n" in r["diff"]["after"]
    assert r["msg"].startswith("VM vm-new (None) on pve: created; set ")
    assert vmids(sim_client) == [9000]


def test_present_creates_then_is_idempotent(sim, sim_client, mapping):  # noqa: F811
    r = run(sim, sim_client, name="vm-a", vmid=150, config=CONFIG, initial_config=INITIAL).results
    assert r["changed"] and r["created"] and r["vmid"] == 150 and r["status"] == "stopped"
    stored = sim_client().get("nodes/pve/qemu/150/config")
    assert stored["hostpci0"] == "mapping=gpu-test,pcie=1" and stored["name"] == "vm-a"
    assert stored["efidisk0"].startswith("local-lvm:vm-150-disk-")
    assert r["config"] == dict((k, v) for k, v in stored.items() if k != "digest")

    again = run(sim, sim_client, name="vm-a", config=CONFIG, initial_config=INITIAL).results  # found by name
    assert not again["changed"] and not again["created"] and again["vmid"] == 150
    assert again["msg"] == "VM vm-a (150) on pve is as wanted"


def test_booleans_are_sent_as_1_and_0(sim, sim_client):  # noqa: F811
    """PVE takes a boolean parameter only as 1 or 0 (the simulated API refuses 'True' like PVE does):
    YAML booleans in config reach PVE as 1/0, on create and on update, and compare equal afterwards."""
    r = run(sim, sim_client, name="vm-b", vmid=156, config={"onboot": True, "protection": False}).results
    stored = sim_client().get("nodes/pve/qemu/156/config")
    assert r["created"] and str(stored["onboot"]) == "1" and str(stored["protection"]) == "0"
    r = run(sim, sim_client, name="vm-b", config={"onboot": False, "protection": False}).results
    assert r["changed"] and str(sim_client().get("nodes/pve/qemu/156/config")["onboot"]) == "0"
    assert not run(sim, sim_client, name="vm-b", config={"onboot": False, "protection": False}).results["changed"]
    with pytest.raises(pve_client.PveApiError, match=r"onboot: type check \('boolean'\) failed - got 'True'"):
        sim_client().post("nodes/pve/qemu", vmid=157, onboot=True)  # what a raw Python bool would send


def test_present_next_free_vmid_when_none_given(sim, sim_client):  # noqa: F811
    r = run(sim, sim_client, name="vm-auto", config={"memory": 2048}).results
    assert r["created"] and r["vmid"] not in (None, 9000) and vmids(sim_client) == sorted([9000, r["vmid"]])


def test_present_updates_only_differing_keys_check_mode_then_real(sim, sim_client, mapping):  # noqa: F811
    run(sim, sim_client, name="vm-b", vmid=151, config=CONFIG, initial_config=INITIAL)
    digest = sim_client().get("nodes/pve/qemu/151/config")["digest"]
    bigger = dict(CONFIG, memory=8192, balloon=None)

    check = run(sim, sim_client, check_mode=True, diff=True, name="vm-b", config=bigger).results
    assert check["changed"] and not check["created"] and check["msg"].endswith(": set -balloon, memory")
    assert "memory: 4096\n" in check["diff"]["before"] and "memory: 8192\n" in check["diff"]["after"]
    assert "balloon: 0\n" in check["diff"]["before"] and "balloon" not in check["diff"]["after"]
    assert sim_client().get("nodes/pve/qemu/151/config")["digest"] == digest  # nothing written

    real = run(sim, sim_client, name="vm-b", config=bigger).results
    stored = sim_client().get("nodes/pve/qemu/151/config")
    assert real["changed"] and stored["memory"] == "8192" and "balloon" not in stored
    assert not real["pending_restart"]  # the VM was stopped
    assert not run(sim, sim_client, name="vm-b", config=bigger).results["changed"]


def test_started_then_stopped_and_pending_restart(sim, sim_client, mapping):  # noqa: F811
    check = run(sim, sim_client, state="started", check_mode=True, name="vm-c", vmid=152, config=CONFIG).results
    assert check["status"] == "running" and check["msg"].endswith("; started") and vmids(sim_client) == [9000]

    started = run(sim, sim_client, state="started", name="vm-c", vmid=152, config=CONFIG).results
    assert started["changed"] and started["status"] == "running"
    assert sim_client().get("nodes/pve/qemu/152/status/current")["status"] == "running"
    assert not run(sim, sim_client, state="started", name="vm-c", config=CONFIG).results["changed"]

    changed_while_running = run(sim, sim_client, state="started", name="vm-c",
                                config=dict(CONFIG, cores=4)).results
    assert changed_while_running["changed"] and changed_while_running["pending_restart"]
    assert changed_while_running["status"] == "running"

    check_stop = run(sim, sim_client, state="stopped", check_mode=True, name="vm-c").results
    assert check_stop["status"] == "stopped" and check_stop["msg"].endswith(": stopped")
    assert sim_client().get("nodes/pve/qemu/152/status/current")["status"] == "running"
    stopped = run(sim, sim_client, state="stopped", name="vm-c").results
    assert stopped["changed"] and stopped["status"] == "stopped"
    assert sim_client().get("nodes/pve/qemu/152/status/current")["status"] == "stopped"


def test_clone_check_mode_then_real(sim, sim_client):  # noqa: F811
    args = dict(name="vm-clone", clone="debian12-cloud", clone_storage="local-lvm", config={"memory": 8192})
    check = run(sim, sim_client, check_mode=True, **args).results
    assert check["created"] and check["msg"].startswith("VM vm-clone (None) on pve: cloned debian12-cloud; set ")
    assert vmids(sim_client) == [9000]

    real = run(sim, sim_client, **args).results
    stored = sim_client().get("nodes/pve/qemu/%s/config" % real["vmid"])
    assert real["created"] and stored["name"] == "vm-clone" and stored["memory"] == "8192"
    assert stored["bios"] == "ovmf" and "template" not in stored  # from the template
    by_id = run(sim, sim_client, name="vm-clone-2", clone="9000", full_clone=False).results
    assert by_id["created"] and by_id["vmid"] not in (9000, real["vmid"])


def test_clone_source_missing_is_refused_before_anything_is_written(sim, sim_client):  # noqa: F811
    with pytest.raises(proxmox_vm.CloneSourceError, match="clone source 'nope' is not a VM or template on node pve"):
        run(sim, sim_client, name="vm-x", clone="nope")
    assert vmids(sim_client) == [9000]


class RacingVms(pve_qemu.QemuVms):
    """Someone else edits the VM (through the simulated API) between our read and each of our writes.

    ``edit``: the keys they set, each value a format string of the number of races left (so that two
    edits differ and each changes the digest)."""

    def __init__(self, client, node, other, races, edit):
        super().__init__(client, node)
        self.other, self.races, self.edit = other, races, edit

    def update(self, vmid, to_set, to_delete, digest=None):
        if self.races > 0:
            self.races -= 1
            self.other.put("nodes/pve/qemu/%s/config" % vmid,
                           **dict((k, v.format(self.races)) for k, v in self.edit.items()))
        return super().update(vmid, to_set, to_delete, digest=digest)


def test_digest_conflict_is_reread_and_retried_once(sim, sim_client):  # noqa: F811
    run(sim, sim_client, name="vm-d", vmid=153, config={"memory": 2048, "cores": 1})
    m = manager(sim, sim_client, name="vm-d", config={"memory": 4096, "cores": 1})
    m.vms = RacingVms(sim_client(), "pve", sim_client(), races=1, edit={"cores": "3"})
    m.present()
    stored = sim_client().get("nodes/pve/qemu/153/config")
    assert stored["memory"] == "4096" and str(stored["cores"]) == "1"  # ours, written after reading theirs
    assert m.results["changed"] and m.results["config"]["memory"] == "4096"


def test_digest_conflict_that_already_did_our_change_writes_nothing_more(sim, sim_client):  # noqa: F811
    run(sim, sim_client, name="vm-e", vmid=154, config={"memory": 2048})
    m = manager(sim, sim_client, name="vm-e", config={"memory": 4096})
    m.vms = RacingVms(sim_client(), "pve", sim_client(), races=1, edit={"memory": "4096"})
    m.present()
    assert m.results["changed"] and sim_client().get("nodes/pve/qemu/154/config")["memory"] == "4096"


def test_second_digest_conflict_raises_and_names_the_vm(sim, sim_client):  # noqa: F811
    run(sim, sim_client, name="vm-f", vmid=155, config={"memory": 2048})
    m = manager(sim, sim_client, name="vm-f", config={"memory": 4096})
    m.vms = RacingVms(sim_client(), "pve", sim_client(), races=2, edit={"description": "theirs {}"})
    with pytest.raises(pve_client.PveApiError, match=r"checksum mismatch \(file change by other user\?\)"):
        m.present()
    assert m.vmid == 155 and sim_client().get("nodes/pve/qemu/155/config")["memory"] == "2048"


def test_duplicate_name_is_refused_without_a_vmid(sim, sim_client):  # noqa: F811
    vms = pve_qemu.QemuVms(sim_client(), "pve")
    vms.create(160, {"name": "twin"})
    vms.create(161, {"name": "twin"})
    m = manager(sim, sim_client, name="twin")
    with pytest.raises(pve_client.PveApiError, match="give vmid to choose one"):
        m.present()
    assert m.vmid is None


def run_main(args, capsys):
    """main() as Ansible runs it: the JSON it prints, and whether it failed."""
    with patch_module_args(args), pytest.raises(SystemExit) as info:
        proxmox_vm.main()
    return info.value.code, json.loads(capsys.readouterr().out)


def test_main_exits_with_the_managers_results(sim, sim_client, mapping, capsys):  # noqa: F811
    rc, out = run_main(module_args(sim, diff=True, name="vm-main", vmid=170, config=CONFIG, state="started"), capsys)
    assert rc == 0 and out["changed"] and out["created"] and out["status"] == "running" and out["vmid"] == 170
    assert set(out) >= {"vmid", "created", "config", "status", "pending_restart", "msg", "diff"}
    assert out["msg"] == "VM vm-main (170) on pve: created; started"  # config went with the create


def test_main_failure_names_the_vmid_of_a_failed_task(sim, capsys):  # noqa: F811
    rc, out = run_main(module_args(sim, name="vm-bad", vmid=171,
                                   config={"machine": "q35", "hostpci0": "mapping=gpu-none,pcie=1"},
                                   state="started"), capsys)
    assert rc == 1 and out["failed"] and out["vmid"] == 171
    assert "starting VM 171 failed on node pve: PCI device mapping not found for 'gpu-none'" in out["msg"]


def test_main_failure_before_the_vm_is_known_has_no_vmid(sim, capsys):  # noqa: F811
    rc, out = run_main(module_args(sim, name="vm-x", vmid=172, node="pve9"), capsys)
    assert rc == 1 and out["vmid"] is None and "'pve9' is not a node of this Proxmox VE cluster" in out["msg"]
    rc, out = run_main(module_args(sim, name="vm-x", clone="nope"), capsys)
    assert rc == 1 and "vmid" not in out and "clone source 'nope'" in out["msg"]
    rc, out = run_main(module_args(sim, name="vm-x", api_token_id="no-realm"), capsys)
    assert rc == 1 and "USER@REALM!TOKENNAME" in out["msg"] and sim.token_secret not in json.dumps(out)
