# -*- coding: utf-8 -*-
# Copyright (c) homelab.gpu_passthrough contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""faster-whisper model names as filters (the mapping lives in module_utils/whisper_hub.py)."""
from __future__ import annotations

from ansible.errors import AnsibleFilterError

from ansible_collections.homelab.gpu_passthrough.plugins.module_utils import whisper_hub


def whisper_hub_id(name):
    try:
        return whisper_hub.repo_id(name)
    except whisper_hub.HubError as e:
        raise AnsibleFilterError(str(e))


def whisper_model_dir(name):
    try:
        return whisper_hub.dir_name(name)
    except whisper_hub.HubError as e:
        raise AnsibleFilterError(str(e))


class FilterModule(object):
    """faster-whisper model name filters."""

    def filters(self):
        return {"whisper_hub_id": whisper_hub_id, "whisper_model_dir": whisper_model_dir}
