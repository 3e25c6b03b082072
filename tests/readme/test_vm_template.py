# SPDX-License-Identifier: GPL-3.0-or-later
"""docs/vm-template.md: its `qm` commands against the official Proxmox VE API schema.

The commands run as root on a real node, never here. What can be checked here is that every option
they pass is one PVE accepts, with a value PVE accepts: `qm` is the API's CLI (pve-manager's
PVE::CLI::qm maps `qm create` to POST /nodes/{node}/qemu, `qm resize` to PUT
/nodes/{node}/qemu/{vmid}/resize, `qm template` to POST /nodes/{node}/qemu/{vmid}/template), so each
command is turned into that call's parameters and checked with the simulated API's validator
(tests/pve_simulator/validate.py) against the official schema: the simulator's copy for create and
template, tests/readme/fixtures/pve-qemu-resize.json (copied from shared/data/proxmox) for resize.
"""
from __future__ import annotations

import json
import os
import shlex
import sys

import pytest

from helpers import REPO, commands

sys.path.insert(0, str(REPO / "tests"))
from pve_simulator.validate import SchemaError, validate  # noqa: E402  (tests/ is not a package path)

DOC = REPO / "docs" / "vm-template.md"
SUBSET = REPO / "tests" / "pve_simulator" / "schema" / "pve-apidoc-subset.json"
RESIZE = REPO / "tests" / "readme" / "fixtures" / "pve-qemu-resize.json"
SHARED = REPO.parent / "shared" / "data" / "proxmox" / "pve-apidoc.json"
NODE = "pve"


def _schemas() -> dict[tuple[str, str], dict]:
    endpoints = json.loads(SUBSET.read_text(encoding="utf-8"))["endpoints"]
    resize = json.loads(RESIZE.read_text(encoding="utf-8"))["node"]
    return {
        ("create", "POST"): endpoints["/nodes/{node}/qemu"]["info"]["POST"]["parameters"],
        ("template", "POST"): endpoints["/nodes/{node}/qemu/{vmid}/template"]["info"]["POST"]["parameters"],
        ("resize", "PUT"): resize["info"]["PUT"]["parameters"],
    }


def qm_params(line: str) -> tuple[str, dict]:
    """`qm <verb> <vmid> [positional...] --key value ...` -> (verb, the API call's parameters)."""
    argv = shlex.split(line)
    assert argv[0] == "qm", line
    verb, vmid, rest = argv[1], int(argv[2]), argv[3:]
    params: dict = {"node": NODE, "vmid": vmid}
    positional = []
    i = 0
    while i < len(rest):
        if rest[i].startswith("--"):
            params[rest[i][2:]] = rest[i + 1]
            i += 2
        else:
            positional.append(rest[i])
            i += 1
    if verb == "resize":      # qm resize <vmid> <disk> <size>
        params["disk"], params["size"] = positional
    else:
        assert not positional, line
    return verb, params


def qm_lines() -> list[str]:
    return [c.text for c in commands(DOC) if c.text.startswith("qm ")]


def test_the_doc_has_the_template_commands():
    verbs = [qm_params(line)[0] for line in qm_lines()]
    assert verbs == ["create", "resize", "template"], verbs
    create = qm_params(qm_lines()[0])[1]
    # what the doc promises: UEFI without pre-enrolled keys, a serial console, q35, the template's name
    assert "pre-enrolled-keys=0" in create["efidisk0"] and create["bios"] == "ovmf", create
    assert create["serial0"] == "socket" and create["vga"] == "serial0", create
    assert create["machine"] == "q35" and create["name"] == "debian12-cloud", create
    inventory = (REPO / "inventories/homelab/group_vars/proxmox_hosts/main.yml").read_text(encoding="utf-8")
    assert f"proxmox_gpu_vm_clone_template: {create['name']}" in inventory
    assert "local-lvm:0,import-from=/root/debian-12-generic-amd64.qcow2" in create["scsi0"]
    assert any(c.text.startswith("wget -O /root/debian-12-generic-amd64.qcow2 ") for c in commands(DOC))


@pytest.mark.parametrize("line", qm_lines(), ids=lambda s: " ".join(s.split()[:2]))
def test_qm_command_is_valid_for_the_official_schema(line):
    verb, params = qm_params(line)
    method = {"create": "POST", "template": "POST", "resize": "PUT"}[verb]
    try:
        validate(_schemas()[(verb, method)], params)
    except SchemaError as exc:
        pytest.fail(f"{line}\nPVE would refuse: {exc.errors}")


@pytest.mark.parametrize("key,bad", [("efidisk0", "local-lvm:1,efitype=5m"), ("serial0", "tty"),
                                     ("vga", "serial9"), ("bios", "uefi"), ("pre-enrolled-keys", "0")])
def test_the_check_refuses_a_wrong_option(key, bad):
    """The check has teeth: a wrong value or an unknown option of `qm create` is refused."""
    _verb, params = qm_params(qm_lines()[0])
    params[key] = bad
    with pytest.raises(SchemaError) as err:
        validate(_schemas()[("create", "POST")], params)
    assert key in err.value.errors, err.value.errors


@pytest.mark.skipif(not SHARED.is_file(), reason="no ../shared/data/proxmox beside this checkout (CI clones alone)")
def test_the_resize_copy_equals_the_official_schema():
    def find(nodes, path):
        for n in nodes:
            if n.get("path") == path:
                return n
            found = find(n.get("children", []), path)
            if found:
                return found
        return None
    node = find(json.loads(SHARED.read_text(encoding="utf-8")), "/nodes/{node}/qemu/{vmid}/resize")
    node = {k: v for k, v in node.items() if k != "children"}
    assert json.loads(RESIZE.read_text(encoding="utf-8"))["node"] == node
    assert os.path.basename(SHARED) in json.loads(RESIZE.read_text(encoding="utf-8"))["_source"]
