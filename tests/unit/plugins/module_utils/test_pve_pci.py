# SPDX-License-Identifier: GPL-3.0-or-later
"""Pure helpers of pve_pci: map entries, hardware -> devices -> verdict."""
from __future__ import annotations

import json
import os

import pytest

from ansible_collections.homelab.gpu_passthrough.plugins.module_utils import pve_pci

FIXTURE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "..", "pve_simulator", "fixtures",
                       "cluster.json")


@pytest.fixture(scope="module")
def hardware():
    with open(FIXTURE, encoding="utf-8") as fh:
        nodes = json.load(fh)["nodes"]
    return {n: pve_pci.devices_from_hardware_pci(v["pci"]) for n, v in nodes.items()}


def test_format_and_parse_round_trip():
    entry = {"node": "pve", "path": "03:00", "id": "0x10DE:0x13F1", "iommugroup": "15", "subsystem_id": "10de:1153"}
    text = pve_pci.format_map_entry(entry)
    assert text == "node=pve,path=0000:03:00,id=10de:13f1,iommugroup=15,subsystem-id=10de:1153"
    assert pve_pci.format_map_entry(pve_pci.parse_map_entry(text)) == text
    assert pve_pci.parse_map_entry("pve,path=0000:03:00.0,id=10de:13f1")["node"] == "pve"


@pytest.mark.parametrize("entry, fragment", [
    ({"node": "pve", "path": "0000:03:00"}, "lacks 'id'"),
    ({"node": "pve", "path": "3:0", "id": "10de:13f1"}, "is not a PCI path"),
    ({"node": "pve", "path": "0000:03:00", "id": "10de-13f1"}, "vvvv:dddd"),
    ({"node": "pve", "path": "0000:03:00", "id": "10de:13f1", "iommugroup": "x"}, "not an integer"),
    ({"node": "pve", "path": "0000:03:00", "id": "10de:13f1", "colour": "red"}, "unknown key 'colour'"),
    ({"node": "pve_1", "path": "0000:03:00", "id": "10de:13f1"}, "not a valid node name"),
    ({"node": "pve", "path": "0000:03:00", "id": "10de:13f1", "description": "a,b"}, "cannot contain"),
])
def test_bad_entries_are_refused_with_the_reason(entry, fragment):
    with pytest.raises(pve_pci.MapEntryError, match=fragment.replace("(", r"\(").replace(")", r"\)")):
        pve_pci.normalize_entry(entry)


def test_mapping_id_rules():
    assert pve_pci.check_mapping_id("gpu-m4000") == "gpu-m4000"
    for bad in ("g", "1gpu", "gpu m4000", ""):
        with pytest.raises(pve_pci.MapEntryError, match="configuration id"):
            pve_pci.check_mapping_id(bad)


def test_entry_from_isolated_node(hardware):
    entry, verdict = pve_pci.entry_from_node("pve", hardware["pve"])
    assert entry == {"node": "pve", "path": "0000:03:00", "id": "10de:13f1", "iommugroup": 15,
                     "subsystem-id": "10de:1153"}
    assert verdict["isolated"] is True and verdict["status"] == "isolated"
    assert [d["address"] for d in verdict["upstream_bridges"]] == ["0000:00:02.0"]
    assert verdict["topology_known"] is False
    assert pve_pci.entry_problems(entry, hardware["pve"]) == []


def test_entry_from_shared_group_is_not_isolated(hardware):
    entry, verdict = pve_pci.entry_from_node("pve2", hardware["pve2"])
    assert entry["path"] == "0000:06:00"
    assert verdict["isolated"] is False and verdict["status"] == "intruders"
    intruders = {d["address"] for d in verdict["intruders"]}
    assert {"0000:02:00.0", "0000:02:00.1", "0000:05:00.0"} <= intruders
    assert "SATA controller" in verdict["message"]


