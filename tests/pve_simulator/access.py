# SPDX-License-Identifier: GPL-3.0-or-later
"""PVE's access control for the *simulated* PVE API: users, API tokens, roles, ACLs, privilege checks.

Taken from Proxmox's source, not from what this collection expects:

* privilege names and the built-in roles (``PRIVGROUPS``, ``special_roles``): pve-access-control
  AccessControl.pm ``$privgroups`` / ``create_roles`` (shared/reference/pve/09): PVE<Cat>Admin,
  PVE<Cat>User, PVEAuditor, PVEAdmin (everything of the groups' admin/user/audit lists except
  Mapping.Modify), PVETemplateUser, NoAccess and Administrator (every privilege);
* which roles apply on a path (``roles``): AccessControl.pm ``roles``: the ACL paths from / down to the
  checked path, the last one that sets roles for the token (else the user) wins, a role set above the
  path applies only with propagation, NoAccess beats everything;
* the privileges of a user or token on a path (``permissions``): RPCEnvironment.pm ``permissions`` /
  ``compile_acl_path`` (shared/reference/pve/11): root@pam has every privilege; a token without
  privilege separation has its user's; a privilege-separated token has what its own ACLs give AND
  its user has on that path;
* checks and their 403 text (``check``, ``check_any``, ``exec_perm_check``): RPCEnvironment.pm
  ``check`` -> ``Permission check failed (<path>, <priv>)``, ``check_any`` ->
  ``Permission check failed (<path>, <a>|<b>)``, a failed ``or`` and raise_perm_exc() without argument
  -> ``Permission check failed``.

Groups and pools are not modelled (refused loudly where a request names them).
"""
from __future__ import annotations

import re
import secrets
import uuid
from typing import Any

# pve-access-control AccessControl.pm $privgroups (shared/reference/pve/09)
PRIVGROUPS: dict[str, dict[str, list[str]]] = {
    "VM": {
        "root": [],
        "admin": ["VM.Config.Disk", "VM.Config.CPU", "VM.Config.Memory", "VM.Config.Network", "VM.Config.HWType",
                  "VM.Config.Options", "VM.Allocate", "VM.Clone", "VM.GuestAgent.Unrestricted", "VM.Migrate",
                  "VM.Replicate", "VM.Snapshot", "VM.Snapshot.Rollback"],
        "user": ["VM.Config.CDROM", "VM.Config.Cloudinit", "VM.Console", "VM.Backup", "VM.GuestAgent.FileRead",
                 "VM.GuestAgent.FileSystemMgmt", "VM.GuestAgent.FileWrite", "VM.PowerMgmt"],
        "audit": ["VM.Audit", "VM.GuestAgent.Audit"],
    },
    "Sys": {
        "root": ["Sys.PowerMgmt", "Sys.Modify", "Sys.Incoming", "Sys.AccessNetwork"],
        "admin": ["Sys.Console", "Sys.Syslog"],
        "user": [],
        "audit": ["Sys.Audit"],
    },
    "Datastore": {
        "root": [],
        "admin": ["Datastore.Allocate", "Datastore.AllocateTemplate"],
        "user": ["Datastore.AllocateSpace"],
        "audit": ["Datastore.Audit"],
    },
    "SDN": {"root": [], "admin": ["SDN.Allocate", "SDN.Audit"], "user": ["SDN.Use"], "audit": ["SDN.Audit"]},
    "User": {"root": ["Realm.Allocate"], "admin": ["User.Modify", "Group.Allocate", "Realm.AllocateUser"],
             "user": [], "audit": []},
    "Pool": {"root": [], "admin": ["Pool.Allocate"], "user": ["Pool.Audit"], "audit": ["Pool.Audit"]},
    "Mapping": {"root": [], "admin": ["Mapping.Modify"], "user": ["Mapping.Use"], "audit": ["Mapping.Audit"]},
}


def _build_roles() -> tuple[set[str], dict[str, set[str]]]:
    """AccessControl.pm create_roles: the valid privileges and the built-in ("special") roles."""
    valid = {"Permissions.Modify"}  # not contained in a group
    special: dict[str, set[str]] = {"NoAccess": set()}
    for cat, groups in PRIVGROUPS.items():
        valid.update(groups["root"] + groups["admin"] + groups["user"] + groups["audit"])
        for priv in groups["admin"] + groups["user"] + groups["audit"]:
            special.setdefault(f"PVE{cat}Admin", set()).add(priv)
            special.setdefault("PVEAdmin", set()).add(priv)
        if groups["user"]:
            for priv in groups["user"] + groups["audit"]:
                special.setdefault(f"PVE{cat}User", set()).add(priv)
        for priv in groups["audit"]:
            special.setdefault("PVEAuditor", set()).add(priv)
    # "remove Mapping.Modify from PVEAdmin, only Administrator, root@pam and PVEMappingAdmin should be
    # able to use that for now"
    special["PVEAdmin"].discard("Mapping.Modify")
    special["PVETemplateUser"] = {"VM.Clone", "VM.Audit"}
    special["Administrator"] = set(valid)  # all privileges
    return valid, special


