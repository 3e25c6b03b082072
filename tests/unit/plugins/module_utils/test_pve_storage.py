# SPDX-License-Identifier: GPL-3.0-or-later
"""pve_storage: the name, volume id and checksum of a cloud image (pure), and NodeStorage's download
against the *simulated* PVE API (the node serves the URL from a local file; no network): the task's
log lines reach the progress callback while it runs, the file then appears in the content list."""
from __future__ import annotations

import hashlib
import os
import sys

import pytest

from ansible_collections.homelab.gpu_passthrough.plugins.module_utils import pve_storage
from ansible_collections.homelab.gpu_passthrough.plugins.module_utils.pve_client import PveClient, PveTaskError

sys.path.insert(0, os.path.abspath(os.path.join(os.path.dirname(__file__), os.pardir, os.pardir, os.pardir)))
from pve_simulator.runner import HERE as SIM_DIR  # noqa: E402
from pve_simulator.runner import Simulator  # noqa: E402

IMAGE = os.path.join(SIM_DIR, "fixtures", "cloud-image-standin.qcow2")
URL = "https://cloud.example.invalid/images/noble-server-cloudimg-amd64.img"


@pytest.mark.parametrize("url, filename, want", [
    ("https://cloud.debian.org/images/cloud/bookworm/latest/debian-12-generic-amd64.qcow2", "",
     "debian-12-generic-amd64.qcow2"),
    ("https://cloud-images.ubuntu.com/noble/current/noble-server-cloudimg-amd64.img", "",
     "noble-server-cloudimg-amd64.qcow2"),  # an .img is qcow2 inside, saved as .qcow2
    ("https://example.org/a.img?x=1", "mine.raw", "mine.raw"),
])
def test_image_filename(url, filename, want):
    assert pve_storage.image_filename(url, filename) == want


@pytest.mark.parametrize("url, filename, error", [
    ("ftp://example.org/a.qcow2", "", "must start with http:// or https://"),
    ("https://example.org/a.iso", "", "must end in .ova, .ovf, .qcow2, .raw, .vmdk"),
    ("https://example.org/a.qcow2", "my image.img", "cannot name the image file"),
    ("https://example.org/a.qcow2", "x.img", "must end in"),  # a given name is taken as it is
])
def test_image_filename_refused(url, filename, error):
    with pytest.raises(pve_storage.ImageInputError, match=error):
        pve_storage.image_filename(url, filename)


def test_checksum():
    assert pve_storage.parse_checksum("") == (None, None)
    digest = hashlib.sha512(b"x").hexdigest()
    assert pve_storage.parse_checksum("SHA512:" + digest.upper()) == ("sha512", digest)
    for bad in ("sha512:abc", digest, "crc32:" + digest[:8], "sha256:" + digest):
        with pytest.raises(pve_storage.ImageInputError, match="is not ALGORITHM:HEX"):
            pve_storage.parse_checksum(bad)


def test_import_volid():
    assert pve_storage.import_volid("local", "d.qcow2") == "local:import/d.qcow2"


@pytest.fixture
def node(tmp_path):
    sim = Simulator(str(tmp_path / "simulated-pve"), downloads={URL: IMAGE}).start()
    try:
        client = PveClient(host="127.0.0.1", port=sim.port, token_id=sim.token_id, token_secret=sim.token_secret,
                           ca_path=sim.ca_path, poll_interval=0.05)
        yield pve_storage.NodeStorage(client, "pve")
    finally:
        sim.stop()


def test_simulated_download_with_progress_then_in_the_content_list(node):
    assert node.storages("import") == ["local"]
    node.require_content("local", "import")
    lines = []
    with open(IMAGE, "rb") as fh:
        digest = hashlib.sha256(fh.read()).hexdigest()
    name = pve_storage.image_filename(URL)
    node.download("local", "import", URL, name, checksum=digest, algorithm="sha256", progress=lines.append)
    assert lines[0].startswith("downloading " + URL) and lines[-1] == "TASK OK", lines
    assert any(line.endswith("(50%)") for line in lines), lines
    assert [v["volid"] for v in node.volumes("local", "import")] == ["local:import/noble-server-cloudimg-amd64.qcow2"]
    assert node.find("local", "import", "local:import/noble-server-cloudimg-amd64.qcow2")["format"] == "qcow2"


def test_simulated_download_failures(node):
    with pytest.raises(pve_storage.ImageInputError, match="storages there with content type import that this token sees: local"):
        node.require_content("local-lvm", "import")
    with pytest.raises(PveTaskError, match="checksum mismatch"):
        node.download("local", "import", URL, "u.qcow2", checksum="0" * 64, algorithm="sha256")
    with pytest.raises(PveTaskError, match="no local file for this URL"):  # never the network
        node.download("local", "import", "https://elsewhere.invalid/x.qcow2", "x.qcow2")
    assert node.volumes("local", "import") == []
