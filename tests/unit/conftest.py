# SPDX-License-Identifier: GPL-3.0-or-later
"""Unit tests: make tests/unit importable (the sysfs_tree helper) from the tests in plugins/**."""
from __future__ import annotations

import os
import sys

UNIT = os.path.dirname(os.path.abspath(__file__))
if UNIT not in sys.path:
    sys.path.insert(0, UNIT)
