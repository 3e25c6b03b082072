# -*- coding: utf-8 -*-
# Copyright (c) homelab.gpu_passthrough contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
from __future__ import annotations


class ModuleDocFragment:
    # Connection options of the modules that talk to the Proxmox VE API. The argument spec they
    # document is CONNECTION_ARGSPEC and ENV_FALLBACKS in plugins/module_utils/pve_client.py
    # (connection_argspec()). task_timeout (TASK_ARGSPEC there) is documented by the modules that
    # start worker tasks, since the others do not accept it.
    DOCUMENTATION = r"""
requirements:
  - proxmoxer >= 2.0 and requests on the host that runs the module (usually the controller, with
    C(delegate_to) V(localhost)).
options:
  api_host:
    description:
      - Host name or address of a Proxmox VE node (the API listens on O(api_port)).
      - Falls back to the environment variable E(PROXMOX_HOST).
    type: str
    required: true
  api_port:
    description:
      - TCP port of the API. Falls back to E(PROXMOX_PORT).
    type: int
    default: 8006
  api_token_id:
    description:
      - Token id, V(USER@REALM!TOKENNAME), for example V(automation@pve!ansible).
      - Falls back to E(PROXMOX_TOKEN_ID).
    type: str
    required: true
  api_token_secret:
    description:
      - The token's secret (a UUID printed once by C(pveum user token add)). Never logged.
      - Falls back to E(PROXMOX_TOKEN_SECRET).
    type: str
    required: true
  validate_certs:
    description:
      - Verify the TLS certificate of the API. Falls back to E(PROXMOX_VALIDATE_CERTS).
      - Keep it on and give O(ca_path) for the self-signed PVE CA.
    type: bool
    default: true
  ca_path:
    description:
      - CA bundle that signed the API certificate, e.g. a copy of C(/etc/pve/pve-root-ca.pem).
    type: path
  timeout:
    description: Seconds to wait for each HTTP request.
    type: int
    default: 30
"""

    # Membership of the action group homelab.gpu_passthrough.proxmox (meta/runtime.yml), used as
    # homelab.gpu_passthrough.proxmox.action_group next to the fragment above.
    ACTION_GROUP = r"""
options: {}
attributes:
  action_group:
    description:
      - Use C(group/homelab.gpu_passthrough.proxmox) in C(module_defaults) to give the connection
        options (O(api_host), O(api_port), O(api_token_id), O(api_token_secret), O(validate_certs),
        O(ca_path), O(timeout)) once for every Proxmox VE API module of this collection.
      - Put only those shared options under the group, since each module refuses an option it does not
        have; an option of one module, such as O(homelab.gpu_passthrough.proxmox_vm#module:task_timeout),
        goes under that module's name.
    support: full
    membership:
      - homelab.gpu_passthrough.proxmox
"""
