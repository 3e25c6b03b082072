# SPDX-License-Identifier: GPL-3.0-or-later
"""playbooks/bootstrap.yml (role proxmox_api_access) against the *simulated* PVE API.

The real `pveum` runs only on a PVE node; here the node is this machine (connection local) with the
*simulated* pveum stand-in (tests/pve_simulator/pveum) first on PATH, which sends each pveum command
to the simulated PVE API's /access endpoints with the simulator's root credentials. So the user, role,
ACLs and token the bootstrap creates are real in the simulator: the token it writes into the vault
authenticates the roles' API calls, and the ACLs decide them (one ACL removed -> 403).

One simulator for the module (the steps build on each other, in order): check mode changes nothing,
the real run writes the vault, a second run changes nothing, the token works, an ACL removed is
refused and restored, a secret the vault lost is refused with the rotation hint, rotation works.
"""
from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys

import pytest
import yaml
from ansible.parsing.vault import VaultLib, VaultSecret

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(os.path.dirname(HERE)))
sys.path.insert(0, os.path.join(REPO, "tests"))
from pve_simulator.pytest_plugin import sim_module  # noqa: E402,F401  pylint: disable=unused-import

from ansible_collections.homelab.gpu_passthrough.plugins.module_utils.pve_client import (  # noqa: E402
    PveApiError,
    PveClient,
)
from ansible_collections.homelab.gpu_passthrough.plugins.module_utils.pve_access import role_for_path  # noqa: E402

SIMULATED_PVEUM_DIR = os.path.join(REPO, "tests", "pve_simulator")
RECAP_RE = re.compile(r"^(\S+)\s+: ok=(\d+)\s+changed=(\d+)\s+unreachable=(\d+)\s+failed=(\d+)", re.M)
PASSWORD = "bootstrap-test-password"
NODE = "pve"
USER, ROLE, TOKEN = "gpu-passthrough@pve", "GpuPassthrough", "ansible"
TOKENID = f"{USER}!{TOKEN}"
VAULT_KEYS = {"vault_proxmox_api_token_id", "vault_proxmox_api_token_secret", "vault_proxmox_api_ca_path",
              "vault_whisper_api_key"}


def root_env(sim):  # noqa: F811
    return {"SIMULATED_PVE_ROOT": os.path.join(sim.directory, "root.json")}


def pveum(sim, *argv):  # noqa: F811
    """The simulated pveum, as root on the node."""
    env = dict(os.environ, **root_env(sim))
    return subprocess.run([os.path.join(SIMULATED_PVEUM_DIR, "pveum"), *argv], env=env,
                          capture_output=True, text=True, timeout=60, check=False)


@pytest.fixture(scope="module")
def node(sim_module, tmp_path_factory):  # noqa: F811
    """An inventory whose PVE node is this machine, and a vault that already holds another variable."""
    inv = tmp_path_factory.mktemp("bootstrap-inventory")
    (inv / "group_vars" / "all").mkdir(parents=True)
    (inv / "hosts.yml").write_text(yaml.safe_dump({"all": {"children": {"proxmox_hosts": {"hosts": {NODE: {
        "ansible_connection": "local", "ansible_python_interpreter": sys.executable,
        "proxmox_api_access_node_ca_file": sim_module.ca_path}}}}}}), encoding="utf-8")
    # the example inventory's API settings, as a user copies them: they read what bootstrap writes
    shutil.copy(os.path.join(REPO, "inventories", "homelab", "group_vars", "all", "main.yml"),
                inv / "group_vars" / "all" / "main.yml")
    password = inv.parent / f"{inv.name}.pass"
    password.write_text(PASSWORD + "\n", encoding="utf-8")
    vault = inv / "group_vars" / "all" / "vault.yml"
    vault.write_bytes(vault_lib().encrypt("---\n# mine\nvault_other_secret: keep-me\n"))
    return {"inv": inv, "password": password, "vault": vault, "ca": inv / "group_vars" / "all" / "pve-root-ca.pem"}


def vault_lib():
    return VaultLib([("default", VaultSecret(PASSWORD.encode()))])


def read_vault(path):
    return yaml.safe_load(vault_lib().decrypt(path.read_bytes()))


