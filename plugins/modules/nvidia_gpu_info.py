#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright (c) homelab.gpu_passthrough contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
from __future__ import annotations

DOCUMENTATION = r"""
---
module: nvidia_gpu_info
short_description: Report the NVIDIA GPUs of a machine with architecture, driver branch and compute capability
version_added: 0.1.0
description:
  - Reads the PCI devices from C(/sys/bus/pci/devices) and reports every NVIDIA display
    controller (PCI class C(03xx), that is C(0300) VGA, C(0302) 3D controller, C(0380) display
    controller) with what the collection knows about its chip.
  - For each GPU it returns the architecture, the CUDA compute capability, the memory where known,
    the NVIDIA driver branch and kernel module flavour the collection would install (Maxwell,
    Pascal and Volta get the proprietary modules of branch 580, their last branch; Turing and newer
    get O(current_branch) with the open modules), and whether CTranslate2's stock CUDA build
    (faster-whisper) runs on it (compute capability 5.3 or higher).
  - When C(nvidia-smi) is installed and works, its compute capability, memory and name replace
    the table values (RV(gpus[].compute_capability_source) says which was used).
  - Nothing is changed. A machine without an NVIDIA GPU is not an error; RV(gpus) is then empty.
author:
  - homelab.gpu_passthrough contributors (@homelab)
options:
  root:
    description:
      - Directory under which C(sys/bus/pci/devices) is read.
      - Change it only to read a copy of another machine's sysfs, for example a test fixture tree.
        C(nvidia-smi) is not run when O(root) is not C(/).
    type: path
    default: /
  current_branch:
    description:
      - Driver branch reported for Turing and newer GPUs (older ones get their last branch).
    type: int
    default: 580
  use_nvidia_smi:
    description:
      - Ask C(nvidia-smi --query-gpu) for the compute capability and memory when it is installed.
    type: bool
    default: true
  model_memory_mib:
    description:
      - GPU memory a CTranslate2 model needs, per compute type. When given, every GPU gets
        RV(gpus[].model_fit) with the compute type that fits (float16 first, then
        C(int8_float16) or C(int8)).
    type: dict
    suboptions:
      float16:
        description: MiB needed in float16.
        type: int
        required: true
      int8:
        description: MiB needed with int8 weights.
        type: int
        required: true
extends_documentation_fragment:
  - homelab.gpu_passthrough.read_only
notes:
  - Device ids come from the PCI ID repository; ids missing from the table are classified by the
    id block NVIDIA allocated to their chip generation (RV(gpus[].known_by) is V(range)), or not at all
    (V(unknown)); set the branch explicitly for those.
seealso:
  - module: homelab.gpu_passthrough.iommu_info
  - name: CUDA GPUs and their compute capability
    description: NVIDIA's list of GPUs with their compute capability.
    link: https://developer.nvidia.com/cuda-gpus
"""

EXAMPLES = r"""
- name: Read the NVIDIA GPUs
  homelab.gpu_passthrough.nvidia_gpu_info:
  register: nvidia

- name: Stop when there is none
  ansible.builtin.assert:
    that: nvidia.gpus | length > 0
    fail_msg: No NVIDIA GPU on this machine (PCI vendor 10de, class 03xx).

- name: Tell which cards cannot run faster-whisper on CUDA
  ansible.builtin.debug:
    msg: "{{ item.name }}: compute capability {{ item.compute_capability }} < 5.3, CPU only"
  loop: "{{ nvidia.gpus | rejectattr('ctranslate2_cuda') }}"
  loop_control:
    label: "{{ item.address }}"
"""

