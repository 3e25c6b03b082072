# SPDX-License-Identifier: GPL-3.0-or-later
"""pve_access: the grant list's union and paths, and the pveum plan from a node's access state."""
from __future__ import annotations

import pytest

from ansible_collections.homelab.gpu_passthrough.plugins.module_utils.pve_access import (
    AccessError,
    expand_path,
    grants_by_path,
    plan,
    role_for_path,
)

USER, ROLE, TOKEN = "gpu-passthrough@pve", "GpuPassthrough", "ansible"
TOKENID = f"{USER}!{TOKEN}"
GRANTS = [
    {"path": "/", "privileges": ["Sys.Audit"], "why": "pci"},
    {"path": "/vms", "privileges": ["VM.Audit", "VM.Allocate"], "why": "vm"},
    {"path": "/storage/{storage}", "privileges": ["Datastore.AllocateSpace"], "why": "disks"},
    {"path": "/vms", "privileges": ["VM.Clone"], "why": "clone"},
]
VALUES = {"node": "pve", "storage": "local-zfs", "bridge": "vmbr0"}
GRANTS_BY_PATH = grants_by_path(GRANTS, VALUES)
PATHS = list(GRANTS_BY_PATH)
R_ROOT, R_STORAGE, R_VMS = ROLE, ROLE + ".storage.local-zfs", ROLE + ".vms"


def run(state, secret_known=False, rotate=False):
    actions, before, after = plan(state, userid=USER, role_base=ROLE, grants=GRANTS_BY_PATH, token=TOKEN,
                                  comment="c", secret_known=secret_known, rotate=rotate)
    return [a["argv"] for a in actions], before, after


def converged():
    acl = [{"path": p, "roleid": role_for_path(ROLE, p), "type": t, "ugid": u, "propagate": 1}
           for p in PATHS for t, u in (("user", USER), ("token", TOKENID))]
    return {"users": [{"userid": "root@pam"}, {"userid": USER}],
            "roles": [{"roleid": "PVEAdmin", "privs": "VM.Audit", "special": 1}]
            + [{"roleid": role_for_path(ROLE, p), "privs": ",".join(reversed(privs)), "special": 0}
               for p, privs in GRANTS_BY_PATH.items()],
            "acl": acl, "tokens": [{"tokenid": TOKEN, "privsep": 1}]}


def test_one_role_per_path_with_exactly_its_privileges():
    """A role with the union set on / would propagate every privilege to every path."""
    assert GRANTS_BY_PATH == {"/": ["Sys.Audit"], "/storage/local-zfs": ["Datastore.AllocateSpace"],
                              "/vms": ["VM.Allocate", "VM.Audit", "VM.Clone"]}
    assert [role_for_path(ROLE, p) for p in PATHS] == [R_ROOT, R_STORAGE, R_VMS]
    assert role_for_path(ROLE, "/sdn/zones/localnetwork/vmbr0") == ROLE + ".sdn.zones.localnetwork.vmbr0"


@pytest.mark.parametrize("template,values,needle", [
    ("/sdn/zones/localnetwork/{bridge}", {}, "needs a value for ['bridge']"),
    ("/nodes/{nodename}", VALUES, "placeholder(s) ['nodename']"),
    ("vms", VALUES, "must start with '/'"),
])
def test_bad_paths_say_what_to_fix(template, values, needle):
    with pytest.raises(AccessError, match=r".*" + needle.replace("[", r"\[").replace("]", r"\]").replace("(", r"\(")
                       .replace(")", r"\)")):
        expand_path(template, values)


def test_empty_grant_list_and_grant_without_privileges_are_refused():
    with pytest.raises(AccessError, match="empty"):
        grants_by_path([], VALUES)
    with pytest.raises(AccessError, match="non-empty 'privileges'"):
        grants_by_path([{"path": "/"}], VALUES)


