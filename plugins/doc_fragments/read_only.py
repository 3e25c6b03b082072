# -*- coding: utf-8 -*-
# Copyright (c) homelab.gpu_passthrough contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
from __future__ import annotations


class ModuleDocFragment:
    # Attributes of the modules that only read (sysfs, procfs or the Proxmox VE API) and change nothing.
    DOCUMENTATION = r"""
attributes:
  check_mode:
    support: full
    description: The module only reads; check mode returns the same data.
  diff_mode:
    support: none
    description: Nothing is changed, so there is no diff.
  idempotent:
    support: full
    description: Reading twice gives the same result when nothing changed in between.
"""
