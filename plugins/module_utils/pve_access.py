# -*- coding: utf-8 -*-
# Copyright (c) homelab.gpu_passthrough contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Proxmox VE access control for the collection's API token: the one home of how the bootstrap
grants the grant list (one role per path, holding exactly that path's privileges, named
``<base>`` for ``/`` and ``<base>.<path with / as .>`` below it: a single role with the union, set on
``/``, would propagate every privilege to every path), and the plan of ``pveum`` commands that takes a
node's users, roles, ACLs and tokens to it. Pure logic: state in, commands out (no AnsibleModule,
no process). The state has the shape ``pveum ... list --output-format json`` prints, which is the
shape of the API's GET /access/users, /access/roles, /access/acl and /access/users/{userid}/token."""
from __future__ import annotations

import re
import string

PLACEHOLDERS = ("node", "storage", "image_storage", "bridge")
# PVE's pve-roleid / token id patterns (pve-access-control): a role id and a token name.
_ROLEID_RE = re.compile(r"^[A-Za-z0-9\.\-_]+$")
_TOKENID_RE = re.compile(r"^[A-Za-z][A-Za-z0-9\.\-_]+$")
_USERID_RE = re.compile(r"^[^\s:/@]+@[A-Za-z][A-Za-z0-9\.\-_]+$")


class AccessError(Exception):
    """Bad input or a state the plan cannot fix on its own; the message says what and how to fix it."""


def expand_path(template: str, values: dict[str, str]) -> str:
    """``/nodes/{node}`` -> ``/nodes/pve``; an unknown or empty placeholder is an error."""
    names = [name for _text, name, _spec, _conv in string.Formatter().parse(template) if name is not None]
    unknown = [n for n in names if n not in PLACEHOLDERS]
    if unknown:
        raise AccessError(f"ACL path {template!r} has the placeholder(s) {unknown}; known: {list(PLACEHOLDERS)}")
    empty = [n for n in names if not values.get(n)]
    if empty:
        raise AccessError(f"ACL path {template!r} needs a value for {empty} (set the role's variable for it)")
    path = template.format(**{n: values[n] for n in names})
    if not path.startswith("/"):
        raise AccessError(f"ACL path {path!r} must start with '/'")
    return path


def grants_by_path(grants: list[dict], values: dict[str, str]) -> dict[str, list[str]]:
    """Expanded path -> sorted privileges (two entries on one path are merged)."""
    if not grants:
        raise AccessError("the grant list is empty: nothing to grant")
    by_path: dict[str, set[str]] = {}
    for i, grant in enumerate(grants):
        if not isinstance(grant, dict) or "path" not in grant or not grant.get("privileges"):
            raise AccessError(f"grant #{i} {grant!r} needs a 'path' and a non-empty 'privileges' list")
        by_path.setdefault(expand_path(str(grant["path"]), values), set()).update(str(p) for p in grant["privileges"])
    return {path: sorted(privs) for path, privs in sorted(by_path.items())}


def role_for_path(base: str, path: str) -> str:
    """The role that holds a path's privileges: ``GpuPassthrough`` on /, ``GpuPassthrough.vms`` on /vms."""
    return base if path == "/" else base + path.rstrip("/").replace("/", ".")


def split_privs(value) -> set[str]:
    """A role's privs as ``pveum role list`` prints them: a comma separated string (or a list)."""
    if isinstance(value, list):
        return {str(p) for p in value}
    return {p.strip() for p in str(value or "").split(",") if p.strip()}


def _truthy(value, default: bool = True) -> bool:
    if value is None:
        return default
    return str(value).lower() in ("1", "true", "yes")


def check_names(userid: str, roleid: str, token: str) -> None:
    if not _USERID_RE.match(userid):
        raise AccessError(f"user {userid!r} is not a PVE user id: write it as name@realm, e.g. gpu-passthrough@pve")
    if not _ROLEID_RE.match(roleid):
        raise AccessError(f"role {roleid!r} is not a PVE role id (letters, digits, '.', '-', '_')")
    if not _TOKENID_RE.match(token):
        raise AccessError(f"token name {token!r} is not a PVE token id (a letter, then letters, digits, '.', '-', '_')")


def _ours(roleid: str, base: str) -> bool:
    return roleid == base or roleid.startswith(base + ".")


