# SPDX-License-Identifier: GPL-3.0-or-later
"""Shared pytest setup: make the collection importable as
``ansible_collections.homelab.gpu_passthrough`` from a plain checkout.

`make setup` links the repository at .collections/ansible_collections/homelab/gpu_passthrough;
this puts .collections on sys.path so tests import the plugins exactly as Ansible does.
"""
from __future__ import annotations

import os
import sys

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
COLLECTIONS = os.path.join(REPO_ROOT, ".collections")
_LINK = os.path.join(COLLECTIONS, "ansible_collections", "homelab", "gpu_passthrough")

if not os.path.exists(_LINK):
    os.makedirs(os.path.dirname(_LINK), exist_ok=True)
    os.symlink("../../..", _LINK)
if COLLECTIONS not in sys.path:
    sys.path.insert(0, COLLECTIONS)
