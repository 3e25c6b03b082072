# SPDX-License-Identifier: GPL-3.0-or-later
"""The simulated PVE API refuses what the official schema forbids, independently of our modules.

These tests talk to the simulator with plain ``requests`` so that a module cannot pass by talking to
a lenient fake: every request below is one PVE 9.1 would refuse, for the same reason.
"""
from __future__ import annotations

import os
import sys
from urllib.parse import quote

import pytest
import requests

sys.path.insert(0, os.path.abspath(os.path.join(os.path.dirname(__file__), os.pardir, os.pardir)))
# the fixture `sim`, imported for pytest:
from pve_simulator.pytest_plugin import sim  # noqa: E402,F401  pylint: disable=unused-import
from pve_simulator import validate as V  # noqa: E402
from pve_simulator.runner import TEST_SSH_PUBLIC_KEY_FILE  # noqa: E402

GOOD_ENTRY = "node=pve,path=0000:03:00,id=10de:13f1,iommugroup=15,subsystem-id=10de:1153"


def call(sim, method, path, data=None, token=None, params=None):  # noqa: F811
    token = token or "PVEAPIToken=%s=%s" % (sim.token_id, sim.token_secret)
    return requests.request(method, "https://127.0.0.1:%s/api2/json%s" % (sim.port, path), data=data,
                            params=params, headers={"Authorization": token}, verify=sim.ca_path, timeout=10)


def root_token(sim):  # noqa: F811
    return "PVEAPIToken=%s=%s" % (sim.root_token_id, sim.root_token_secret)


def errors(resp):
    assert resp.status_code == 400, resp.text
    assert resp.reason == "Parameter verification failed."
    body = resp.json()
    assert body["data"] is None
    return body["errors"]


def test_simulated_pve_refuses_unknown_parameter(sim):  # noqa: F811
    resp = call(sim, "POST", "/cluster/mapping/pci", {"id": "gpu", "map": GOOD_ENTRY, "colour": "green"})
    assert errors(resp) == {"colour": "property is not defined in schema and the schema does not allow "
                                      "additional properties"}
    assert call(sim, "GET", "/cluster/mapping/pci/gpu").status_code == 500  # nothing was created


def test_simulated_pve_refuses_missing_required_parameter(sim):  # noqa: F811
    resp = call(sim, "POST", "/cluster/mapping/pci", {"id": "gpu"})
    assert errors(resp) == {"map": "property is missing and it is not optional"}
    resp = call(sim, "POST", "/nodes/pve/qemu/9000/clone", {"name": "x"})
    assert errors(resp) == {"newid": "property is missing and it is not optional"}


@pytest.mark.parametrize("value, fragment", [
    ("pcie=1", "either 'host' or 'mapping' must be set"),
    ("mapping=gpu,pcie=2", "pcie: type check ('boolean') failed - got '2'"),
    ("mapping=gpu,pcie=1,turbo=1", "invalid key in comma-separated list property: turbo"),
    ("host=zz:00.0", "host: value does not match the regex pattern"),
    ("mapping=1gpu", "invalid configuration ID '1gpu'"),
    ("mapping=gpu,vendor-id=10de", "vendor-id: value does not match the regex pattern"),
    ("mapping=gpu,driver=nvidia", "value 'nvidia' does not have a value in the enumeration 'vfio, keep'"),
])
def test_simulated_pve_refuses_malformed_hostpci0(sim, value, fragment):  # noqa: F811
    resp = call(sim, "POST", "/nodes/pve/qemu", {"vmid": "120", "hostpci0": value})
    err = errors(resp)
    assert list(err) == ["hostpci0"] and fragment in err["hostpci0"], err


def test_simulated_pve_index_range_of_hostpci(sim):  # noqa: F811
    assert errors(call(sim, "POST", "/nodes/pve/qemu", {"vmid": "120", "hostpci16": "mapping=gpu"})) == {
        "hostpci16": "property is not defined in schema and the schema does not allow additional properties"}
    assert call(sim, "POST", "/nodes/pve/qemu", {"vmid": "120", "hostpci15": "mapping=gpu"}).status_code == 200


