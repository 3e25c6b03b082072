# SPDX-License-Identifier: GPL-3.0-or-later
"""Start and stop the *simulated* PVE API for a test: a throw-away CA and server certificate
(generated now, for 127.0.0.1), random token secrets, a process listening on a free loopback port.

Its users, roles, ACLs and tokens (``access_config``), like a node prepared as the README says:

* ``automation@pve!ansible`` (the tests' token): a token with privilege separation of the user
  automation@pve; user and token have, on each path of ``_proxmox_api_access_grants``
  (roles/proxmox_api_access/vars/main.yml, placeholders filled with the test values), a role with exactly
  that entry's privileges - nothing more;
* ``auditor@pve!readonly``: PVEAuditor on / (user and privilege-separated token);
* ``root@pam!simulator``: a root token without privilege separation (every privilege), for what a
  node's root would do (``pveum``, the /access API).
"""
from __future__ import annotations

import datetime
import ipaddress
import json
import os
import re
import secrets
import subprocess
import sys
import time
from dataclasses import dataclass, field

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
GRANTS_FILE = os.path.join(REPO, "roles", "proxmox_api_access", "vars", "main.yml")
GPU_VM_DEFAULTS_FILE = os.path.join(REPO, "roles", "proxmox_gpu_vm", "defaults", "main.yml")
TEST_NODE = "pve"
# An ed25519 public key generated once with ssh-keygen for the tests (its private half was thrown
# away). PVE checks every sshkeys line with `ssh-keygen -l`, so the VMs of the tests need a real key.
TEST_SSH_PUBLIC_KEY_FILE = os.path.join(HERE, "fixtures", "test_ed25519.pub")


def make_certs(directory: str) -> tuple[str, str, str]:
    """Write ca.pem, server.pem, server.key (server cert for 127.0.0.1/localhost signed by the CA)."""
    now = datetime.datetime.now(datetime.timezone.utc)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "simulated PVE test CA")])
    ca = (x509.CertificateBuilder().subject_name(ca_name).issuer_name(ca_name)
          .public_key(ca_key.public_key()).serial_number(x509.random_serial_number())
          .not_valid_before(now - datetime.timedelta(minutes=5)).not_valid_after(now + datetime.timedelta(days=2))
          .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
          .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=True, crl_sign=True,
                                       content_commitment=False, key_encipherment=False, data_encipherment=False,
                                       key_agreement=False, encipher_only=False, decipher_only=False), critical=True)
          .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False)
          .sign(ca_key, hashes.SHA256()))
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "simulated-pve.localhost")]))
            .issuer_name(ca_name).public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5)).not_valid_after(now + datetime.timedelta(days=2))
            .add_extension(x509.SubjectAlternativeName([x509.DNSName("localhost"),
                                                        x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
                           critical=False)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False)
            .sign(ca_key, hashes.SHA256()))
    paths = (os.path.join(directory, "ca.pem"), os.path.join(directory, "server.pem"),
             os.path.join(directory, "server.key"))
    with open(paths[0], "wb") as fh:
        fh.write(ca.public_bytes(serialization.Encoding.PEM))
    with open(paths[1], "wb") as fh:
        fh.write(cert.public_bytes(serialization.Encoding.PEM))
    with open(paths[2], "wb") as fh:
        fh.write(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                   serialization.NoEncryption()))
    return paths


def load_grants() -> list[dict]:
    """``_proxmox_api_access_grants``: the one list of paths and privileges the collection needs."""
    import yaml  # pylint: disable=import-outside-toplevel

    with open(GRANTS_FILE, encoding="utf-8") as fh:
        return yaml.safe_load(fh)["_proxmox_api_access_grants"]


def placeholder_values(node: str = TEST_NODE) -> dict[str, str]:
    """The test values of the grants' placeholders: the roles' defaults (storage, bridge) and the node."""
    import yaml  # pylint: disable=import-outside-toplevel

    with open(GPU_VM_DEFAULTS_FILE, encoding="utf-8") as fh:
        defaults = yaml.safe_load(fh)
    return {"node": node, "storage": defaults["proxmox_gpu_vm_storage"], "bridge": defaults["proxmox_gpu_vm_bridge"],
            "image_storage": defaults["proxmox_gpu_vm_cloud_image_storage"]}


def fill_path(path: str, values: dict[str, str]) -> str:
    """A grant's path with its placeholders ({node}, {storage}, {image_storage}, {bridge}) filled."""
    return re.sub(r"\{(\w+)\}", lambda m: values[m.group(1)], path)


def grant_role_name(path: str) -> str:
    """The role the tests' user and token hold on ``path`` (one role per path of the list)."""
    return "GpuPassthrough" + ("" if path == "/" else path.replace("/", "."))


