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
  - O(format=grub) edits C(GRUB_CMDLINE_LINUX_DEFAULT) (or O(grub_variable)) in C(/etc/default/grub);
    C(GRUB_CMDLINE_LINUX) is read too, because GRUB puts both on the kernel line, so a contrary value
    there (for example C(intel_iommu=off)) is replaced where it is.
  - O(format=plain) edits the first line of a file that is the command line itself, such as
    C(/etc/kernel/cmdline) used by C(proxmox-boot-tool) on systemd-boot hosts.
  - A key that already has the wanted value is kept in place; a key with another value is replaced
    in place; later copies of a managed key are removed; missing keys are appended. The option-list
    keys C(intel_iommu), C(amd_iommu) and C(iommu) merge, so C(intel_iommu=on,sm_on) satisfies
    C(intel_iommu=on). Arguments after C(--) belong to init and are never touched.
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
      - V(grub) for a shell-style C(/etc/default/grub), V(plain) for a file whose first line is the
        command line.
    type: str
    choices: [grub, plain]
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
        C(key=value) removes only that value.
    type: list
    elements: str
    default: []
  grub_variable:
    description:
      - Variable that receives new arguments when O(format=grub).
    type: str
    default: GRUB_CMDLINE_LINUX_DEFAULT
  backup:
    description:
      - Keep a timestamped copy of the file before changing it.
    type: bool
    default: true
  create:
    description:
      - Create O(path) when it does not exist (with the new arguments only). When V(false), a
        missing file is an error.
    type: bool
    default: false
attributes:
  check_mode:
    support: full
    description: Reports what would change, and the diff, without writing.
  diff_mode:
    support: full
    description: Shows the file before and after.
  idempotent:
    support: full
    description: A second run with the same options reports no change.
notes:
  - Keys compare like the kernel compares them, so C(intel-iommu) and C(intel_iommu) are one key.
  - Lines that use shell constructs the module cannot rewrite safely (command substitution,
    backslashes, a variable that refers to itself) are refused with a message instead of edited.
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
    format: plain
    args: [intel_iommu=on, iommu=pt]
  notify: Refresh proxmox-boot-tool

- name: Make sure the ACS override is not used
  homelab.gpu_passthrough.kernel_cmdline:
    path: /etc/default/grub
    format: grub
    absent: [pcie_acs_override]
"""

RETURN = r"""
cmdline:
  description: The command line the file produces after the run (for O(format=grub), the managed
    variables joined in GRUB's order).
  returned: always
  type: str
  sample: quiet intel_iommu=on iommu=pt
previous_cmdline:
  description: The command line before the run.
  returned: always
  type: str
  sample: quiet intel_iommu=off
changes:
  description: What was done to each argument, one line each.
  returned: always
  type: list
  elements: str
  sample: ["replaced intel_iommu=off with intel_iommu=on", "added iommu=pt"]
backup_file:
  description: Path of the backup copy, when one was made.
  returned: changed and O(backup=true) and not in check mode
  type: str
  sample: /etc/default/grub.12345.2026-01-01@10:00:00~
"""

import os

from ansible.module_utils.basic import AnsibleModule
from ansible.module_utils.common.text.converters import to_bytes, to_native, to_text

from ansible_collections.homelab.gpu_passthrough.plugins.module_utils.kernel_cmdline import (
    CmdlineError,
    describe_changes,
    edit_grub_file,
    edit_plain_file,
)


def main():
    module = AnsibleModule(
        argument_spec=dict(
            path=dict(type="path", required=True),
            format=dict(type="str", required=True, choices=["grub", "plain"]),
            args=dict(type="list", elements="str", default=[]),
            absent=dict(type="list", elements="str", default=[]),
            grub_variable=dict(type="str", default="GRUB_CMDLINE_LINUX_DEFAULT"),
            backup=dict(type="bool", default=True),
            create=dict(type="bool", default=False),
        ),
        supports_check_mode=True,
    )
    path = module.params["path"]
    exists = os.path.exists(path)
    if exists and not os.path.isfile(path):
        module.fail_json(msg="%s is not a regular file" % path)
    if not exists and not module.params["create"]:
        module.fail_json(
            msg="%s does not exist: check the boot loader detection, or set create=true to start it"
            % path
        )
    content = ""
    if exists:
        try:
            with open(path, "rb") as handle:
                content = to_text(handle.read(), errors="surrogate_or_strict")
        except (OSError, UnicodeError) as exc:
            module.fail_json(msg="cannot read %s: %s" % (path, to_native(exc)))

    try:
        if module.params["format"] == "grub":
            new_content, old_cmdline, new_cmdline, changes = edit_grub_file(
                content,
                module.params["args"],
                module.params["absent"],
                variable=module.params["grub_variable"],
            )
        else:
            new_content, old_cmdline, new_cmdline, changes = edit_plain_file(
                content, module.params["args"], module.params["absent"]
            )
    except CmdlineError as exc:
        module.fail_json(msg="%s: %s" % (path, to_native(exc)))

    changed = new_content != content
    result = dict(
        changed=changed,
        path=path,
        cmdline=new_cmdline,
        previous_cmdline=old_cmdline,
        changes=describe_changes(changes),
    )
    if module._diff:
        result["diff"] = dict(
            before_header=path, after_header=path, before=content, after=new_content
        )
    if changed and not module.check_mode:
        if exists and module.params["backup"]:
            result["backup_file"] = module.backup_local(path)
        tmp = os.path.join(module.tmpdir, "kernel_cmdline.new")
        with open(tmp, "wb") as handle:
            handle.write(to_bytes(new_content, errors="surrogate_or_strict"))
        module.atomic_move(tmp, path, unsafe_writes=False)
        if not exists:
            os.chmod(path, 0o644)
    module.exit_json(**result)


if __name__ == "__main__":
    main()