@pytest.mark.parametrize("data, key, fragment", [
    ({"vmid": "99"}, "vmid", "value must have a minimum value of 100"),
    ({"vmid": "1e3"}, "vmid", "type check ('integer') failed"),
    ({"vmid": "120", "bios": "uefi"}, "bios", "does not have a value in the enumeration 'seabios, ovmf'"),
    ({"vmid": "120", "balloon": "-1"}, "balloon", "minimum value of 0"),
    ({"vmid": "120", "start": "maybe"}, "start", "type check ('boolean') failed - got 'maybe'"),
    ({"vmid": "120", "machine": "q36"}, "machine", "type: value does not match the regex pattern"),
    ({"vmid": "120", "cpu": "pentium9"}, "cpu", "Built-in cputype 'pentium9' is not defined"),
    ({"vmid": "120", "sshkeys": "ssh-ed25519 AAAA"}, "sshkeys", "invalid urlencoded string"),
    ({"vmid": "120", "ipconfig0": "ip=192.168.1.5"}, "ipconfig0", "not a valid IPv4 address with CIDR mask"),
    ({"vmid": "120", "name": "bad_name"}, "name", "not look like a valid DNS name"),
    ({"vmid": "120", "efidisk0": "local-lvm:1,efitype=8m"}, "efidisk0", "enumeration '2m, 4m'"),
])
def test_simulated_pve_refuses_bad_vm_parameters(sim, data, key, fragment):  # noqa: F811
    err = errors(call(sim, "POST", "/nodes/pve/qemu", data))
    assert key in err and fragment in err[key], err


@pytest.mark.parametrize("entry, key", [
    ("node=pve,path=03:00,id=10de:13f1", "path"),                  # domain is required by the pattern
    ("node=pve,path=0000:03:00,id=10de13f1", "id"),
    ("node=pve,path=0000:03:00,id=10de:13f1,iommugroup=x", "iommugroup"),
    ("node=pve,path=0000:03:00", "id"),                            # missing required key
    ("node=pve,path=0000:03:00,id=10de:13f1,subsystem=1", "subsystem"),
])
def test_simulated_pve_refuses_malformed_map_entry(sim, entry, key):  # noqa: F811
    err = errors(call(sim, "POST", "/cluster/mapping/pci", {"id": "gpu", "map": entry}))
    assert list(err) == ["map"] and key in err["map"], err


def test_simulated_pve_booleans_are_1_or_0_except_inside_property_strings():
    """pve-common JSONSchema.pm: check_type takes a parameter's boolean only as 1 or 0;
    parse_property_string reads true/yes/on and false/no/off first."""
    assert V.check_scalar({"type": "boolean"}, "1") == (1, None)
    assert V.check_scalar({"type": "boolean"}, "0") == (0, None)
    for word in ("true", "YES", "on", "True", "false", "No", "off", "False", "2", ""):
        assert V.check_scalar({"type": "boolean"}, word) == (word, "type check ('boolean') failed - got '%s'" % word)
    for word in ("1", "true", "YES", "on"):
        assert V.check_scalar({"type": "boolean"}, word, in_property_string=True) == (1, None)
    for word in ("0", "false", "No", "off"):
        assert V.check_scalar({"type": "boolean"}, word, in_property_string=True) == (0, None)


@pytest.mark.parametrize("word", ["True", "true", "yes", "on", "False"])
def test_simulated_pve_refuses_a_top_level_boolean_other_than_1_or_0(sim, word):  # noqa: F811
    err = errors(call(sim, "POST", "/nodes/pve/qemu", {"vmid": "120", "onboot": word}))
    assert err == {"onboot": "type check ('boolean') failed - got '%s'" % word}
    assert call(sim, "GET", "/nodes/pve/qemu/120/config").status_code == 500  # not created


def test_simulated_pve_booleans_that_pve_accepts(sim):  # noqa: F811
    assert call(sim, "POST", "/nodes/pve/qemu", {"vmid": "120", "onboot": "1", "protection": "0"}).status_code == 200
    # inside a property string, PVE's parse_boolean spellings
    assert call(sim, "POST", "/nodes/pve/qemu", {"vmid": "121", "hostpci0": "mapping=gpu,pcie=yes"}).status_code == 200
    # a JSON body's true/false (JSON::is_bool)
    resp = requests.post("https://127.0.0.1:%s/api2/json/nodes/pve/qemu" % sim.port, json={"vmid": 122, "onboot": True},
                         headers={"Authorization": "PVEAPIToken=%s=%s" % (sim.token_id, sim.token_secret)},
                         verify=sim.ca_path, timeout=10)
    assert resp.status_code == 200, resp.text


def test_simulated_pve_checks_sshkeys_with_ssh_keygen_like_pve(sim):  # noqa: F811
    """qemu-server runs each sshkeys line through `ssh-keygen -l` (create and update) and dies with
    "SSH public key validation error"; the value itself is URL-encoded (format urlencoded)."""
    with open(TEST_SSH_PUBLIC_KEY_FILE, encoding="utf-8") as fh:
        key = fh.read().strip()
    good = quote(key + "\n\n" + key + "\n", safe="")
    dummy = quote("ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIDummyKeyForTheSimulatedApiOnly test@example", safe="")
    assert call(sim, "POST", "/nodes/pve/qemu", {"vmid": "120", "sshkeys": good}).status_code == 200
    for vmid, value in (("121", dummy), ("122", good + quote("not a key", safe=""))):
        resp = call(sim, "POST", "/nodes/pve/qemu", {"vmid": vmid, "sshkeys": value})
        assert resp.status_code == 500 and resp.reason == "SSH public key validation error", resp.text
        assert call(sim, "GET", "/nodes/pve/qemu/%s/config" % vmid).status_code == 500  # not created
    resp = call(sim, "PUT", "/nodes/pve/qemu/120/config", {"sshkeys": dummy})
    assert resp.status_code == 500 and resp.reason == "SSH public key validation error"
    assert call(sim, "GET", "/nodes/pve/qemu/120/config").json()["data"]["sshkeys"] == good


