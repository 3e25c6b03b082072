# SPDX-License-Identifier: GPL-3.0-or-later
"""Several GPUs and nodes (issue 18) in the *simulated* PVE API, talked to with plain ``requests``.

The cluster is fixtures/cluster-two-nodes.json: node pve-a with two identical cards (03:00, 04:00),
node pve-b with one (01:00). What is checked, and where PVE says so:

* a mapping's ``map`` is an array of property strings, one or more per node; creating or updating it
  checks only the schema (pve-manager API2/Cluster/Mapping/PCI.pm, shared/reference/pve/03), and
  ``get_node_mapping`` returns every entry of a node (pve-guest-common Mapping/PCI.pm, reference 04);
* ``hostpci[n]`` with ``mapping=`` needs only the schema and Mapping.Use when the config is written
  (qemu-server check_hostpci_perm, reference 05); the index range is the schema's (0 to 15);
* at start the mapping must have an entry for the VM's node and match its hardware, and of the node's
  paths "the first available will then be chosen on guest start" (the map format's ``path``).
"""
from __future__ import annotations

import os
import sys

import pytest
import requests

sys.path.insert(0, os.path.abspath(os.path.join(os.path.dirname(__file__), os.pardir, os.pardir)))
from pve_simulator.runner import HERE as SIM_HERE, Simulator  # noqa: E402

FIXTURE = os.path.join(SIM_HERE, "fixtures", "cluster-two-nodes.json")
CARD = "id=10de:13f1,subsystem-id=10de:1153"
A3 = "node=pve-a,path=0000:03:00,iommugroup=15," + CARD
A4 = "node=pve-a,path=0000:04:00,iommugroup=16," + CARD
B1 = "node=pve-b,path=0000:01:00,iommugroup=12," + CARD


@pytest.fixture
def two_nodes(tmp_path):
    simulator = Simulator(str(tmp_path / "simulated-pve")).start(fixture=FIXTURE)
    try:
        yield simulator
    finally:
        simulator.stop()


def call(sim, method, path, data=None, params=None):
    return requests.request(method, "https://127.0.0.1:%s/api2/json%s" % (sim.port, path), data=data, params=params,
                            headers={"Authorization": "PVEAPIToken=%s=%s" % (sim.token_id, sim.token_secret)},
                            verify=sim.ca_path, timeout=10)


def wait(sim, node, upid):
    """Poll a task until it stops; its exit status."""
    for _attempt in range(50):
        data = call(sim, "GET", "/nodes/%s/tasks/%s/status" % (node, upid)).json()["data"]
        if data["status"] == "stopped":
            return data["exitstatus"]
    raise AssertionError("task %s did not stop" % upid)


def create_vm(sim, node, vmid, **hostpci):
    resp = call(sim, "POST", "/nodes/%s/qemu" % node, dict(vmid=str(vmid), machine="q35", **hostpci))
    assert resp.status_code == 200, resp.text
    assert wait(sim, node, resp.json()["data"]) == "OK"


def start(sim, node, vmid):
    resp = call(sim, "POST", "/nodes/%s/qemu/%s/status/start" % (node, vmid))
    assert resp.status_code == 200, resp.text
    return wait(sim, node, resp.json()["data"])


def checks(sim, node):
    listing = call(sim, "GET", "/cluster/mapping/pci", params={"check-node": node}).json()["data"]
    return dict((m["id"], m["checks"]) for m in listing)


def test_simulated_pve_accepts_one_mapping_with_entries_on_two_nodes(two_nodes):
    resp = call(two_nodes, "POST", "/cluster/mapping/pci", {"id": "gpu", "map": [A3, B1]})
    assert resp.status_code == 200, resp.text
    assert call(two_nodes, "GET", "/cluster/mapping/pci/gpu").json()["data"]["map"] == [A3, B1]
    assert checks(two_nodes, "pve-a") == {"gpu": []} and checks(two_nodes, "pve-b") == {"gpu": []}
    # a third entry, both cards of pve-a: PVE allows several entries per node (get_node_mapping)
    digest = call(two_nodes, "GET", "/cluster/mapping/pci/gpu").json()["data"]["digest"]
    resp = call(two_nodes, "PUT", "/cluster/mapping/pci/gpu", {"map": [A3, A4, B1], "digest": digest})
    assert resp.status_code == 200, resp.text
    assert checks(two_nodes, "pve-a") == {"gpu": []}


def test_simulated_pve_checks_each_entry_of_a_multi_entry_mapping(two_nodes):
    # the schema is checked per entry: one bad entry refuses the whole request, nothing is written
    resp = call(two_nodes, "POST", "/cluster/mapping/pci", {"id": "gpu", "map": [A3, "node=pve-b,path=01:00," + CARD]})
    assert resp.status_code == 400 and list(resp.json()["errors"]) == ["map"], resp.text
    assert "path" in resp.json()["errors"]["map"]
    assert call(two_nodes, "GET", "/cluster/mapping/pci").json()["data"] == []
    # only the schema at creation: an entry that names the wrong group is stored, check-node reports it
    wrong = A4.replace("iommugroup=16", "iommugroup=15")
    assert call(two_nodes, "POST", "/cluster/mapping/pci", {"id": "gpu", "map": [A3, wrong]}).status_code == 200
    assert checks(two_nodes, "pve-a") == {"gpu": [{"severity": "error", "message": (
        "Invalid configuration: 'iommugroup' does not match for 'gpu' (16 != 15)\n")}]}
    assert checks(two_nodes, "pve-b") == {"gpu": [{"severity": "warning", "message": "No mapping for node pve-b."}]}


