# SPDX-License-Identifier: GPL-3.0-or-later
"""pve_api.PveClient against the simulated PVE API: TLS, token errors, tasks, digest conflicts."""
from __future__ import annotations

import os
import sys

import pytest

from ansible_collections.homelab.gpu_passthrough.plugins.module_utils import pve_api

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
# the fixture `sim`, imported for pytest:
from pve_simulator.pytest_plugin import sim  # noqa: E402,F401  pylint: disable=unused-import

ENTRY = "node=pve,path=0000:03:00,id=10de:13f1,iommugroup=15,subsystem-id=10de:1153"


def client(sim, **kw):  # noqa: F811
    args = dict(host="127.0.0.1", port=sim.port, token_id=sim.token_id, token_secret=sim.token_secret,
                ca_path=sim.ca_path, poll_interval=0.05)
    args.update(kw)
    return pve_api.PveClient(**args)


def test_simulated_pve_tls_verified_with_ca_path(sim):  # noqa: F811
    assert client(sim).get("version")["release"] == "9.1"


def test_simulated_pve_tls_refused_without_ca(sim):  # noqa: F811
    with pytest.raises(pve_api.PveApiError, match="could not be verified.*ca_path.*pve-root-ca.pem"):
        client(sim, ca_path=None).get("version")


def test_simulated_pve_tls_refused_with_another_ca(sim):  # noqa: F811
    with pytest.raises(pve_api.PveApiError, match="could not be verified"):
        client(sim, ca_path=sim.wrong_ca_path).get("version")


def test_missing_ca_file_is_named(sim):  # noqa: F811
    with pytest.raises(pve_api.PveApiError, match="ca_path /nonexistent/ca.pem is not a file"):
        client(sim, ca_path="/nonexistent/ca.pem")


def test_simulated_pve_tls_unverified_when_asked(sim):  # noqa: F811
    assert client(sim, ca_path=None, validate_certs=False).get("version")["release"] == "9.1"


def test_simulated_pve_wrong_secret_says_authentication(sim):  # noqa: F811
    with pytest.raises(pve_api.PveApiError) as info:
        client(sim, token_secret="not-the-secret").get("version")
    assert info.value.status == 401
    assert "authentication failure (HTTP 401)" in info.value.message
    assert "api_token_secret" in info.value.message and "not-the-secret" not in info.value.message


def test_simulated_pve_permission_denied_says_which_privilege(sim):  # noqa: F811
    ro = client(sim, token_id=sim.readonly_token_id, token_secret=sim.readonly_token_secret)
    with pytest.raises(pve_api.PveApiError, match=r"permission denied \(HTTP 403\).*Mapping\.Modify"):
        pve_api.PciMappingStore(ro).create("gpu", [ENTRY])


def test_simulated_pve_parameter_errors_are_listed(sim):  # noqa: F811
    with pytest.raises(pve_api.PveApiError, match="parameter verification failed: map: property is missing"):
        client(sim).post("cluster/mapping/pci", id="gpu")


def test_simulated_pve_unknown_node(sim):  # noqa: F811
    with pytest.raises(pve_api.PveApiError, match="'pve9' is not a node of this Proxmox VE cluster.*pve, pve2"):
        client(sim).require_node("pve9")


def test_simulated_pve_task_wait_success_and_failure(sim):  # noqa: F811
    c = client(sim)
    vms = pve_api.QemuVms(c, "pve")
    status = vms.create(130, {"name": "t1", "machine": "q35", "hostpci0": "mapping=missing,pcie=1"})
    assert status["exitstatus"] == "OK"
    with pytest.raises(pve_api.PveTaskError) as info:
        vms.start(130)
    assert "starting VM 130 failed on node pve: PCI device mapping not found for 'missing'" in info.value.message
    assert "tasks/UPID:pve:" in info.value.message


def test_simulated_pve_task_timeout(sim):  # noqa: F811
    c = client(sim, task_timeout=0)
    upid = c.post("nodes/pve/qemu", vmid=131, name="t2")
    with pytest.raises(pve_api.PveTaskError, match="did not finish within 0s"):
        c.wait_task(upid)


class RacingStore(pve_api.PciMappingStore):
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


def test_simulated_pve_digest_conflict_is_reread_and_retried(sim):  # noqa: F811
    c = client(sim)
    c.post("cluster/mapping/pci", id="gpu", map=[ENTRY])
    current = pve_api.PciMappingStore(c).get("gpu")
    store = RacingStore(c, client(sim), races=1)
    retried, after = store.ensure("gpu", [ENTRY], description="ours", current=current)
    assert retried is True
    assert after["description"] == "ours" and after["digest"] != current["digest"]


def test_simulated_pve_second_digest_conflict_fails_clearly(sim):  # noqa: F811
    c = client(sim)
    c.post("cluster/mapping/pci", id="gpu", map=[ENTRY])
    current = pve_api.PciMappingStore(c).get("gpu")
    store = RacingStore(c, client(sim), races=2)
    with pytest.raises(pve_api.PveApiError, match="changed by someone else while this task ran, twice in a row"):
        store.ensure("gpu", [ENTRY], description="ours", current=current)
    assert pve_api.PciMappingStore(c).get("gpu")["description"] == "edited elsewhere 0"  # not overwritten
