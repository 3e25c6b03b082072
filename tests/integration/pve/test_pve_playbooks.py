# SPDX-License-Identifier: GPL-3.0-or-later
"""Playbook tests of the PVE modules and roles against the *simulated* PVE API.

Each test starts a fresh simulator (HTTPS on 127.0.0.1, throw-away CA, random token secret) and runs
ansible-playbook with PROXMOX_* pointing at it; the playbooks assert check/real/repeat triples
themselves. The role test runs check mode, converge, idempotence (0 changed) and a -vvv run in which
the token secret must not appear.
"""
from __future__ import annotations

import json
import os
import re
import subprocess
import sys

import requests

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(os.path.dirname(HERE)))
sys.path.insert(0, os.path.join(REPO, "tests"))
# the fixture `sim`, imported for pytest:
from pve_simulator.pytest_plugin import sim  # noqa: E402,F401  pylint: disable=unused-import
from pve_simulator.runner import TEST_SSH_PUBLIC_KEY_FILE  # noqa: E402

with open(TEST_SSH_PUBLIC_KEY_FILE, encoding="utf-8") as _fh:
    SSH_PUBLIC_KEY = _fh.read().strip()

RECAP_RE = re.compile(r"^(\S+)\s+: ok=(\d+)\s+changed=(\d+)\s+unreachable=(\d+)\s+failed=(\d+)", re.M)


def run_playbook(sim, name, *args, proxmox_env=True):  # noqa: F811
    """Run a playbook against ``sim``; with proxmox_env=False the PROXMOX_* variables are left out (the
    playbook then gets the connection from SIMULATED_PVE_PORT/TOKEN_ID/TOKEN_SECRET/CA). With sim=None
    no API connection is given at all (for playbooks that must stop before any call)."""
    env = dict((k, v) for k, v in os.environ.items() if not k.startswith(("PROXMOX_", "SIMULATED_PVE_")))
    if sim is not None and proxmox_env:
        env.update(sim.env())
    elif sim is not None:
        env.update(SIMULATED_PVE_PORT=str(sim.port), SIMULATED_PVE_TOKEN_ID=sim.token_id,
                   SIMULATED_PVE_TOKEN_SECRET=sim.token_secret)
    if sim is not None:
        env.update(SIMULATED_PVE_CA=sim.ca_path, SIMULATED_PVE_WRONG_CA=sim.wrong_ca_path)
    env.update(ANSIBLE_CONFIG=os.path.join(REPO, "ansible.cfg"),
               ANSIBLE_NOCOLOR="1", ANSIBLE_FORCE_COLOR="0", ANSIBLE_LOCALHOST_WARNING="False",
               ANSIBLE_INVENTORY_UNPARSED_WARNING="False",
               PATH=os.path.join(REPO, ".venv", "bin") + os.pathsep + env.get("PATH", ""))
    proc = subprocess.run(["ansible-playbook", os.path.join(HERE, name), *args], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=900, check=False)
    output = proc.stdout + proc.stderr
    recap = {m.group(1): {"ok": int(m.group(2)), "changed": int(m.group(3)), "unreachable": int(m.group(4)),
                          "failed": int(m.group(5))} for m in RECAP_RE.finditer(proc.stdout)}
    return proc.returncode, output, recap


def asserts_ran(name, output):
    """Every assert task of the playbook ran and passed (none skipped or left out)."""
    with open(os.path.join(HERE, name), encoding="utf-8") as fh:
        wanted = fh.read().count("ansible.builtin.assert:")
    return wanted > 0 and output.count("All assertions passed") == wanted


def api(sim, path):  # noqa: F811
    return requests.get("https://127.0.0.1:%s/api2/json/%s" % (sim.port, path), verify=sim.ca_path, timeout=10,
                        headers={"Authorization": "PVEAPIToken=%s=%s" % (sim.token_id, sim.token_secret)})


def test_simulated_pve_module_pci_mapping_and_node_info(sim):  # noqa: F811
    rc, out, recap = run_playbook(sim, "module_pci_mapping.yml")
    assert rc == 0, out[-6000:]
    assert recap["localhost"]["failed"] == 0
    assert asserts_ran("module_pci_mapping.yml", out), out[-6000:]


