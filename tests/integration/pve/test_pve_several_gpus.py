# SPDX-License-Identifier: GPL-3.0-or-later
"""Several cards and nodes (issue 18), API side: the roles proxmox_pci_mapping (proxmox_pci_mapping_mappings)
and proxmox_gpu_vm (proxmox_gpu_vm_vms, proxmox_gpu_vm_pci_mappings) against the *simulated* PVE API of two
nodes (fixtures/cluster-two-nodes.json): check mode with diff, converge, a second run with no change, and
the way back. roles_several_gpus.yml holds the inventory-side assertions.
"""
from __future__ import annotations

import json
import os
import re
import sys

import pytest
import requests

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(os.path.dirname(HERE)))
sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(HERE))))
from pve_simulator.runner import HERE as SIM_HERE, Simulator  # noqa: E402
from test_pve_playbooks import asserts_ran, run_playbook  # noqa: E402

PLAYBOOK = "roles_several_gpus.yml"
CARD = "id=10de:13f1,iommugroup=%d,subsystem-id=10de:1153"
A3 = "node=pve-a,path=0000:03:00," + CARD % 15
A4 = "node=pve-a,path=0000:04:00," + CARD % 16
B1 = "node=pve-b,path=0000:01:00," + CARD % 12


@pytest.fixture
def two_nodes(tmp_path):
    simulator = Simulator(str(tmp_path / "simulated-pve")).start(
        fixture=os.path.join(SIM_HERE, "fixtures", "cluster-two-nodes.json"))
    try:
        yield simulator
    finally:
        simulator.stop()


def api(sim, path):
    resp = requests.get("https://127.0.0.1:%s/api2/json/%s" % (sim.port, path), verify=sim.ca_path, timeout=10,
                        headers={"Authorization": "PVEAPIToken=%s=%s" % (sim.token_id, sim.token_secret)})
    return resp.json()["data"]


def vms(sim):
    """{name: (vmid, node, status, hostpciN values)} of every VM of both nodes."""
    out = {}
    for node in ("pve-a", "pve-b"):
        for vm in api(sim, "nodes/%s/qemu" % node):
            conf = api(sim, "nodes/%s/qemu/%s/config" % (node, vm["vmid"]))
            out[vm["name"]] = (vm["vmid"], node, vm["status"],
                               [conf[k] for k in sorted(conf) if k.startswith("hostpci")])
    return out


def test_simulated_pve_several_gpus_check_converge_idempotence_and_undo(two_nodes):
    rc, out, recap = run_playbook(two_nodes, PLAYBOOK, "--check", "--diff")
    assert rc == 0, out[-6000:]
    assert asserts_ran(PLAYBOOK, out), out[-6000:]
    assert api(two_nodes, "cluster/mapping/pci") == [] and vms(two_nodes) == {}, "check mode changed something"
    # tasks that report a change: the mappings' loop (one task), create and start of three VMs, create of the pair
    assert recap["localhost"]["changed"] == 8, recap
    for line in (A3, A4, B1, "hostpci0: mapping=gpu-a3,pcie=1", "hostpci1: mapping=gpu-a4,pcie=1"):
        assert line in out, "the check-mode diff lacks %r:\n%s" % (line, out[-6000:])

    rc, out, recap = run_playbook(two_nodes, PLAYBOOK, "--diff")
    assert rc == 0, out[-6000:]
    assert asserts_ran(PLAYBOOK, out), out[-6000:]
    assert recap["localhost"]["changed"] == 8, recap
    mappings = dict((m["id"], m) for m in api(two_nodes, "cluster/mapping/pci"))
    assert sorted(mappings) == ["gpu-a3", "gpu-a4", "gpu-m4000"]
    assert mappings["gpu-m4000"]["map"] == [A3, B1]  # one mapping, an entry on each node
    assert mappings["gpu-m4000"]["description"] == "one M4000 on each node"
    assert (mappings["gpu-a3"]["map"], mappings["gpu-a4"]["map"]) == ([A3], [A4])
    assert vms(two_nodes) == {
        "whisper-gpu-1": (210, "pve-a", "running", ["mapping=gpu-a3,pcie=1"]),
        "whisper-gpu-2": (211, "pve-a", "running", ["mapping=gpu-a4,pcie=1"]),
        "whisper-gpu-b": (212, "pve-b", "running", ["mapping=gpu-m4000,pcie=1"]),
        "whisper-gpu-pair": (220, "pve-a", "stopped", ["mapping=gpu-a3,pcie=1", "mapping=gpu-a4,pcie=1"]),
    }
    checks = [m["checks"] for node in ("pve-a", "pve-b")
              for m in requests.get("https://127.0.0.1:%s/api2/json/cluster/mapping/pci" % two_nodes.port,
                                    params={"check-node": node}, verify=two_nodes.ca_path, timeout=10,
                                    headers={"Authorization": "PVEAPIToken=%s=%s" % (
                                        two_nodes.token_id, two_nodes.token_secret)}).json()["data"]
              if m["id"] == "gpu-m4000"]
    assert checks == [[], []], "PVE's check-node finds the entries of gpu-m4000 wrong: %s" % checks

    rc, out, recap = run_playbook(two_nodes, PLAYBOOK, "--diff")
    assert rc == 0, out[-6000:]
    assert recap["localhost"]["changed"] == 0, "the second run changed something:\n" + out[-6000:]

    undo = ["-e", "several_gpus_state=absent"]
    rc, out, recap = run_playbook(two_nodes, PLAYBOOK, *undo, "--check")
    assert rc == 0, out[-6000:]
    # the mappings' loop and the four VMs' absent
    assert recap["localhost"]["changed"] == 5 and len(vms(two_nodes)) == 4, out[-6000:]
    assert len(api(two_nodes, "cluster/mapping/pci")) == 3
    # the roles run in the play's order, so the mappings go while VMs still name them: PVE's delete of a
    # mapping does not look for users of it (pve-manager API2/Cluster/Mapping/PCI.pm, reference 03)
    rc, out, recap = run_playbook(two_nodes, PLAYBOOK, *undo)
    assert rc == 0, out[-6000:]
    assert recap["localhost"]["changed"] == 5, out[-6000:]
    assert vms(two_nodes) == {} and api(two_nodes, "cluster/mapping/pci") == []
    rc, out, recap = run_playbook(two_nodes, PLAYBOOK, *undo)
    assert rc == 0 and recap["localhost"]["changed"] == 0, out[-6000:]


