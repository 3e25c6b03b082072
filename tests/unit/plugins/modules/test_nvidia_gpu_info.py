# SPDX-License-Identifier: GPL-3.0-or-later
"""The nvidia_gpu_info module on sysfs trees written like the kernel's (tests/unit/sysfs_tree.py)."""
from __future__ import annotations

import json
import os
import stat

import pytest
from ansible.module_utils.testing import patch_module_args

from ansible_collections.homelab.gpu_passthrough.plugins.modules import nvidia_gpu_info

from sysfs_tree import build_tree, make_device


def _run(capsys, **args):
    with patch_module_args(args):
        with pytest.raises(SystemExit) as exc:
            nvidia_gpu_info.main()
    out = json.loads(capsys.readouterr().out)
    return exc.value.code, out


def _seed_host(root):
    """Seed 002's guest as sysfs shows it: the Quadro M4000 + its audio function, a virtio NIC."""
    build_tree(str(root), [
        make_device("0000:00:01.0", "1af4", "1000", "020000", driver="virtio-pci"),
        make_device("0000:01:00.0", "10de", "13f1", "030000", driver="nouveau", boot_vga=False,
                    subsystem_vendor_id="10de", subsystem_device_id="1152"),
        make_device("0000:01:00.1", "10de", "0fbb", "040300", driver="snd_hda_intel"),
        make_device("0000:02:00.0", "10de", "2204", "030000"),
        make_device("0000:03:00.0", "10de", "1eb8", "030200"),
        make_device("0000:04:00.0", "1234", "1111", "030000", boot_vga=True),
    ])
    return str(root)


def test_reports_only_nvidia_display_controllers(tmp_path, capsys):
    code, out = _run(capsys, root=_seed_host(tmp_path))
    assert code == 0
    assert out["changed"] is False and out["nvidia_smi"] is False
    by_addr = {g["address"]: g for g in out["gpus"]}
    assert sorted(by_addr) == ["0000:01:00.0", "0000:02:00.0", "0000:03:00.0"]
    m4000 = by_addr["0000:01:00.0"]
    assert (m4000["name"], m4000["architecture"], m4000["compute_capability"]) == (
        "Quadro M4000", "maxwell", "5.2")
    assert (m4000["driver_branch"], m4000["open_modules"], m4000["ctranslate2_cuda"]) == (580, False, False)
    assert m4000["driver"] == "nouveau" and m4000["subsystem_id"] == "10de:1152"
    rtx = by_addr["0000:02:00.0"]
    assert (rtx["architecture"], rtx["driver_branch"], rtx["open_modules"]) == ("ampere", 580, True)
    t4 = by_addr["0000:03:00.0"]  # class 0302: datacenter cards are 3D controllers, not VGA
    assert t4["name"] == "Tesla T4" and t4["recommended_compute_type"] == "float16"


def test_current_branch_option(tmp_path, capsys):
    _code, out = _run(capsys, root=_seed_host(tmp_path), current_branch=590)
    branches = {g["pci_id"]: g["driver_branch"] for g in out["gpus"]}
    assert branches == {"10de:13f1": 580, "10de:2204": 590, "10de:1eb8": 590}
    code, out = _run(capsys, root=_seed_host(tmp_path / "again"), current_branch=58)
    assert code == 1 and "not a 3-digit" in out["msg"]


def test_no_gpu_is_an_empty_list(tmp_path, capsys):
    build_tree(str(tmp_path), [make_device("0000:00:01.0", "1af4", "1000", "020000")])
    code, out = _run(capsys, root=str(tmp_path))
    assert code == 0 and out["gpus"] == []


def test_empty_root(tmp_path, capsys):
    code, out = _run(capsys, root=str(tmp_path))
    assert code == 0 and out["gpus"] == []


def test_nvidia_smi_values_win_when_it_answers(tmp_path, capsys, monkeypatch):
    """A real executable named nvidia-smi on PATH (the module runs it through run_command)."""
    root = tmp_path / "root"
    build_tree(str(root), [make_device("0000:01:00.0", "10de", "1c02", "030000")])  # GTX 1060 3GB, range
    bindir = tmp_path / "bin"
    bindir.mkdir()
    smi = bindir / "nvidia-smi"
    smi.write_text("#!/bin/sh\necho '00000000:01:00.0, NVIDIA GeForce GTX 1060 3GB, 6.1, 3072'\n")
    smi.chmod(smi.stat().st_mode | stat.S_IXUSR)
    monkeypatch.setenv("PATH", "%s:%s" % (bindir, os.environ["PATH"]))
    # root must be / for nvidia-smi to be asked: point the reader at the tree instead
    real_reader = nvidia_gpu_info.read_pci_devices
    monkeypatch.setattr(nvidia_gpu_info, "read_pci_devices", lambda _root: real_reader(str(root)))
    _code, out = _run(capsys)
    assert out["nvidia_smi"] is True
    gpu = out["gpus"][0]
    assert gpu["known_by"] == "range"
    assert (gpu["name"], gpu["memory_mib"], gpu["compute_capability_source"]) == (
        "NVIDIA GeForce GTX 1060 3GB", 3072, "nvidia-smi")


def test_model_fit(tmp_path, capsys):
    _code, out = _run(capsys, root=_seed_host(tmp_path), model_memory_mib={"float16": 12000, "int8": 6000})
    fit = {g["pci_id"]: g["model_fit"]["compute_type"] for g in out["gpus"]}
    # M4000: below CC 5.3; RTX 3090 24 GiB: float16; T4 16 GiB: float16
    assert fit == {"10de:13f1": None, "10de:2204": "float16", "10de:1eb8": "float16"}
    _code, out = _run(capsys, root=_seed_host(tmp_path / "b"), model_memory_mib={"float16": 20000, "int8": 9000})
    fit = {g["pci_id"]: g["model_fit"] for g in out["gpus"]}
    assert fit["10de:1eb8"]["compute_type"] == "int8_float16"
    assert "does not fit" in fit["10de:1eb8"]["reason"]
