#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: homelab.gpu_passthrough contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
from __future__ import annotations

DOCUMENTATION = r"""
---
module: kernel_cmdline
short_description: Ensure kernel command line arguments in /etc/default/grub or /etc/kernel/cmdline
version_added: 0.1.0
description:
  - Adds, replaces and removes Linux kernel command line arguments in the file the boot loader
    builds the command line from, without touching any other argument and without ever
    duplicating a managed key.
  - O(format=grub) manages C(GRUB_CMDLINE_LINUX_DEFAULT) (or O(grub_variable)) the way
    C(grub-mkconfig) computes it. It reads O(path) (C(/etc/default/grub)) and then every C(*.cfg)
    file of O(grub_dropin_dir) (C(/etc/default/grub.d)) in name order, as C(grub-mkconfig) sources
    them. C(GRUB_CMDLINE_LINUX) is read too, because GRUB puts both on the kernel line. A contrary
    value (for example C(intel_iommu=off) appended by a drop-in) is replaced in the file and line
    that hold it; new arguments go into O(path) while its assignment still counts, else into the
    drop-in that sets the variable last. The reported command line is the effective one.
  - Assignments that GRUB's shell does not run the way this reading assumes are refused before
    anything is written, with the file, the line and what to simplify. Such are assignments inside
    C(if), C(case), loops or functions, values that expand other variables or run commands,
    C(&&) or C(||) lists, and sourcing other files. A variable appending to itself, as in
    C(GRUB_CMDLINE_LINUX="$GRUB_CMDLINE_LINUX root=..."), which the Proxmox VE installer writes to
    C(zfs.cfg) and C(installer.cfg), is understood.
  - O(format=proxmox-boot-tool) edits C(/etc/kernel/cmdline) as C(proxmox-boot-tool refresh) reads
    it for systemd-boot. Only the first line counts and it must hold C(root=). A file whose first
    line is blank or has no C(root=) is refused before writing, since C(proxmox-boot-tool) would
    stop with C(No root= parameter in /etc/kernel/cmdline found!). Further lines are kept and
    reported as ignored.
  - O(format=plain) edits the first line of a file that is the command line itself, with no
    further rules (for example to compare C(/proc/cmdline) in check mode).
  - A key that already has the wanted value is kept in place; a key with another value is replaced
    in place; later copies of a managed key are removed; missing keys are appended. The option-list
    keys C(intel_iommu), C(amd_iommu) and C(iommu) merge, so C(intel_iommu=on,sm_on) satisfies
    C(intel_iommu=on), while a contrary option is dropped (C(iommu=off) becomes C(iommu=pt)).
    Arguments after C(--) belong to init and are never touched.
  - Line endings (LF or CRLF) and the spacing of untouched arguments are kept.
  - The module does not regenerate boot loader configuration; notify C(update-grub) or
    C(proxmox-boot-tool refresh) when it reports a change.
author:
  - homelab.gpu_passthrough contributors (@homelab)
options:
  path:
    description:
      - File to edit, for example C(/etc/default/grub) or C(/etc/kernel/cmdline).
    type: path
    required: true
  format:
    description:
      - V(grub) for C(/etc/default/grub) and its drop-ins, V(proxmox-boot-tool) for
        C(/etc/kernel/cmdline) of systemd-boot hosts, V(plain) for any file whose first line is
        the command line.
    type: str
    choices: [grub, proxmox-boot-tool, plain]
    required: true
  args:
    description:
      - Arguments that must be present exactly once, as C(key) or C(key=value).
    type: list
    elements: str
    default: []
  absent:
    description:
      - Arguments that must not be present. C(key) removes every value of that key,
        C(key=value) removes only that value (for C(intel_iommu), C(amd_iommu) and C(iommu), that
        option). A value of a key that O(args) also names is replaced by the wanted one.
    type: list
    elements: str
    default: []
  grub_variable:
    description:
      - Variable that receives new arguments when O(format=grub).
    type: str
    default: GRUB_CMDLINE_LINUX_DEFAULT
  grub_dropin_dir:
    description:
      - Directory whose C(*.cfg) files C(grub-mkconfig) sources after O(path), when O(format=grub).
      - Defaults to O(path) with C(.d) appended, that is C(/etc/default/grub.d).
    type: path
  backup:
    description:
      - Keep a timestamped copy of each file before changing it.
    type: bool
    default: true
  create:
    description:
      - Create O(path) when it does not exist (with the new arguments only). When V(false), a
        missing file is an error. With O(format=proxmox-boot-tool) a new file would lack C(root=)
        and is refused.
    type: bool
    default: false
attributes:
  check_mode:
    support: full
    description: Reports what would change, and the diff, without writing.
  diff_mode:
    support: full
    description: Shows each changed file before and after.
  idempotent:
    support: full
    description: A second run with the same options reports no change.
notes:
  - Keys compare like the kernel compares them, so C(intel-iommu) and C(intel_iommu) are one key.
  - Drop-ins are read in the order of their names compared byte by byte (the C locale). A shell
    that sorts its globs by another locale's collation could read differently named drop-ins in
    another order.
  - The environment of C(update-grub) is not known to the module; an exported
    C(GRUB_CMDLINE_LINUX) there would be appended to as well.
seealso:
  - name: Kernel command line on Proxmox VE
    description: How Proxmox VE hosts with GRUB or systemd-boot take their command line.
    link: https://pve.proxmox.com/pve-docs/chapter-sysadmin.html#sysboot_edit_kernel_cmdline
"""

