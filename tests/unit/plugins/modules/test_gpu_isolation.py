# SPDX-License-Identifier: GPL-3.0-or-later
"""The gpu_isolation module on sysfs trees built from real listings (shared/fixtures/iommu and
iommu-corpus), one test per point of issue 13 it fixes; each fails on the code before the fix
(branch point 8946184) and passes now. The listing-parser test (point 10) is here too."""
from __future__ import annotations

import json
import os

import pytest
from ansible.module_utils.testing import patch_module_args

from ansible_collections.homelab.gpu_passthrough.plugins.modules import gpu_isolation

import sysfs_tree

CORPUS = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))),
                      "fixtures", "iommu-corpus")


def _run(capsys, **args):
    with patch_module_args(args):
        with pytest.raises(SystemExit) as exc:
            gpu_isolation.main()
    return exc.value.code, json.loads(capsys.readouterr().out)


def _addresses(devices):
    return [d["address"] for d in devices]


def test_point1_apu_slot_functions_of_the_platform_are_intruders(tmp_path, capsys):
    """Renoir APU (corpus 06): PSP 1022:15df, USB 1022:1639 x2, HD audio 1022:15e3 share the iGPU's
    slot; they are named as intruders and never get vfio-pci ids; HDMI audio 1002:1637 is the card's."""
    sysfs_tree.build_corpus("06-renoir-apu-before-acs-override", str(tmp_path))
    code, out = _run(capsys, root=str(tmp_path), gpu_address="05:00.0")
    assert code == 1 and out["status"] == "intruders"
    for address in ("0000:05:00.2", "0000:05:00.3", "0000:05:00.4", "0000:05:00.6"):
        assert address in _addresses(out["intruders"]), out["reasons"]
        assert address in out["msg"]
    assert _addresses(out["functions"]) == ["0000:05:00.0", "0000:05:00.1"]
    assert out["vfio_ids"] == ["1002:1636", "1002:1637"]


def test_point6_gpu_vendor_device_must_name_a_display_device(tmp_path, capsys):
    """GT 1030 host (iommu/01): the I219-V NIC 8086:15b8 is alone in group 11, but it is no GPU."""
    sysfs_tree.build_fixture("01-nvidia-gt1030-with-rootport-perline", str(tmp_path))
    code, out = _run(capsys, root=str(tmp_path), gpu_vendor_device="8086:15b8")
    assert code == 1 and out["status"] == "no_such_gpu", out
    assert "names no GPU" in out["msg"] and "Ethernet controller [0200]" in out["msg"]
    code, out = _run(capsys, root=str(tmp_path), gpu_address="00:1f.6")
    assert code == 1 and "is not a GPU" in out["msg"]


def test_point8_driverless_host_bridge_is_not_an_intruder(tmp_path, capsys):
    """The Renoir "PCIe Dummy Host Bridge" 00:08.0 (class 0600, no driver) in the iGPU's group."""
    sysfs_tree.build_corpus("06-renoir-apu-before-acs-override", str(tmp_path))
    _code, out = _run(capsys, root=str(tmp_path), gpu_address="05:00.0")
    assert "0000:00:08.0" not in _addresses(out["intruders"])
    assert _addresses(out["host_bridges"]) == ["0000:00:08.0"]
    assert "VFIO accepts a group member that no host driver holds" in out["msg"]


def test_point9_acs_override_on_the_running_kernel_is_refused_unless_accepted(tmp_path, capsys):
    """Renoir APU after the ACS override (corpus 07): every function in its own group, but only
    because /proc/cmdline carries pcie_acs_override=downstream,multifunction."""
    sysfs_tree.build_corpus("07-renoir-apu-after-acs-override", str(tmp_path))
    code, out = _run(capsys, root=str(tmp_path), gpu_address="05:00.0")
    assert code == 1 and out["status"] == "acs_override", out.get("status")
    assert "pcie_acs_override=downstream,multifunction" in out["msg"]
    assert "accept_acs_override" in out["msg"]
    code, out = _run(capsys, root=str(tmp_path), gpu_address="05:00.0", accept_acs_override=True)
    assert code == 0 and out["isolated"] is True and out["acs_override"] == "downstream,multifunction"
    assert "not real isolation" in out["msg"]


def test_point10_listing_variants_are_parsed():
    """Bare 'IOMMU group N' headers, one-line '... (driver: X)', pvesh tables, lspci -nnk blocks."""
    with open(os.path.join(CORPUS, "03-b450m-mortar-max-gtx960.txt"), encoding="utf-8") as fh:
        _header, _cmdline, entries = sysfs_tree.parse_listing(fh.read())
    gpu = [e for e in entries if e["address"] == "0000:26:00.0"]
    assert gpu and gpu[0]["group"] == 12 and gpu[0]["class4"] == "0300"
    with open(os.path.join(CORPUS, "24-server-blackwell-rtx-pro-6000-sriov-vfs.txt"),
              encoding="utf-8") as fh:
        _header, _cmdline, entries = sysfs_tree.parse_listing(fh.read())
    assert [(e["group"], e["address"], e.get("driver")) for e in entries][:2] == [
        (202, "0000:42:04.5", "nvidia"), (203, "0000:42:04.6", "nvidia")]
    with open(os.path.join(CORPUS, "11-b650m-rtx3080-pvesh-table.txt"), encoding="utf-8") as fh:
        _header, _cmdline, entries = sysfs_tree.parse_listing(fh.read())
    assert ("0000:01:00.0", 12, "10de", "2206") in [
        (e["address"], e["group"], e["vendor_id"], e["device_id"]) for e in entries]
    # lspci -nnk as the RX 560's host showed it (iommu/03: "bound to vfio-pci per lspci -nnk")
    text = ("IOMMU Group 23:\n"
            "04:00.0 VGA compatible controller [0300]: Advanced Micro Devices, Inc. [AMD/ATI] Baffin "
            "[Radeon RX 550 640SP / RX 560/560X] [1002:67ff] (rev cf)\n"
            "\tKernel driver in use: vfio-pci\n"
            "\tKernel modules: amdgpu\n")
    _header, _cmdline, entries = sysfs_tree.parse_listing(text)
    assert [(e["group"], e["address"], e.get("driver")) for e in entries] == [(23, "0000:04:00.0", "vfio-pci")]


