# -*- coding: utf-8 -*-
# Copyright (c) homelab.gpu_passthrough contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Proxmox VE API client on proxmoxer, with API-token authentication only.

The connection (options, token, TLS), the errors, and worker tasks (UPIDs): what every module that
talks to the PVE API shares. What is done with the API lives beside it: QEMU VMs in ``pve_qemu``,
cluster PCI resource mappings in ``pve_mapping``.

No AnsibleModule in here: modules build a :class:`PveClient` from their options (see
:data:`CONNECTION_ARGSPEC` and :func:`client_from_params`) and turn :class:`PveApiError` into
``fail_json``. The token secret is only handed to proxmoxer (it travels in the
``Authorization: PVEAPIToken=...`` header) and never appears in an error message.
"""
from __future__ import annotations

import os
import re
import time

try:
    import requests
    from proxmoxer import ProxmoxAPI
    from proxmoxer.core import ResourceException
    HAS_PROXMOXER = True
    PROXMOXER_IMPORT_ERROR = None
except ImportError as exc:  # pragma: no cover - depends on the controller/target environment
    HAS_PROXMOXER = False
    PROXMOXER_IMPORT_ERROR = exc

TOKEN_ID_RE = re.compile(r"^(?P<user>[^\s@!=]+@[^\s@!=]+)!(?P<name>[A-Za-z][A-Za-z0-9._-]*)$")
UPID_RE = re.compile(r"^UPID:(?P<node>[a-zA-Z0-9][a-zA-Z0-9.-]*):[0-9A-F]{8}:[0-9A-F]{8,9}:[0-9A-F]{8}:"
                     r"(?P<type>[^:\s]+):(?P<id>[^:\s]*):(?P<user>[^:\s]+):$")

# Shared options of every module that talks to the PVE API (the modules of the action group
# homelab.gpu_passthrough.proxmox in meta/runtime.yml), documented once in the doc fragment
# homelab.gpu_passthrough.proxmox (plugins/doc_fragments/proxmox.py). Environment fallbacks follow
# community.proxmox.
CONNECTION_ARGSPEC = dict(
    api_host=dict(type="str", required=True),
    api_port=dict(type="int", default=8006),
    api_token_id=dict(type="str", required=True),
    api_token_secret=dict(type="str", required=True, no_log=True),
    validate_certs=dict(type="bool", default=True),
    ca_path=dict(type="path"),
    timeout=dict(type="int", default=30),
)
# Only for modules that start worker tasks and wait for them (PveClient.wait_task); each such module
# documents it (it is not in the group's shared options, since modules without tasks refuse it).
TASK_ARGSPEC = dict(
    task_timeout=dict(type="int", default=300),
)
ENV_FALLBACKS = {
    "api_host": ["PROXMOX_HOST"],
    "api_port": ["PROXMOX_PORT"],
    "api_token_id": ["PROXMOX_TOKEN_ID"],
    "api_token_secret": ["PROXMOX_TOKEN_SECRET"],
    "validate_certs": ["PROXMOX_VALIDATE_CERTS"],
}


def connection_argspec(env_fallback):
    """Return CONNECTION_ARGSPEC with ``fallback=(env_fallback, [VARS])`` filled in.

    ``env_fallback`` is ``ansible.module_utils.basic.env_fallback``, passed in so that this file does
    not import AnsibleModule machinery.
    """
    spec = {}
    for name, opts in CONNECTION_ARGSPEC.items():
        opts = dict(opts)
        if name in ENV_FALLBACKS:
            opts["fallback"] = (env_fallback, ENV_FALLBACKS[name])
        else:
            opts.pop("fallback", None)
        spec[name] = opts
    return spec


class PveApiError(Exception):
    """A failed API call, with a message that says what was wrong and how to fix it."""

    def __init__(self, message, status=None, errors=None, reason=None):
        super().__init__(message)
        self.message = message
        self.status = status
        self.errors = errors or {}
        self.reason = reason or ""


class PveTaskError(PveApiError):
    """A worker task (UPID) ended with an exit status other than OK."""


def parse_token_id(token_id):
    """Split ``user@realm!tokenname``; raise ValueError with the expected shape."""
    match = TOKEN_ID_RE.match(token_id or "")
    if not match:
        raise ValueError(
            "api_token_id %r is not of the form USER@REALM!TOKENNAME (for example automation@pve!ansible); "
            "create one with: pveum user token add automation@pve ansible --privsep 1" % (token_id,))
    return match.group("user"), match.group("name")


def parse_upid(upid):
    """Return the fields of a task id (node, type, id, user) or raise ValueError."""
    match = UPID_RE.match(str(upid or ""))
    if not match:
        raise ValueError("not a Proxmox task id (UPID): %r" % (upid,))
    return match.groupdict()


def _reason(exc):
    text = str(getattr(exc, "content", "") or "")
    if getattr(exc, "errors", None) and " - " in text:
        text = text.rsplit(" - ", 1)[0]
    return text.strip()


class PveClient(object):
    """Thin wrapper over proxmoxer's HTTPS backend with clear errors and task waiting."""

    def __init__(self, host, token_id, token_secret, port=8006, validate_certs=True, ca_path=None,
                 timeout=30, task_timeout=300, poll_interval=1.0):
        if not HAS_PROXMOXER:
            raise PveApiError("the Python library proxmoxer (and requests) is required on the host that runs "
                              "this module: pip install proxmoxer requests (%s)" % PROXMOXER_IMPORT_ERROR)
        user, name = parse_token_id(token_id)
        if not token_secret:
            raise PveApiError("api_token_secret is empty: give the secret printed by 'pveum user token add' "
                              "(or set PROXMOX_TOKEN_SECRET)")
        self.host = host
        self.port = int(port)
        self.token_id = token_id
        self.task_timeout = task_timeout
        self.poll_interval = poll_interval
        if validate_certs and ca_path and not os.path.isfile(ca_path):
            raise PveApiError("ca_path %s is not a file: give the PEM file of the CA that signed the API "
                              "certificate (a copy of /etc/pve/pve-root-ca.pem from the PVE host)" % ca_path)
        verify = ca_path if (validate_certs and ca_path) else bool(validate_certs)
        self.endpoint = "https://%s:%s" % (host if ":" not in host else "[%s]" % host, self.port)
        self._api = ProxmoxAPI(host, port=self.port, user=user, token_name=name, token_value=token_secret,
                               verify_ssl=verify, timeout=timeout, service="PVE")

    # ---- requests ----------------------------------------------------------------------------
    def _call(self, method, path, params):
        segments = [str(s) for s in path.strip("/").split("/")] if isinstance(path, str) else [str(s) for s in path]
        resource = self._api(segments)
        text_path = "/" + "/".join(segments)
        params = dict((k, v) for k, v in (params or {}).items() if v is not None)
        try:
            return getattr(resource, method.lower())(**params)
        except ResourceException as exc:
            raise self._api_error(exc, method, text_path) from None
        except requests.exceptions.SSLError as exc:
            raise PveApiError(
                "TLS certificate of %s could not be verified (%s). Give ca_path the CA that signed the PVE "
                "certificate (on the PVE host: /etc/pve/pve-root-ca.pem), or set validate_certs=false only "
                "on a trusted network." % (self.endpoint, _short(exc))) from None
        except requests.exceptions.Timeout:
            raise PveApiError("%s %s on %s timed out; raise timeout or check the host" % (
                method, text_path, self.endpoint)) from None
        except requests.exceptions.ConnectionError as exc:
            raise PveApiError("cannot connect to the Proxmox VE API at %s (%s): check api_host/api_port "
                              "and that pveproxy is running" % (self.endpoint, _short(exc))) from None

    def _api_error(self, exc, method, path):
        status = getattr(exc, "status_code", None)
        reason = _reason(exc)
        errors = getattr(exc, "errors", None) or {}
        where = "%s %s" % (method, path)
        if status == 401:
            msg = ("authentication failure (HTTP 401) at %s: the API token %s was refused. Check api_token_id "
                   "(USER@REALM!TOKENNAME) and api_token_secret, and that the token exists, is enabled and has "
                   "not expired (pveum user token list USER@REALM)." % (self.endpoint, self.token_id))
        elif status == 403:
            msg = "permission denied (HTTP 403) for %s: %s. %s" % (where, reason, permission_advice(reason, self.token_id))
        elif status == 400 and isinstance(errors, dict) and errors:
            detail = "; ".join("%s: %s" % (k, str(v).strip()) for k, v in sorted(errors.items()))
            msg = "Proxmox VE refused %s: parameter verification failed: %s" % (where, detail)
        elif status == 501:
            msg = "Proxmox VE does not implement %s (HTTP 501: %s); is the PVE version too old?" % (where, reason)
        else:
            msg = "Proxmox VE API error on %s (HTTP %s): %s" % (where, status, reason)
        return PveApiError(msg, status=status, errors=errors if isinstance(errors, dict) else {}, reason=reason)

    def get(self, path, **params):
        return self._call("GET", path, params)

    def post(self, path, **params):
        return self._call("POST", path, params)

    def put(self, path, **params):
        return self._call("PUT", path, params)

    def delete(self, path, **params):
        return self._call("DELETE", path, params)

    # ---- tasks -------------------------------------------------------------------------------
    def task_log(self, upid, start=0):
        """The lines of a task's log from line ``start`` (0-based), as text."""
        node = parse_upid(upid)["node"]
        lines = self.get(["nodes", node, "tasks", upid, "log"], start=start, limit=500)
        return [str(entry.get("t", "")) for entry in sorted(lines or [], key=lambda e: int(e.get("n", 0)))]

    def wait_task(self, upid, timeout=None, what=None, progress=None):
        """Poll ``/nodes/{node}/tasks/{upid}/status`` until the task stops; raise PveTaskError unless OK.

        ``WARNINGS: n`` counts as success (the task finished, with warnings in its log), like
        community.proxmox does. With ``progress`` (a callable), every new line of the task's log is
        passed to it as the task writes it (read at each poll), so a long task shows what it does.
        """
        fields = parse_upid(upid)
        deadline = time.monotonic() + (timeout or self.task_timeout)
        label = what or "%s task for %s" % (fields["type"], fields["id"] or fields["node"])
        seen = 0
        while True:
            status = self.get(["nodes", fields["node"], "tasks", upid, "status"])
            if progress is not None:
                for line in self.task_log(upid, start=seen):
                    seen += 1
                    progress(line)
            if status.get("status") == "stopped":
                exit_status = str(status.get("exitstatus", ""))
                if exit_status == "OK" or exit_status.startswith("WARNINGS"):
                    return status
                msg = ("%s failed on node %s: %s (task %s; see its log in the PVE web UI or "
                       "pvesh get /nodes/%s/tasks/%s/log)"
                       % (label, fields["node"], exit_status.strip(), upid, fields["node"], upid))
                raise PveTaskError(msg, reason=exit_status)
            if time.monotonic() > deadline:
                raise PveTaskError("%s on node %s did not finish within %ss (task %s still %s); raise "
                                   "task_timeout or look at the task in the PVE web UI"
                                   % (label, fields["node"], timeout or self.task_timeout, upid,
                                      status.get("status")))
            time.sleep(self.poll_interval)

    # ---- helpers used by several modules ----------------------------------------------------
    def nodes(self):
        return sorted(n["node"] for n in self.get("nodes"))

    def require_node(self, node):
        """Fail clearly when ``node`` is not a member of the cluster."""
        known = self.nodes()
        if node not in known:
            raise PveApiError("node %r is not a node of this Proxmox VE cluster (nodes: %s): give the node name "
                              "as shown by 'pvecm nodes' or in the web UI" % (node, ", ".join(known) or "none"))

    def hardware_pci(self, node):
        """All PCI devices of ``node``, bridges included (the API hides classes 05/06/0b by default)."""
        return self.get(["nodes", node, "hardware", "pci"], **{"pci-class-blacklist": ""})


