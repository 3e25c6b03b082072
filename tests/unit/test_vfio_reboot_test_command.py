# SPDX-License-Identifier: GPL-3.0-or-later
"""The command ansible.builtin.reboot runs after proxmox_vfio's reboot (its test_command) proves the new
kernel command line: rendered from roles/proxmox_vfio/tasks/reboot.yml with Ansible's own templating,
then run by bash on sample /proc/cmdline files. It once rendered as `grep -qwF -e \\1 /proc/cmdline`,
which bash runs as a search for the word "1": true on the lab's 6.1.0 kernel, never on a Proxmox
6.8.12-4-pve kernel, where the reboot then waited for its 1200 s timeout and failed."""
from __future__ import annotations

import os
import subprocess

import pytest
import yaml
from ansible.parsing.dataloader import DataLoader
from ansible.template import Templar, trust_as_template

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
REBOOT = os.path.join(REPO, "roles", "proxmox_vfio", "tasks", "reboot.yml")
ARGS = ["intel_iommu=on", "iommu=pt"]


def rendered_command(args, platform="none", absent=(), state="present"):
    with open(REBOOT, encoding="utf-8") as fh:
        tasks = yaml.safe_load(fh)
    task = next(t for t in tasks if "ansible.builtin.reboot" in t)
    expr = task["vars"]["__proxmox_vfio_test_command"]
    templar = Templar(loader=DataLoader(), variables={
        "__proxmox_vfio_want_args": args, "__proxmox_vfio_want_absent": list(absent),
        "proxmox_vfio_state": state, "__proxmox_vfio_platform": platform})
    return templar.template(trust_as_template(expr))


def run(command, cmdline, tmp_path):
    path = tmp_path / "cmdline"
    path.write_text(cmdline + "\n", encoding="utf-8")
    return subprocess.run(["bash", "-c", command.replace("/proc/cmdline", str(path))], check=False).returncode


def test_the_command_names_each_wanted_argument():
    assert rendered_command(ARGS) == ('case " $(cat /proc/cmdline) " in *" "intel_iommu=on" "*) ;; *) false ;; esac && '
                                      'case " $(cat /proc/cmdline) " in *" "iommu=pt" "*) ;; *) false ;; esac')
    assert rendered_command(ARGS, "intel").endswith(" && ls /sys/kernel/iommu_groups | grep -q .")
    assert rendered_command([]) == "true"


@pytest.mark.parametrize("cmdline, passes", [
    ("BOOT_IMAGE=/boot/vmlinuz-6.8.12-4-pve root=/dev/mapper/pve-root ro quiet intel_iommu=on iommu=pt", True),
    ("BOOT_IMAGE=/boot/vmlinuz-6.8.12-4-pve root=/dev/mapper/pve-root ro quiet", False),
    # the lab's Debian kernel has the word "1" in its version: the broken command passed here
    ("BOOT_IMAGE=/boot/vmlinuz-6.1.0-41-amd64 root=UUID=x ro quiet intel_iommu=off", False),
    ("BOOT_IMAGE=/boot/vmlinuz-6.1.0-41-amd64 root=UUID=x ro quiet intel_iommu=on", False),
    ("initrd=\\EFI\\proxmox\\6.14.8-2-pve\\initrd.img root=ZFS=rpool/ROOT/pve-1 boot=zfs iommu=pt intel_iommu=on", True),
    ("root=ZFS=rpool/ROOT/pve-1 boot=zfs intel_iommu=on iommu=pt,off", False),  # iommu=pt is not a token here
    ("root=ZFS=rpool/ROOT/pve-1 boot=zfs intel_iommu=onx iommu=pt", False),
])
def test_the_command_passes_only_on_the_wanted_command_line(cmdline, passes, tmp_path):
    assert (run(rendered_command(ARGS), cmdline, tmp_path) == 0) is passes


def test_an_argument_with_a_space_is_one_token(tmp_path):
    command = rendered_command(['acpi_osi="!Windows 2015"'])
    assert run(command, 'ro quiet acpi_osi="!Windows 2015" intel_iommu=on', tmp_path) == 0
    assert run(command, 'ro quiet acpi_osi="!Windows 2012" intel_iommu=on', tmp_path) != 0


def test_the_undo_command_wants_the_removed_arguments_gone(tmp_path):
    """State absent: the original tokens are back, the role's own ones (exact or any value of a key) gone."""
    command = rendered_command(["intel_iommu=off"], absent=["iommu=pt", "vfio_pci.ids"], state="absent")
    assert run(command, "ro quiet intel_iommu=off", tmp_path) == 0
    assert run(command, "ro quiet intel_iommu=off iommu=pt", tmp_path) != 0
    assert run(command, "ro quiet intel_iommu=off vfio-pci.ids=10de:1d01", tmp_path) != 0
    assert run(command, "ro quiet intel_iommu=on", tmp_path) != 0
