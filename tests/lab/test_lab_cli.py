# SPDX-License-Identifier: GPL-3.0-or-later
"""Tests of lab/bin/lab that need no VM: input validation, the image cache key, status/instances
on an empty state dir, and the lab inventory as Ansible reads it."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
LAB = REPO / "lab" / "bin" / "lab"


def run_lab(*args, env=None, state=None, lab=LAB):
    e = dict(os.environ)
    e.update(env or {})
    if state is not None:
        e["LAB_STATE_DIR"] = str(state)
    return subprocess.run([str(lab), *args], capture_output=True, text=True, env=e, timeout=60, check=False)


def recipe_hash(lab_root: Path, kind: str) -> str:
    out = subprocess.run(
        ["bash", "-c", f'. "{lab_root}/lib/common.sh"; recipe_hash {kind}'],
        capture_output=True, text=True, check=True,
    )
    return out.stdout.strip()


def test_help_lists_commands():
    res = run_lab("help")
    assert res.returncode == 0
    for word in ("lab up", "lab down", "lab status", "lab leftovers"):
        assert word in res.stdout


def test_unknown_command_fails_with_usage():
    res = run_lab("frobnicate")
    assert res.returncode == 1
    assert "unknown command 'frobnicate'" in res.stderr


def test_unknown_up_target_is_named(tmp_path):
    res = run_lab("up", "everything", state=tmp_path)
    assert res.returncode == 1
    assert "unknown target 'everything'" in res.stderr
    assert "use vm, guests or all" in res.stderr


@pytest.mark.parametrize(
    "env, expected",
    [
        ({"LAB_GUESTS": "Bad_Name"}, "guest name 'Bad_Name' in LAB_GUESTS is invalid"),
        ({"LAB_NAME": "waytoolongname"}, "LAB_NAME='waytoolongname' must be 1-8"),
        ({"LAB_GUEST_NET": "10.213.0"}, "LAB_GUEST_NET='10.213.0' must be the first two octets"),
    ],
)
def test_bad_guest_settings_are_explained(tmp_path, env, expected):
    res = run_lab("up", "guests", env=env, state=tmp_path)
    assert res.returncode == 1
    assert expected in res.stderr
    assert not list(tmp_path.iterdir()), "nothing may be created before the settings are checked"


def test_unknown_guest_is_named(tmp_path):
    res = run_lab("up", "guests", "nosuch", state=tmp_path)
    assert res.returncode == 1
    assert "unknown guest 'nosuch'" in res.stderr


def test_empty_state_has_no_instances_and_no_leftovers(tmp_path):
    res = run_lab("instances", state=tmp_path)
    assert res.returncode == 0
    assert json.loads(res.stdout) == []
    res = run_lab("leftovers", state=tmp_path, env={"LAB_NAME": "labtest"})
    assert res.returncode == 0, res.stdout
    assert "nothing left" in res.stdout
    res = run_lab("status", state=tmp_path)
    assert res.returncode == 1
    assert "lab-pve        stopped" in res.stdout


def test_leftovers_reports_a_stale_netns(tmp_path):
    if os.geteuid() != 0 or shutil.which("ip") is None:
        pytest.skip("needs root and iproute2 to create a network namespace")
    ns = "labtst-whisper-guest"
    subprocess.run(["ip", "netns", "add", ns], check=True)
    try:
        res = run_lab("leftovers", state=tmp_path, env={"LAB_NAME": "labtst"})
        assert res.returncode == 1
        assert ns in res.stdout
    finally:
        subprocess.run(["ip", "netns", "del", ns], check=True)


def test_recipe_hash_follows_the_recipe(tmp_path):
    copy = tmp_path / "lab"
    shutil.copytree(REPO / "lab", copy, ignore=shutil.ignore_patterns(".state"))
    host, guest = recipe_hash(copy, "host"), recipe_hash(copy, "guest")
    assert host == recipe_hash(REPO / "lab", "host")
    assert len(host) == 16 and host != guest
    pkgs = copy / "images" / "host" / "packages"
    pkgs.write_text(pkgs.read_text() + "less\n")
    assert recipe_hash(copy, "host") != host, "a changed package list must give a new image"
    assert recipe_hash(copy, "guest") == guest, "the guest image must not depend on the host recipe"
    (copy / "lib" / "image-guest.sh").write_text((copy / "lib" / "image-guest.sh").read_text() + "\n# x\n")
    assert recipe_hash(copy, "guest") != guest, "a changed builder must give a new image"


def ansible_inventory(env=None):
    e = dict(os.environ)
    e.update(env or {})
    e["ANSIBLE_CONFIG"] = str(REPO / "ansible.cfg")
    exe = REPO / ".venv" / "bin" / "ansible-inventory"
    res = subprocess.run(
        [str(exe), "-i", str(REPO / "inventories" / "lab"), "--list", "--export"],
        capture_output=True, text=True, env=e, cwd=REPO, timeout=120, check=True,
    )
    return json.loads(res.stdout)


def host_var(name, var, env=None):
    e = dict(os.environ)
    e.update(env or {})
    e["ANSIBLE_CONFIG"] = str(REPO / "ansible.cfg")
    exe = REPO / ".venv" / "bin" / "ansible"
    res = subprocess.run(
        [str(exe), "-i", str(REPO / "inventories" / "lab"), name, "-m", "ansible.builtin.debug",
         "-a", f"msg={{{{ {var} }}}}", "-o"],
        capture_output=True, text=True, env=e, cwd=REPO, timeout=120, check=False,
    )
    assert res.returncode == 0, res.stdout + res.stderr
    return res.stdout.split('"msg": ', 1)[1].rsplit("}", 1)[0].strip().strip('"')


def test_inventory_groups():
    inv = ansible_inventory()
    assert inv["proxmox_hosts"]["hosts"] == ["lab-pve"]
    assert inv["gpu_guests"]["hosts"] == ["whisper-guest"]
    assert inv["lab_spare_guests"]["hosts"] == ["driver-guest"]


def test_inventory_follows_the_lab_settings(tmp_path):
    assert host_var("lab-pve", "ansible_port") == "2222"
    assert host_var("lab-pve", "ansible_port", {"LAB_SSH_PORT": "2299"}) == "2299"
    assert host_var("whisper-guest", "ansible_host", {"LAB_GUEST_NET": "10.77"}) == "10.77.1.2"
    key = host_var("lab-pve", "ansible_ssh_private_key_file")
    assert Path(key).resolve() == REPO / "lab" / ".state" / "id_ed25519"
    assert host_var("lab-pve", "ansible_ssh_private_key_file", {"LAB_STATE_DIR": str(tmp_path)}) == f"{tmp_path}/id_ed25519"
    assert host_var("lab-pve", "lab_gpu_address") == "0000:00:05.0"
