# SPDX-License-Identifier: GPL-3.0-or-later
"""pve_qemu.QemuVms against the simulated PVE API: lookups and actions that wait for their tasks; and
pve_qemu.gpu_guests (pure): the VMs of a proxmox_gpu_vm run, with derived names, ids and hostpciN.

The pure configuration helpers (config_changes, config_matches, config_value) are tested in
tests/unit/test_pve_pci.py.
"""
from __future__ import annotations

import os
import sys

import pytest

from ansible_collections.homelab.gpu_passthrough.plugins.module_utils import pve_client, pve_qemu

sys.path.insert(0, os.path.abspath(os.path.join(os.path.dirname(__file__), os.pardir, os.pardir, os.pardir)))
# the fixtures, imported for pytest:
from pve_simulator.pytest_plugin import sim, sim_client  # noqa: E402,F401  pylint: disable=unused-import


def test_simulated_pve_task_wait_success_and_failure(sim_client):  # noqa: F811
    vms = pve_qemu.QemuVms(sim_client(), "pve")
    status = vms.create(130, {"name": "t1", "machine": "q35", "hostpci0": "mapping=missing,pcie=1"})
    assert status["exitstatus"] == "OK"
    with pytest.raises(pve_client.PveTaskError) as info:
        vms.start(130)
    assert "starting VM 130 failed on node pve: PCI device mapping not found for 'missing'" in info.value.message
    assert "tasks/UPID:pve:" in info.value.message


def test_simulated_pve_find_by_vmid_or_unique_name(sim_client):  # noqa: F811
    vms = pve_qemu.QemuVms(sim_client(), "pve")
    assert vms.find(name="debian12-cloud")["vmid"] == 9000
    assert vms.find(vmid=9000)["name"] == "debian12-cloud"
    assert vms.find(name="nothing-here") is None and vms.find(vmid=4242) is None
    vms.create(140, {"name": "twin"})
    vms.create(141, {"name": "twin"})
    with pytest.raises(pve_client.PveApiError, match="2 VMs on node pve are named 'twin' .*140, 141.*give vmid"):
        vms.find(name="twin")


def test_simulated_pve_clone_update_start_stop(sim_client):  # noqa: F811
    vms = pve_qemu.QemuVms(sim_client(), "pve")
    newid = vms.next_id()
    vms.clone(9000, newid, "from-template", full=True, storage="local-lvm")
    config = vms.config(newid)
    assert config["name"] == "from-template" and "template" not in config
    vms.update(newid, {"memory": "4096"}, ["serial0"], digest=config["digest"])
    config = vms.config(newid)
    assert config["memory"] == "4096" and "serial0" not in config
    vms.start(newid)
    assert vms.status(newid)["status"] == "running"
    vms.stop(newid)
    assert vms.status(newid)["status"] == "stopped"


def test_config_changes_only_what_differs():
    current = {"machine": "q35", "memory": "8192", "balloon": 0, "hostpci0": "mapping=gpu,pcie=1",
               "net0": "virtio=BC:24:11:00:00:01,bridge=vmbr0", "sshkeys": "ssh-ed25519%20AAAA%20me%40x",
               "efidisk0": "local-lvm:vm-100-disk-0,efitype=4m,pre-enrolled-keys=0,size=4M", "cores": 2}
    want = {"machine": "q35", "memory": 8192, "balloon": 0, "hostpci0": "mapping=gpu,pcie=1",
            "sshkeys": "ssh-ed25519 AAAA me@x\n", "cores": 4, "agent": None, "cpu": "host"}
    initial = {"net0": "virtio,bridge=vmbr0", "efidisk0": "local-lvm:1,efitype=4m", "ide2": "local-lvm:cloudinit"}
    to_set, to_delete = pve_qemu.config_changes(current, want, initial)
    assert to_set == {"cores": "4", "cpu": "host", "ide2": "local-lvm:cloudinit"}
    assert to_delete == []
    to_set, to_delete = pve_qemu.config_changes(dict(current, agent="1"), {"agent": None, "balloon": True})
    assert to_set == {"balloon": "1"} and to_delete == ["agent"]


def test_hostpci_compare_is_exact():
    assert not pve_qemu.config_matches("hostpci0", "mapping=gpu,pcie=1", "mapping=gpu,pcie=1,x-vga=1")
    assert pve_qemu.config_matches("hostpci0", "mapping=gpu,pcie=1", "pcie=1,mapping=gpu")
    assert not pve_qemu.config_matches("hostpci0", "mapping=gpu,pcie=1", "host=0000:03:00,pcie=1")


