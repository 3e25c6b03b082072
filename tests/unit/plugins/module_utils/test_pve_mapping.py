# SPDX-License-Identifier: GPL-3.0-or-later
"""pve_mapping.PciMappingStore against the simulated PVE API: privileges, digest conflicts."""
from __future__ import annotations

import os
import sys

import pytest

from ansible_collections.homelab.gpu_passthrough.plugins.module_utils import pve_client, pve_mapping

sys.path.insert(0, os.path.abspath(os.path.join(os.path.dirname(__file__), os.pardir, os.pardir, os.pardir)))
# the fixtures, imported for pytest:
from pve_simulator.pytest_plugin import sim, sim_client  # noqa: E402,F401  pylint: disable=unused-import

ENTRY = "node=pve,path=0000:03:00,id=10de:13f1,iommugroup=15,subsystem-id=10de:1153"


def test_simulated_pve_permission_denied_says_which_privilege_and_role(sim, sim_client):  # noqa: F811
    """The advice names Mapping.Modify and PVEMappingAdmin: PVEAdmin lacks Mapping.Modify since PVE 8.0,
    so granting it (the old advice) leaves the first mapping write refused."""
    ro = sim_client(token_id=sim.readonly_token_id, token_secret=sim.readonly_token_secret)
    with pytest.raises(pve_client.PveApiError, match=r"permission denied \(HTTP 403\).*Mapping\.Modify") as info:
        pve_mapping.PciMappingStore(ro).create("gpu", [ENTRY])
    assert ("pveum acl modify /mapping/pci --roles PVEMappingAdmin --users auditor@pve --tokens 'auditor@pve!readonly'"
            in info.value.message), info.value.message
    assert "PVEAdmin does not include Mapping.Modify" in info.value.message
    assert "--roles PVEAdmin" not in info.value.message


def test_simulated_pve_get_create_update_delete(sim_client):  # noqa: F811
    store = pve_mapping.PciMappingStore(sim_client())
    assert store.get("gpu") is None
    retried, created = store.ensure("gpu", [ENTRY], description="first")
    assert retried is False and created["map"] == [ENTRY] and created["description"] == "first"
    retried, updated = store.ensure("gpu", [ENTRY], description="second", current=created)
    assert retried is False and updated["description"] == "second" and updated["digest"] != created["digest"]
    store.delete("gpu")
    assert store.get("gpu") is None


class RacingStore(pve_mapping.PciMappingStore):
    """Another administrator changes the mapping (through the real API) between our read and write."""

    def __init__(self, client_, other, races):
        super().__init__(client_)
        self.other = other
        self.races = races

    def update(self, *args, **kwargs):
        if self.races > 0:
            self.races -= 1
            self.other.put("cluster/mapping/pci/gpu", description="edited elsewhere %d" % self.races)
        return super().update(*args, **kwargs)


def test_simulated_pve_digest_conflict_is_reread_and_retried(sim_client):  # noqa: F811
    c = sim_client()
    c.post("cluster/mapping/pci", id="gpu", map=[ENTRY])
    current = pve_mapping.PciMappingStore(c).get("gpu")
    store = RacingStore(c, sim_client(), races=1)
    retried, after = store.ensure("gpu", [ENTRY], description="ours", current=current)
    assert retried is True
    assert after["description"] == "ours" and after["digest"] != current["digest"]


def test_simulated_pve_second_digest_conflict_fails_clearly(sim_client):  # noqa: F811
    c = sim_client()
    c.post("cluster/mapping/pci", id="gpu", map=[ENTRY])
    current = pve_mapping.PciMappingStore(c).get("gpu")
    store = RacingStore(c, sim_client(), races=2)
    with pytest.raises(pve_client.PveApiError, match="changed by someone else while this task ran, twice in a row"):
        store.ensure("gpu", [ENTRY], description="ours", current=current)
    assert pve_mapping.PciMappingStore(c).get("gpu")["description"] == "edited elsewhere 0"  # not overwritten


def test_simulated_pve_mapping_created_meanwhile_is_reread_and_updated(sim_client):  # noqa: F811
    c = sim_client()
    sim_client().post("cluster/mapping/pci", id="gpu", map=[ENTRY], description="theirs")  # after our read
    retried, after = pve_mapping.PciMappingStore(c).ensure("gpu", [ENTRY], description="ours", current=None)
    assert retried is True and after["description"] == "ours"