def test_simulated_pve_several_hostpci_of_one_vm(two_nodes):
    for mid, entry in (("gpu-a3", A3), ("gpu-a4", A4)):
        assert call(two_nodes, "POST", "/cluster/mapping/pci", {"id": mid, "map": entry}).status_code == 200
    create_vm(two_nodes, "pve-a", 120, hostpci0="mapping=gpu-a3,pcie=1", hostpci1="mapping=gpu-a4,pcie=1")
    config = call(two_nodes, "GET", "/nodes/pve-a/qemu/120/config").json()["data"]
    assert (config["hostpci0"], config["hostpci1"]) == ("mapping=gpu-a3,pcie=1", "mapping=gpu-a4,pcie=1")
    assert start(two_nodes, "pve-a", 120) == "OK"
    # the schema's range is hostpci0..hostpci15
    resp = call(two_nodes, "PUT", "/nodes/pve-a/qemu/120/config", {"hostpci16": "mapping=gpu-a3"})
    assert resp.status_code == 400 and list(resp.json()["errors"]) == ["hostpci16"], resp.text
    assert call(two_nodes, "PUT", "/nodes/pve-a/qemu/120/config", {"hostpci15": "mapping=gpu-a3"}).status_code == 200


def test_simulated_pve_start_refuses_a_mapping_without_a_free_device_on_the_node(two_nodes):
    assert call(two_nodes, "POST", "/cluster/mapping/pci", {"id": "gpu-a3", "map": [A3, B1]}).status_code == 200
    # the one card of pve-a in the mapping cannot be given to two hostpciN of one VM
    create_vm(two_nodes, "pve-a", 121, hostpci0="mapping=gpu-a3,pcie=1", hostpci1="mapping=gpu-a3,pcie=1")
    assert start(two_nodes, "pve-a", 121) == ("simulated PVE: hostpci1: every device of mapping 'gpu-a3' on "
                                              "node 'pve-a' is already in use (0000:03:00)")
    assert call(two_nodes, "GET", "/nodes/pve-a/qemu/121/status/current").json()["data"]["status"] == "stopped"
    # nor to a second VM while the first runs
    create_vm(two_nodes, "pve-a", 122, hostpci0="mapping=gpu-a3,pcie=1")
    create_vm(two_nodes, "pve-a", 123, hostpci0="mapping=gpu-a3,pcie=1")
    assert start(two_nodes, "pve-a", 122) == "OK"
    assert "already in use" in start(two_nodes, "pve-a", 123)
    call(two_nodes, "POST", "/nodes/pve-a/qemu/122/status/stop")
    assert start(two_nodes, "pve-a", 123) == "OK"


def test_simulated_pve_identical_cards_in_one_mapping_serve_two_vms(two_nodes):
    assert call(two_nodes, "POST", "/cluster/mapping/pci", {"id": "gpu", "map": [A3, A4, B1]}).status_code == 200
    for vmid in (130, 131, 132):
        create_vm(two_nodes, "pve-a", vmid, hostpci0="mapping=gpu,pcie=1")
    create_vm(two_nodes, "pve-b", 133, hostpci0="mapping=gpu,pcie=1")
    assert start(two_nodes, "pve-a", 130) == "OK" and start(two_nodes, "pve-a", 131) == "OK"
    assert "already in use (0000:03:00, 0000:04:00)" in start(two_nodes, "pve-a", 132)
    assert start(two_nodes, "pve-b", 133) == "OK"  # the other node's entry is its own


def test_simulated_pve_start_refuses_an_unknown_mapping_or_one_without_the_node(two_nodes):
    # writing the config needs only the schema and Mapping.Use: an unknown id is stored ...
    create_vm(two_nodes, "pve-b", 140, hostpci0="mapping=nope,pcie=1")
    assert start(two_nodes, "pve-b", 140) == "PCI device mapping not found for 'nope'"  # ... and refused at start
    assert call(two_nodes, "POST", "/cluster/mapping/pci", {"id": "gpu-a", "map": [A3, A4]}).status_code == 200
    create_vm(two_nodes, "pve-b", 141, hostpci0="mapping=gpu-a,pcie=1")
    assert start(two_nodes, "pve-b", 141) == "PCI device mapping not found for 'gpu-a'"


@pytest.mark.parametrize("data, key", [
    ({"hostpci0": "mapping=gpu-a3", "hostpci1": "mapping=gpu-a3,mapping=gpu-a4"}, "hostpci1"),  # duplicate key
    ({"hostpci0": "mapping=gpu-a3", "hostpci1": "host=0000:04:00,mapping=gpu-a4"}, "hostpci1"),
    ({"hostpci0": "mapping=gpu-a3", "hostpci2": "mapping=gpu a4"}, "hostpci2"),
])
def test_simulated_pve_refuses_a_malformed_second_hostpci(two_nodes, data, key):
    resp = call(two_nodes, "POST", "/nodes/pve-a/qemu", dict(vmid="150", **data))
    assert resp.status_code == 400 and list(resp.json()["errors"]) == [key], resp.text
    assert call(two_nodes, "GET", "/nodes/pve-a/qemu/150/config").status_code == 500  # not created
