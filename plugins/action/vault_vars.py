# -*- coding: utf-8 -*-
# Copyright (c) homelab.gpu_passthrough contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Action plugin of homelab.gpu_passthrough.vault_vars (documented in plugins/modules/vault_vars.py):
set variables in an ansible-vault encrypted vars file on the controller, with the vault secrets the
playbook run was given (--ask-vault-pass, --vault-password-file, --vault-id)."""
from __future__ import annotations

import os
import tempfile

from ansible import constants as C
from ansible.errors import AnsibleActionFail
from ansible.module_utils.common.text.converters import to_bytes, to_text
from ansible.parsing.vault import VaultLib, is_encrypted, match_encrypt_secret
from ansible.plugins.action import ActionBase

from ansible_collections.homelab.gpu_passthrough.plugins.plugin_utils.vault_yaml import VarsFileError, set_vars

_ARGS = {"path": {"type": "path", "required": True},
         "vars": {"type": "dict", "required": True},
         "mode": {"type": "str", "default": "0600"}}


class ActionModule(ActionBase):
    TRANSFERS_FILES = False
    _VALID_ARGS = frozenset(_ARGS)

    def run(self, tmp=None, task_vars=None):
        result = super().run(tmp, task_vars)
        _validation, args = self.validate_argument_spec(argument_spec=_ARGS)
        path = os.path.expanduser(args["path"])
        values = {str(k): to_text(v) for k, v in args["vars"].items()}
        secrets = list(self._loader._vault.secrets or [])  # pylint: disable=protected-access
        found = match_encrypt_secret(secrets, C.DEFAULT_VAULT_ENCRYPT_IDENTITY) if secrets else None
        if not found:
            raise AnsibleActionFail(f"no vault password to encrypt {path} with: run ansible-playbook with "
                                    "--ask-vault-pass (or --vault-password-file / --vault-id)")
        vault_id, secret = found
        vault = VaultLib(secrets)
        b_old = b""
        if os.path.exists(path):
            with open(path, "rb") as fh:
                b_old = fh.read()
        encrypted_before = is_encrypted(b_old)
        try:
            old = to_text(vault.decrypt(b_old)) if encrypted_before else to_text(b_old)
        except Exception as exc:  # AnsibleVaultError and friends: wrong password
            raise AnsibleActionFail(f"cannot decrypt {path} with the vault password of this run: {exc}") from exc
        try:
            new, changed = set_vars(old, values)
        except VarsFileError as exc:
            raise AnsibleActionFail(f"{path}: {exc}") from exc
        must_encrypt = bool(b_old) and not encrypted_before
        result.update(changed=bool(changed) or must_encrypt or not b_old, path=path, changed_vars=changed,
                      encrypted=True)
        if self._task.diff and result["changed"]:
            result["diff"] = {"before_header": path, "after_header": path,
                              "before": "".join(f"{k}: (old value)\n" for k in changed if f"\n{k}:" in "\n" + old),
                              "after": "".join(f"{k}: (new value, hidden)\n" for k in changed)}
        if not result["changed"] or self._task.check_mode:
            return result
        b_new = vault.encrypt(new, secret, vault_id=vault_id if vault_id != C.DEFAULT_VAULT_IDENTITY else None)
        directory = os.path.dirname(os.path.abspath(path))
        os.makedirs(directory, exist_ok=True)
        fd, tmp_path = tempfile.mkstemp(dir=directory, prefix=".vault_vars.")
        try:
            with os.fdopen(fd, "wb") as fh:
                fh.write(to_bytes(b_new))
            os.chmod(tmp_path, int(args["mode"], 8))
            os.replace(tmp_path, path)
        finally:
            if os.path.exists(tmp_path):
                os.unlink(tmp_path)
        return result
