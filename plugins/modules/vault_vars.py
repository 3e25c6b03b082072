#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright (c) homelab.gpu_passthrough contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
from __future__ import annotations

DOCUMENTATION = r"""
---
module: vault_vars
short_description: Set variables in an ansible-vault encrypted vars file on the controller
version_added: 0.1.0
description:
  - Decrypts O(path) with the vault secrets of the running playbook (C(--ask-vault-pass),
    C(--vault-password-file), C(--vault-id)), sets the top-level variables of O(vars), keeps every other
    line (other variables, comments, order) and encrypts the file again, as C(ansible-vault edit) would.
  - A missing file is created; a plaintext file is encrypted. Nothing is written when every variable
    already has its value.
  - This is an action plugin; it runs on the controller. Values never appear in its result or diff;
    still, run it with C(no_log=true), since the task's arguments hold them.
author:
  - homelab.gpu_passthrough contributors (@homelab)
options:
  path:
    description: The vars file on the controller, for example C(inventories/mine/group_vars/all/vault.yml).
    type: path
    required: true
  vars:
    description: Variable name to string value.
    type: dict
    required: true
  mode:
    description: File mode of a written file.
    type: str
    default: "0600"
attributes:
  action:
    support: full
    description: Runs on the controller.
  check_mode:
    support: full
    description: Reports which variables would change; writes nothing.
  diff_mode:
    support: full
    description: Shows the names of the variables that change, never their values.
  idempotent:
    support: full
    description: A second run with the same values writes nothing.
"""

EXAMPLES = r"""
- name: Store the API key in the inventory's vault
  homelab.gpu_passthrough.vault_vars:
    path: "{{ inventory_dir }}/group_vars/all/vault.yml"
    vars:
      vault_whisper_api_key: "{{ new_key }}"
  no_log: true
"""

RETURN = r"""
path:
  description: The file.
  returned: always
  type: str
changed_vars:
  description: Names of the variables whose value changed (or would, in check mode).
  returned: always
  type: list
  elements: str
encrypted:
  description: Always V(true); the file is (or would be) vault encrypted.
  returned: always
  type: bool
"""
