# SPDX-License-Identifier: GPL-3.0-or-later
"""The /access API of the simulated PVE API (users, roles, ACLs, tokens) and PVE's privilege model:
a token made through it works exactly as far as its ACLs (and its user's) reach."""
from __future__ import annotations

import os
import sys

import requests

sys.path.insert(0, os.path.abspath(os.path.join(os.path.dirname(__file__), os.pardir, os.pardir)))
# the fixture `sim`, imported for pytest:
from pve_simulator.pytest_plugin import sim  # noqa: E402,F401  pylint: disable=unused-import
from pve_simulator.access import SPECIAL_ROLES, AccessControl, PermissionDenied  # noqa: E402
from pve_simulator.runner import grant_role_name  # noqa: E402


def call(sim, method, path, data=None, token_id=None, secret=None, params=None):  # noqa: F811
    token_id = token_id or sim.root_token_id
    secret = secret or sim.root_token_secret
    return requests.request(method, "https://127.0.0.1:%s/api2/json%s" % (sim.port, path), data=data, params=params,
                            headers={"Authorization": "PVEAPIToken=%s=%s" % (token_id, secret)},
                            verify=sim.ca_path, timeout=10)


def test_access_api_creates_user_role_acl_and_a_working_privsep_token(sim):  # noqa: F811
    assert call(sim, "POST", "/access/users", {"userid": "bot@pve", "comment": "bootstrap"}).status_code == 200
    assert call(sim, "POST", "/access/roles", {"roleid": "Hw", "privs": "Sys.Audit"}).status_code == 200
    resp = call(sim, "POST", "/access/users/bot@pve/token/t1", {"privsep": "1", "comment": "c"})
    assert resp.status_code == 200, resp.text
    made = resp.json()["data"]
    assert made["full-tokenid"] == "bot@pve!t1" and made["info"] == {"privsep": 1, "expire": 0, "comment": "c"}
    secret = made["value"]
    assert call(sim, "GET", "/access/users/bot@pve/token").json()["data"] == [
        {"tokenid": "t1", "privsep": 1, "expire": 0, "comment": "c"}]
    users = {u["userid"]: u for u in call(sim, "GET", "/access/users").json()["data"]}
    assert users["bot@pve"]["comment"] == "bootstrap" and "root@pam" in users

    # the user has the role on /, the token not yet: privilege separation gives the token nothing
    assert call(sim, "PUT", "/access/acl", {"path": "/", "roles": "Hw", "users": "bot@pve"}).status_code == 200
    resp = call(sim, "GET", "/nodes/pve/hardware/pci", token_id="bot@pve!t1", secret=secret)
    assert resp.status_code == 403 and resp.reason == "Permission check failed (/, Sys.Audit|Sys.Modify)"
    # the same ACL for the token: now it works
    assert call(sim, "PUT", "/access/acl", {"path": "/", "roles": "Hw", "tokens": "bot@pve!t1"}).status_code == 200
    assert call(sim, "GET", "/nodes/pve/hardware/pci", token_id="bot@pve!t1", secret=secret).status_code == 200
    acl = call(sim, "GET", "/access/acl").json()["data"]
    assert {"path": "/", "type": "token", "ugid": "bot@pve!t1", "roleid": "Hw", "propagate": 1} in acl
    assert {"path": "/", "type": "user", "ugid": "bot@pve", "roleid": "Hw", "propagate": 1} in acl

    # the role loses the privilege: refused again; PUT with append adds it back
    assert call(sim, "PUT", "/access/roles/Hw", {"privs": "Datastore.Audit"}).status_code == 200
    assert call(sim, "GET", "/nodes/pve/hardware/pci", token_id="bot@pve!t1", secret=secret).status_code == 403
    assert call(sim, "PUT", "/access/roles/Hw", {"privs": "Sys.Audit", "append": "1"}).status_code == 200
    roles = {r["roleid"]: r for r in call(sim, "GET", "/access/roles").json()["data"]}
    assert roles["Hw"] == {"roleid": "Hw", "privs": "Datastore.Audit,Sys.Audit", "special": 0}
    assert call(sim, "GET", "/nodes/pve/hardware/pci", token_id="bot@pve!t1", secret=secret).status_code == 200

    # the token's ACL removed (PUT /access/acl delete=1): refused
    assert call(sim, "PUT", "/access/acl", {"path": "/", "roles": "Hw", "tokens": "bot@pve!t1",
                                            "delete": "1"}).status_code == 200
    assert call(sim, "GET", "/nodes/pve/hardware/pci", token_id="bot@pve!t1", secret=secret).status_code == 403