def ansible_env(sim):  # noqa: F811
    env = dict((k, v) for k, v in os.environ.items() if not k.startswith(("PROXMOX_", "SIMULATED_PVE_")))
    env.update(root_env(sim))
    env.update(ANSIBLE_CONFIG=os.path.join(REPO, "ansible.cfg"), ANSIBLE_NOCOLOR="1", ANSIBLE_FORCE_COLOR="0",
               ANSIBLE_LOCALHOST_WARNING="False",
               PATH=os.pathsep.join([SIMULATED_PVEUM_DIR, os.path.join(REPO, ".venv", "bin"), env.get("PATH", "")]))
    return env


def bootstrap(sim, node, *args):  # noqa: F811
    env = ansible_env(sim)
    proc = subprocess.run(["ansible-playbook", "-i", str(node["inv"]), "--vault-password-file", str(node["password"]),
                           os.path.join(REPO, "playbooks", "bootstrap.yml"), *args], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=600, check=False)
    out = proc.stdout + proc.stderr
    recap = {m.group(1): {"changed": int(m.group(3)), "failed": int(m.group(5))} for m in RECAP_RE.finditer(proc.stdout)}
    return proc.returncode, out, recap


def access_state(sim):  # noqa: F811
    state = {}
    for name, argv in (("users", ["user", "list"]), ("roles", ["role", "list"]), ("acl", ["acl", "list"])):
        proc = pveum(sim, *argv, "--output-format", "json")
        assert proc.returncode == 0, proc.stderr
        state[name] = json.loads(proc.stdout)
    return state


def client(sim, vault):  # noqa: F811
    """A PveClient as the modules make it, from what the bootstrap wrote into the vault."""
    return PveClient(host="127.0.0.1", port=sim.port, token_id=vault["vault_proxmox_api_token_id"],
                     token_secret=vault["vault_proxmox_api_token_secret"], ca_path=vault["vault_proxmox_api_ca_path"],
                     poll_interval=0.05)


def node_pci_info(sim, node):  # noqa: F811
    """The mapping stage's API call (module proxmox_node_pci_info), with the connection settings of the
    homelab inventory's group_vars/all/main.yml resolved from the vault bootstrap wrote (the address is
    the simulator's, not the example's 192.168.20.10)."""
    args = ("api_host=127.0.0.1 api_port=%s api_token_id={{ proxmox_api_token_id }} "
            "api_token_secret={{ proxmox_api_token_secret }} validate_certs={{ proxmox_api_validate_certs }} "
            "ca_path={{ proxmox_api_ca_path }} node=%s" % (sim.port, NODE))
    proc = subprocess.run(["ansible", "-i", str(node["inv"]), "--vault-password-file", str(node["password"]), NODE,
                           "-m", "homelab.gpu_passthrough.proxmox_node_pci_info", "-a", args], cwd=REPO,
                          env=ansible_env(sim), capture_output=True, text=True, timeout=300, check=False)
    return proc.returncode, proc.stdout + proc.stderr


def test_simulated_pveum_says_what_it_is_not(sim_module):  # noqa: F811
    proc = pveum(sim_module, "pool", "list")
    assert proc.returncode == 2 and "simulated pveum" in proc.stderr
    proc = pveum(sim_module, "user", "add", "nobody-without-realm")
    assert proc.returncode == 255 and proc.stderr.startswith("400"), proc.stderr


def test_check_mode_changes_nothing(sim_module, node):  # noqa: F811
    before_state, before_vault = access_state(sim_module), node["vault"].read_bytes()
    rc, out, recap = bootstrap(sim_module, node, "--check", "--diff")
    assert rc == 0, out[-6000:]
    assert recap[NODE]["changed"] >= 3, out[-6000:]  # access, CA copy, vault
    assert "create user " + USER in out and "create token " + TOKENID in out
    assert "grant role " + ROLE + ".vms on /vms to " + USER + " and " + TOKENID in out
    assert access_state(sim_module) == before_state
    assert node["vault"].read_bytes() == before_vault
    assert not node["ca"].exists()


