# SPDX-License-Identifier: GPL-3.0-or-later
"""plugins/modules/kernel_cmdline.py run by Ansible: check mode, real run, repeat run, refusals.

Files are written to a temporary tree; the GRUB cases read ../../module_utils/fixtures/boot/.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(HERE))))
BOOT = os.path.join(os.path.dirname(HERE), "module_utils", "fixtures", "boot")

MODULE_PLAYBOOK = """
- hosts: localhost
  gather_facts: false
  tasks:
    - name: check mode
      homelab.gpu_passthrough.kernel_cmdline: &opts
        path: "{{ target }}"
        format: "{{ fmt }}"
        args: [intel_iommu=on, iommu=pt]
        absent: [intel_iommu=off, amd_iommu=off, iommu=off]
      check_mode: true
      diff: true
      register: check
    - name: real run
      homelab.gpu_passthrough.kernel_cmdline: *opts
      register: real
    - name: repeat
      homelab.gpu_passthrough.kernel_cmdline: *opts
      register: repeat
    - name: bad argument is refused
      homelab.gpu_passthrough.kernel_cmdline:
        path: "{{ target }}"
        format: "{{ fmt }}"
        args: ["intel_iommu=on", "intel-iommu=off"]
      register: bad
      ignore_errors: true
    - name: results
      ansible.builtin.copy:
        dest: "{{ out }}"
        content: "{{ {'check': check, 'real': real, 'repeat': repeat, 'bad': bad} | to_json }}"
"""


def read(path):
    with open(path, encoding="utf-8", newline="") as handle:
        return handle.read()


def write(path, content):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w", encoding="utf-8", newline="") as handle:
        handle.write(content)


def run_playbook(tmp_path, target, fmt, playbook=MODULE_PLAYBOOK):
    play = tmp_path / "play.yml"
    play.write_text(playbook)
    out = tmp_path / "out.json"
    env = dict(os.environ, ANSIBLE_CONFIG=os.path.join(REPO, "ansible.cfg"))
    proc = subprocess.run(
        [os.path.join(os.path.dirname(sys.executable), "ansible-playbook"), "-i", "localhost,",
         "-c", "local", str(play), "-e", "target=%s fmt=%s out=%s" % (target, fmt, out),
         "-e", "ansible_python_interpreter=%s" % sys.executable],
        cwd=REPO, env=env, capture_output=True, text=True, check=False,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return json.loads(out.read_text()), proc.stdout


def backups(directory, name):
    return [p for p in os.listdir(directory) if p.startswith(name + ".") and p.endswith("~")]


@pytest.mark.parametrize(
    "fmt,before,after",
    [
        ("grub", 'GRUB_CMDLINE_LINUX_DEFAULT="intel_iommu=off quiet"\nGRUB_CMDLINE_LINUX=""\n',
         'GRUB_CMDLINE_LINUX_DEFAULT="intel_iommu=on quiet iommu=pt"\nGRUB_CMDLINE_LINUX=""\n'),
        ("plain", "root=ZFS=rpool/ROOT/pve-1 boot=zfs intel_iommu=off\n",
         "root=ZFS=rpool/ROOT/pve-1 boot=zfs intel_iommu=on iommu=pt\n"),
        ("proxmox-boot-tool", "root=ZFS=rpool/ROOT/pve-1 boot=zfs iommu=off \r\n",
         "root=ZFS=rpool/ROOT/pve-1 boot=zfs iommu=pt intel_iommu=on \r\n"),
    ],
)
def test_module_check_real_repeat(tmp_path, fmt, before, after):
    target = tmp_path / "cmdline"
    write(str(target), before)
    res, dummy = run_playbook(tmp_path, target, fmt)
    assert res["check"]["changed"] is True and res["check"]["changes"]
    assert res["check"]["diff"][0]["after"] == after and res["check"]["diff"][0]["before"] == before
    assert res["real"]["changed"] is True
    assert res["real"]["changed_files"] == [str(target)]
    assert res["real"]["previous_cmdline"] in before
    assert res["repeat"]["changed"] is False and res["repeat"]["changes"] == []
    assert res["repeat"]["previous_tokens"] == {
        "intel_iommu": ["intel_iommu=on"], "iommu": ["iommu=pt"], "amd_iommu": []}
    assert res["bad"]["failed"] is True and "wanted twice" in res["bad"]["msg"]
    assert read(str(target)) == after
    found = backups(str(tmp_path), "cmdline")
    assert len(found) == 1 and read(str(tmp_path / found[0])) == before


def test_module_grub_with_dropins(tmp_path):
    """The PVE 8 file, the installer's zfs.cfg and a drop-in that appends intel_iommu=off."""
    main = tmp_path / "etc" / "default" / "grub"
    dropins = tmp_path / "etc" / "default" / "grub.d"
    write(str(main), read(os.path.join(BOOT, "reference", "02-pve8-bookworm-etc-default-grub.captured")))
    zfs = read(os.path.join(BOOT, "reference", "05-etc-default-grub.d-zfs.cfg.pve-installer"))
    write(str(dropins / "zfs.cfg"), zfs)
    bad = read(os.path.join(BOOT, "adversarial", "zz-appends-intel-iommu-off.cfg"))
    write(str(dropins / "zz-iommu.cfg"), bad)
    write(str(dropins / "not-sourced.conf"), 'GRUB_CMDLINE_LINUX="intel_iommu=off"\n')
    res, dummy = run_playbook(tmp_path, main, "grub")
    assert res["check"]["previous_cmdline"] == "root=ZFS=rpool/ROOT/pve-1 boot=zfs quiet intel_iommu=off"
    assert res["check"]["cmdline"] == "root=ZFS=rpool/ROOT/pve-1 boot=zfs quiet iommu=pt intel_iommu=on"
    assert res["check"]["previous_tokens"] == {"intel_iommu": ["intel_iommu=off"], "iommu": [], "amd_iommu": []}
    assert sorted(d["after_header"] for d in res["check"]["diff"]) == [str(main), str(dropins / "zz-iommu.cfg")]
    assert res["real"]["changed_files"] == [str(main), str(dropins / "zz-iommu.cfg")]
    assert res["real"]["sources"][-1] == "%s line 2" % (dropins / "zz-iommu.cfg")
    assert sorted(res["real"]["backup_files"]) == sorted(res["real"]["changed_files"])
    assert res["repeat"]["changed"] is False
    assert read(str(dropins / "zfs.cfg")) == zfs
    assert read(str(dropins / "zz-iommu.cfg")) == bad.replace("intel_iommu=off", "intel_iommu=on")
    assert 'GRUB_CMDLINE_LINUX_DEFAULT="quiet iommu=pt"\n' in read(str(main))
    assert len(backups(str(dropins), "zz-iommu.cfg")) == 1