def test_access_api_refuses_like_pve(sim):  # noqa: F811
    resp = call(sim, "POST", "/access/roles", {"roleid": "Bad", "privs": "VM.Config.*"})
    assert resp.status_code == 400 and resp.json()["errors"] == {"privs": "invalid format - invalid privilege 'VM.Config.*'"}
    resp = call(sim, "PUT", "/access/roles/PVEAdmin", {"privs": "Mapping.Modify", "append": "1"})
    assert resp.status_code == 500 and resp.reason == "cannot modify predefined role 'PVEAdmin'"
    resp = call(sim, "POST", "/access/users", {"userid": "nobody"})
    assert resp.status_code == 400 and "does not look like a valid user name" in resp.json()["errors"]["userid"]
    assert call(sim, "POST", "/access/users", {"userid": "twice@pve"}).status_code == 200
    resp = call(sim, "POST", "/access/users", {"userid": "twice@pve"})
    assert resp.status_code == 500 and resp.reason == "create user failed: user 'twice@pve' already exists"
    assert call(sim, "POST", "/access/users/twice@pve/token/ab").status_code == 200
    resp = call(sim, "POST", "/access/users/twice@pve/token/ab")
    assert resp.status_code == 500 and resp.reason == "Token already exists."
    # the tests' token may not create users, roles or ACLs (it holds only the collection's privileges)
    resp = call(sim, "POST", "/access/users", {"userid": "x@pve"}, token_id=sim.token_id, secret=sim.token_secret)
    assert resp.status_code == 403 and resp.reason == "Permission check failed (/access/realm/pve, Realm.AllocateUser)"
    resp = call(sim, "POST", "/access/roles", {"roleid": "X"}, token_id=sim.token_id, secret=sim.token_secret)
    assert resp.status_code == 403 and resp.reason == "Permission check failed (/access, Sys.Modify)"
    resp = call(sim, "PUT", "/access/acl", {"path": "/vms", "roles": "PVEAdmin", "tokens": sim.token_id},
                token_id=sim.token_id, secret=sim.token_secret)
    assert resp.status_code == 403 and resp.reason == "Permission check failed (/vms, Permissions.Modify)"


def test_access_api_deleted_token_authenticates_no_more(sim):  # noqa: F811
    secret = call(sim, "POST", "/access/users/root@pam/token/tmp", {"privsep": "0"}).json()["data"]["value"]
    assert call(sim, "GET", "/access/users", token_id="root@pam!tmp", secret=secret).status_code == 200
    assert call(sim, "DELETE", "/access/users/root@pam/token/tmp").status_code == 200
    resp = call(sim, "GET", "/access/users", token_id="root@pam!tmp", secret=secret)
    assert resp.status_code == 401


# ---- the model itself (AccessControl), from pve-access-control ------------------------------------
def test_pveadmin_lacks_mapping_modify_and_pvemappingadmin_has_it():
    assert "Mapping.Modify" not in SPECIAL_ROLES["PVEAdmin"]
    assert {"Mapping.Modify", "Mapping.Use", "Mapping.Audit"} <= SPECIAL_ROLES["PVEMappingAdmin"]
    assert "Mapping.Modify" in SPECIAL_ROLES["Administrator"]
    assert SPECIAL_ROLES["PVETemplateUser"] == {"VM.Clone", "VM.Audit"}
    assert not any(p.endswith("*") for privs in SPECIAL_ROLES.values() for p in privs)


def _model(privsep=1):
    ac = AccessControl()
    ac.add_user("u@pve")
    ac.add_token("u@pve", "tk", privsep=privsep, secret="s")
    ac.add_role("Maps", ["Mapping.Modify", "Mapping.Use"])
    ac.add_role("Audit", ["Mapping.Audit"])
    return ac


def test_pveadmin_on_root_cannot_modify_a_mapping():
    ac = AccessControl()
    ac.add_user("admin@pve")
    ac.set_acl("/", ["PVEAdmin"], users=["admin@pve"])
    try:
        ac.check("admin@pve", "/mapping/pci", ["Mapping.Modify"])
    except PermissionDenied as exc:
        assert exc.message == "Permission check failed (/mapping/pci, Mapping.Modify)"
    else:
        raise AssertionError("PVEAdmin must not include Mapping.Modify")
    ac.set_acl("/mapping/pci", ["PVEMappingAdmin"], users=["admin@pve"])
    assert ac.check("admin@pve", "/mapping/pci/gpu", ["Mapping.Modify"])


def test_privsep_token_gets_the_intersection_and_a_non_privsep_token_the_users():
    ac = _model(privsep=1)
    ac.set_acl("/mapping/pci", ["Maps"], users=["u@pve"])
    ac.set_acl("/mapping/pci", ["Audit"], tokens=["u@pve!tk"])
    assert ac.permissions("u@pve!tk", "/mapping/pci") == set()  # the user lacks Mapping.Audit
    ac.set_acl("/mapping/pci", ["Maps"], tokens=["u@pve!tk"])
    assert ac.permissions("u@pve!tk", "/mapping/pci") == {"Mapping.Modify", "Mapping.Use"}
    ac.set_acl("/mapping/pci", ["Maps"], users=["u@pve"], delete=True)
    assert ac.permissions("u@pve!tk", "/mapping/pci") == set()  # the token alone is not enough
    shared = _model(privsep=0)
    shared.set_acl("/mapping/pci", ["Maps"], users=["u@pve"])
    assert shared.permissions("u@pve!tk", "/mapping/pci") == {"Mapping.Modify", "Mapping.Use"}


