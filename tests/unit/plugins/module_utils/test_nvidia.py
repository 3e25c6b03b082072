# SPDX-License-Identifier: GPL-3.0-or-later
"""Branch / module / compute-capability / CTranslate2 decisions on real NVIDIA PCI ids.

Expected values are written out by hand from public sources (pci.ids for the chip, NVIDIA's CUDA
GPU list for the compute capability, driver release notes for the branches), not computed.
"""
from __future__ import annotations

import pytest

from ansible_collections.homelab.gpu_passthrough.plugins.module_utils import ctranslate2, nvidia
from ansible_collections.homelab.gpu_passthrough.plugins.module_utils.nvidia import NvidiaError

# pci id, name, arch, cc, branch, open modules, CTranslate2 on CUDA, recommended compute type
CARDS = [
    ("10de:13f1", "Quadro M4000", "maxwell", "5.2", 580, False, False, None),
    ("10de:1401", "GeForce GTX 960", "maxwell", "5.2", 580, False, False, None),
    ("10de:1380", "GeForce GTX 750 Ti", "maxwell", "5.0", 580, False, False, None),
    ("10de:17fd", "Tesla M40", "maxwell", "5.2", 580, False, False, None),
    ("10de:1d01", "GeForce GT 1030", "pascal", "6.1", 580, False, True, "int8"),
    ("10de:1b80", "GeForce GTX 1080", "pascal", "6.1", 580, False, True, "int8"),
    ("10de:15f8", "Tesla P100 PCIe 16GB", "pascal", "6.0", 580, False, True, "float16"),
    ("10de:1db4", "Tesla V100 PCIe 16GB", "volta", "7.0", 580, False, True, "float16"),
    ("10de:1e04", "GeForce RTX 2080 Ti", "turing", "7.5", 580, True, True, "float16"),
    ("10de:1eb8", "Tesla T4", "turing", "7.5", 580, True, True, "float16"),
    ("10de:2204", "GeForce RTX 3090", "ampere", "8.6", 580, True, True, "float16"),
    ("10de:20f1", "A100 PCIe 40GB", "ampere", "8.0", 580, True, True, "float16"),
    ("10de:2684", "GeForce RTX 4090", "ada", "8.9", 580, True, True, "float16"),
    ("10de:27b8", "L4", "ada", "8.9", 580, True, True, "float16"),
    ("10de:2331", "H100 PCIe", "hopper", "9.0", 580, True, True, "float16"),
    ("10de:2b85", "GeForce RTX 5090", "blackwell", "12.0", 580, True, True, "float16"),
]


@pytest.mark.parametrize("pci_id,name,arch,cc,branch,open_modules,ct2,ctype", CARDS)
def test_real_cards(pci_id, name, arch, cc, branch, open_modules, ct2, ctype):
    info = nvidia.classify(pci_id)
    assert info["source"] == "table"
    assert info["name"] == name
    assert info["architecture"] == arch
    assert info["compute_capability"] == cc
    decision = nvidia.driver_decision(arch)
    assert decision["branch"] == branch
    assert decision["open_modules"] is open_modules
    assert decision["supported"] is True
    assert ctranslate2.ct2_cuda_ok(cc) is ct2
    assert ctranslate2.recommended_compute_type("cuda", cc) == ctype


def test_m4000_memory_and_reason():
    info = nvidia.classify("13f1")
    assert info["memory_mib"] == 8192
    reason = nvidia.driver_decision("maxwell")["reason"]
    assert "580 is the last driver branch" in reason
    assert "proprietary" in reason


def test_newer_current_branch_applies_to_turing_and_later_only():
    assert nvidia.driver_decision("ampere", current_branch=590)["branch"] == 590
    assert nvidia.driver_decision("pascal", current_branch=590)["branch"] == 580
    assert nvidia.driver_decision("maxwell", current_branch=570)["branch"] == 570


def test_kepler_is_reported_unsupported():
    info = nvidia.classify("10de:1004")
    assert info["architecture"] == "kepler"
    decision = nvidia.driver_decision("kepler")
    assert decision == {
        "branch": 470, "open_modules": False, "supported": False, "reason": decision["reason"]}
    assert "legacy" in decision["reason"]