# ---- privileges: the advice of a 403 -------------------------------------------------------------
# PVE's privilege groups and how its built-in roles are made of them (pve-access-control
# src/PVE/AccessControl.pm, $privgroups and create_roles): PVE<Group>Admin holds a group's admin, user
# and audit privileges, PVE<Group>User its user and audit ones (where it has user ones), PVEAuditor
# every audit one, PVEAdmin every admin, user and audit one except Mapping.Modify (removed since PVE
# 8.0: only PVEMappingAdmin and Administrator have it); root privileges are Administrator's only.
PVE_PRIVILEGE_GROUPS = {
    "VM": dict(
        root=(),
        admin=("VM.Config.Disk", "VM.Config.CPU", "VM.Config.Memory", "VM.Config.Network", "VM.Config.HWType",
               "VM.Config.Options", "VM.Allocate", "VM.Clone", "VM.GuestAgent.Unrestricted", "VM.Migrate",
               "VM.Replicate", "VM.Snapshot", "VM.Snapshot.Rollback"),
        user=("VM.Config.CDROM", "VM.Config.Cloudinit", "VM.Console", "VM.Backup", "VM.GuestAgent.FileRead",
              "VM.GuestAgent.FileSystemMgmt", "VM.GuestAgent.FileWrite", "VM.PowerMgmt"),
        audit=("VM.Audit", "VM.GuestAgent.Audit")),
    "Sys": dict(root=("Sys.PowerMgmt", "Sys.Modify", "Sys.Incoming", "Sys.AccessNetwork"),
                admin=("Sys.Console", "Sys.Syslog"), user=(), audit=("Sys.Audit",)),
    "Datastore": dict(root=(), admin=("Datastore.Allocate", "Datastore.AllocateTemplate"),
                      user=("Datastore.AllocateSpace",), audit=("Datastore.Audit",)),
    "SDN": dict(root=(), admin=("SDN.Allocate", "SDN.Audit"), user=("SDN.Use",), audit=("SDN.Audit",)),
    "User": dict(root=("Realm.Allocate",), admin=("User.Modify", "Group.Allocate", "Realm.AllocateUser"),
                 user=(), audit=()),
    "Pool": dict(root=(), admin=("Pool.Allocate",), user=("Pool.Audit",), audit=("Pool.Audit",)),
    "Mapping": dict(root=(), admin=("Mapping.Modify",), user=("Mapping.Use",), audit=("Mapping.Audit",)),
}
_NOT_IN_PVEADMIN = frozenset(("Mapping.Modify",))
_PERMISSION_RE = re.compile(r"Permission check failed \((?P<path>/[^,)]*), (?P<privs>[^)]+)\)")