EXAMPLES = r"""
- name: Turn the IOMMU on for GRUB hosts, replacing intel_iommu=off if present
  homelab.gpu_passthrough.kernel_cmdline:
    path: /etc/default/grub
    format: grub
    args:
      - intel_iommu=on
      - iommu=pt
  notify: Update grub

- name: The same on a systemd-boot (ZFS) Proxmox host
  homelab.gpu_passthrough.kernel_cmdline:
    path: /etc/kernel/cmdline
    format: proxmox-boot-tool
    args: [intel_iommu=on, iommu=pt]
  notify: Refresh proxmox-boot-tool

- name: GRUB host whose /etc/default/grub.d lives elsewhere (a test tree)
  homelab.gpu_passthrough.kernel_cmdline:
    path: /srv/root/etc/default/grub
    grub_dropin_dir: /srv/root/etc/default/grub.d
    format: grub
    args: [intel_iommu=on]

- name: Make sure the ACS override is not used
  homelab.gpu_passthrough.kernel_cmdline:
    path: /etc/default/grub
    format: grub
    absent: [pcie_acs_override]
"""

RETURN = r"""
cmdline:
  description: The command line the files produce after the run; for O(format=grub) the effective
    C(GRUB_CMDLINE_LINUX) then O(grub_variable), after every drop-in.
  returned: always
  type: str
  sample: root=ZFS=rpool/ROOT/pve-1 boot=zfs quiet intel_iommu=on iommu=pt
previous_cmdline:
  description: The command line before the run.
  returned: always
  type: str
  sample: root=ZFS=rpool/ROOT/pve-1 boot=zfs quiet intel_iommu=off
previous_tokens:
  description: For the key of each item of O(args) and O(absent) (C(-) read as C(_)), the tokens the
    command line held before the run, in order; an empty list for a key it did not hold. Enough to
    put those keys back later (the tokens as O(args), the empty ones as O(absent)).
  returned: always
  type: dict
  sample: {"intel_iommu": ["intel_iommu=off"], "iommu": [], "amd_iommu": []}
changes:
  description: What was done to each argument, one line each; for O(format=grub) with the file
    and line.
  returned: always
  type: list
  elements: str
  sample: ["replaced intel_iommu=off with intel_iommu=on (/etc/default/grub line 9)",
           "added iommu=pt (/etc/default/grub line 9)"]
changed_files:
  description: The files that were (in check mode, would be) changed.
  returned: always
  type: list
  elements: str
  sample: [/etc/default/grub]
sources:
  description: For O(format=grub), every assignment whose text is in the effective command line,
    as C(FILE line N), in the order grub-mkconfig reads them.
  returned: when O(format=grub)
  type: list
  elements: str
  sample: ["/etc/default/grub line 10", "/etc/default/grub line 9", "/etc/default/grub.d/zfs.cfg line 1"]
backup_file:
  description: Path of the backup copy of O(path), when one was made.
  returned: changed and O(backup=true) and not in check mode
  type: str
  sample: /etc/default/grub.12345.2026-01-01@10:00:00~
backup_files:
  description: Backup copy of each changed file (O(path) and drop-ins), when made.
  returned: changed and O(backup=true) and not in check mode
  type: dict
  sample: {"/etc/default/grub": "/etc/default/grub.12345.2026-01-01@10:00:00~"}
"""

import glob
import os

from ansible.module_utils.basic import AnsibleModule
from ansible.module_utils.common.text.converters import to_bytes, to_native, to_text

from ansible_collections.homelab.gpu_passthrough.plugins.module_utils.kernel_cmdline import (
    CmdlineError,
    describe_changes,
    edit_boot_tool_file,
    edit_grub_files,
    edit_plain_file,
    tokens_by_key,
)