def test_propagation_and_the_deeper_acl_replacing_the_roles_above():
    ac = _model()
    ac.set_acl("/mapping", ["Maps"], users=["u@pve"], propagate=1)
    ac.set_acl("/vms", ["PVEVMAdmin"], users=["u@pve"], propagate=0)
    assert ac.permissions("u@pve", "/mapping/pci/gpu") == {"Mapping.Modify", "Mapping.Use"}
    assert "VM.Allocate" in ac.permissions("u@pve", "/vms")
    assert ac.permissions("u@pve", "/vms/100") == set()  # not propagated
    ac.set_acl("/mapping/pci", ["Audit"], users=["u@pve"])
    assert ac.permissions("u@pve", "/mapping/pci/gpu") == {"Mapping.Audit"}  # the deeper ACL wins
    ac.set_acl("/mapping/pci/gpu", ["NoAccess"], users=["u@pve"])
    assert ac.permissions("u@pve", "/mapping/pci/gpu") == set()
    assert ac.permissions("root@pam", "/anything") == SPECIAL_ROLES["Administrator"]


def test_the_simulators_privilege_groups_are_pve_access_controls():
    """The simulator's copy of pve-access-control's $privgroups equals the collection's, which
    tests/unit/plugins/module_utils/test_pve_client.py compares with shared/reference/pve/09."""
    from ansible_collections.homelab.gpu_passthrough.plugins.module_utils.pve_client import PVE_PRIVILEGE_GROUPS

    from pve_simulator.access import PRIVGROUPS
    assert PRIVGROUPS == {g: {k: list(v) for k, v in kinds.items()} for g, kinds in PVE_PRIVILEGE_GROUPS.items()}


def test_import_from_rules_for_a_token(sim):  # noqa: F811
    """qemu-server check_storage_access / pve-storage check_volume_access for ``import-from``: no file
    system paths for tokens, only images/import volumes, import/ files by extension, and read access to
    the source storage (the privilege list grants Datastore.Audit on the image storage 'local'; without
    that ACL the import is refused)."""
    def create(source, token_id=None, secret=None):
        return call(sim, "POST", "/nodes/pve/qemu", {"vmid": "160", "scsi0": "local-lvm:0,import-from=" + source},
                    token_id=token_id or sim.token_id, secret=secret or sim.token_secret)

    resp = create("/var/lib/vz/template/debian.qcow2")
    assert resp.status_code == 500 and resp.reason == "Only root can pass arbitrary filesystem paths."
    resp = create("local:import/debian-12-genericcloud-amd64.img")
    assert resp.status_code == 500
    assert resp.reason == "unable to parse directory volume name 'import/debian-12-genericcloud-amd64.img'"
    resp = create("local:iso/debian.iso")
    assert resp.status_code == 400
    assert resp.json()["errors"] == {"scsi0": "local:iso/debian.iso has wrong type 'iso' - not an image"}
    assert create("local:import/debian-12-genericcloud-amd64.qcow2").status_code == 200
    assert call(sim, "DELETE", "/nodes/pve/qemu/160", {}).status_code == 200
    assert call(sim, "PUT", "/access/acl", {"path": "/storage/local", "roles": grant_role_name("/storage/local"),
                                            "tokens": sim.token_id, "delete": "1"}).status_code == 200
    resp = create("local:import/debian-12-genericcloud-amd64.qcow2")
    assert resp.status_code == 403
    assert resp.reason == "Permission check failed (/storage/local, Datastore.AllocateSpace|Datastore.Audit)"
    # with Datastore.Audit on the source's storage (user and token) the import passes
    assert call(sim, "POST", "/access/roles", {"roleid": "ImportRead", "privs": "Datastore.Audit"}).status_code == 200
    assert call(sim, "PUT", "/access/acl", {"path": "/storage/local", "roles": "ImportRead", "users": "automation@pve",
                                            "tokens": sim.token_id}).status_code == 200
    assert create("local:import/debian-12-genericcloud-amd64.qcow2").status_code == 200
    # even root@pam's token is not root@pam: a file system path stays refused
    resp = call(sim, "POST", "/nodes/pve/qemu", {"vmid": "161", "scsi0": "local-lvm:0,import-from=/tmp/x.qcow2"})
    assert resp.status_code == 500 and resp.reason == "Only root can pass arbitrary filesystem paths."