def test_range_fallback_for_an_unlisted_card():
    # 10de:1c02 GP106 [GeForce GTX 1060 3GB] is not in DEVICES; its block is Pascal GP10x
    info = nvidia.classify("1c02")
    assert info["source"] == "range"
    assert (info["architecture"], info["compute_capability"]) == ("pascal", "6.1")
    assert info["memory_mib"] is None


def test_unknown_id():
    info = nvidia.classify("0020")  # NV4 Riva TNT, predates every branch
    assert info["source"] == "unknown"
    assert info["architecture"] is None


@pytest.mark.parametrize("bad", ["13f", "xyz1", "1002:67df", "", "10de:13f1:00"])
def test_bad_ids_are_rejected_with_a_reason(bad):
    with pytest.raises(NvidiaError, match="not"):
        nvidia.classify(bad)


def test_overrides():
    assert nvidia.driver_decision("turing", branch="570", open_modules=False)["open_modules"] is False
    with pytest.raises(NvidiaError, match="last branch for them is 580"):
        nvidia.driver_decision("pascal", branch=590)
    with pytest.raises(NvidiaError, match="open kernel modules need a Turing"):
        nvidia.driver_decision("maxwell", open_modules=True)
    with pytest.raises(NvidiaError, match="only work with the open kernel modules"):
        nvidia.driver_decision("blackwell", open_modules=False)
    with pytest.raises(NvidiaError, match="need >= 570"):
        nvidia.driver_decision("blackwell", branch=550)
    with pytest.raises(NvidiaError, match="3-digit"):
        nvidia.driver_decision("ampere", branch="latest")
    with pytest.raises(NvidiaError, match="unknown NVIDIA architecture"):
        nvidia.driver_decision("fermi")


def test_gpu_summary_merges_nvidia_smi():
    device = {"address": "0000:03:00.0", "vendor_id": "10de", "device_id": "13f1",
              "subsystem_vendor_id": "10de", "subsystem_device_id": "1152",
              "class_id": "030000", "driver": "nvidia", "description": ""}
    table = nvidia.gpu_summary(device)
    assert table["compute_capability_source"] == "table"
    assert ctranslate2.cuda_fields(table["compute_capability"]) == {
        "ctranslate2_cuda": False, "recommended_compute_type": None}
    assert table["subsystem_id"] == "10de:1152"
    smi = nvidia.parse_smi_csv("00000000:03:00.0, Quadro M4000, 5.2, 8192\n")
    merged = nvidia.gpu_summary(device, smi=smi["0000:03:00.0"])
    assert merged["compute_capability_source"] == "nvidia-smi"
    assert merged["memory_mib"] == 8192
    assert merged["driver_branch"] == 580 and merged["open_modules"] is False


def test_parse_smi_csv_rejects_garbage():
    with pytest.raises(NvidiaError, match="4 comma-separated"):
        nvidia.parse_smi_csv("garbage")
    with pytest.raises(NvidiaError, match="is not a PCI address"):
        nvidia.parse_smi_csv("GPU-1, Quadro M4000, 5.2, 8192")
    assert list(nvidia.parse_smi_csv("00000000:03:00.0, Quadro M4000, 5.2, 8192")) == ["0000:03:00.0"]


@pytest.mark.parametrize("pci_id,usb_c", [
    ("10de:1e04", True),   # TU102 RTX 2080 Ti: USB 10de:1ad6, UCSI 10de:1ad7 in its slot
    ("10de:21c4", True),   # TU116 GTX 1660 SUPER (range): USB 1aec, UCSI 1aed
    ("10de:2206", True),   # Ampere: Turing and newer
    ("10de:1b06", False),  # Pascal GTX 1080 Ti: display + audio only
    ("10de:0020", False),  # unknown id: not assumed
    ("1002:1636", False),  # AMD: not NVIDIA
])
def test_usb_c_functions_are_turing_and_newer(pci_id, usb_c):
    vendor, device = pci_id.split(":")
    assert nvidia.has_usb_c_functions({"vendor_id": vendor, "device_id": device}) is usb_c
