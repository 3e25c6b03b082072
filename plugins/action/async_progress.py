# -*- coding: utf-8 -*-
# Copyright (c) homelab.gpu_passthrough contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""homelab.gpu_passthrough.async_progress: poll an async job with async_status and print a progress
line per poll (elapsed time, bytes written, the log's last line) while it runs."""
from __future__ import annotations

import shlex
import time

from ansible.plugins.action import ActionBase
from ansible.utils.display import Display

from ansible_collections.homelab.gpu_passthrough.plugins.module_utils.whisper_hub import human

display = Display()

ARGUMENT_SPEC = dict(
    jid=dict(type="str", required=True),
    what=dict(type="str", default="job"),
    poll=dict(type="int", default=10),
    timeout=dict(type="int", default=3600),
    path=dict(type="str"),
    expected_bytes=dict(type="int", default=0),
    log=dict(type="str"),
    log_offset=dict(type="int", default=0),
)


def progress_line(what, seconds, size, expected, last_line):
    parts = ["%s: %d min %02d s" % (what, seconds // 60, seconds % 60)]
    if size is not None:
        text = human(size)
        if expected:
            text += " of about %s (%d%%)" % (human(expected), min(99, 100 * size // expected))
        parts.append(text)
    if last_line:
        parts.append(last_line[:160])
    return ", ".join(parts)


def probe_command(path, log, log_offset):
    """One shell command printing the size of ``path`` (or -) and the log's last non-empty line."""
    cmd = ["printf '%%s\\n' \"$(du -sb %s 2>/dev/null | cut -f1)\"" % shlex.quote(path) if path else "echo -"]
    if log:
        cmd.append("tail -c +%d %s 2>/dev/null | tail -c 4000 | tr '\\r' '\\n' | grep -v '^[[:space:]]*$' | tail -n 1 || true"
                   % (log_offset + 1, shlex.quote(log)))
    return "; ".join(cmd)


class ActionModule(ActionBase):
    TRANSFERS_FILES = False

    def run(self, tmp=None, task_vars=None):
        result = super(ActionModule, self).run(tmp, task_vars)
        validation, args = self.validate_argument_spec(argument_spec=ARGUMENT_SPEC)
        if self._task.check_mode:
            result.update(skipped=True, msg="no async job in check mode")
            return result
        # Passed as it is, "~" included: async_status expands it on the job's host with the HOME of the
        # process, as async_wrapper did when it wrote the job's file. Expanding it here would ask the
        # connection, which says "~root" on a task delegated to the controller from a host reached as
        # root (ansible_user: root), while the job went to the HOME of the user running Ansible.
        async_dir = self.get_shell_option("async_dir", default="~/.ansible_async")
        status_args = {"jid": args["jid"], "_async_dir": async_dir}
        host = task_vars.get("inventory_hostname", "?")
        start = time.time()
        lines = []
        while True:
            status = self._execute_module(module_name="ansible.legacy.async_status", module_args=dict(status_args),
                                          task_vars=task_vars)
            if status.get("failed") and not status.get("started", True):
                result.update(status)
                return result
            if status.get("finished"):
                self._execute_module(module_name="ansible.legacy.async_status",
                                     module_args=dict(status_args, mode="cleanup"), task_vars=task_vars)
                for key in ("ansible_job_id", "results_file", "started", "_ansible_parsed"):
                    status.pop(key, None)
                result.update(status)
                result.update(finished=True, progress=lines)
                result.setdefault("changed", False)
                return result
            elapsed = int(time.time() - start)
            if elapsed >= args["timeout"]:
                result.update(failed=True, finished=False, progress=lines, msg=(
                    "%s did not end within %d s (job %s still running on %s; raise the timeout or look at it there)"
                    % (args["what"], args["timeout"], args["jid"], host)))
                return result
            size, last = None, ""
            if args["path"] or args["log"]:
                out = self._low_level_execute_command(probe_command(args["path"], args["log"], args["log_offset"]),
                                                      sudoable=True)
                text = (out.get("stdout") or "").split("\n")
                first = text[0].strip() if text else ""
                size = int(first) if first.isdigit() else None
                last = text[1].strip() if len(text) > 1 else ""
            line = progress_line(args["what"], elapsed, size, args["expected_bytes"], last)
            lines.append(line)
            display.display("  [%s] %s" % (host, line))
            time.sleep(args["poll"])