def test_simulated_pve_module_vm(sim):  # noqa: F811
    rc, out, recap = run_playbook(sim, "module_vm.yml")
    assert rc == 0, out[-6000:]
    assert recap["localhost"]["failed"] == 0
    assert asserts_ran("module_vm.yml", out), out[-6000:]


def test_simulated_pve_module_defaults_through_the_action_group(sim):  # noqa: F811
    rc, out, recap = run_playbook(sim, "module_defaults_group.yml", proxmox_env=False)
    assert rc == 0, out[-6000:]
    assert recap["localhost"]["failed"] == 0
    assert asserts_ran("module_defaults_group.yml", out), out[-6000:]
    assert [m["id"] for m in api(sim, "cluster/mapping/pci").json()["data"]] == ["gpu-group"]
    assert api(sim, "nodes/pve/qemu/180/status/current").json()["data"]["status"] == "running"


def test_simulated_pve_roles_check_converge_idempotence_and_no_secret(sim):  # noqa: F811
    rc, out, recap = run_playbook(sim, "roles.yml", "--check", "--diff")
    assert rc == 0, out[-6000:]
    assert api(sim, "cluster/mapping/pci").json()["data"] == [], "check mode must not create the mapping"
    assert [v["vmid"] for v in api(sim, "nodes/pve/qemu").json()["data"]] == [9000], "check mode created a VM"

    rc, out, recap = run_playbook(sim, "roles.yml", "--diff")
    assert rc == 0, out[-6000:]
    assert recap["localhost"]["changed"] >= 3, recap  # mapping, VM, start
    assert recap["whisper-gpu"]["failed"] == 0

    rc, out, recap = run_playbook(sim, "roles_verify.yml")
    assert rc == 0, out[-6000:]
    assert asserts_ran("roles_verify.yml", out), out[-6000:]

    rc, out, recap = run_playbook(sim, "roles.yml", "-vvv")
    assert rc == 0, out[-6000:]
    assert recap["localhost"]["changed"] == 0, "second run changed something:\n" + out[-6000:]
    assert sim.token_secret not in out, "the API token secret appeared in -vvv output"
    assert "VALUE_SPECIFIED_IN_NO_LOG_PARAMETER" in out  # module invocations were printed, masked


def test_simulated_pve_module_secret_not_in_verbose_output_on_failure(sim):  # noqa: F811
    rc, out, _err = run_playbook(sim, "module_secret.yml", "-vvv")
    assert rc == 0, out[-6000:]
    assert sim.token_secret not in out
    assert "VALUE_SPECIFIED_IN_NO_LOG_PARAMETER" in out


def test_gpu_vm_role_stops_at_its_start_naming_the_required_variables():
    """proxmox_gpu_vm_node and proxmox_gpu_vm_ssh_public_key have no default: left out, the role's
    argument validation (its first task) names both; given but empty or not a key, the preflight names
    the variable and what to put there. No API is contacted in either case."""
    rc, out, recap = run_playbook(None, "role_gpu_vm_required.yml")
    assert rc != 0 and recap["localhost"]["failed"] == 1, out[-6000:]
    assert "Validating arguments against arg spec 'main'" in out, out[-6000:]
    assert re.search(r"missing required arguments: proxmox_gpu_vm_node, proxmox_gpu_vm_ssh_public_key", out), out[-6000:]

    rc, out, recap = run_playbook(None, "role_gpu_vm_required.yml", "-e", json.dumps(
        {"proxmox_gpu_vm_node": "", "proxmox_gpu_vm_ssh_public_key": SSH_PUBLIC_KEY}))
    assert rc != 0 and recap["localhost"]["failed"] == 1, out[-6000:]
    assert "proxmox_gpu_vm_node is empty: set it to the Proxmox VE node" in out, out[-6000:]

    rc, out, recap = run_playbook(None, "role_gpu_vm_required.yml", "-e", json.dumps(
        {"proxmox_gpu_vm_node": "pve", "proxmox_gpu_vm_ssh_public_key": ""}))
    assert rc != 0 and recap["localhost"]["failed"] == 1, out[-6000:]
    assert "proxmox_gpu_vm_ssh_public_key must hold an OpenSSH public key line" in out, out[-6000:]