def plan(state: dict, *, userid: str, role_base: str, grants: dict[str, list[str]], token: str,
         comment: str, secret_known: bool, rotate: bool) -> tuple[list[dict], dict, dict]:
    """The pveum commands that take ``state`` to the wanted access.

    ``state``: ``users``, ``roles``, ``acl`` lists and ``tokens`` (the user's tokens, [] when the user
    is absent). ``grants``: expanded path -> privileges (grants_by_path). Returns (actions, before,
    after): each action is ``{"argv": [...], "what": "..."}`` in the order to run them
    (``"creates_token": True`` on the one that prints the secret); ``before`` and ``after`` are
    summaries for the diff (no secret in them).
    """
    check_names(userid, role_base, token)
    tokenid = f"{userid}!{token}"
    actions: list[dict] = []
    want_roles = {role_for_path(role_base, path): sorted(set(privs)) for path, privs in grants.items()}

    user_exists = any(u.get("userid") == userid for u in state.get("users", []))
    if not user_exists:
        actions.append({"argv": ["user", "add", userid, "--comment", comment], "what": f"create user {userid}"})

    roles = {r.get("roleid"): r for r in state.get("roles", [])}
    have_roles: dict[str, list[str]] = {}
    for roleid, want_privs in want_roles.items():
        role = roles.get(roleid)
        if role is not None and _truthy(role.get("special"), default=False):
            raise AccessError(f"role {roleid!r} is a built-in PVE role; set proxmox_api_access_role to a name of your own")
        if role is None:
            actions.append({"argv": ["role", "add", roleid, "--privs", ",".join(want_privs)],
                            "what": f"create role {roleid} with {', '.join(want_privs)}"})
            continue
        have = have_roles[roleid] = sorted(split_privs(role.get("privs")))
        if have != want_privs:
            extra = sorted(set(have) - set(want_privs))
            missing = sorted(set(want_privs) - set(have))
            actions.append({"argv": ["role", "modify", roleid, "--privs", ",".join(want_privs)],
                            "what": f"set the privileges of role {roleid} (add {missing or 'none'}, remove {extra or 'none'})"})

    tokens = state.get("tokens", []) if user_exists else []
    have_token = next((t for t in tokens if t.get("tokenid") == token), None)
    token_before = ({"tokenid": tokenid, "privsep": int(_truthy(have_token.get("privsep")))}
                    if have_token is not None else None)
    token_recreated = False
    if have_token is not None and rotate:
        actions.append({"argv": ["user", "token", "remove", userid, token],
                        "what": f"delete token {tokenid} (rotation asked for)"})
        have_token = None
        token_recreated = True
    elif have_token is not None and not secret_known:
        raise AccessError(
            f"token {tokenid} exists on the node but its secret is not in the vault (PVE shows a token's "
            "secret only once, when it is created). To delete it and create a new one, run again with "
            "-e proxmox_api_access_token_rotate=true (whatever uses the old secret stops working).")
    if have_token is None:
        actions.append({"argv": ["user", "token", "add", userid, token, "--privsep", "1", "--comment", comment,
                                 "--output-format", "json"],
                        "what": f"create token {tokenid} with privilege separation", "creates_token": True})
    elif not _truthy(have_token.get("privsep"), default=True):
        actions.append({"argv": ["user", "token", "modify", userid, token, "--privsep", "1"],
                        "what": f"turn on privilege separation of token {tokenid}"})

    ours = {(e.get("path"), e.get("roleid"), e.get("type"), e.get("ugid")): _truthy(e.get("propagate"))
            for e in state.get("acl", [])
            if _ours(str(e.get("roleid")), role_base) and e.get("ugid") in (userid, tokenid)}
    acl_before = sorted(f"{p} {r} {u}" for (p, r, _k, u) in ours)
    if token_recreated:  # PVE drops a token's ACL entries with the token
        ours = {k: v for k, v in ours.items() if k[2] != "token"}
    wanted = set()
    for path in grants:
        roleid = role_for_path(role_base, path)
        args: list[str] = []
        for kind, ugid, option in (("user", userid, "--users"), ("token", tokenid, "--tokens")):
            wanted.add((path, roleid, kind, ugid))
            if ours.get((path, roleid, kind, ugid)) is not True:
                args += [option, ugid]
        if args:
            actions.append({"argv": ["acl", "modify", path, "--roles", roleid, *args, "--propagate", "1"],
                            "what": f"grant role {roleid} on {path} to {' and '.join(args[1::2])}"})
    for key in sorted(set(ours) - wanted):
        path, roleid, kind, ugid = key
        option = "--users" if kind == "user" else "--tokens"
        actions.append({"argv": ["acl", "delete", path, "--roles", roleid, option, ugid],
                        "what": f"remove role {roleid} on {path} from {ugid} (not in the grant list)"})

    before = {
        "user": userid if user_exists else None,
        "roles": {r: have_roles[r] for r in sorted(have_roles)},
        "token": token_before,
        "acl": acl_before,
    }
    after = {
        "user": userid,
        "roles": want_roles,
        "token": {"tokenid": tokenid, "privsep": 1},
        "acl": sorted(f"{p} {role_for_path(role_base, p)} {u}" for p in grants for u in (userid, tokenid)),
    }
    return actions, before, after