VALID_PRIVS, SPECIAL_ROLES = _build_roles()
REALMS = ("pam", "pve")
_REALM_RE = r"[A-Za-z][A-Za-z0-9\.\-_]+"
_TOKEN_RE = r"[A-Za-z][A-Za-z0-9\.\-_]+"


class PermissionDenied(Exception):
    """PVE's raise_perm_exc: HTTP 403 ``Permission check failed[ (<what>)]``."""

    def __init__(self, what: str = ""):
        self.message = "Permission check failed" + (f" ({what})" if what else "")
        super().__init__(self.message)


class AccessError(Exception):
    """A plain ``die`` of an /access handler (HTTP 500 with the message)."""


def verify_username(userid: str) -> tuple[str, str] | None:
    """PVE::Auth::Plugin verify_username: ``<name>@<realm>``, 3..64 characters; (userid, realm) or None."""
    if not 3 <= len(userid) <= 64:
        return None
    match = re.match(rf"^([^\s:/]+)@({_REALM_RE})$", userid)
    return (userid, match.group(2)) if match else None


def split_tokenid(tokenid: str) -> tuple[str, str] | None:
    """AccessControl.pm split_tokenid: ``user@realm!token`` -> (user@realm, token), else None."""
    match = re.match(rf"^([^\s:/!]+@{_REALM_RE})!({_TOKEN_RE})$", tokenid)
    return (match.group(1), match.group(2)) if match else None


def normalize_path(path: str) -> str | None:
    """AccessControl.pm normalize_path: one leading slash, no doubled or trailing ones."""
    if not path:
        return None
    path = re.sub(r"/+", "/", "/" + path).rstrip("/") or "/"
    if path != "/" and not re.match(r"^/[-\w.]+(?:/[-\w.]+)*$", path):
        return None
    return path


def priv_list(value: str) -> list[str]:
    """A pve-priv-list value split like PVE (commas, semicolons or spaces)."""
    return [p for p in re.split(r"[,;\s]+", value or "") if p]


