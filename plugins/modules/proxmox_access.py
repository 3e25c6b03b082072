#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright (c) homelab.gpu_passthrough contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
from __future__ import annotations

DOCUMENTATION = r"""
---
module: proxmox_access
short_description: A Proxmox VE user, role, ACLs and privilege-separated API token, with pveum on the node
version_added: 0.1.0
description:
  - Runs on a Proxmox VE node as root and uses C(pveum) (the PVE user manager CLI) to give the
    collection its own API access - a user; per path of O(grants) a role with exactly that path's
    privileges (V(<role>) on C(/), V(<role>.vms) on C(/vms), ...; one role with all of them on C(/) would
    propagate every privilege to every path) and an ACL entry of it on that path for the user and for
    its token; and an API token with privilege separation (C(privsep=1), so the token has the
    intersection of its own and the user's privileges).
  - Reads the state first (C(pveum user list), C(role list), C(acl list), C(user token list), each with
    C(--output-format json)) and runs only the commands for what differs. ACL entries of these roles for
    the user or the token that O(grants) does not ask for are removed.
  - PVE shows a token's secret only once. When the token exists and O(token_secret_known=false), the module
    fails and says how to rotate it (O(rotate_token=true) deletes and recreates it).
author:
  - homelab.gpu_passthrough contributors (@homelab)
options:
  userid:
    description: The user, as C(name@realm). A new user gets no password (it logs in with its token only).
    type: str
    required: true
  role:
    description: The base name of the roles to create or update (V(<role>) and V(<role>.<path>)). Must not
      be one of PVE's built-in roles.
    type: str
    required: true
  token:
    description: The token's name (the part after C(!) in the token id).
    type: str
    required: true
  grants:
    description:
      - What to grant, each item C(path), C(privileges) (a list) and C(why) (ignored here).
      - A path may hold the placeholders C({node}), C({storage}), C({image_storage}) and C({bridge}), filled from O(placeholders).
      - Each path gets a role with its privileges and an ACL entry of that role (two items on one path are merged).
    type: list
    elements: dict
    required: true
  placeholders:
    description: Values of the path placeholders, keys C(node), C(storage), C(image_storage), C(bridge).
    type: dict
    default: {}
  comment:
    description: Comment on the user and the token.
    type: str
    default: homelab.gpu_passthrough automation
  token_secret_known:
    description: Whether the caller already holds the secret of an existing token (in its vault).
    type: bool
    default: false
  rotate_token:
    description: Delete and recreate an existing token (a new secret; the old one stops working).
    type: bool
    default: false
  pveum:
    description: The C(pveum) command to run.
    type: str
    default: pveum
attributes:
  check_mode:
    support: full
    description: Reads the state and reports the commands it would run in RV(actions); runs none of them.
  diff_mode:
    support: full
    description: The user, the roles' privileges, the token and the ACL entries before and after (never a secret).
  idempotent:
    support: full
    description: A second run finds nothing to change (as long as O(rotate_token) is not set).
notes:
  - The token secret is returned once, in RV(token_secret); run the task with C(no_log=true).
"""

EXAMPLES = r"""
- name: API access for the collection (user, role, ACLs, privilege-separated token)
  homelab.gpu_passthrough.proxmox_access:
    userid: gpu-passthrough@pve
    role: GpuPassthrough
    token: ansible
    grants:
      - path: /nodes/{node}
        privileges: [Sys.Audit]
        why: read the node's PCI devices
    placeholders:
      node: pve
    token_secret_known: "{{ vault_proxmox_api_token_secret is defined }}"
  no_log: true
  register: access
"""