def test_fresh_node_gets_everything_in_order():
    argv, before, after = run({"users": [{"userid": "root@pam"}], "roles": [], "acl": []})
    assert argv[0] == ["user", "add", USER, "--comment", "c"]
    assert argv[1:4] == [["role", "add", R_ROOT, "--privs", "Sys.Audit"],
                         ["role", "add", R_STORAGE, "--privs", "Datastore.AllocateSpace"],
                         ["role", "add", R_VMS, "--privs", "VM.Allocate,VM.Audit,VM.Clone"]]
    assert argv[4][:6] == ["user", "token", "add", USER, TOKEN, "--privsep"] and argv[4][6] == "1"
    acls = [a for a in argv if a[0] == "acl"]
    assert [(a[2], a[4]) for a in acls] == [("/", R_ROOT), ("/storage/local-zfs", R_STORAGE), ("/vms", R_VMS)]
    for a in acls:
        assert a[:4] == ["acl", "modify", a[2], "--roles"]
        assert a[5:] == ["--users", USER, "--tokens", TOKENID, "--propagate", "1"]
    assert before["user"] is None and after["token"] == {"tokenid": TOKENID, "privsep": 1}


def test_converged_state_plans_nothing():
    argv, before, after = run(converged(), secret_known=True)
    assert argv == []
    assert before == after


def test_existing_token_with_unknown_secret_fails_with_the_rotation_variable():
    with pytest.raises(AccessError, match="proxmox_api_access_token_rotate=true"):
        run(converged(), secret_known=False)


def test_rotation_recreates_the_token_and_its_acls():
    argv, _b, _a = run(converged(), secret_known=True, rotate=True)
    assert argv[0] == ["user", "token", "remove", USER, TOKEN]
    assert argv[1][:3] == ["user", "token", "add"]
    assert [a[2] for a in argv[2:]] == PATHS and all(a[5:7] == ["--tokens", TOKENID] for a in argv[2:])


def test_role_privileges_are_set_exactly():
    state = converged()
    state["roles"][3]["privs"] = "VM.Audit,VM.Allocate,VM.PowerMgmt"
    argv, before, _a = run(state, secret_known=True)
    assert argv == [["role", "modify", R_VMS, "--privs", "VM.Allocate,VM.Audit,VM.Clone"]]
    assert before["roles"][R_VMS] == ["VM.Allocate", "VM.Audit", "VM.PowerMgmt"]


def test_builtin_role_name_is_refused():
    state = converged()
    state["roles"][0]["roleid"] = R_VMS
    state["roles"].pop(3)
    with pytest.raises(AccessError, match="built-in"):
        run(state, secret_known=True)


def test_missing_token_acl_and_stray_acl():
    state = converged()
    state["acl"] = [e for e in state["acl"] if not (e["path"] == "/vms" and e["type"] == "token")]
    state["acl"].append({"path": "/nodes/pve", "roleid": ROLE, "type": "user", "ugid": USER, "propagate": 1})
    state["acl"].append({"path": "/", "roleid": R_VMS, "type": "token", "ugid": TOKENID, "propagate": 1})
    state["acl"].append({"path": "/nodes/pve", "roleid": "PVEAuditor", "type": "user", "ugid": USER, "propagate": 1})
    state["acl"].append({"path": "/vms", "roleid": ROLE + "X", "type": "user", "ugid": USER, "propagate": 1})
    argv, _b, _a = run(state, secret_known=True)
    assert argv == [["acl", "modify", "/vms", "--roles", R_VMS, "--tokens", TOKENID, "--propagate", "1"],
                    ["acl", "delete", "/", "--roles", R_VMS, "--tokens", TOKENID],
                    ["acl", "delete", "/nodes/pve", "--roles", ROLE, "--users", USER]]


def test_unpropagated_acl_and_token_without_privsep_are_fixed():
    state = converged()
    state["acl"][0]["propagate"] = 0
    state["tokens"][0]["privsep"] = 0
    argv, _b, _a = run(state, secret_known=True)
    assert ["user", "token", "modify", USER, TOKEN, "--privsep", "1"] in argv
    assert ["acl", "modify", "/", "--roles", R_ROOT, "--users", USER, "--propagate", "1"] in argv


@pytest.mark.parametrize("field,value", [("userid", "gpu-passthrough"), ("roleid", "a role"), ("token", "1x")])
def test_bad_names_are_refused(field, value):
    kwargs = dict(userid=USER, role_base=ROLE, token=TOKEN)
    kwargs[{"roleid": "role_base"}.get(field, field)] = value
    with pytest.raises(AccessError):
        plan({}, grants=GRANTS_BY_PATH, comment="c", secret_known=False, rotate=False, **kwargs)
