# -*- coding: utf-8 -*-
# Copyright (c) homelab.gpu_passthrough contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Proxmox VE access control for the collection's API token: the one home of what the bootstrap
grants (the grant list's paths and privileges), and the plan of ``pveum`` commands that takes a
node's users, roles, ACLs and tokens to it. Pure logic: state in, commands out (no AnsibleModule,
no process). The state has the shape ``pveum ... list --output-format json`` prints, which is the
shape of the API's GET /access/users, /access/roles, /access/acl and /access/users/{userid}/token."""
from __future__ import annotations

import re
import string

PLACEHOLDERS = ("node", "storage", "bridge")
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


def grants_union(grants: list[dict], values: dict[str, str]) -> tuple[list[str], list[str]]:
    """The sorted union of the privileges, and the sorted expanded paths (duplicates once)."""
    if not grants:
        raise AccessError("the grant list is empty: nothing to grant")
    privs: set[str] = set()
    paths: set[str] = set()
    for i, grant in enumerate(grants):
        if not isinstance(grant, dict) or "path" not in grant or not grant.get("privileges"):
            raise AccessError(f"grant #{i} {grant!r} needs a 'path' and a non-empty 'privileges' list")
        paths.add(expand_path(str(grant["path"]), values))
        privs.update(str(p) for p in grant["privileges"])
    return sorted(privs), sorted(paths)


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


def plan(state: dict, *, userid: str, roleid: str, privs: list[str], paths: list[str], token: str,
         comment: str, secret_known: bool, rotate: bool) -> tuple[list[dict], dict, dict]:
    """The pveum commands that take ``state`` to the wanted access.

    ``state``: ``users``, ``roles``, ``acl`` lists and ``tokens`` (the user's tokens, [] when the user
    is absent). Returns (actions, before, after): each action is ``{"argv": [...], "what": "..."}`` in
    the order to run them (``"creates_token": True`` on the one that prints the secret); ``before`` and
    ``after`` are summaries for the diff (no secret in them).
    """
    check_names(userid, roleid, token)
    tokenid = f"{userid}!{token}"
    actions: list[dict] = []

    user_exists = any(u.get("userid") == userid for u in state.get("users", []))
    if not user_exists:
        actions.append({"argv": ["user", "add", userid, "--comment", comment], "what": f"create user {userid}"})

    role = next((r for r in state.get("roles", []) if r.get("roleid") == roleid), None)
    want_privs = sorted(set(privs))
    if role is not None and _truthy(role.get("special"), default=False):
        raise AccessError(f"role {roleid!r} is a built-in PVE role; set proxmox_api_access_role to a name of your own")
    have_privs = sorted(split_privs(role.get("privs"))) if role is not None else None
    if role is None:
        actions.append({"argv": ["role", "add", roleid, "--privs", ",".join(want_privs)],
                        "what": f"create role {roleid} with {', '.join(want_privs)}"})
    elif have_privs != want_privs:
        extra = sorted(set(have_privs) - set(want_privs))
        missing = sorted(set(want_privs) - set(have_privs))
        actions.append({"argv": ["role", "modify", roleid, "--privs", ",".join(want_privs)],
                        "what": f"set the privileges of role {roleid} (add {missing or 'none'}, remove {extra or 'none'})"})

    tokens = state.get("tokens", []) if user_exists else []
    have_token = next((t for t in tokens if t.get("tokenid") == token), None)
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

    acl = state.get("acl", [])
    ours = {(e.get("path"), e.get("type"), e.get("ugid")): _truthy(e.get("propagate"))
            for e in acl if e.get("roleid") == roleid and e.get("ugid") in (userid, tokenid)}
    if token_recreated:  # PVE drops a token's ACL entries with the token
        ours = {k: v for k, v in ours.items() if k[1] != "token"}
    for path in paths:
        args: list[str] = []
        for kind, ugid, option in (("user", userid, "--users"), ("token", tokenid, "--tokens")):
            if ours.get((path, kind, ugid)) is not True:
                args += [option, ugid]
        if args:
            actions.append({"argv": ["acl", "modify", path, "--roles", roleid, *args, "--propagate", "1"],
                            "what": f"grant role {roleid} on {path} to {' and '.join(args[1::2])}"})
    for (path, kind, ugid) in sorted(ours):
        if path not in paths:
            option = "--users" if kind == "user" else "--tokens"
            actions.append({"argv": ["acl", "delete", path, "--roles", roleid, option, ugid],
                            "what": f"remove role {roleid} on {path} from {ugid} (not in the grant list)"})

    before = {
        "user": userid if user_exists else None,
        "role": {roleid: have_privs} if role is not None else None,
        "token": ({"tokenid": tokenid, "privsep": int(_truthy(have_token.get("privsep")))}
                  if have_token is not None else None),
        "acl": sorted(f"{p} {roleid} {u}" for (p, _k, u) in ours),
    }
    after = {
        "user": userid,
        "role": {roleid: want_privs},
        "token": {"tokenid": tokenid, "privsep": 1},
        "acl": sorted(f"{p} {roleid} {u}" for p in paths for u in (userid, tokenid)),
    }
    return actions, before, after