class AccessControl:
    """user.cfg of the simulated cluster (users with their tokens, roles, ACLs) and PVE's checks on it."""

    def __init__(self) -> None:
        self.users: dict[str, dict[str, Any]] = {"root@pam": {"enable": 1, "expire": 0, "tokens": {}}}
        self.roles: dict[str, set[str]] = {name: set(privs) for name, privs in SPECIAL_ROLES.items()}
        # path -> {"users": {userid: {role: propagate}}, "tokens": {tokenid: {role: propagate}}}
        self.acl: dict[str, dict[str, dict[str, dict[str, int]]]] = {}

    # ---- configuration (what pveum / the /access API change) -----------------------------------------
    @classmethod
    def from_config(cls, config: dict[str, Any]) -> "AccessControl":
        """Build from ``{"users": {userid: {..., "tokens": {name: {"secret", "privsep"}}}},
        "roles": {roleid: [privs]}, "acl": [{"path", "roles", "users", "tokens", "propagate"}]}``."""
        ac = cls()
        for userid, spec in config.get("users", {}).items():
            if userid not in ac.users:
                ac.add_user(userid, **{k: v for k, v in spec.items() if k != "tokens"})
            for name, token in spec.get("tokens", {}).items():
                ac.add_token(userid, name, privsep=token.get("privsep", 1), secret=token["secret"])
        for roleid, privs in config.get("roles", {}).items():
            ac.add_role(roleid, list(privs))
        for entry in config.get("acl", []):
            ac.set_acl(entry["path"], entry["roles"], users=entry.get("users", []), tokens=entry.get("tokens", []),
                       propagate=entry.get("propagate", 1))
        return ac

    def add_user(self, userid: str, **attrs: Any) -> None:
        parsed = verify_username(userid)
        if parsed is None:
            raise AccessError(f"value '{userid}' does not look like a valid user name")
        if parsed[1] not in REALMS:
            raise AccessError(f"create user failed: domain '{parsed[1]}' does not exist")
        if userid in self.users:
            raise AccessError(f"create user failed: user '{userid}' already exists")
        entry = {"enable": 1, "expire": 0, "tokens": {}}
        entry.update({k: v for k, v in attrs.items() if v is not None})
        self.users[userid] = entry

    def add_token(self, userid: str, name: str, privsep: int = 1, secret: str | None = None,
                  comment: str | None = None, expire: int = 0) -> dict[str, Any]:
        user = self.users.get(userid)
        if user is None:
            raise AccessError(f"no such user ('{userid}')")
        if name in user["tokens"]:
            raise AccessError("Token already exists.")
        token = {"privsep": int(privsep), "expire": int(expire), "secret": secret or str(uuid.uuid4())}
        if comment is not None:
            token["comment"] = comment
        user["tokens"][name] = token
        return token

    def add_role(self, roleid: str, privs: list[str], modify: bool = False, append: bool = False) -> None:
        if roleid in SPECIAL_ROLES:
            raise AccessError(f"cannot modify predefined role '{roleid}'")
        for priv in privs:
            self.verify_privname(priv)
        if modify:
            if roleid not in self.roles:
                raise AccessError(f"role '{roleid}' does not exist")
            self.roles[roleid] = (self.roles[roleid] | set(privs)) if append else set(privs)
            return
        if roleid in self.roles:
            raise AccessError(f"create role failed: role '{roleid}' already exists")
        self.roles[roleid] = set(privs)

    def set_acl(self, path: str, roles: list[str], users: list[str] = (), tokens: list[str] = (),
                propagate: int = 1, delete: bool = False) -> None:
        norm = normalize_path(path)
        if norm is None:
            raise AccessError("invalid ACL path")
        for role in roles:
            if role not in self.roles:
                raise AccessError(f"role '{role}' does not exist")
        for userid in users:
            if userid not in self.users:
                raise AccessError(f"user '{userid}' does not exist")
        for tokenid in tokens:
            if self.token(tokenid) is None:
                raise AccessError(f"no such token '{tokenid}'")
        node = self.acl.setdefault(norm, {"users": {}, "tokens": {}})
        for kind, ids in (("users", users), ("tokens", tokens)):
            for ugid in ids:
                for role in roles:
                    if delete:
                        node[kind].get(ugid, {}).pop(role, None)
                    else:
                        node[kind].setdefault(ugid, {})[role] = 1 if propagate else 0

    def token(self, tokenid: str) -> dict[str, Any] | None:
        parts = split_tokenid(tokenid)
        if parts is None:
            return None
        return self.users.get(parts[0], {}).get("tokens", {}).get(parts[1])

    def authenticate(self, tokenid: str, secret: str) -> bool:
        token = self.token(tokenid)
        return token is not None and secrets.compare_digest(token["secret"], secret)

    @staticmethod
    def verify_privname(priv: str) -> None:
        if priv not in VALID_PRIVS:
            raise AccessError(f"invalid privilege '{priv}'")

    # ---- evaluation (AccessControl.pm roles, RPCEnvironment.pm permissions) -------------------------
    def roles_on(self, authid: str, path: str) -> dict[str, int]:
        """The roles of a user or token on ``path`` (role -> propagate), AccessControl.pm ``roles``."""
        if authid == "root@pam":
            return {"Administrator": 1}
        parts = split_tokenid(authid)
        if parts is not None:
            token = self.token(authid)
            if token is None:
                return {}
            if not token["privsep"]:
                return self.roles_on(parts[0], path)
        roles: dict[str, int] = {}
        for acl_path in sorted(self.acl):
            final = acl_path == path
            if not (acl_path == "/" or final or path.startswith(acl_path + "/")):
                continue
            kind = "tokens" if parts is not None else "users"
            given = self.acl[acl_path][kind].get(authid, {})
            new = {role: prop for role, prop in given.items() if final or prop}
            if new:
                roles = new  # overwrite previous settings
        if "NoAccess" in roles:
            return {"NoAccess": roles["NoAccess"]}
        return roles

    def permissions(self, authid: str, path: str) -> set[str]:
        """The privileges of a user or token on ``path`` (RPCEnvironment.pm ``permissions``)."""
        if authid == "root@pam":
            return set(self.roles["Administrator"])
        parts = split_tokenid(authid)
        if parts is not None:
            token = self.token(authid)
            if token is None:
                return set()
            user_privs = self.permissions(parts[0], path)
            if not token["privsep"]:
                return user_privs
        elif authid not in self.users or not self.users[authid].get("enable", 1):
            return set()
        privs: set[str] = set()
        for role in self.roles_on(authid, path):
            privs |= self.roles.get(role, set())
        if parts is not None and parts[0] != "root@pam":
            privs &= user_privs  # intersect user and token permissions
        return privs

    def check(self, authid: str, path: str, privs: list[str], noerr: bool = False) -> bool:
        have = self.permissions(authid, path)
        for priv in privs:
            self.verify_privname(priv)
            if priv not in have:
                if noerr:
                    return False
                raise PermissionDenied(f"{path}, {priv}")
        return True

    def check_any(self, authid: str, path: str, privs: list[str], noerr: bool = False) -> bool:
        have = self.permissions(authid, path)
        for priv in privs:
            self.verify_privname(priv)
        if any(p in have for p in privs):
            return True
        if noerr:
            return False
        raise PermissionDenied(f"{path}, " + "|".join(privs))

    def check_full(self, authid: str, path: str, privs: list[str], any_of: bool = False,
                   noerr: bool = False) -> bool:
        return (self.check_any if any_of else self.check)(authid, path, privs, noerr)

    def check_vm_perm(self, authid: str, vmid: int, privs: list[str], any_of: bool = False) -> bool:
        return self.check_full(authid, f"/vms/{vmid}", privs, any_of)

    def check_perm_modify(self, authid: str, path: str, noerr: bool = False) -> bool:
        """RPCEnvironment.pm check_perm_modify (who may change the ACL of ``path``)."""
        wanted = ["Permissions.Modify"]
        if re.match(r"^/storage/.+$", path):
            wanted.append("Datastore.Allocate")
        elif re.match(r"^/vms/.+$", path):
            wanted.append("VM.Allocate")
        elif re.match(r"^/pool/.+$", path):
            wanted.append("Pool.Allocate")
        return self.check_any(authid, path, wanted, noerr)

    def exec_perm_check(self, check: list[Any], authid: str, params: dict[str, Any], noerr: bool = False) -> bool:
        """RPCEnvironment.pm exec_api2_perm_check: the ``check`` of a schema node's ``permissions``."""
        test = check[0]
        if test == "and":
            for sub in check[1:]:
                self.exec_perm_check(sub, authid, params)
            return True
        if test == "or":
            for sub in check[1:]:
                if self.exec_perm_check(sub, authid, params, noerr=True):
                    return True
            if noerr:
                return False
            raise PermissionDenied()
        if test == "perm":
            tmplpath, privs = check[1], check[2]
            options = dict(zip(check[3::2], check[4::2]))
            required = options.get("require_param")
            if required and params.get(required) is None:
                if noerr:
                    return False
                raise PermissionDenied()
            path = normalize_path(re.sub(r"\{([\w-]+)\}", lambda m: str(params.get(m.group(1), "")), tmplpath))
            return self.check_full(authid, path or "", privs, bool(options.get("any")), noerr)
        if test == "userid-param":
            parsed = verify_username(str(params.get("userid", "")))
            if parsed is None:
                raise AccessError(f"value '{params.get('userid')}' does not look like a valid user name")
            if check[1] == "self":
                if parsed[0] not in self.users:
                    if noerr:
                        return False
                    raise AccessError(f"no such user ('{parsed[0]}')")
                if authid == parsed[0]:
                    return True
                if noerr:
                    return False
                raise PermissionDenied()
            if check[1] == "Realm.AllocateUser":
                return self.check(authid, f"/access/realm/{parsed[1]}", ["Realm.AllocateUser"], noerr)
            raise AccessError("unknown userid-param test")
        if test == "userid-group":
            # groups are not simulated: only the "all groups" branch (privileges on /access/groups)
            if params.get("groups"):
                raise NotImplementedError("simulated PVE: user groups are not implemented")
            privs = check[1]
            options = dict(zip(check[2::2], check[3::2]))
            if options.get("groups_param") != "create" and params.get("userid") not in self.users:
                if noerr:
                    return False
                raise AccessError(f"no such user ('{params.get('userid')}')")
            if self.check_any(authid, "/access/groups", privs, noerr=True):
                return True
            if noerr:
                return False
            if options.get("groups_param"):
                raise PermissionDenied("/access/groups, " + "|".join(privs))
            raise PermissionDenied()
        if test == "perm-modify":
            path = normalize_path(re.sub(r"\{([\w-]+)\}", lambda m: str(params.get(m.group(1), "")), check[1]))
            if path is None:
                return False
            return self.check_perm_modify(authid, path, noerr)
        raise NotImplementedError(f"simulated PVE: permission test '{test}' not implemented")

    def check_api2(self, permissions: dict[str, Any] | None, authid: str, params: dict[str, Any]) -> None:
        """RPCEnvironment.pm check_api2_permissions for an authenticated user or token."""
        if authid == "root@pam":
            return
        if not permissions:
            raise PermissionDenied("user != root@pam")
        if permissions.get("user") == "all":
            return
        if permissions.get("check"):
            self.exec_perm_check(permissions["check"], authid, params)
            return
        raise PermissionDenied()

    # ---- listings of the /access API ---------------------------------------------------------------
    def acl_list(self) -> list[dict[str, Any]]:
        out = []
        for path in sorted(self.acl):
            for kind, typ in (("users", "user"), ("tokens", "token")):
                for ugid in sorted(self.acl[path][kind]):
                    for role, prop in sorted(self.acl[path][kind][ugid].items()):
                        out.append({"path": path, "type": typ, "ugid": ugid, "roleid": role, "propagate": prop})
        return out