class KernelCmdlineFile(object):
    """Reads the files of one O(format), asks module_utils for the edit, writes the result."""

    def __init__(self, module):
        self.module = module
        self.params = module.params
        self.path = self.params["path"]

    def read(self, path, missing_ok=False):
        if not os.path.exists(path):
            if missing_ok:
                return None
            self.module.fail_json(
                msg="%s does not exist: check the boot loader detection, or set create=true to start it"
                % path
            )
        if not os.path.isfile(path):
            self.module.fail_json(msg="%s is not a regular file" % path)
        try:
            with open(path, "rb") as handle:
                return to_text(handle.read(), errors="surrogate_or_strict")
        except (OSError, UnicodeError) as exc:
            self.module.fail_json(msg="cannot read %s: %s" % (path, to_native(exc)))

    def grub_files(self, main):
        directory = self.params["grub_dropin_dir"] or self.path + ".d"
        files = [(self.path, main)]
        # grub-mkconfig: for x in ${sysconfdir}/default/grub.d/*.cfg; do [ -e "$x" ] && . "$x"
        for path in sorted(glob.glob(os.path.join(glob.escape(directory), "*.cfg"))):
            if os.path.exists(path):
                files.append((path, self.read(path)))
        return files

    def plan(self):
        """Return ``(files, new_contents, result)``: the files read, their new text, the outcome."""
        main = self.read(self.path, missing_ok=self.params["create"])
        exists = main is not None
        main = main or ""
        args, absent = self.params["args"], self.params["absent"]
        result = {}
        if self.params["format"] == "grub":
            files = self.grub_files(main)
            out = edit_grub_files(files, args, absent, variable=self.params["grub_variable"])
            contents, warnings = out["contents"], out["warnings"]
            result.update(cmdline=out["cmdline"], previous_cmdline=out["previous_cmdline"],
                          sources=out["sources"], changes=describe_changes(out["changes"]))
        else:
            files = [(self.path, main)]
            if self.params["format"] == "proxmox-boot-tool":
                new, old_cmdline, new_cmdline, changes, warnings = edit_boot_tool_file(main, args, absent)
            else:
                new, old_cmdline, new_cmdline, changes = edit_plain_file(main, args, absent)
                warnings = []
            contents = [new]
            result.update(cmdline=new_cmdline, previous_cmdline=old_cmdline,
                          changes=describe_changes(changes))
        result["previous_tokens"] = tokens_by_key(result["previous_cmdline"], args + absent)
        for warning in warnings:
            self.module.warn("%s: %s" % (self.path, warning))
        return files, contents, exists, result

    def run(self):
        try:
            files, contents, exists, result = self.plan()
        except CmdlineError as exc:
            self.module.fail_json(msg="%s: %s" % (self.path, to_native(exc)))
        changed = [(path, old, new) for (path, old), new in zip(files, contents) if old != new]
        result.update(changed=bool(changed), path=self.path,
                      changed_files=[path for path, dummy, dummy2 in changed])
        if self.module._diff:
            result["diff"] = [
                dict(before_header=path, after_header=path, before=old, after=new)
                for path, old, new in changed
            ] or dict(before_header=self.path, after_header=self.path, before=files[0][1], after=files[0][1])
        if changed and not self.module.check_mode:
            backups = {}
            for path, dummy, new in changed:
                backup = self.write(path, new, exists or path != self.path)
                if backup:
                    backups[path] = backup
            if backups:
                result["backup_files"] = backups
                if self.path in backups:
                    result["backup_file"] = backups[self.path]
        self.module.exit_json(**result)

    def write(self, path, content, exists):
        backup = None
        if exists and self.params["backup"]:
            backup = self.module.backup_local(path)
        tmp = os.path.join(self.module.tmpdir, "kernel_cmdline.new")
        with open(tmp, "wb") as handle:
            handle.write(to_bytes(content, errors="surrogate_or_strict"))
        self.module.atomic_move(tmp, path, unsafe_writes=False)
        if not exists:
            os.chmod(path, 0o644)
        return backup


def main():
    module = AnsibleModule(
        argument_spec=dict(
            path=dict(type="path", required=True),
            format=dict(type="str", required=True, choices=["grub", "proxmox-boot-tool", "plain"]),
            args=dict(type="list", elements="str", default=[]),
            absent=dict(type="list", elements="str", default=[]),
            grub_variable=dict(type="str", default="GRUB_CMDLINE_LINUX_DEFAULT"),
            grub_dropin_dir=dict(type="path"),
            backup=dict(type="bool", default=True),
            create=dict(type="bool", default=False),
        ),
        supports_check_mode=True,
    )
    KernelCmdlineFile(module).run()


if __name__ == "__main__":
    main()
