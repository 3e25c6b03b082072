# SPDX-License-Identifier: GPL-3.0-or-later
"""proxmox_gpu_vm's cloud image route (issue 17, "the VM's image") against the *simulated* PVE API.

The role downloads its default image URL ON THE NODE (download-url, content import) and creates the
VM with its disk imported from it. The simulated node never reaches the network: it serves that URL
from tests/pve_simulator/fixtures/cloud-image-standin.qcow2 (Simulator.downloads). Check mode first,
then the download (progress lines printed while the task runs) and the VM, then a second run that
changes nothing; and the failures a user meets: a missing privilege, a storage without import
content, a checksum mismatch.
"""
from __future__ import annotations

import copy
import hashlib
import os
import sys

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))
sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(HERE))))
from pve.test_pve_playbooks import api, asserts_ran, run_playbook  # noqa: E402
from pve_simulator.runner import HERE as SIM_DIR  # noqa: E402
from pve_simulator.runner import GPU_VM_DEFAULTS_FILE, Simulator, load_grants  # noqa: E402

import yaml  # noqa: E402  pylint: disable=wrong-import-order

PLAYBOOK = "role_gpu_vm_image.yml"
IMAGE = os.path.join(SIM_DIR, "fixtures", "cloud-image-standin.qcow2")
with open(GPU_VM_DEFAULTS_FILE, encoding="utf-8") as _fh:
    DEFAULT_URL = yaml.safe_load(_fh)["proxmox_gpu_vm_cloud_image"]
VOLID = "local:import/debian-12-generic-amd64.qcow2"


def start(tmp_path, grants=None):
    return Simulator(str(tmp_path / "simulated-pve"), grants=grants, downloads={DEFAULT_URL: IMAGE}).start()


@pytest.fixture
def image_sim(tmp_path):
    simulator = start(tmp_path)
    try:
        yield simulator
    finally:
        simulator.stop()


def imports(sim, storage="local"):
    return [v["volid"] for v in api(sim, f"nodes/pve/storage/{storage}/content?content=import").json()["data"]]


def vms(sim):
    return {v["name"]: v["vmid"] for v in api(sim, "nodes/pve/qemu").json()["data"]}


def test_download_on_the_node_then_the_vm_from_it_then_nothing_changes(image_sim):
    sim = image_sim
    with open(IMAGE, "rb") as fh:
        checksum = "sha512:" + hashlib.sha512(fh.read()).hexdigest()
    rc, out, recap = run_playbook(sim, PLAYBOOK, "--check", "-e", f"proxmox_gpu_vm_cloud_image_checksum={checksum}")
    assert rc == 0, out[-6000:]
    assert f"would download {DEFAULT_URL} to {VOLID} on node pve" in out, out[-6000:]
    assert imports(sim) == [] and "whisper-gpu" not in vms(sim), "check mode downloaded or created something"

    rc, out, recap = run_playbook(sim, PLAYBOOK, "-e", f"proxmox_gpu_vm_cloud_image_checksum={checksum}")
    assert rc == 0, out[-6000:]
    assert asserts_ran(PLAYBOOK, out), out[-6000:]
    assert recap["localhost"]["changed"] == 2, out[-6000:]  # the download, the VM
    # the task's log lines, printed by the action while the download runs (before the task's result)
    progress = out.index("[proxmox_cloud_image")
    assert "(50%)" in out[progress:] and "TASK OK" in out[progress:], out[-6000:]
    assert out.index("(50%)", progress) < out.index("changed: [localhost", progress), out[-6000:]
    assert imports(sim) == [VOLID]
    config = api(sim, f"nodes/pve/qemu/{vms(sim)['whisper-gpu']}/config").json()["data"]
    assert config["scsi0"].startswith("local-lvm:vm-") and "size=32G" in config["scsi0"], config
    assert "pre-enrolled-keys=0" in config["efidisk0"] and config["serial0"] == "socket" and config["vga"] == "serial0"

    rc, out, recap = run_playbook(sim, PLAYBOOK)
    assert rc == 0 and recap["localhost"]["changed"] == 0, "second run changed something:\n" + out[-6000:]
    assert f"{VOLID} is already on node pve; nothing downloaded" in out, out[-6000:]


def test_checksum_mismatch_fails_with_the_task_exit_status_and_creates_nothing(image_sim):
    sim = image_sim
    rc, out, recap = run_playbook(sim, PLAYBOOK, "-e", "proxmox_gpu_vm_cloud_image_checksum=sha256:" + "0" * 64)
    assert rc != 0 and recap["localhost"]["failed"] == 1, out[-6000:]
    # the simulated node's wording (shared/reference/pve has no PVE source text for download-url)
    assert "checksum mismatch: got '" in out and "!= expect '" + "0" * 64 in out, out[-6000:]
    assert f"downloading {DEFAULT_URL} to {VOLID} failed on node pve" in out, out[-6000:]
    assert imports(sim) == [] and "whisper-gpu" not in vms(sim)


def test_a_storage_without_import_content_is_named_with_the_ones_that_have_it(image_sim):
    rc, out, recap = run_playbook(image_sim, PLAYBOOK, "-e", "proxmox_gpu_vm_cloud_image_storage=local-lvm")
    assert rc != 0 and recap["localhost"]["failed"] == 1, out[-6000:]
    assert "storage 'local-lvm': not on node pve, without content type import" in out, out[-6000:]
    assert "storages there with content type import that this token sees: local." in out, out[-6000:]
    assert "whisper-gpu" not in vms(image_sim)


def test_a_bad_checksum_or_file_name_stops_before_any_call(image_sim):
    rc, out, recap = run_playbook(image_sim, PLAYBOOK, "-e", "proxmox_gpu_vm_cloud_image_checksum=sha512:abc")
    assert rc != 0 and "is not ALGORITHM:HEX" in out, out[-6000:]
    rc, out, recap = run_playbook(image_sim, PLAYBOOK, "-e", "proxmox_gpu_vm_cloud_image_filename=debian.img")
    assert rc != 0 and "must end in .ova, .ovf, .qcow2, .raw, .vmdk" in out, out[-6000:]


@pytest.mark.parametrize("path, privilege, reason", [
    ("/storage/{image_storage}", "Datastore.AllocateTemplate", "Permission check failed (/storage/local, Datastore.AllocateTemplate)"),
    # the schema's check is an "or" (Sys.AccessNetwork on the node, or Sys.Audit and Sys.Modify on /):
    # PVE then names no path; the module says what download-url needs
    ("/nodes/{node}", "Sys.AccessNetwork", "Permission check failed"),
])
def test_without_a_privilege_the_download_is_refused_naming_it(tmp_path, path, privilege, reason):
    grants = copy.deepcopy(load_grants())
    for grant in grants:
        if grant["path"] == path:
            grant["privileges"].remove(privilege)
    sim = start(tmp_path, grants=[g for g in grants if g["privileges"]])
    try:
        rc, out, recap = run_playbook(sim, PLAYBOOK)
        assert rc != 0 and recap["localhost"]["failed"] == 1, out[-6000:]
        assert f"permission denied (HTTP 403) for POST /nodes/pve/storage/local/download-url: {reason}." in out, out[-6000:]
        assert ("download-url needs Datastore.AllocateTemplate on /storage/local and Sys.AccessNetwork on /nodes/pve"
                in out), out[-6000:]
        assert imports(sim) == [] and "whisper-gpu" not in vms(sim)
    finally:
        sim.stop()