REFUSE_PLAYBOOK = """
- hosts: localhost
  gather_facts: false
  tasks:
    - name: refused, in check mode and for real
      homelab.gpu_passthrough.kernel_cmdline:
        path: "{{ target }}"
        format: "{{ fmt }}"
        args: [intel_iommu=on, iommu=pt]
      check_mode: "{{ item }}"
      register: refused
      ignore_errors: true
      loop: [true, false]
    - name: results
      ansible.builtin.copy:
        dest: "{{ out }}"
        content: "{{ refused | to_json }}"
"""


@pytest.mark.parametrize(
    "fmt,content,message",
    [
        ("proxmox-boot-tool", "\nroot=ZFS=rpool/ROOT/pve-1 boot=zfs\n", "No root= parameter in /etc/kernel/cmdline found!"),
        ("proxmox-boot-tool", "quiet intel_iommu=off\n", "its first line has no root="),
        ("grub", None, "inside the 'if' block opened on line 5"),
        ("grub", "GRUB_CMDLINE_LINUX_DEFAULT=\"quiet $EXTRA\"\r\n", "expands $EXTRA"),
    ],
)
def test_module_refuses_and_changes_nothing(tmp_path, fmt, content, message):
    if content is None:
        content = read(os.path.join(BOOT, "adversarial", "if-block.grub"))
    target = tmp_path / "file"
    write(str(target), content)
    res, dummy = run_playbook(tmp_path, target, fmt, REFUSE_PLAYBOOK)
    for result in res["results"]:
        assert result["failed"] is True
        assert result["msg"].startswith(str(target) + ": ") and message in result["msg"], result["msg"]
    assert read(str(target)) == content
    assert backups(str(tmp_path), "file") == []


def test_module_warns_about_ignored_lines(tmp_path):
    target = tmp_path / "cmdline"
    content = read(os.path.join(BOOT, "reference", "09-etc-kernel-cmdline.zfs-installer-default"))
    write(str(target), content)
    res, stdout = run_playbook(tmp_path, target, "proxmox-boot-tool")
    assert any("lines 2-4 are ignored" in w for w in res["real"]["warnings"])
    assert read(str(target)).split("\n", 1) == [
        "root=ZFS=rpool/ROOT/pve-1 boot=zfs intel_iommu=on iommu=pt ", content.split("\n", 1)[1]]
    assert res["repeat"]["changed"] is False


def test_module_create_is_refused_for_proxmox_boot_tool(tmp_path):
    playbook = MODULE_PLAYBOOK.replace("format: \"{{ fmt }}\"\n        args: [intel_iommu=on, iommu=pt]\n        absent",
                                       "format: \"{{ fmt }}\"\n        create: true\n        args: [intel_iommu=on, iommu=pt]\n        absent")
    target = tmp_path / "missing"
    play = tmp_path / "play.yml"
    play.write_text(playbook)
    env = dict(os.environ, ANSIBLE_CONFIG=os.path.join(REPO, "ansible.cfg"))
    proc = subprocess.run(
        [os.path.join(os.path.dirname(sys.executable), "ansible-playbook"), "-i", "localhost,", "-c", "local",
         str(play), "-e", "target=%s fmt=proxmox-boot-tool out=%s" % (target, tmp_path / "out"),
         "-e", "ansible_python_interpreter=%s" % sys.executable],
        cwd=REPO, env=env, capture_output=True, text=True, check=False,
    )
    assert proc.returncode != 0
    assert "No root= parameter in /etc/kernel/cmdline found!" in proc.stdout
    assert not target.exists()
