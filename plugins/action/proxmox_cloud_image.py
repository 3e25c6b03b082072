# -*- coding: utf-8 -*-
# Copyright (c) homelab.gpu_passthrough contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Action plugin of homelab.gpu_passthrough.proxmox_cloud_image: the API calls run here, in the
controller's Ansible process, so that each line of the node's download task log is printed while the
download runs (a module's output only arrives when it ends). The work itself is the module's ensure_image()."""
from __future__ import annotations

import time

from ansible.plugins.action import ActionBase
from ansible.utils.display import Display

from ansible_collections.homelab.gpu_passthrough.plugins.module_utils.pve_client import PveApiError, client_from_params
from ansible_collections.homelab.gpu_passthrough.plugins.modules.proxmox_cloud_image import argument_spec, ensure_image

display = Display()


class ActionModule(ActionBase):
    TRANSFERS_FILES = False
    _requires_connection = False

    def run(self, tmp=None, task_vars=None):
        result = super(ActionModule, self).run(tmp, task_vars)
        validation, args = self.validate_argument_spec(argument_spec=argument_spec())
        log = []
        start = time.monotonic()

        def progress(text):
            log.append(text)
            elapsed = int(time.monotonic() - start)
            display.display("  [proxmox_cloud_image %d min %02d s] %s" % (elapsed // 60, elapsed % 60, text))

        try:
            result.update(ensure_image(client_from_params(args), args, self._task.check_mode, progress))
        except (PveApiError, ValueError) as exc:
            result.update(failed=True, msg=str(exc))
        result["log"] = log
        return result