def test_simulated_pve_refuses_unknown_path_and_method(sim):  # noqa: F811
    resp = call(sim, "GET", "/nodes/pve/lxc")
    assert resp.status_code == 501 and resp.reason == "Method 'GET /nodes/pve/lxc' not implemented"
    resp = call(sim, "DELETE", "/cluster/mapping/pci")
    assert resp.status_code == 501


def test_simulated_pve_authentication(sim):  # noqa: F811
    for token in ("PVEAPIToken=%s=wrong" % sim.token_id, "PVEAPIToken=nobody@pve!x=%s" % sim.token_secret,
                  "Bearer %s" % sim.token_secret, "PVEAPIToken=%s" % sim.token_id):
        resp = call(sim, "GET", "/version", token=token)
        assert resp.status_code == 401 and resp.reason == "authentication failure", token
    assert call(sim, "GET", "/version").json()["data"]["release"] == "9.1"


def test_simulated_pve_permission_check(sim):  # noqa: F811
    token = "PVEAPIToken=%s=%s" % (sim.readonly_token_id, sim.readonly_token_secret)
    assert call(sim, "GET", "/nodes/pve/hardware/pci", token=token).status_code == 200
    resp = call(sim, "POST", "/cluster/mapping/pci", {"id": "gpu", "map": GOOD_ENTRY}, token=token)
    assert resp.status_code == 403 and resp.reason == "Permission check failed (/mapping/pci, Mapping.Modify)"


def test_simulated_pve_refuses_host_pci_from_a_token(sim):  # noqa: F811
    resp = call(sim, "POST", "/nodes/pve/qemu", {"vmid": "120", "hostpci0": "host=0000:03:00,pcie=1"})
    assert resp.status_code == 500
    assert resp.reason == "only root can set 'hostpci0' config for non-mapped devices"
    assert call(sim, "GET", "/nodes/pve/qemu/120/config").status_code == 500  # not created


def test_simulated_pve_unknown_node_and_objects(sim):  # noqa: F811
    resp = call(sim, "GET", "/nodes/pve9/hardware/pci")
    assert resp.status_code == 500 and "hostname lookup 'pve9' failed" in resp.reason
    assert call(sim, "GET", "/cluster/mapping/pci/nope").reason == "mapping 'nope' not found"
    assert call(sim, "GET", "/nodes/pve/qemu/4242/config").reason == \
        "Configuration file 'nodes/pve/qemu-server/4242.conf' does not exist"


def test_simulated_pve_hardware_pci_hides_bridges_by_default(sim):  # noqa: F811
    default = {d["id"] for d in call(sim, "GET", "/nodes/pve/hardware/pci").json()["data"]}
    full = {d["id"] for d in call(sim, "GET", "/nodes/pve/hardware/pci",
                                  params={"pci-class-blacklist": ""}).json()["data"]}
    assert "0000:00:02.0" not in default and "0000:00:02.0" in full and default < full


def test_simulated_pve_mapping_digest_and_hardware_check(sim):  # noqa: F811
    bad = "node=pve,path=0000:03:00,id=10de:1234,iommugroup=15,subsystem-id=10de:1153"
    # like PVE, creation only checks the schema ...
    assert call(sim, "POST", "/cluster/mapping/pci", {"id": "gpu", "map": bad}).status_code == 200
    # ... and check-node reports what assert_valid finds
    listing = call(sim, "GET", "/cluster/mapping/pci", params={"check-node": "pve"}).json()["data"]
    assert listing[0]["checks"] == [{"severity": "error", "message":
                                     "Invalid configuration: 'id' does not match for 'gpu' (10de:13f1 != 10de:1234)\n"}]
    digest = call(sim, "GET", "/cluster/mapping/pci/gpu").json()["data"]["digest"]
    assert call(sim, "PUT", "/cluster/mapping/pci/gpu", {"map": GOOD_ENTRY, "digest": digest}).status_code == 200
    resp = call(sim, "PUT", "/cluster/mapping/pci/gpu", {"map": GOOD_ENTRY, "digest": digest})
    assert resp.status_code == 500 and "detected modified configuration" in resp.reason
    listing = call(sim, "GET", "/cluster/mapping/pci", params={"check-node": "pve"}).json()["data"]
    assert listing[0]["checks"] == []


