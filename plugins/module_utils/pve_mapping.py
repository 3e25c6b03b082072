# -*- coding: utf-8 -*-
# Copyright (c) homelab.gpu_passthrough contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Cluster PCI resource mappings through the PVE API: ``/cluster/mapping/pci/{id}``.

Reads and digest-guarded writes only. What a map entry is (its syntax, its check against a node's
hardware) lives in ``pve_pci``; the connection in ``pve_client``.
"""
from __future__ import annotations

from ansible_collections.homelab.gpu_passthrough.plugins.module_utils.pve_client import (
    PveApiError,
    is_digest_conflict,
)


class PciMappingStore(object):
    """Read and write ``/cluster/mapping/pci/{id}`` (the cluster-wide PCI resource mappings)."""

    def __init__(self, client):
        self.client = client

    def get(self, name):
        """The mapping as PVE returns it (with ``digest``), or None when it does not exist."""
        for entry in self.client.get(["cluster", "mapping", "pci"]):
            if entry.get("id") == name:
                return self.client.get(["cluster", "mapping", "pci", name])
        return None

    def create(self, name, map_entries, description=None):
        self.client.post(["cluster", "mapping", "pci"], id=name, map=list(map_entries), description=description)

    def update(self, name, map_entries, description=None, delete=None, digest=None):
        self.client.put(["cluster", "mapping", "pci", name], map=list(map_entries), description=description,
                        delete=",".join(delete) if delete else None, digest=digest)

    def delete(self, name):
        self.client.delete(["cluster", "mapping", "pci", name])

    def ensure(self, name, map_entries, description=None, current=None):
        """Create or update the mapping, guarded by the digest of ``current`` (as read before).

        When PVE reports a concurrent change (digest mismatch, or the mapping appeared meanwhile), the
        mapping is read once more and the write retried once with the new digest; a second conflict
        raises PveApiError saying so. Returns ``(retried, mapping_after)``.
        """
        retried = False
        for attempt in (1, 2):
            try:
                if current is None:
                    self.create(name, map_entries, description)
                else:
                    self.update(name, map_entries, description=description, digest=current.get("digest"))
                return retried, self.get(name)
            except PveApiError as exc:
                appeared = current is None and "already defined" in exc.message
                if not (is_digest_conflict(exc) or appeared):
                    raise
                if attempt == 2:
                    raise PveApiError(
                        "mapping %s was changed by someone else while this task ran, twice in a row (%s). Nothing "
                        "was overwritten; run the task again once the other change is done." % (name, exc.message),
                        status=exc.status, reason=exc.reason)
                retried = True
                current = self.get(name)
        raise AssertionError("unreachable")  # pragma: no cover