def builtin_role_for(privilege):
    """The narrowest built-in PVE role that holds ``privilege`` (None for a name PVE does not know).

    Audit privileges: PVEAuditor; VM.Clone: PVETemplateUser; a group's user privileges: PVE<Group>User;
    its admin ones: PVE<Group>Admin; root privileges and Permissions.Modify: Administrator.
    """
    if privilege == "VM.Clone":
        return "PVETemplateUser"
    if privilege == "Permissions.Modify":
        return "Administrator"
    for kind, role in (("audit", "PVEAuditor"), ("user", "PVE%sUser"), ("admin", "PVE%sAdmin"),
                       ("root", "Administrator")):
        for group, privileges in PVE_PRIVILEGE_GROUPS.items():
            if privilege in privileges[kind]:
                return role % group if "%s" in role else role
    return None


# where the README lists every path and privilege the collection needs (roles/proxmox_api_access/vars/main.yml)
PRIVILEGES_SECTION = 'the README section "Proxmox API token and privileges" lists every path and privilege it needs'


def permission_advice(reason, token_id):
    """How to grant what PVE's 403 ``reason`` ("Permission check failed (PATH, PRIV)") names: a sentence
    with a pveum command that PVE accepts (built-in role names, the token's user and the token), and
    where the README lists all the privileges the collection needs."""
    return "%s; %s." % (_permission_advice(reason, token_id), PRIVILEGES_SECTION)