def test_iommu_off_returns_the_functions_and_ids(tmp_path, capsys):
    """With the IOMMU off the module fails (status iommu_off) but still says what vfio-pci must claim."""
    sysfs_tree.build_fixture("04-seed002-quadro-m4000-group52", str(tmp_path), iommu=False)
    code, out = _run(capsys, root=str(tmp_path))
    assert code == 1 and out["status"] == "iommu_off" and out["msg"].startswith("IOMMU is off")
    assert _addresses(out["functions"]) == ["0000:03:00.0", "0000:03:00.1"]
    assert out["vfio_ids"] == ["10de:13f1", "10de:0fbb"] and out["vfio_bystanders"] == []
    assert out["unbound_functions"] == []  # the seed's functions are bound to vfio-pci already


def test_iommu_off_without_a_gpu(tmp_path, capsys):
    """Corpus 15: no groups (the glob stayed literal), no GPU either."""
    sysfs_tree.build_corpus("15-iommu-off-rd890-glob-unexpanded", str(tmp_path))
    code, out = _run(capsys, root=str(tmp_path))
    assert code == 1 and out["status"] == "iommu_off"
    assert "The GPU was not found either" in out["msg"]


def test_gpus_two_cards_each_judged_and_the_union_of_ids(tmp_path, capsys):
    """Issue 18: GTX 1080 Ti + GT 710 (corpus 10), by address and by ids."""
    sysfs_tree.build_corpus("10-x570-aorus-pro-gtx1080ti-gt710", str(tmp_path))
    code, out = _run(capsys, root=str(tmp_path), gpus=["0b:00.0", "10de:128b"])
    assert code == 0 and out["isolated"] is True and out["changed"] is False
    assert [(c["gpu"]["address"], c["group"], c["status"]) for c in out["cards"]] == [
        ("0000:0b:00.0", 30, "isolated"), ("0000:0c:00.0", 31, "isolated")]
    assert out["vfio_ids"] == out["bind_by_ids"] == ["10de:0e0f", "10de:10ef", "10de:128b", "10de:1b06"]
    assert out["bind_by_override"] == [] and out["refused"] == []


def test_gpus_one_card_refused_names_it(tmp_path, capsys):
    """Issue 18: RTX 2080 Ti isolated, GT 720 with the chipset's devices (corpus 09): the module fails."""
    sysfs_tree.build_corpus("09-b450-chipset-gt720-rtx2080ti", str(tmp_path))
    code, out = _run(capsys, root=str(tmp_path), gpus=["07:00.0", "06:00.0"])
    assert code == 1 and out["isolated"] is False and out["status"] == "intruders"
    assert out["refused"] == ["0000:06:00.0"]
    assert out["msg"].startswith("Card 0000:06:00.0 (VGA compatible controller [0300], 10de:1288)")
    assert "0000:05:00.0 (Ethernet controller [0200], 10ec:8125)" in out["msg"]


def test_gpus_with_the_iommu_off_still_gives_functions_and_ids(tmp_path, capsys):
    sysfs_tree.build_fixture("04-seed002-quadro-m4000-group52", str(tmp_path), iommu=False)
    code, out = _run(capsys, root=str(tmp_path), gpus=["03:00.0"])
    assert code == 1 and out["status"] == "iommu_off" and out["msg"].startswith("IOMMU is off")
    assert "(GPUs 0000:03:00.0 (VGA compatible controller [0300], 10de:13f1" in out["msg"]
    assert out["bind_by_ids"] == ["10de:0fbb", "10de:13f1"]
    assert _addresses(out["functions"]) == ["0000:03:00.0", "0000:03:00.1"]


def test_gpus_bad_entries_and_exclusive_options(tmp_path, capsys):
    sysfs_tree.build_corpus("16-server-broadcom-pex-switch-rtx-a5000", str(tmp_path))
    code, out = _run(capsys, root=str(tmp_path), gpus=["4f:00"])
    assert code == 1 and out["status"] == "bad_input" and "GPU list entry 1 (4f:00)" in out["msg"]
    code, out = _run(capsys, root=str(tmp_path), gpus=["4f:00.0", "10de:2231"])
    assert code == 1 and out["status"] == "no_such_gpu" and "GPU list entry 2" in out["msg"]
    code, out = _run(capsys, root=str(tmp_path), gpus=["4f:00.0"], gpu_address="4f:00.0")
    assert code == 1 and "mutually exclusive" in out["msg"]
