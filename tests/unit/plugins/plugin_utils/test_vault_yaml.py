# SPDX-License-Identifier: GPL-3.0-or-later
"""vault_yaml.set_vars: set variables in a vars file's text, keep everything else."""
from __future__ import annotations

import pytest
import yaml

from ansible_collections.homelab.gpu_passthrough.plugins.plugin_utils.vault_yaml import VarsFileError, set_vars

TEXT = """---
# my secrets
vault_whisper_api_key: "keep-me"   # the API key
other: |
  line one
  line two

vault_proxmox_api_token_secret: old
last: [1, 2]
"""


def test_changes_only_what_differs_and_keeps_the_rest():
    new, changed = set_vars(TEXT, {"vault_whisper_api_key": "keep-me", "vault_proxmox_api_token_secret": "new",
                                   "vault_proxmox_api_token_id": "u@pve!t"})
    assert changed == ["vault_proxmox_api_token_secret", "vault_proxmox_api_token_id"]
    data = yaml.safe_load(new)
    assert data == {"vault_whisper_api_key": "keep-me", "other": "line one\nline two\n",
                    "vault_proxmox_api_token_secret": "new", "last": [1, 2], "vault_proxmox_api_token_id": "u@pve!t"}
    assert "# my secrets" in new and '"keep-me"   # the API key' in new


def test_same_values_leave_the_text_untouched():
    assert set_vars(TEXT, {"vault_proxmox_api_token_secret": "old"}) == (TEXT, [])


def test_replacing_a_block_scalar_removes_its_lines():
    new, changed = set_vars(TEXT, {"other": "x"})
    assert changed == ["other"] and "line one" not in new
    assert yaml.safe_load(new)["last"] == [1, 2]


def test_empty_file_and_values_that_need_quoting():
    new, _changed = set_vars("", {"a": "x: y # z", "b": "'\"\\"})
    assert yaml.safe_load(new) == {"a": "x: y # z", "b": "'\"\\"}


def test_not_a_mapping_is_refused():
    with pytest.raises(VarsFileError, match="not a mapping"):
        set_vars("- a\n- b\n", {"a": "1"})


def test_flow_mapping_it_cannot_edit_is_refused():
    with pytest.raises(VarsFileError):
        set_vars("{a: 1, b: 2}\n", {"a": "3"})