def test_bootstrap_writes_the_vault_and_a_second_run_changes_nothing(sim_module, node):  # noqa: F811
    rc, out, recap = bootstrap(sim_module, node)
    assert rc == 0, out[-6000:]
    assert recap[NODE]["changed"] >= 3 and recap[NODE]["failed"] == 0
    vault = read_vault(node["vault"])
    assert VAULT_KEYS <= set(vault) and vault["vault_other_secret"] == "keep-me"
    assert "# mine" in vault_lib().decrypt(node["vault"].read_bytes()).decode()
    assert vault["vault_proxmox_api_token_id"] == TOKENID
    assert len(vault["vault_proxmox_api_token_secret"]) >= 16
    assert len(vault["vault_whisper_api_key"]) == 48 and vault["vault_whisper_api_key"].isalnum()
    assert vault["vault_proxmox_api_ca_path"] == str(node["ca"].resolve())
    assert node["ca"].read_bytes() == open(sim_module.ca_path, "rb").read()
    assert vault["vault_proxmox_api_token_secret"] not in out and vault["vault_whisper_api_key"] not in out
    state = access_state(sim_module)
    assert any(u["userid"] == USER for u in state["users"])
    # per path of the grant list: a role with exactly its privileges, on that path for the user and the token
    with open(os.path.join(REPO, "roles/proxmox_api_access/vars/main.yml"), encoding="utf-8") as fh:
        grants = yaml.safe_load(fh)["_proxmox_api_access_grants"]
    roles = {r["roleid"]: sorted(r["privs"].split(",")) for r in state["roles"]}
    wanted_acl = set()
    for grant in grants:
        path = grant["path"].format(node=NODE, storage="local-lvm", image_storage="local", bridge="vmbr0")
        roleid = role_for_path(ROLE, path)
        assert roles[roleid] == sorted(grant["privileges"]), (path, roles.get(roleid))
        wanted_acl |= {(path, roleid, USER, 1), (path, roleid, TOKENID, 1)}
    ours = {(e["path"], e["roleid"], e["ugid"], int(e["propagate"])) for e in state["acl"] if e["ugid"] in (USER, TOKENID)}
    assert ours == wanted_acl
    tokens = json.loads(pveum(sim_module, "user", "token", "list", USER, "--output-format", "json").stdout)
    assert [(t["tokenid"], int(t["privsep"])) for t in tokens] == [(TOKEN, 1)]

    written = node["vault"].read_bytes()
    rc, out, recap = bootstrap(sim_module, node, "--diff", "-vvv")
    assert rc == 0, out[-6000:]
    assert recap[NODE]["changed"] == 0, out[-6000:]
    assert node["vault"].read_bytes() == written
    assert "nothing to change" in out
    assert vault["vault_proxmox_api_token_secret"] not in out and vault["vault_whisper_api_key"] not in out


def test_the_token_does_the_roles_calls_and_one_acl_less_is_refused(sim_module, node):  # noqa: F811
    rc, out = node_pci_info(sim_module, node)
    assert rc == 0 and '"devices": [' in out, out[-4000:]
    removed = pveum(sim_module, "acl", "delete", "/", "--roles", ROLE, "--tokens", TOKENID)
    assert removed.returncode == 0, removed.stderr
    rc, out = node_pci_info(sim_module, node)
    assert rc != 0 and "(HTTP 403)" in out and "Permission check failed (/, Sys.Audit" in out, out[-4000:]
    rc, out, recap = bootstrap(sim_module, node)
    assert rc == 0 and recap[NODE]["changed"] == 1, out[-6000:]  # the ACL back, nothing else
    assert "grant role GpuPassthrough on / to " + TOKENID in out
    rc, out = node_pci_info(sim_module, node)
    assert rc == 0, out[-4000:]


def test_a_token_whose_secret_the_vault_lost_is_refused_then_rotated(sim_module, node, tmp_path):  # noqa: F811
    old = read_vault(node["vault"])
    shutil.copy(node["vault"], tmp_path / "vault.yml")
    node["vault"].write_bytes(vault_lib().encrypt("vault_other_secret: keep-me\n"))
    rc, out, _recap = bootstrap(sim_module, node)
    assert rc != 0
    assert "proxmox_api_access_token_rotate=true" in out and "exists on the node" in out, out[-4000:]
    rc, out, recap = bootstrap(sim_module, node, "-e", "proxmox_api_access_token_rotate=true")
    assert rc == 0, out[-6000:]
    new = read_vault(node["vault"])
    assert new["vault_proxmox_api_token_secret"] != old["vault_proxmox_api_token_secret"]
    assert any(d.get("id") for d in client(sim_module, new).get(f"/nodes/{NODE}/hardware/pci"))
    with pytest.raises(PveApiError) as refused:
        client(sim_module, old).get(f"/nodes/{NODE}/hardware/pci")
    assert refused.value.status == 401
    rc, out, recap = bootstrap(sim_module, node)
    assert rc == 0 and recap[NODE]["changed"] == 0, out[-6000:]
