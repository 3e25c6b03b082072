# SPDX-License-Identifier: GPL-3.0-or-later
"""pve_client.PveClient against the simulated PVE API: TLS, token errors, parameter errors, nodes, tasks."""
from __future__ import annotations

import os
import sys

import pytest
from ansible.module_utils.basic import env_fallback

from ansible_collections.homelab.gpu_passthrough.plugins.module_utils import pve_client

sys.path.insert(0, os.path.abspath(os.path.join(os.path.dirname(__file__), os.pardir, os.pardir, os.pardir)))
# the fixtures, imported for pytest:
from pve_simulator.pytest_plugin import sim, sim_client  # noqa: E402,F401  pylint: disable=unused-import


def test_simulated_pve_tls_verified_with_ca_path(sim_client):  # noqa: F811
    assert sim_client().get("version")["release"] == "9.1"


def test_simulated_pve_tls_refused_without_ca(sim_client):  # noqa: F811
    with pytest.raises(pve_client.PveApiError, match="could not be verified.*ca_path.*pve-root-ca.pem"):
        sim_client(ca_path=None).get("version")


def test_simulated_pve_tls_refused_with_another_ca(sim, sim_client):  # noqa: F811
    with pytest.raises(pve_client.PveApiError, match="could not be verified"):
        sim_client(ca_path=sim.wrong_ca_path).get("version")


def test_missing_ca_file_is_named(sim_client):  # noqa: F811
    with pytest.raises(pve_client.PveApiError, match="ca_path /nonexistent/ca.pem is not a file"):
        sim_client(ca_path="/nonexistent/ca.pem")


def test_simulated_pve_tls_unverified_when_asked(sim_client):  # noqa: F811
    assert sim_client(ca_path=None, validate_certs=False).get("version")["release"] == "9.1"


def test_simulated_pve_wrong_secret_says_authentication(sim_client):  # noqa: F811
    with pytest.raises(pve_client.PveApiError) as info:
        sim_client(token_secret="not-the-secret").get("version")
    assert info.value.status == 401
    assert "authentication failure (HTTP 401)" in info.value.message
    assert "api_token_secret" in info.value.message and "not-the-secret" not in info.value.message


def test_simulated_pve_parameter_errors_are_listed(sim_client):  # noqa: F811
    with pytest.raises(pve_client.PveApiError, match="parameter verification failed: map: property is missing"):
        sim_client().post("cluster/mapping/pci", id="gpu")


def test_simulated_pve_unknown_node(sim_client):  # noqa: F811
    with pytest.raises(pve_client.PveApiError, match="'pve9' is not a node of this Proxmox VE cluster.*pve, pve2"):
        sim_client().require_node("pve9")


def test_simulated_pve_task_timeout(sim_client):  # noqa: F811
    c = sim_client(task_timeout=0)
    upid = c.post("nodes/pve/qemu", vmid=131, name="t2")
    with pytest.raises(pve_client.PveTaskError, match="did not finish within 0s"):
        c.wait_task(upid)


def test_connection_argspec_has_env_fallbacks_and_no_task_timeout():
    spec = pve_client.connection_argspec(env_fallback)
    assert spec["api_host"]["fallback"] == (env_fallback, ["PROXMOX_HOST"])
    assert spec["api_token_secret"]["no_log"] is True and "fallback" not in spec["ca_path"]
    # task_timeout is for modules that wait for worker tasks only (TASK_ARGSPEC), not a shared option
    assert "task_timeout" not in spec and set(pve_client.TASK_ARGSPEC) == {"task_timeout"}


def test_client_from_params_takes_task_timeout_when_given(sim):  # noqa: F811
    params = dict(api_host="127.0.0.1", api_port=sim.port, api_token_id=sim.token_id,
                  api_token_secret=sim.token_secret, ca_path=sim.ca_path, validate_certs=True, timeout=30)
    assert pve_client.client_from_params(params).task_timeout == 300
    assert pve_client.client_from_params(dict(params, task_timeout=7)).task_timeout == 7


def test_token_id_and_upid_parsing():
    assert pve_client.parse_token_id("automation@pve!ansible") == ("automation@pve", "ansible")
    for bad in ("automation@pve", "automation!ansible", "a@pve!1x", ""):
        with pytest.raises(ValueError, match="USER@REALM!TOKENNAME"):
            pve_client.parse_token_id(bad)
    upid = "UPID:pve:00001001:00007007:6B039D20:qmcreate:101:automation@pve!ansible:"
    assert pve_client.parse_upid(upid) == {"node": "pve", "type": "qmcreate", "id": "101",
                                           "user": "automation@pve!ansible"}
    with pytest.raises(ValueError, match="not a Proxmox task id"):
        pve_client.parse_upid("UPID:pve:bad")