def test_sshkeys_are_url_encoded_like_pve_requires():
    assert pve_qemu.config_value("sshkeys", "ssh-ed25519 AAAA a@b\nssh-rsa BBBB c@d\n") == \
        "ssh-ed25519%20AAAA%20a%40b%0Assh-rsa%20BBBB%20c%40d"


# ---- gpu_guests: the VMs of a proxmox_gpu_vm run ------------------------------------------------
def test_gpu_guests_without_a_list_is_the_one_vm():
    assert pve_qemu.gpu_guests([], "whisper-gpu", vmid=0, node="pve", pci_mapping="gpu",
                               ipconfig0="ip=192.0.2.50/24,gw=192.0.2.1") == [
        {"name": "whisper-gpu", "vmid": 0, "node": "pve", "pci_mappings": ["gpu"],
         "hostpci": {"hostpci0": "mapping=gpu,pcie=1"}, "ipconfig0": "ip=192.0.2.50/24,gw=192.0.2.1",
         "ssh_host": "192.0.2.50"}]
    one = pve_qemu.gpu_guests(None, "w", node="pve", pci_mapping="gpu", pci_mappings=["ga", "gb"], ssh_host="w.lan",
                              ipconfig0="ip=dhcp")[0]
    assert one["hostpci"] == {"hostpci0": "mapping=ga,pcie=1", "hostpci1": "mapping=gb,pcie=1"}
    assert one["ssh_host"] == "w.lan"


def test_gpu_guests_derives_names_and_ids_stably_from_the_position():
    items = [{"pci_mapping": "gpu-a3", "ipconfig0": "ip=192.0.2.61/24"},
             {"pci_mapping": "gpu-a4", "ipconfig0": "ip=192.0.2.62/24"},
             {"pci_mappings": ["gpu-b"], "node": "pve-b", "name": "b", "vmid": 300, "ssh_host": "b.lan"}]
    first = pve_qemu.gpu_guests(items, "whisper-gpu", vmid=210, node="pve-a", pci_mapping="gpu")
    assert [(g["name"], g["vmid"], g["node"], g["ssh_host"]) for g in first] == [
        ("whisper-gpu-1", 210, "pve-a", "192.0.2.61"), ("whisper-gpu-2", 211, "pve-a", "192.0.2.62"),
        ("b", 300, "pve-b", "b.lan")]
    assert first == pve_qemu.gpu_guests([dict(i) for i in items], "whisper-gpu", vmid=210, node="pve-a")
    # the role's single-VM mapping is not used by the items; vmid 0 leaves every id to PVE (found by name)
    free = pve_qemu.gpu_guests(items[:2], "w", vmid=0, pci_mapping="gpu")
    assert [g["vmid"] for g in free] == [0, 0] and [g["pci_mappings"] for g in free] == [["gpu-a3"], ["gpu-a4"]]


@pytest.mark.parametrize("items, fragment", [
    ([{"ipconfig0": "ip=192.0.2.61/24"}], "item 1 has no card: give pci_mapping"),
    ([{"pci_mapping": "1gpu"}], "'1gpu' is not a mapping id"),
    ([{"pci_mapping": "ga", "colour": "red"}], "unknown key(s) colour"),
    ([{"pci_mappings": ["m%d" % i for i in range(17)]}], "17 mappings, but a VM has at most 16 PCI devices"),
    ([{"pci_mapping": "ga", "vmid": 42}], "vmid 42: give 0"),
    ([{"pci_mapping": "ga", "name": "bad_name"}], "'bad_name' is not a DNS name"),
    ([{"pci_mapping": "ga", "ssh_host": "h"}, {"pci_mapping": "gb", "name": "w-1", "ssh_host": "i"}], "same name (w-1)"),
    ([{"pci_mapping": "ga", "ssh_host": "h"}, {"pci_mapping": "gb", "vmid": 100, "ssh_host": "i"}], "same vmid (100)"),
    ([{"pci_mapping": "ga", "ipconfig0": "ip=192.0.2.9/24"}, {"pci_mapping": "gb", "ssh_host": "192.0.2.9"}],
     "same address (ipconfig0's ip or ssh_host) (192.0.2.9)"),
    (["gpu-a"], "must be a dict"),
])
def test_gpu_guests_refuses_what_cannot_be_built(items, fragment):
    with pytest.raises(pve_qemu.GuestSpecError) as err:
        pve_qemu.gpu_guests(items, "w", vmid=100)
    assert fragment in str(err.value)
