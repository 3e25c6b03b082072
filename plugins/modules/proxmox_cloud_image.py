#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright (c) homelab.gpu_passthrough contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
from __future__ import annotations

DOCUMENTATION = r"""
---
module: proxmox_cloud_image
short_description: Download a cloud image on a Proxmox VE node into a storage's import content
version_added: 0.2.0
description:
  - Makes the node download O(url) into O(storage) as C(<storage>:import/<filename>)
    (C(POST /nodes/{node}/storage/{storage}/download-url) with C(content=import)). The file goes from
    the internet to the node, never through the controller. PVE checks O(checksum) when given.
  - The result RV(volid) is what a VM's disk imports, for example C(scsi0) V(local-lvm:0,import-from=local:import/debian-12-generic-amd64.qcow2)
    (the P(homelab.gpu_passthrough.proxmox_gpu_vm#role) role does this).
  - Idempotent by file name. When C(GET /nodes/{node}/storage/{storage}/content?content=import) already lists
    the file, nothing is downloaded (remove the file in the storage to fetch it again).
  - Runs on the controller (an action plugin) so that the download task's log lines (bytes, percent) are
    printed while it runs; the module calls the API from there whatever C(delegate_to) says.
author:
  - homelab.gpu_passthrough contributors (@homelab)
options:
  task_timeout:
    description: Seconds to wait for the download task.
    type: int
    default: 3600
  node:
    description: Node that downloads the image and holds O(storage).
    type: str
    required: true
  storage:
    description:
      - Storage to save the image in. It must have the content type C(import) (a file-based storage such as a
        directory storage, for example C(local) once C(import) is added to its content); the error names the
        node's storages that have it.
    type: str
    required: true
  url:
    description:
      - HTTP(S) URL of the image, for example Debian 12's
        C(https://cloud.debian.org/images/cloud/bookworm/latest/debian-12-generic-amd64.qcow2).
    type: str
    required: true
  checksum:
    description:
      - V(ALGORITHM:HEX) (V(sha512:...), V(sha256:...); also md5, sha1, sha224, sha384), checked by PVE after the
        download; a mismatch fails the task and this module with PVE's message. Empty means not checked.
    type: str
    default: ""
  filename:
    description:
      - File name in the storage's C(import/). Empty means the URL's last path segment, with C(.img) saved as
        C(.qcow2) (such cloud images are qcow2 inside, and an import file must end in .ova, .ovf, .qcow2, .raw or .vmdk).
    type: str
    default: ""
  verify_certificates:
    description: The node checks the TLS certificate of O(url).
    type: bool
    default: true
extends_documentation_fragment:
  - homelab.gpu_passthrough.proxmox
  - homelab.gpu_passthrough.proxmox.action_group
attributes:
  check_mode:
    support: full
    description: Reads the storage list and the storage's content and reports what would be downloaded; downloads nothing.
  diff_mode:
    support: none
    description: Nothing to diff.
  idempotent:
    support: full
    description: A file already in the storage is not downloaded again.
notes:
  - The token needs Datastore.AllocateTemplate and Datastore.Audit on C(/storage/<storage>) and Sys.AccessNetwork on
    C(/nodes/<node>); the collection's README section "Proxmox API token and privileges" lists them with the rest.
seealso:
  - module: homelab.gpu_passthrough.proxmox_vm
"""

EXAMPLES = r"""
- name: Debian 12 generic cloud image into local:import/
  homelab.gpu_passthrough.proxmox_cloud_image:
    node: pve
    storage: local
    url: https://cloud.debian.org/images/cloud/bookworm/latest/debian-12-generic-amd64.qcow2
  register: image

- name: Ubuntu 24.04 (its .img is saved as .qcow2), checked against the SHA256SUMS line
  homelab.gpu_passthrough.proxmox_cloud_image:
    node: pve
    storage: local
    url: https://cloud-images.ubuntu.com/noble/current/noble-server-cloudimg-amd64.img
    checksum: "sha256:{{ ubuntu_image_sha256 }}"
"""

RETURN = r"""
volid:
  description: The image's volume id.
  returned: always
  type: str
  sample: local:import/debian-12-generic-amd64.qcow2
downloaded:
  description: V(true) when this run downloaded the file (in check mode, when it would).
  returned: always
  type: bool
log:
  description: The download task's log lines (the action plugin also prints them as they come).
  returned: always
  type: list
  elements: str
msg:
  description: What was done.
  returned: always
  type: str
"""

from ansible.module_utils.basic import AnsibleModule, env_fallback

from ansible_collections.homelab.gpu_passthrough.plugins.module_utils.pve_client import (
    PveApiError,
    client_from_params,
    connection_argspec,
)
from ansible_collections.homelab.gpu_passthrough.plugins.module_utils.pve_storage import (
    NodeStorage,
    image_filename,
    import_volid,
    parse_checksum,
)


def argument_spec():
    spec = connection_argspec(env_fallback)
    spec.update(
        task_timeout=dict(type="int", default=3600),
        node=dict(type="str", required=True),
        storage=dict(type="str", required=True),
        url=dict(type="str", required=True),
        checksum=dict(type="str", default=""),
        filename=dict(type="str", default=""),
        verify_certificates=dict(type="bool", default=True),
    )
    return spec


def ensure_image(client, params, check_mode, progress):
    """The module's work, shared by the module and its action plugin: returns the result dict; raises
    PveApiError (the API refused, the task failed) or ValueError (bad input) with what to fix."""
    node, storage, url = params["node"], params["storage"], params["url"]
    filename = image_filename(url, params["filename"])
    algorithm, digest = parse_checksum(params["checksum"])
    volid = import_volid(storage, filename)
    client.require_node(node)
    storages = NodeStorage(client, node)
    storages.require_content(storage, "import")
    result = dict(changed=False, volid=volid, downloaded=False)
    if storages.find(storage, "import", volid) is not None:
        result["msg"] = "%s is already on node %s; nothing downloaded" % (volid, node)
        progress(result["msg"])
        return result
    result.update(changed=True, downloaded=True)
    if check_mode:
        result["msg"] = "would download %s to %s on node %s" % (url, volid, node)
        progress(result["msg"])
        return result
    progress("downloading %s to %s on node %s%s" % (url, volid, node, " (%s checked by PVE)" % algorithm if algorithm else ""))
    storages.download(storage, "import", url, filename, checksum=digest, algorithm=algorithm,
                      verify_certificates=params["verify_certificates"], timeout=params["task_timeout"],
                      progress=progress)
    result["msg"] = "downloaded %s to %s on node %s" % (url, volid, node)
    return result


def main():
    module = AnsibleModule(argument_spec=argument_spec(), supports_check_mode=True)
    log = []
    try:
        result = ensure_image(client_from_params(module.params), module.params, module.check_mode, log.append)
    except (PveApiError, ValueError) as exc:
        module.fail_json(msg=str(exc), log=log)
    module.exit_json(log=log, **result)


if __name__ == "__main__":
    main()
