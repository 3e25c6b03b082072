# -*- coding: utf-8 -*-
# Copyright (c) homelab.gpu_passthrough contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
from __future__ import annotations


class ModuleDocFragment:
    # The injectable root of the modules that read sysfs and procfs through
    # plugins/module_utils/pci_sysfs.py (iommu_state, read_pci_devices).
    DOCUMENTATION = r"""
options:
  root:
    description:
      - Directory under which C(sys/) and C(proc/) are read.
      - Change it only to read a copy of another host's sysfs, for example a test fixture tree.
    type: path
    default: /
"""