def _permission_advice(reason, token_id):
    user = str(token_id).split("!", 1)[0]
    grantees = "--users %s --tokens '%s'" % (user, token_id)
    match = _PERMISSION_RE.search(reason or "")
    if not match:
        return ("Grant the token and its user the privilege this call needs (the module's notes list them): "
                "pveum acl modify <path> --roles <role> %s" % grantees)
    path, text = match.group("path"), match.group("privs").strip()
    # PVE names alternatives joined by '|' (any one is enough); missing ones may come comma-separated
    any_of = "|" in text
    privileges = [p.strip() for p in re.split(r"[|,]", text) if p.strip()]
    roles = []
    for privilege in privileges[:1] if any_of else privileges:
        role = builtin_role_for(privilege)
        if role and role not in roles:
            roles.append(role)
    wanted = ("one of " if any_of and len(privileges) > 1 else "") + ", ".join(privileges)
    head = ("Grant the token and its user (a token with privilege separation has only what both have) %s on %s"
            % (wanted, path))
    if not roles:
        return "%s, with a role that holds it: pveum acl modify %s --roles <role> %s" % (head, path, grantees)
    note = ""
    if any(p in _NOT_IN_PVEADMIN for p in privileges):
        note = " (PVEAdmin does not include %s since PVE 8.0)" % ", ".join(p for p in privileges if p in _NOT_IN_PVEADMIN)
    elif "Administrator" in roles:
        note = " (a root privilege: only Administrator has it)"
    return "%s, e.g. with the built-in role%s %s%s: pveum acl modify %s --roles %s %s" % (
        head, "s" if len(roles) > 1 else "", " and ".join(roles), note, path, ",".join(roles), grantees)


