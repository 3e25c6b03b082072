# -*- coding: utf-8 -*-
# Copyright (c) homelab.gpu_passthrough contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""A node's storages and their files through the PVE API: the one home of what a cloud image in a
storage's ``import`` content is (its file name, its volume id, its checksum), and :class:`NodeStorage`,
the storage list, a storage's content and ``download-url`` (the download runs on the node, as a worker
task whose log is followed). The connection and the errors live in ``pve_client``.

Facts from the official API schema (shared/data/proxmox, pve-docs 9.1.3):
POST /nodes/{node}/storage/{storage}/download-url takes ``content`` (iso, vztmpl, import), ``filename``,
``url``, ``checksum`` with ``checksum-algorithm`` (md5, sha1, sha224, sha256, sha384, sha512) and
``verify-certificates``, and needs Datastore.AllocateTemplate on /storage/{storage} and Sys.AccessNetwork
on /nodes/{node} (or Sys.Audit and Sys.Modify on /). An ``import/`` file must end in .ova, .ovf, .qcow2,
.raw or .vmdk (pve-storage's directory plugin, as shared/reference and README say).
"""
from __future__ import annotations

import posixpath
import re
from urllib.parse import unquote, urlsplit

from ansible_collections.homelab.gpu_passthrough.plugins.module_utils.pve_client import PveApiError

IMPORT_EXTENSIONS = (".ova", ".ovf", ".qcow2", ".raw", ".vmdk")
# what a cloud image is published as, and what it is saved as: Ubuntu's .img is a qcow2 file
_SAVE_AS = {".img": ".qcow2"}
CHECKSUM_ALGORITHMS = {"md5": 32, "sha1": 40, "sha224": 56, "sha256": 64, "sha384": 96, "sha512": 128}
_FILENAME_RE = re.compile(r"^[-\w.]+$")


class ImageInputError(ValueError):
    """A cloud image option that cannot work; the message says what to put there."""


def image_filename(url, filename=None):
    """The file name in the storage's ``import/``: ``filename`` when given, else the URL's last path
    segment; a ``.img`` is saved as ``.qcow2`` (cloud images published as .img are qcow2 inside)."""
    if not re.match(r"^https?://", url or ""):
        raise ImageInputError("cloud image URL %r must start with http:// or https://" % (url,))
    name = filename or posixpath.basename(unquote(urlsplit(url).path))
    stem, ext = posixpath.splitext(name)
    if not filename and ext.lower() in _SAVE_AS:
        name = stem + _SAVE_AS[ext.lower()]
        ext = _SAVE_AS[ext.lower()]
    if not name or not _FILENAME_RE.match(name):
        raise ImageInputError("cannot name the image file %r (from %s): give a file name of letters, digits, '-', "
                              "'_' and '.' ending in %s" % (name, url, ", ".join(IMPORT_EXTENSIONS)))
    if ext.lower() not in IMPORT_EXTENSIONS:
        raise ImageInputError("image file %r: a file of a storage's import content must end in %s (PVE refuses "
                              "others); give a file name that does, e.g. %s.qcow2 for a qcow2 image"
                              % (name, ", ".join(IMPORT_EXTENSIONS), stem))
    return name


def import_volid(storage, filename):
    """``local`` + ``debian.qcow2`` -> ``local:import/debian.qcow2``."""
    return "%s:import/%s" % (storage, filename)


def parse_checksum(text):
    """``sha512:<hex>`` -> (``sha512``, ``<hex>``); empty -> (None, None); anything else: ImageInputError."""
    text = (text or "").strip()
    if not text:
        return None, None
    algorithm, sep, digest = text.partition(":")
    algorithm, digest = algorithm.lower(), digest.strip().lower()
    if not sep or algorithm not in CHECKSUM_ALGORITHMS or not re.match(
            r"^[0-9a-f]{%d}$" % CHECKSUM_ALGORITHMS.get(algorithm, 0), digest):
        raise ImageInputError(
            "checksum %r is not ALGORITHM:HEX with ALGORITHM one of %s and as many hex digits as it has (sha512: 128, "
            "sha256: 64); take the line for the file from SHA512SUMS (or SHA256SUMS) next to the image and write "
            "sha512:<digest>" % (text[:40], ", ".join(sorted(CHECKSUM_ALGORITHMS))))
    return algorithm, digest


class NodeStorage(object):
    """The storages of one node and their files (thin over the API; a download waits for its task)."""

    def __init__(self, client, node):
        self.client = client
        self.node = node

    def storages(self, content=None):
        """Ids of the node's storages (with ``content`` among their content types) that the caller may see."""
        params = {"content": content} if content else {}
        return sorted(s["storage"] for s in self.client.get(["nodes", self.node, "storage"], **params))

    def require_content(self, storage, content):
        """``storage`` holds ``content`` on this node and the caller sees it; else a ValueError naming the
        storages that do."""
        having = self.storages(content)
        if storage in having:
            return
        raise ImageInputError(
            "storage %r: not on node %s, without content type %s, or not visible to this token; storages there with "
            "content type %s that this token sees: %s. Pick one of them, or add %s to the storage's content "
            "(Datacenter > Storage > Edit > Content, or pvesm set %s --content <its types>,%s; only file-based "
            "storages such as a directory have it), and give the token Datastore.Audit on /storage/%s"
            % (storage, self.node, content, content, ", ".join(having) or "none", content, storage, content, storage))

    def volumes(self, storage, content):
        """The storage's volumes of a content type (list entries with volid, size, format)."""
        return self.client.get(["nodes", self.node, "storage", storage, "content"], content=content)

    def find(self, storage, content, volid):
        return next((v for v in self.volumes(storage, content) if v.get("volid") == volid), None)

    def download(self, storage, content, url, filename, checksum=None, algorithm=None, verify_certificates=True,
                 timeout=None, progress=None):
        """Download ``url`` on the node into ``storage`` (download-url); waits for the task, passing each
        line of its log to ``progress``. A refused request names what download-url needs."""
        params = {"content": content, "url": url, "filename": filename,
                  "verify-certificates": 1 if verify_certificates else 0}
        if checksum:
            params.update({"checksum": checksum, "checksum-algorithm": algorithm})
        try:
            upid = self.client.post(["nodes", self.node, "storage", storage, "download-url"], **params)
        except PveApiError as exc:
            if exc.status == 403:
                raise PveApiError(
                    "%s download-url needs Datastore.AllocateTemplate on /storage/%s and Sys.AccessNetwork on /nodes/%s "
                    "(or Sys.Audit and Sys.Modify on /)." % (exc.message, storage, self.node),
                    status=exc.status, errors=exc.errors, reason=exc.reason) from None
            raise
        return self.client.wait_task(upid, timeout=timeout, progress=progress,
                                     what="downloading %s to %s" % (url, import_volid(storage, filename)))