def access_config(token_id: str, token_secret: str, root_secret: str, readonly_token_id: str | None = None,
                  readonly_secret: str | None = None, grants: list[dict] | None = None,
                  values: dict[str, str] | None = None) -> dict:
    """users/roles/acl for server.py --access: the grants for ``token_id`` (privilege separation on),
    PVEAuditor on / for ``readonly_token_id``, and root@pam!simulator."""
    grants = load_grants() if grants is None else grants
    values = placeholder_values() if values is None else values
    userid, token_name = token_id.split("!", 1)
    users = {userid: {"tokens": {token_name: {"secret": token_secret, "privsep": 1}}},
             "root@pam": {"tokens": {"simulator": {"secret": root_secret, "privsep": 0}}}}
    roles, acl = {}, []
    for grant in grants:
        path = fill_path(grant["path"], values)
        role = grant_role_name(path)
        roles[role] = sorted(grant["privileges"])
        acl.append({"path": path, "roles": [role], "users": [userid], "tokens": [token_id], "propagate": 1})
    if readonly_token_id:
        ro_user, ro_name = readonly_token_id.split("!", 1)
        users[ro_user] = {"tokens": {ro_name: {"secret": readonly_secret, "privsep": 1}}}
        acl.append({"path": "/", "roles": ["PVEAuditor"], "users": [ro_user], "tokens": [readonly_token_id],
                    "propagate": 1})
    return {"users": users, "roles": roles, "acl": acl}


@dataclass
class Simulator:
    """A running simulated PVE API."""

    directory: str
    port: int = 0
    ca_path: str = ""
    wrong_ca_path: str = ""  # a valid CA that did not sign the server certificate
    log_file: str = ""
    token_id: str = "automation@pve!ansible"
    token_secret: str = field(default_factory=lambda: secrets.token_hex(16))
    readonly_token_id: str = "auditor@pve!readonly"
    readonly_token_secret: str = field(default_factory=lambda: secrets.token_hex(16))
    root_token_id: str = "root@pam!simulator"
    root_token_secret: str = field(default_factory=lambda: secrets.token_hex(16))
    grants: list | None = None  # None: _proxmox_api_access_grants (tests may start with a changed list)
    # download-url's "internet": URL -> a local file the simulated node serves it from (no network)
    downloads: dict[str, str] = field(default_factory=dict)
    proc: subprocess.Popen | None = None

    def start(self, fixture: str | None = None) -> "Simulator":
        os.makedirs(self.directory, exist_ok=True)
        self.ca_path, cert, key = make_certs(self.directory)
        other = os.path.join(self.directory, "other-ca")
        os.makedirs(other, exist_ok=True)
        self.wrong_ca_path = make_certs(other)[0]
        access = access_config(self.token_id, self.token_secret, self.root_token_secret, self.readonly_token_id,
                               self.readonly_token_secret, grants=self.grants)
        access_file = os.path.join(self.directory, "access.json")
        with open(os.open(access_file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), "w", encoding="utf-8") as fh:
            json.dump(access, fh)
        ready = os.path.join(self.directory, "port")
        if os.path.exists(ready):
            os.unlink(ready)  # a stale file from an earlier run would point at a dead port
        self.log_file = os.path.join(self.directory, "simulated-pve.log")
        cmd = [sys.executable, os.path.join(HERE, "server.py"), "--cert", cert, "--key", key,
               "--access", access_file, "--ready-file", ready, "--log-file", self.log_file]
        if fixture:
            cmd += ["--fixture", fixture]
        if self.downloads:
            downloads_file = os.path.join(self.directory, "downloads.json")
            with open(downloads_file, "w", encoding="utf-8") as fh:
                json.dump(self.downloads, fh)
            cmd += ["--downloads", downloads_file]
        self.proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL)  # noqa: S603 - fixed argv
        deadline = time.monotonic() + 30
        while not os.path.exists(ready):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"simulated PVE API did not start (rc={self.proc.poll()}); see {self.log_file}")
            time.sleep(0.05)
        with open(ready, encoding="utf-8") as fh:
            self.port = int(fh.read())
        # where a stand-in of a node's root tools (pveum) finds this API and its root token
        with open(os.open(os.path.join(self.directory, "root.json"), os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600),
                  "w", encoding="utf-8") as fh:
            json.dump({"host": "127.0.0.1", "port": self.port, "ca_path": self.ca_path,
                       "token_id": self.root_token_id, "token_secret": self.root_token_secret}, fh)
        return self

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(timeout=10)

    def env(self) -> dict[str, str]:
        """PROXMOX_* variables for a module run against this simulator."""
        return {"PROXMOX_HOST": "127.0.0.1", "PROXMOX_PORT": str(self.port), "PROXMOX_TOKEN_ID": self.token_id,
                "PROXMOX_TOKEN_SECRET": self.token_secret}

    def root_env(self) -> dict[str, str]:
        """PROXMOX_* variables with the root token (root@pam!simulator: every privilege)."""
        return dict(self.env(), PROXMOX_TOKEN_ID=self.root_token_id, PROXMOX_TOKEN_SECRET=self.root_token_secret)
