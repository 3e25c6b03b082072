#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright (c) homelab.gpu_passthrough contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
from __future__ import annotations

DOCUMENTATION = r"""
---
module: whisper_model_fetch
short_description: Fetch a faster-whisper model from the Hugging Face Hub into a controller directory
version_added: 0.2.0
description:
  - Downloads the CTranslate2 files of a faster-whisper model (C(model.bin), C(config.json),
    C(tokenizer.json), C(vocabulary.*), C(preprocessor_config.json) where the model has them) into
    O(dest), the directory the P(homelab.gpu_passthrough.whisper_api#role) role ships in air-gapped mode.
  - O(model) is a size name (C(tiny), C(base), C(small), C(medium), C(large-v3), C(large-v3-turbo),
    C(distil-large-v3), ... the names faster-whisper knows, with the same hub ids) or a hub id
    C(OWNER/NAME).
  - Runs on the controller (an action plugin); it prints each file's progress (bytes, percent, rate)
    while it downloads.
  - Resumable and cached. A file is written under C(DEST/.partial/) and continued with an HTTP range
    request after an interruption, then checked against the hub's size (and sha256 for LFS files).
    A complete fetch writes C(DEST/.hub.json); a later run for the same model and revision finds it,
    downloads nothing and does not contact the hub.
  - Only the standard hub URL layout is used (C(HUB/api/models/ID/revision/REV) for the file list,
    C(HUB/ID/resolve/SHA/FILE) for the files), so O(hub_url) can name a mirror.
author:
  - homelab.gpu_passthrough contributors (@homelab)
options:
  model:
    description: Size name or hub id of the model.
    type: str
    required: true
  dest:
    description:
      - Directory the model's files are written to (created when missing).
    type: path
    required: true
  hub_url:
    description: Base URL of the Hugging Face Hub or of a mirror with its URL layout.
    type: str
    default: https://huggingface.co
  revision:
    description: Branch, tag or commit of the model repository.
    type: str
    default: main
  validate_certs:
    description: Check the hub's TLS certificate.
    type: bool
    default: true
  timeout:
    description: Seconds to wait for the hub to answer a request (not for a whole download).
    type: int
    default: 60
attributes:
  check_mode:
    support: full
    description: Asks the hub for the file list (a small request) and reports what would be downloaded; downloads nothing.
  diff_mode:
    support: none
    description: Nothing to diff.
  idempotent:
    support: full
    description: A second run with the same model and revision downloads nothing.
notes:
  - The controller needs HTTPS access to O(hub_url); the targets never do.
  - The P(homelab.gpu_passthrough.whisper_api#role) role's air-gapped mode reads the model from
    C(whisper_api_controller_cache_dir/models/) unless C(whisper_api_model_src) is set;
    C(playbooks/fetch_model.yml) runs this module with the role's variables.
"""

EXAMPLES = r"""
- name: Fetch large-v3-turbo into the controller cache
  homelab.gpu_passthrough.whisper_model_fetch:
    model: large-v3-turbo
    dest: "{{ lookup('ansible.builtin.env', 'HOME') }}/.cache/homelab-gpu-passthrough/whisper-api/models/mobiuslabsgmbh--faster-whisper-large-v3-turbo"
  delegate_to: localhost
  run_once: true
"""

RETURN = r"""
repo_id:
  description: The hub id the model name resolved to.
  returned: always
  type: str
  sample: Systran/faster-whisper-small
dest:
  description: The model directory (O(dest)).
  returned: always
  type: str
files:
  description: The model's files with their sizes in bytes.
  returned: always
  type: list
  elements: dict
  sample: [{name: model.bin, size: 483546902}, {name: config.json, size: 2370}]
fetched:
  description: The files downloaded by this run (in check mode, the files that would be).
  returned: always
  type: list
  elements: str
bytes:
  description: Bytes downloaded by this run (in check mode, the bytes that would be).
  returned: always
  type: int
cached:
  description: True when a complete earlier fetch was found and the hub was not asked.
  returned: always
  type: bool
log:
  description: The progress lines (the action plugin also prints them while it runs).
  returned: always
  type: list
  elements: str
"""

import os

from ansible.module_utils.basic import AnsibleModule
from ansible.module_utils.urls import open_url

from ansible_collections.homelab.gpu_passthrough.plugins.module_utils import whisper_hub

ARGUMENT_SPEC = dict(
    model=dict(type="str", required=True),
    dest=dict(type="path", required=True),
    hub_url=dict(type="str", default=whisper_hub.DEFAULT_HUB_URL),
    revision=dict(type="str", default="main"),
    validate_certs=dict(type="bool", default=True),
    timeout=dict(type="int", default=60),
)


def fetch_model(params, check_mode, progress):
    """The module's work, shared by the module and its action plugin: returns the result dict;
    raises whisper_hub.HubError for what the user must fix."""
    repo = whisper_hub.repo_id(params["model"])
    dest = params["dest"]
    revision = params["revision"]
    result = dict(changed=False, repo_id=repo, dest=dest, fetched=[], bytes=0, cached=False)
    marker = whisper_hub.cached(dest, repo, revision)
    if marker:
        progress("%s: already in %s (%s), nothing to fetch" % (repo, dest, ", ".join(f["name"] for f in marker["files"])))
        result.update(files=marker["files"], cached=True)
        return result

    def opener(url, headers):
        return open_url(url, headers=headers, validate_certs=params["validate_certs"], timeout=params["timeout"],
                        http_agent="homelab.gpu_passthrough.whisper_model_fetch")

    fetcher = whisper_hub.Fetcher(opener, params["hub_url"], dest, progress=progress)
    sha, files = fetcher.plan(repo, revision)
    todo = fetcher.missing(files) if os.path.isdir(dest) else files
    result["files"] = [{"name": f["name"], "size": f["size"]} for f in files]
    if check_mode:
        total = sum(f["size"] or 0 for f in todo)
        progress("%s: would fetch %d file(s), %s, into %s" % (repo, len(todo), whisper_hub.human(total), dest))
        result.update(changed=bool(todo), fetched=[f["name"] for f in todo], bytes=total)
        return result
    if not os.path.isdir(dest):
        os.makedirs(dest)
    before = whisper_hub.read_marker(dest)
    result["fetched"] = fetcher.fetch(repo, revision, sha, files)
    result["bytes"] = fetcher.downloaded
    result["changed"] = bool(result["fetched"]) or before != whisper_hub.read_marker(dest)
    return result


def main():
    module = AnsibleModule(argument_spec=ARGUMENT_SPEC, supports_check_mode=True)
    log = []
    try:
        result = fetch_model(module.params, module.check_mode, log.append)
    except whisper_hub.HubError as e:
        module.fail_json(msg=str(e), log=log)
    module.exit_json(log=log, **result)


if __name__ == "__main__":
    main()