RETURN = r"""
gpus:
  description: The NVIDIA display controllers, sorted by PCI address.
  returned: always
  type: list
  elements: dict
  contains:
    address:
      description: Full PCI address of the GPU's display function.
      type: str
      sample: "0000:03:00.0"
    pci_id:
      description: Vendor and device id.
      type: str
      sample: "10de:13f1"
    device_id:
      description: Device id, 4 hex digits.
      type: str
      sample: 13f1
    subsystem_id:
      description: Subsystem vendor and device id, or V(null).
      type: str
      sample: "10de:1152"
    driver:
      description: Kernel driver bound now (V(nvidia), V(nouveau), V(vfio-pci)) or V(null).
      type: str
      sample: nouveau
    name:
      description: Marketing name (table or C(nvidia-smi)), or V(null) when unknown.
      type: str
      sample: Quadro M4000
    chip:
      description: Chip code from the PCI ID repository, or V(null).
      type: str
      sample: GM204
    architecture:
      description: V(kepler), V(maxwell), V(pascal), V(volta), V(turing), V(ampere), V(ada),
        V(hopper), V(blackwell), or V(null) when the id is unknown.
      type: str
      sample: maxwell
    compute_capability:
      description: CUDA compute capability as MAJOR.MINOR, or V(null).
      type: str
      sample: "5.2"
    compute_capability_source:
      description: V(nvidia-smi), V(table) or V(range).
      type: str
      sample: table
    memory_mib:
      description: Memory in MiB (C(nvidia-smi), else the smallest variant of the card), or V(null).
      type: int
      sample: 8192
    known_by:
      description: V(table) (listed card), V(range) (id block of its generation) or V(unknown).
      type: str
      sample: table
    driver_branch:
      description: Driver branch to install, or V(null) when the architecture is unknown.
      type: int
      sample: 580
    open_modules:
      description: Whether the open kernel modules are to be used.
      type: bool
      sample: false
    driver_supported:
      description: V(false) for Kepler (legacy 470 only) and unknown ids.
      type: bool
      sample: true
    driver_reason:
      description: Why this branch and module flavour.
      type: str
      sample: "maxwell: 580 is the last driver branch for this architecture; proprietary kernel modules"
    ctranslate2_cuda:
      description: Whether CTranslate2's stock CUDA build runs on the card (compute capability >= 5.3).
      type: bool
      sample: false
    recommended_compute_type:
      description: CTranslate2 compute type for the card (V(float16), V(int8)), or V(null) when the
        card cannot run it.
      type: str
      sample: null
    model_fit:
      description: Only with O(model_memory_mib). The compute type that fits the card
        (V(null) when none does) and why.
      type: dict
      returned: when O(model_memory_mib) is given
      sample: {"compute_type": "int8_float16", "reason": "float16 does not fit (4800 > 4096 MiB); int8_float16 needs ~3100 MiB"}
nvidia_smi:
  description: Whether C(nvidia-smi) answered and its values were used.
  returned: always
  type: bool
  sample: false
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.homelab.gpu_passthrough.plugins.module_utils import ctranslate2, nvidia
from ansible_collections.homelab.gpu_passthrough.plugins.module_utils.pci import is_gpu, normalize_address
from ansible_collections.homelab.gpu_passthrough.plugins.module_utils.pci_sysfs import read_pci_devices

_SMI_QUERY = "--query-gpu=pci.bus_id,name,compute_cap,memory.total"


def _nvidia_smi(module):
    binary = module.get_bin_path("nvidia-smi")
    if not binary:
        return None
    rc, out, _err = module.run_command([binary, _SMI_QUERY, "--format=csv,noheader,nounits"])
    if rc != 0:
        return None
    try:
        return nvidia.parse_smi_csv(out)
    except nvidia.NvidiaError as exc:
        module.warn("ignoring nvidia-smi output: %s" % exc)
        return None


def main():
    module = AnsibleModule(
        argument_spec=dict(
            root=dict(type="path", default="/"),
            current_branch=dict(type="int", default=nvidia.DEFAULT_CURRENT_BRANCH),
            use_nvidia_smi=dict(type="bool", default=True),
            model_memory_mib=dict(type="dict", options=dict(
                float16=dict(type="int", required=True),
                int8=dict(type="int", required=True),
            )),
        ),
        supports_check_mode=True,
    )
    root = module.params["root"]
    branch = module.params["current_branch"]
    if not 100 <= branch <= 999:
        module.fail_json(msg="current_branch %d is not a 3-digit NVIDIA driver branch (e.g. 580)" % branch)

    smi = None
    if module.params["use_nvidia_smi"] and root in ("/", ""):
        smi = _nvidia_smi(module)

    gpus = []
    for device in read_pci_devices(root):
        if device.get("vendor_id") != nvidia.NVIDIA_VENDOR_ID or not is_gpu(device):
            continue
        seen = (smi or {}).get(normalize_address(device["address"]))
        gpu = nvidia.gpu_summary(device, current_branch=branch, smi=seen)
        gpu.update(ctranslate2.cuda_fields(gpu["compute_capability"]))
        need = module.params["model_memory_mib"]
        if need:
            if gpu["compute_capability"]:
                ctype, reason = ctranslate2.memory_compute_type(
                    gpu["compute_capability"], gpu["memory_mib"], need["float16"], need["int8"])
            else:
                ctype, reason = None, "compute capability unknown"
            gpu["model_fit"] = {"compute_type": ctype, "reason": reason}
        gpus.append(gpu)
    module.exit_json(changed=False, gpus=gpus, nvidia_smi=bool(smi))


if __name__ == "__main__":
    main()
