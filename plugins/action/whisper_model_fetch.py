# -*- coding: utf-8 -*-
# Copyright (c) homelab.gpu_passthrough contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Action plugin of homelab.gpu_passthrough.whisper_model_fetch: the download runs here, in the
controller's Ansible process, so that each progress line is printed while it happens (a module's
output only arrives when it ends). The work itself is the module's fetch_model()."""
from __future__ import annotations

from ansible.plugins.action import ActionBase
from ansible.utils.display import Display

from ansible_collections.homelab.gpu_passthrough.plugins.module_utils import whisper_hub
from ansible_collections.homelab.gpu_passthrough.plugins.modules.whisper_model_fetch import ARGUMENT_SPEC, fetch_model

display = Display()


class ActionModule(ActionBase):
    TRANSFERS_FILES = False
    _requires_connection = False

    def run(self, tmp=None, task_vars=None):
        result = super(ActionModule, self).run(tmp, task_vars)
        validation, args = self.validate_argument_spec(argument_spec=ARGUMENT_SPEC)
        log = []

        def progress(text):
            log.append(text)
            display.display("  [whisper_model_fetch] %s" % text)

        try:
            result.update(fetch_model(args, self._task.check_mode, progress))
        except whisper_hub.HubError as e:
            result.update(failed=True, msg=str(e))
        result["log"] = log
        return result
