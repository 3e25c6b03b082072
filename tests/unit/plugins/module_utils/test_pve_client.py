# SPDX-License-Identifier: GPL-3.0-or-later
"""pve_client.PveClient against the simulated PVE API: TLS, token errors, parameter errors, nodes, tasks."""
from __future__ import annotations

import glob
import os
import re
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


# ---- the advice of a 403 -------------------------------------------------------------------------
REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), os.pardir, os.pardir, os.pardir, os.pardir))
PVE_ROLES_REFERENCE = os.path.join(os.path.dirname(REPO), "shared", "reference", "pve",
                                   "09-builtin-roles-and-privileges.AccessControl.pm.txt")


@pytest.mark.parametrize("privilege, role", [
    ("Mapping.Modify", "PVEMappingAdmin"), ("Mapping.Use", "PVEMappingUser"), ("Mapping.Audit", "PVEAuditor"),
    ("VM.Config.HWType", "PVEVMAdmin"), ("VM.Config.Cloudinit", "PVEVMUser"), ("VM.PowerMgmt", "PVEVMUser"),
    ("VM.Clone", "PVETemplateUser"), ("VM.Audit", "PVEAuditor"), ("Sys.Audit", "PVEAuditor"),
    ("Datastore.AllocateSpace", "PVEDatastoreUser"), ("SDN.Use", "PVESDNUser"), ("Sys.Modify", "Administrator"),
    ("Permissions.Modify", "Administrator"), ("VM.Config.*", None),
])
def test_builtin_role_for_a_privilege_is_the_narrowest_built_in_role(privilege, role):
    assert pve_client.builtin_role_for(privilege) == role


def test_permission_advice_for_mapping_modify_names_pvemappingadmin_not_pveadmin():
    advice = pve_client.permission_advice("Permission check failed (/mapping/pci, Mapping.Modify)",
                                          "automation@pve!ansible")
    assert "Mapping.Modify on /mapping/pci" in advice
    assert ("pveum acl modify /mapping/pci --roles PVEMappingAdmin --users automation@pve "
            "--tokens 'automation@pve!ansible'; ") in advice
    assert "PVEAdmin does not include Mapping.Modify since PVE 8.0" in advice
    assert advice.endswith('the README section "Proxmox API token and privileges" lists every path and '
                           'privilege it needs.')


def test_permission_advice_for_mapping_use_and_alternatives_and_several():
    advice = pve_client.permission_advice("Permission check failed (/mapping/pci/gpu, Mapping.Use)", "a@pve!t")
    assert "--roles PVEMappingUser --users a@pve --tokens 'a@pve!t'" in advice and "PVEAdmin" not in advice
    advice = pve_client.permission_advice("Permission check failed (/vms/100, VM.Config.Disk|VM.Config.CPU)", "a@pve!t")
    assert "one of VM.Config.Disk, VM.Config.CPU on /vms/100" in advice and "--roles PVEVMAdmin " in advice
    advice = pve_client.permission_advice("Permission check failed (/, Sys.Audit, Sys.Modify)", "a@pve!t")
    assert "built-in roles PVEAuditor and Administrator" in advice and "--roles PVEAuditor,Administrator " in advice


def test_permission_advice_without_a_path_or_a_known_privilege_gives_no_made_up_role():
    advice = pve_client.permission_advice("Permission check failed", "a@pve!t")
    assert "pveum acl modify <path> --roles <role> --users a@pve --tokens 'a@pve!t'" in advice
    advice = pve_client.permission_advice("Permission check failed (/x, Nope.Nope)", "a@pve!t")
    assert "Nope.Nope on /x" in advice and "--roles <role>" in advice


@pytest.mark.skipif(not os.path.isfile(PVE_ROLES_REFERENCE), reason="shared/reference/pve (Proxmox's source) not here")
def test_privilege_groups_equal_pve_access_control():
    """PVE_PRIVILEGE_GROUPS is pve-access-control's $privgroups (shared/reference/pve/09), and that file
    still removes Mapping.Modify from PVEAdmin and makes PVETemplateUser of VM.Clone and VM.Audit."""
    with open(PVE_ROLES_REFERENCE, encoding="utf-8") as fh:
        text = fh.read()
    block = text[text.index("my $privgroups = {"):text.index("\n};", text.index("my $privgroups = {"))]
    groups, group, kind = {}, None, None
    for line in block.splitlines():
        m = re.match(r"^    (\w+) => \{", line)
        if m:
            group = m.group(1)
            groups[group] = {}
            continue
        m = re.match(r"^        (root|admin|user|audit) => \[", line)
        if m:
            kind = m.group(1)
            groups[group][kind] = []
        if kind:
            groups[group][kind].extend(re.findall(r"'([A-Za-z.]+)'", line.split("#")[0]))
        if line.strip().endswith("],"):
            kind = None
    assert groups == dict((g, dict((k, list(v)) for k, v in kinds.items()))
                          for g, kinds in pve_client.PVE_PRIVILEGE_GROUPS.items())
    assert 'delete $special_roles->{"PVEAdmin"}->{"Mapping.Modify"};' in text
    assert "$special_roles->{\"PVETemplateUser\"} = { 'VM.Clone' => 1, 'VM.Audit' => 1 };" in text


