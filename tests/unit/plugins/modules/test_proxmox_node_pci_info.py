# SPDX-License-Identifier: GPL-3.0-or-later
"""proxmox_node_pci_info on the pvesh tables of the corpus (shared/fixtures/iommu-corpus 11, 12): the
real module, over HTTPS, against the simulated PVE API serving each table's rows as a node's
/hardware/pci. The API path must give the verdict the listing's header states, as the sysfs path does
(test_iommu_listings.py, tests/integration/modules/gpu_isolation_corpus.yml)."""
from __future__ import annotations

import json
import os
import sys

import pytest
from ansible.module_utils.testing import patch_module_args

from ansible_collections.homelab.gpu_passthrough.plugins.module_utils import pci
from ansible_collections.homelab.gpu_passthrough.plugins.modules import proxmox_node_pci_info

import sysfs_tree

sys.path.insert(0, os.path.abspath(os.path.join(os.path.dirname(__file__), os.pardir, os.pardir, os.pardir)))
from pve_simulator.runner import Simulator  # noqa: E402  pylint: disable=wrong-import-position

PVESH = [s for s in sysfs_tree.corpus_stems() if sysfs_tree.corpus_case(s)["pvesh"]]


def _node(stem):
    return "corpus%s" % stem[:2]


@pytest.fixture(scope="module")
def pvesh_sim(tmp_path_factory):
    """One simulated PVE API whose nodes are the corpus' pvesh tables."""
    directory = tmp_path_factory.mktemp("simulated-pve")
    fixture = os.path.join(str(directory), "corpus.json")
    with open(fixture, "w", encoding="utf-8") as handle:
        json.dump({"version": {"version": "9.1.1", "release": "9.1", "repoid": "simulated"},
                   "nodes": dict((_node(s), {"storage": {}, "pci": sysfs_tree.pvesh_entries(s)}) for s in PVESH)},
                  handle)
    simulator = Simulator(str(directory)).start(fixture=fixture)
    try:
        yield simulator
    finally:
        simulator.stop()


def _run(sim, capsys, **params):
    args = dict(api_host="127.0.0.1", api_port=sim.port, api_token_id=sim.token_id,
                api_token_secret=sim.token_secret, ca_path=sim.ca_path)
    args.update(params)
    with patch_module_args(args):
        with pytest.raises(SystemExit):
            proxmox_node_pci_info.main()
    return json.loads(capsys.readouterr().out)


def test_the_corpus_has_pvesh_tables():
    assert [s[:2] for s in PVESH] == ["11", "12"]


@pytest.mark.parametrize("stem", PVESH)
def test_pvesh_table_verdict_through_the_module(pvesh_sim, capsys, stem):  # pylint: disable=redefined-outer-name
    case = sysfs_tree.corpus_case(stem)
    out = _run(pvesh_sim, capsys, node=_node(stem), gpu_address=case["gpu"])
    assert out["status"] == case["status"], out["msg"]
    assert out["isolated"] is (case["status"] == "isolated") and out.get("failed") is None
    assert sorted(d["address"] for d in out["intruders"] if not d["is_bridge"]) == case["intruders"]
    assert len(out["devices"]) == len(sysfs_tree.pvesh_entries(stem))
    gpu = out["gpu"]
    assert gpu["address"] == case["gpu"] and out["topology_known"] is False
    assert out["map_entry"]["path"] == pci.slot_of(case["gpu"]) and out["map_entry"]["node"] == _node(stem)
    assert all(f["vendor_id"] == gpu["vendor_id"] and pci.slot_of(f["address"]) == pci.slot_of(case["gpu"])
               for f in out["functions"])
    assert out["vfio_ids"] == list(dict.fromkeys(pci.vendor_device(f) for f in out["functions"]))
    # without gpu_address the module picks the same card (the first NVIDIA display controller)
    assert _run(pvesh_sim, capsys, node=_node(stem))["gpu"]["address"] == case["gpu"]