def test_simulated_pve_vm_start_checks_the_mapping(sim):  # noqa: F811
    bad = "node=pve,path=0000:03:00,id=10de:13f1,iommugroup=7,subsystem-id=10de:1153"
    assert call(sim, "POST", "/cluster/mapping/pci", {"id": "gpu", "map": bad}).status_code == 200
    upid = call(sim, "POST", "/nodes/pve/qemu", {"vmid": "120", "machine": "q35",
                                                 "hostpci0": "mapping=gpu,pcie=1"}).json()["data"]
    upid = call(sim, "POST", "/nodes/pve/qemu/120/status/start").json()["data"]
    first = call(sim, "GET", "/nodes/pve/tasks/%s/status" % upid).json()["data"]
    assert first["status"] == "running"  # tasks must really be waited for
    done = call(sim, "GET", "/nodes/pve/tasks/%s/status" % upid).json()["data"]
    assert done["status"] == "stopped"
    assert done["exitstatus"] == ("PCI device mapping invalid (hardware probably changed): "
                                  "'iommugroup' does not match for 'gpu' (15 != 7)")
    status = call(sim, "GET", "/nodes/pve/qemu/120/status/current").json()["data"]
    assert status["status"] == "stopped"


def test_simulated_pve_template_and_linked_clone(sim):  # noqa: F811
    assert call(sim, "POST", "/nodes/pve/qemu", {"vmid": "140", "name": "base", "scsi0": "local-lvm:4",
                                                 "ide2": "local-lvm:cloudinit"}).status_code == 200
    assert call(sim, "POST", "/nodes/pve/qemu/140/template").status_code == 200
    conf = call(sim, "GET", "/nodes/pve/qemu/140/config").json()["data"]
    assert conf["template"] == 1 and conf["scsi0"].startswith("local-lvm:base-140-disk-")
    upid = call(sim, "POST", "/nodes/pve/qemu/140/status/start").json()["data"]
    call(sim, "GET", "/nodes/pve/tasks/%s/status" % upid)
    done = call(sim, "GET", "/nodes/pve/tasks/%s/status" % upid).json()["data"]
    assert done["exitstatus"] == "you can't start a vm if it's a template"
    assert call(sim, "POST", "/nodes/pve/qemu/140/clone", {"newid": "141", "name": "c1", "full": "0"}).status_code == 200
    clone = call(sim, "GET", "/nodes/pve/qemu/141/config").json()["data"]
    assert clone["name"] == "c1" and "template" not in clone and clone["ide2"].startswith("local-lvm:vm-141-cloudinit")
    resp = call(sim, "POST", "/nodes/pve/qemu/140/clone", {"newid": "141"})
    assert resp.status_code == 500 and resp.reason == "unable to create VM 141: config file already exists"
    resp = call(sim, "POST", "/nodes/pve/qemu", {"vmid": "142", "scsi0": "nfs-backup:4"})
    # the tests' token has Datastore.AllocateSpace on the role's storage only; PVE checks it first
    assert resp.status_code == 403
    assert resp.reason == "Permission check failed (/storage/nfs-backup, Datastore.AllocateSpace)"
    resp = call(sim, "POST", "/nodes/pve/qemu", {"vmid": "142", "scsi0": "nfs-backup:4"}, token=root_token(sim))
    assert resp.status_code == 500 and resp.reason == "storage 'nfs-backup' does not exist"


def test_simulated_pve_node_pci_read_live_from_a_command(tmp_path):
    """`make demo` points node lab-pve's /hardware/pci at demo/pve_hardware_pci.py run on the lab VM.
    Here the same script runs on this machine: the simulated node reports this machine's real sysfs."""
    import json as _json

    from pve_simulator.runner import Simulator
    repo = os.path.abspath(os.path.join(os.path.dirname(__file__), os.pardir, os.pardir, os.pardir))
    script = os.path.join(repo, "demo", "pve_hardware_pci.py")
    fixture = tmp_path / "fixture.json"
    fixture.write_text(_json.dumps({
        "version": {"version": "9.1.1", "release": "9.1", "repoid": "simulated"},
        "nodes": {"live": {"storage": {}, "pci_command": [sys.executable, "-"], "pci_command_stdin": script}},
    }))
    simulator = Simulator(str(tmp_path / "simulated-pve")).start(fixture=str(fixture))
    try:
        got = call(simulator, "GET", "/nodes/live/hardware/pci", params={"pci-class-blacklist": ""}).json()["data"]
    finally:
        simulator.stop()
    real = sorted(os.listdir("/sys/bus/pci/devices"))
    assert [d["id"] for d in got] == real and real
    with open(f"/sys/bus/pci/devices/{real[0]}/vendor", encoding="ascii") as fh:
        assert got[0]["vendor"] == fh.read().strip()
