#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright (c) homelab.gpu_passthrough contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
from __future__ import annotations

DOCUMENTATION = r"""
---
module: async_progress
short_description: Wait for an async job and print what it is doing while it runs
version_added: 0.2.0
description:
  - Waits for a job started with C(async) and C(poll=0), like M(ansible.builtin.async_status) in an
    C(until) loop, but prints a progress line at every poll instead of C(FAILED - RETRYING), with the
    elapsed time, the size of O(path) on the job's host (with a percentage of O(expected_bytes)
    when given), and the last line written to O(log) since O(log_offset).
  - Returns the job's own result when it ends (so a failed job fails this task with its message),
    and removes the job's status file.
  - Action plugin only; it runs its probes on the host of the job (delegation and become apply).
author:
  - homelab.gpu_passthrough contributors (@homelab)
options:
  jid:
    description: The C(ansible_job_id) of the job.
    type: str
    required: true
  what:
    description: What the job does, for the progress lines.
    type: str
    default: job
  poll:
    description: Seconds between two progress lines.
    type: int
    default: 10
  timeout:
    description: Seconds after which the task fails (the job is left running).
    type: int
    default: 3600
  path:
    description: A directory or file whose size in bytes is reported (the job's output).
    type: str
  expected_bytes:
    description: The size O(path) reaches when the job is done, for a percentage; 0 means unknown.
    type: int
    default: 0
  log:
    description: A log file the job writes to; its last non-empty line is reported.
    type: str
  log_offset:
    description: Only lines after this byte offset of O(log) are reported (its size before the job started).
    type: int
    default: 0
attributes:
  check_mode:
    support: none
    description: There is no job in check mode; the action skips itself there.
  diff_mode:
    support: none
    description: Nothing to diff.
  idempotent:
    support: N/A
    description: Reports the job's own C(changed).
"""

EXAMPLES = r"""
- name: Install the driver packages (apt and DKMS can take minutes)
  ansible.builtin.apt:
    name: nvidia-driver
  async: 3600
  poll: 0
  register: __job

- name: Wait for apt and DKMS, printing the last line of apt's log
  homelab.gpu_passthrough.async_progress:
    jid: "{{ __job.ansible_job_id }}"
    what: apt + DKMS
    log: /var/log/apt/term.log
"""

RETURN = r"""
finished:
  description: Whether the job ended (always true unless the task failed on its timeout).
  returned: always
  type: bool
progress:
  description: The progress lines printed.
  returned: always
  type: list
  elements: str
"""
