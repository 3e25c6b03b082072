# SPDX-License-Identifier: GPL-3.0-or-later
"""The real sysfs of an NVIDIA card, captured on the GPU machine lent to this project
(tests/unit/fixtures/gpu-machine/h100-sysfs-pci.txt), rebuilt as a tree: the modules' verdicts on it
must match what the hardware said there (nvidia-smi's compute capability, no IOMMU groups)."""
from __future__ import annotations

import json
import os
import re

import pytest
from ansible.module_utils.testing import patch_module_args

from ansible_collections.homelab.gpu_passthrough.plugins.modules import gpu_isolation, nvidia_gpu_info

from sysfs_tree import REPO, build_tree, make_device

FIXTURE = os.path.join(REPO, "tests", "unit", "fixtures", "gpu-machine", "h100-sysfs-pci.txt")


def _listing():
    devices, smi = [], None
    with open(FIXTURE, encoding="utf-8") as handle:
        for line in handle:
            if line.startswith("# NVIDIA-SMI:"):
                name, bus, cc, driver, memory = [f.strip() for f in line.split(":", 1)[1].split(",")]
                smi = {"name": name, "bus": bus, "compute_capability": cc, "driver": driver, "memory": memory}
            if line.startswith("#") or not line.strip():
                continue
            address, *pairs = line.split()
            attrs = dict(p.split("=", 1) for p in pairs)
            devices.append(make_device(
                address, attrs["vendor"][2:], attrs["device"][2:], attrs["class"][2:],
                driver=attrs["driver"] or None, subsystem_vendor_id=attrs["subsystem_vendor"][2:],
                subsystem_device_id=attrs["subsystem_device"][2:]))
    return devices, smi


def _run(module, capsys, **args):
    with patch_module_args(args):
        with pytest.raises(SystemExit) as exc:
            module.main()
    return exc.value.code, json.loads(capsys.readouterr().out)


def test_fixture_is_the_capture():
    devices, smi = _listing()
    assert len(devices) == 7 and smi["bus"] == "00000000:00:06.0"
    assert [d["address"] for d in devices if d["vendor_id"] == "10de"] == ["0000:00:06.0"]


def test_nvidia_gpu_info_agrees_with_the_hardware(tmp_path, capsys):
    devices, smi = _listing()
    code, out = _run(nvidia_gpu_info, capsys, root=build_tree(str(tmp_path), devices))
    assert code == 0 and out["nvidia_smi"] is False  # root is not /: the table alone decides
    (gpu,) = out["gpus"]
    assert gpu["address"] == "0000:00:06.0" and gpu["pci_id"] == "10de:2330" and gpu["subsystem_id"] == "10de:16c1"
    assert gpu["compute_capability"] == smi["compute_capability"] == "9.0"
    assert gpu["architecture"] == "hopper" and gpu["open_modules"] is True
    # the branch the machine runs is the one the module recommends
    assert gpu["driver_branch"] == int(re.match(r"\d+", smi["driver"]).group()) == 580
    assert gpu["ctranslate2_cuda"] is True and gpu["recommended_compute_type"] == "float16"


def test_gpu_isolation_says_iommu_off(tmp_path, capsys):
    devices, _smi = _listing()
    code, out = _run(gpu_isolation, capsys, root=build_tree(str(tmp_path), devices))
    assert code == 1 and out["status"] == "iommu_off"
    assert "0000:00:06.0 (3D controller [0302], 10de:2330, driver nvidia)" in out["msg"]