@pytest.mark.parametrize("change, fragment", [
    ({"id": "10de:1234"}, "'id' does not match the hardware: the entry says 10de:1234"),
    ({"iommugroup": 7}, "'iommugroup' does not match the hardware: the entry says 7"),
    ({"subsystem-id": None}, "'subsystem-id' is missing"),
    ({"iommugroup": None}, "'iommugroup' is missing"),
    ({"path": "0000:04:00"}, "has no PCI device 0000:04:00.0"),
])
def test_entry_problems_mirror_pve_assert_valid(hardware, change, fragment):
    entry = {"node": "pve", "path": "0000:03:00", "id": "10de:13f1", "iommugroup": 15, "subsystem-id": "10de:1153"}
    entry.update(change)
    problems = pve_pci.entry_problems(entry, hardware["pve"])
    assert len(problems) == 1 and fragment in problems[0], problems


def test_subsystem_id_on_a_device_without_one(hardware):
    entry = {"node": "pve", "path": "0000:00:02.0", "id": "8086:6f04", "iommugroup": 15,
             "subsystem-id": "8086:0000"}
    assert "reports none: remove it" in pve_pci.entry_problems(entry, hardware["pve"])[0]


def test_merge_node_entries_keeps_other_nodes():
    current = ["node=pve2,path=0000:06:00,id=10de:1288,iommugroup=15", "node=pve,path=0000:01:00,id=10de:1d01"]
    new = pve_pci.normalize_entry({"node": "pve", "path": "0000:03:00", "id": "10de:13f1"})
    assert pve_pci.merge_node_entries(current, [new]) == [
        "node=pve,path=0000:03:00,id=10de:13f1", "node=pve2,path=0000:06:00,id=10de:1288,iommugroup=15"]


def test_mapping_state_ignores_order_and_digest():
    a = {"map": ["node=b,path=0000:01:00,id=10de:0001", "node=a,path=0000:01:00,id=10de:0001"], "digest": "x"}
    b = {"map": ["node=a,path=0000:01:00,id=10DE:0001", "node=b,path=0000:01:00,id=10de:0001"], "digest": "y"}
    assert pve_pci.mapping_state(a) == pve_pci.mapping_state(b)
    assert pve_pci.mapping_state(None) is None


def test_repeated_devices_allows_identical_cards_of_one_node_but_not_one_card_twice():
    a3 = {"node": "pve-a", "path": "0000:03:00", "id": "10de:13f1"}
    a4 = {"node": "pve-a", "path": "0000:04:00", "id": "10de:13f1"}
    b3 = {"node": "pve-b", "path": "0000:03:00", "id": "10de:13f1"}
    assert pve_pci.repeated_devices([a3, a4, b3]) == []  # two entries of one node, one path on two nodes
    assert pve_pci.repeated_devices([a3, a4, dict(a3, path="0000:03:00.0")]) == [("pve-a", "0000:03:00")]
    assert pve_pci.repeated_devices([dict(a4, path="0000:03:00;0000:04:00"), a3]) == [("pve-a", "0000:03:00")]


def test_entries_of_two_identical_cards_on_one_node():
    with open(os.path.join(os.path.dirname(FIXTURE), "cluster-two-nodes.json"), encoding="utf-8") as fh:
        nodes = json.load(fh)["nodes"]
    devices = pve_pci.devices_from_hardware_pci(nodes["pve-a"]["pci"])
    first, verdict3 = pve_pci.entry_from_node("pve-a", devices, gpu_address="0000:03:00.0")
    second, verdict4 = pve_pci.entry_from_node("pve-a", devices, gpu_address="0000:04:00.0")
    assert verdict3["isolated"] and verdict4["isolated"]
    assert pve_pci.canonical_map([second, first]) == [
        "node=pve-a,path=0000:03:00,id=10de:13f1,iommugroup=15,subsystem-id=10de:1153",
        "node=pve-a,path=0000:04:00,id=10de:13f1,iommugroup=16,subsystem-id=10de:1153"]