def _builtin_roles():
    """Role -> privileges of PVE's built-in roles, made from PVE_PRIVILEGE_GROUPS the way
    pve-access-control's create_roles makes them."""
    roles = {"NoAccess": set(), "PVETemplateUser": {"VM.Clone", "VM.Audit"}, "PVEAuditor": set(), "PVEAdmin": set()}
    every = {"Permissions.Modify"}
    for group, kinds in pve_client.PVE_PRIVILEGE_GROUPS.items():
        every.update(*kinds.values())
        roles["PVE%sAdmin" % group] = set(kinds["admin"] + kinds["user"] + kinds["audit"])
        roles["PVEAdmin"].update(kinds["admin"] + kinds["user"] + kinds["audit"])
        if kinds["user"]:
            roles["PVE%sUser" % group] = set(kinds["user"] + kinds["audit"])
        roles["PVEAuditor"].update(kinds["audit"])
    roles["PVEAdmin"].discard("Mapping.Modify")
    roles["Administrator"] = every
    return roles


ROLE_READMES = sorted(glob.glob(os.path.join(REPO, "roles", "*", "README.md")))


@pytest.mark.parametrize("readme", ROLE_READMES, ids=lambda p: os.path.basename(os.path.dirname(p)))
def test_role_readmes_name_only_real_privileges_and_roles(readme):
    """Every privilege a role's README names exists (no `VM.Config.*`), and every pveum command uses
    role names and privileges that pveum accepts."""
    roles = _builtin_roles()
    with open(readme, encoding="utf-8") as fh:
        text = fh.read()
    groups = "|".join(list(pve_client.PVE_PRIVILEGE_GROUPS) + ["Group", "Realm", "Permissions"])
    named = re.findall(r"`((?:%s)\.[A-Za-z.*]+)`" % groups, text)
    assert [p for p in named if p not in roles["Administrator"]] == [], readme
    for line in [ln.strip() for ln in text.splitlines() if ln.strip().startswith("pveum ")]:
        for value in re.findall(r"--roles (\S+)", line):
            assert set(value.split(",")) <= set(roles), line
        for value in re.findall(r"--privs (\S+)", line):
            assert set(value.strip("'\"").split(",")) <= roles["Administrator"], line


def test_the_privilege_list_grants_what_the_mapping_calls_need():
    """The one list (roles/proxmox_api_access/vars/main.yml, which roles/proxmox_pci_mapping/README.md
    points to) gives Mapping.Modify on /mapping/pci and Sys.Audit on / (granting PVEAdmin, which lacks
    Mapping.Modify, failed the first mapping write). tests/unit/pve_simulator/test_privileges.py checks
    the whole list against every call."""
    import yaml

    with open(os.path.join(REPO, "roles", "proxmox_api_access", "vars", "main.yml"), encoding="utf-8") as fh:
        grants = {g["path"]: set(g["privileges"]) for g in yaml.safe_load(fh)["_proxmox_api_access_grants"]}
    assert "Mapping.Modify" in grants["/mapping/pci"] and "Sys.Audit" in grants["/"], grants
    assert "Mapping.Modify" not in _builtin_roles()["PVEAdmin"]
    with open(os.path.join(REPO, "roles", "proxmox_pci_mapping", "README.md"), encoding="utf-8") as fh:
        assert "README.md#proxmox-api-token-and-privileges" in fh.read()


# ---- digest conflicts --------------------------------------------------------------------------------
@pytest.mark.parametrize("reason, conflict", [
    ("checksum mismatch (file change by other user?)", True),          # qemu-server update_vm_api
    ("checksum missmatch (file change by other user?)", True),         # the same, older releases
    ("update hardware mapping failed: detected modified configuration - file changed by other user? Try again.",
     True),                                                            # pve-common assert_if_modified
    ("VM is locked (clone)", False),
    ("Permission check failed (/vms/100, VM.Config.Memory)", False),
])
def test_is_digest_conflict_knows_pve_wordings(reason, conflict):
    exc = pve_client.PveApiError("Proxmox VE API error on PUT /x (HTTP 500): %s" % reason, status=500, reason=reason)
    assert pve_client.is_digest_conflict(exc) is conflict
    assert pve_client.is_digest_conflict(ValueError(reason)) is False


def test_simulated_pve_vm_digest_conflict_has_qemu_servers_wording(sim_client):  # noqa: F811
    c = sim_client()
    c.wait_task(c.post("nodes/pve/qemu", vmid=132, name="d1", memory="2048"))
    digest = c.get("nodes/pve/qemu/132/config")["digest"]
    c.put("nodes/pve/qemu/132/config", memory="3072", digest=digest)
    with pytest.raises(pve_client.PveApiError) as info:
        c.put("nodes/pve/qemu/132/config", memory="4096", digest=digest)
    assert info.value.status == 500 and info.value.reason == "checksum mismatch (file change by other user?)"
    assert pve_client.is_digest_conflict(info.value)