RETURN = r"""
token_id:
  description: The full token id, C(userid!token).
  returned: always
  type: str
  sample: gpu-passthrough@pve!ansible
token_secret:
  description: The new token's secret when this run created the token, else V(null).
  returned: always
  type: str
grants:
  description: Per ACL path (placeholders filled in), the role that holds its privileges and the privileges.
  returned: always
  type: list
  elements: dict
  sample: [{"path": "/vms", "role": "GpuPassthrough.vms", "privileges": ["VM.Audit"]}]
actions:
  description: What was changed (or, in check mode, would be), one line each.
  returned: always
  type: list
  elements: str
commands:
  description: The pveum command lines run (or that would run), without secrets.
  returned: always
  type: list
  elements: str
"""

import json
import shlex

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.homelab.gpu_passthrough.plugins.module_utils.pve_access import (
    AccessError,
    grants_by_path,
    plan,
    role_for_path,
)


class Pveum:
    """pveum through module.run_command; JSON in, JSON out."""

    def __init__(self, module: AnsibleModule, command: str):
        self.module = module
        self.command = module.get_bin_path(command, required=True) if "/" not in command else command

    def run(self, argv: list[str]) -> str:
        rc, out, err = self.module.run_command([self.command, *argv])
        if rc != 0:
            raise AccessError(f"`pveum {shlex.join(argv)}` failed (rc={rc}): {(err or out).strip()}")
        return out

    def json(self, argv: list[str]):
        out = self.run([*argv, "--output-format", "json"])
        try:
            return json.loads(out or "null")
        except ValueError as exc:
            raise AccessError(f"`pveum {shlex.join(argv)} --output-format json` did not print JSON: {out[:200]!r}") from exc

    def state(self, userid: str) -> dict:
        users = self.json(["user", "list"]) or []
        state = {"users": users, "roles": self.json(["role", "list"]) or [], "acl": self.json(["acl", "list"]) or [],
                 "tokens": []}
        if any(u.get("userid") == userid for u in users):
            state["tokens"] = self.json(["user", "token", "list", userid]) or []
        return state


def main():
    module = AnsibleModule(
        argument_spec=dict(
            userid=dict(type="str", required=True),
            role=dict(type="str", required=True),
            token=dict(type="str", required=True, no_log=False),
            grants=dict(type="list", elements="dict", required=True),
            placeholders=dict(type="dict", default={}),
            comment=dict(type="str", default="homelab.gpu_passthrough automation"),
            token_secret_known=dict(type="bool", default=False, no_log=False),
            rotate_token=dict(type="bool", default=False, no_log=False),
            pveum=dict(type="str", default="pveum"),
        ),
        supports_check_mode=True,
    )
    p = module.params
    userid = p["userid"]
    token_id = f"{userid}!{p['token']}"
    result = dict(changed=False, token_id=token_id, token_secret=None, actions=[], commands=[])
    try:
        grants = grants_by_path(p["grants"], {k: str(v) for k, v in p["placeholders"].items() if v is not None})
        result["grants"] = [dict(path=path, role=role_for_path(p["role"], path), privileges=privs)
                            for path, privs in grants.items()]
        pveum = Pveum(module, p["pveum"])
        actions, before, after = plan(pveum.state(userid), userid=userid, role_base=p["role"], grants=grants,
                                      token=p["token"], comment=p["comment"],
                                      secret_known=p["token_secret_known"], rotate=p["rotate_token"])
        result["actions"] = [a["what"] for a in actions]
        result["commands"] = ["pveum " + shlex.join(a["argv"]) for a in actions]
        result["changed"] = bool(actions)
        if module._diff:
            result["diff"] = dict(before=json.dumps(before, indent=2, sort_keys=True) + "\n",
                                  after=json.dumps(after, indent=2, sort_keys=True) + "\n")
        if module.check_mode:
            module.exit_json(**result)
        for action in actions:
            if action.get("creates_token"):
                created = json.loads(pveum.run(action["argv"]) or "{}")
                if not created.get("value"):
                    raise AccessError(f"`pveum user token add` printed no secret for {token_id}")
                result["token_secret"] = created["value"]
            else:
                pveum.run(action["argv"])
    except AccessError as exc:
        module.fail_json(msg=str(exc), **result)
    module.exit_json(**result)


if __name__ == "__main__":
    main()
