# SPDX-License-Identifier: GPL-3.0-or-later
"""pve_access: the grant list's union and paths, and the pveum plan from a node's access state."""
from __future__ import annotations

import pytest

from ansible_collections.homelab.gpu_passthrough.plugins.module_utils.pve_access import (
    AccessError,
    expand_path,
    grants_union,
    plan,
)

USER, ROLE, TOKEN = "gpu-passthrough@pve", "GpuPassthrough", "ansible"
TOKENID = f"{USER}!{TOKEN}"
GRANTS = [
    {"path": "/", "privileges": ["Sys.Audit"], "why": "pci"},
    {"path": "/vms", "privileges": ["VM.Audit", "VM.Allocate"], "why": "vm"},
    {"path": "/storage/{storage}", "privileges": ["Datastore.AllocateSpace", "VM.Audit"], "why": "disks"},
]
VALUES = {"node": "pve", "storage": "local-zfs", "bridge": "vmbr0"}
PRIVS, PATHS = grants_union(GRANTS, VALUES)


def run(state, secret_known=False, rotate=False, paths=PATHS, privs=PRIVS):
    actions, before, after = plan(state, userid=USER, roleid=ROLE, privs=privs, paths=paths, token=TOKEN,
                                  comment="c", secret_known=secret_known, rotate=rotate)
    return [a["argv"] for a in actions], before, after


def converged(paths=PATHS, privs=PRIVS):
    acl = [{"path": p, "roleid": ROLE, "type": t, "ugid": u, "propagate": 1}
           for p in paths for t, u in (("user", USER), ("token", TOKENID))]
    return {"users": [{"userid": "root@pam"}, {"userid": USER}],
            "roles": [{"roleid": "PVEAdmin", "privs": "VM.Audit", "special": 1},
                      {"roleid": ROLE, "privs": ",".join(reversed(privs)), "special": 0}],
            "acl": acl, "tokens": [{"tokenid": TOKEN, "privsep": 1}]}


def test_union_and_placeholders():
    assert PRIVS == ["Datastore.AllocateSpace", "Sys.Audit", "VM.Allocate", "VM.Audit"]
    assert PATHS == ["/", "/storage/local-zfs", "/vms"]


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
        grants_union([], VALUES)
    with pytest.raises(AccessError, match="non-empty 'privileges'"):
        grants_union([{"path": "/"}], VALUES)


def test_fresh_node_gets_everything_in_order():
    argv, before, after = run({"users": [{"userid": "root@pam"}], "roles": [], "acl": []})
    assert argv[0] == ["user", "add", USER, "--comment", "c"]
    assert argv[1] == ["role", "add", ROLE, "--privs", ",".join(PRIVS)]
    assert argv[2][:6] == ["user", "token", "add", USER, TOKEN, "--privsep"] and argv[2][6] == "1"
    acls = [a for a in argv if a[0] == "acl"]
    assert [a[2] for a in acls] == PATHS
    for a in acls:
        assert a[:5] == ["acl", "modify", a[2], "--roles", ROLE]
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
    state["roles"][1]["privs"] = "Sys.Audit,VM.Audit,Sys.Modify"
    argv, before, _a = run(state, secret_known=True)
    assert argv == [["role", "modify", ROLE, "--privs", ",".join(PRIVS)]]
    assert before["role"] == {ROLE: ["Sys.Audit", "Sys.Modify", "VM.Audit"]}


def test_builtin_role_name_is_refused():
    state = converged()
    state["roles"][0]["roleid"] = ROLE
    state["roles"].pop(1)
    with pytest.raises(AccessError, match="built-in"):
        run(state, secret_known=True)


def test_missing_token_acl_and_stray_acl():
    state = converged()
    state["acl"] = [e for e in state["acl"] if not (e["path"] == "/vms" and e["type"] == "token")]
    state["acl"].append({"path": "/nodes/pve", "roleid": ROLE, "type": "user", "ugid": USER, "propagate": 1})
    state["acl"].append({"path": "/nodes/pve", "roleid": "PVEAuditor", "type": "user", "ugid": USER, "propagate": 1})
    argv, _b, _a = run(state, secret_known=True)
    assert argv == [["acl", "modify", "/vms", "--roles", ROLE, "--tokens", TOKENID, "--propagate", "1"],
                    ["acl", "delete", "/nodes/pve", "--roles", ROLE, "--users", USER]]


def test_unpropagated_acl_and_token_without_privsep_are_fixed():
    state = converged()
    state["acl"][0]["propagate"] = 0
    state["tokens"][0]["privsep"] = 0
    argv, _b, _a = run(state, secret_known=True)
    assert ["user", "token", "modify", USER, TOKEN, "--privsep", "1"] in argv
    assert ["acl", "modify", "/", "--roles", ROLE, "--users", USER, "--propagate", "1"] in argv


@pytest.mark.parametrize("field,value", [("userid", "gpu-passthrough"), ("roleid", "a role"), ("token", "1x")])
def test_bad_names_are_refused(field, value):
    kwargs = dict(userid=USER, roleid=ROLE, token=TOKEN)
    kwargs[field] = value
    with pytest.raises(AccessError):
        plan({}, privs=PRIVS, paths=PATHS, comment="c", secret_known=False, rotate=False, **kwargs)