@pytest.mark.parametrize("tag, extra, message", [
    ("mapping", {"proxmox_pci_mapping_mappings": [
        {"name": "gpu-a3", "map": [{"node": "pve-a", "gpu_address": "0000:03:00.0", "gpu_vendor_device": "10de:13f1"}]}]},
     "proxmox_pci_mapping_mappings, item"),
    ("mapping", {"proxmox_pci_mapping_mappings": [{"name": "gpu-a3", "map": []}]},
     "with state present a map listing the cards"),
    ("mapping", {"proxmox_pci_mapping_mappings": [{"name": "gpu-a3", "map": [{"node": "pve-a"}]},
                                                  {"name": "gpu-a3", "map": [{"node": "pve-b"}]}]},
     "each name once in the list"),
    ("vm", {"proxmox_gpu_vm_vms": [{"pci_mapping": "gpu-a3", "name": "w", "ssh_host": "192.0.2.1"},
                                   {"pci_mapping": "gpu-a4", "name": "w", "ssh_host": "192.0.2.2"}]},
     "proxmox_gpu_vm_vms: two VMs have the same name (w): give each VM its own"),
    ("vm", {"proxmox_gpu_vm_vms": [{"pci_mapping": "gpu-a3", "ipconfig0": "ip=dhcp"}]},
     "each VM its own ipconfig0 or ssh_host (without an address: whisper-gpu-1)"),
    ("vm", {"proxmox_gpu_vm_pci_mappings": ["gpu-a3", "9"]},
     "proxmox_gpu_vm: '9' is not a mapping id"),
])
def test_several_gpus_bad_lists_stop_before_any_api_call(tag, extra, message):
    rc, out, recap = run_playbook(None, "role_several_gpus_refused.yml", "--tags", tag, "-e", json.dumps(extra))
    assert rc != 0 and recap["localhost"]["failed"] == 1, out[-6000:]
    assert message in out, out[-6000:]
    assert "127.0.0.1:9" not in out and "Connection refused" not in out, out[-6000:]  # nothing was contacted


def readme_yaml_blocks():
    """The YAML blocks of the README's "Several cards and nodes (API side)" subsection."""
    with open(os.path.join(REPO, "README.md"), encoding="utf-8") as fh:
        text = fh.read()
    section = re.split(r"\n##+ ", text.split("### Several cards and nodes (API side)", 1)[1], maxsplit=1)[0]
    return re.findall(r"```yaml\n(.*?)```", section, flags=re.S)


def test_readme_several_cards_example_against_the_simulated_api(two_nodes, tmp_path):
    blocks = readme_yaml_blocks()
    assert len(blocks) == 2 and "proxmox_pci_mapping_mappings" in blocks[0] and "proxmox_gpu_vm_vms" in blocks[1]
    args = []
    for idx, block in enumerate(blocks):
        path = tmp_path / ("readme-%d.yml" % idx)
        path.write_text(block, encoding="utf-8")
        args += ["-e", "@%s" % path]
    rc, out, recap = run_playbook(two_nodes, "roles_readme_several_gpus.yml", *args, "--check", "--diff")
    assert rc == 0, out[-6000:]
    assert vms(two_nodes) == {} and api(two_nodes, "cluster/mapping/pci") == []
    rc, out, recap = run_playbook(two_nodes, "roles_readme_several_gpus.yml", *args)
    assert rc == 0, out[-6000:]
    assert dict((m["id"], m["map"]) for m in api(two_nodes, "cluster/mapping/pci")) == {"gpu-a3": [A3], "gpu-a4": [A4]}
    assert vms(two_nodes) == {  # the names and ids the README's comment gives
        "whisper-gpu-1": (210, "pve-a", "running", ["mapping=gpu-a3,pcie=1"]),
        "whisper-gpu-2": (211, "pve-a", "running", ["mapping=gpu-a4,pcie=1"])}
    rc, out, recap = run_playbook(two_nodes, "roles_readme_several_gpus.yml", *args)
    assert rc == 0 and recap["localhost"]["changed"] == 0, out[-6000:]