def _short(exc):
    text = str(exc)
    return text if len(text) < 300 else text[:300] + "..."


def client_from_params(params):
    """Build a PveClient from module parameters named as in CONNECTION_ARGSPEC (and TASK_ARGSPEC)."""
    return PveClient(
        host=params["api_host"], port=params.get("api_port") or 8006, token_id=params["api_token_id"],
        token_secret=params["api_token_secret"], validate_certs=params.get("validate_certs", True),
        ca_path=params.get("ca_path"), timeout=params.get("timeout") or 30,
        task_timeout=params.get("task_timeout") or 300)


# What PVE dies with when a write carries a digest that no longer matches (HTTP 500):
# - a VM's config (qemu-server src/PVE/API2/Qemu.pm, update_vm_api): "checksum mismatch (file change by
#   other user?)", spelled "checksum missmatch" by older releases;
# - section configs such as the PCI mappings (pve-common PVE::Tools::assert_if_modified, behind
#   "update hardware mapping failed: "): "detected modified configuration - file changed by other user?
#   Try again."
DIGEST_CONFLICT_RE = re.compile(
    r"checksum mis{1,2}match \(file change by other user\?\)|detected modified configuration - file changed by other user\?")


def is_digest_conflict(exc):
    """True when PVE refused a write because the config changed since it was read."""
    return isinstance(exc, PveApiError) and bool(DIGEST_CONFLICT_RE.search(exc.reason or exc.message))
