# SPDX-License-Identifier: GPL-3.0-or-later
"""Start and stop the *simulated* PVE API for a test: a throw-away CA and server certificate
(generated now, for 127.0.0.1), random token secrets, a process listening on a free loopback port."""
from __future__ import annotations

import datetime
import ipaddress
import json
import os
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
    proc: subprocess.Popen | None = None

    def start(self, fixture: str | None = None) -> "Simulator":
        os.makedirs(self.directory, exist_ok=True)
        self.ca_path, cert, key = make_certs(self.directory)
        other = os.path.join(self.directory, "other-ca")
        os.makedirs(other, exist_ok=True)
        self.wrong_ca_path = make_certs(other)[0]
        tokens = {
            self.token_id: {"secret": self.token_secret, "privs": ["*"]},
            self.readonly_token_id: {"secret": self.readonly_token_secret,
                                     "privs": ["Sys.Audit", "Mapping.Audit", "VM.Audit"]},
        }
        tokens_file = os.path.join(self.directory, "tokens.json")
        with open(tokens_file, "w", encoding="utf-8") as fh:
            json.dump(tokens, fh)
        ready = os.path.join(self.directory, "port")
        if os.path.exists(ready):
            os.unlink(ready)  # a stale file from an earlier run would point at a dead port
        self.log_file = os.path.join(self.directory, "simulated-pve.log")
        cmd = [sys.executable, os.path.join(HERE, "server.py"), "--cert", cert, "--key", key,
               "--tokens", tokens_file, "--ready-file", ready, "--log-file", self.log_file]
        if fixture:
            cmd += ["--fixture", fixture]
        self.proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL)  # noqa: S603 - fixed argv
        deadline = time.monotonic() + 30
        while not os.path.exists(ready):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"simulated PVE API did not start (rc={self.proc.poll()}); see {self.log_file}")
            time.sleep(0.05)
        with open(ready, encoding="utf-8") as fh:
            self.port = int(fh.read())
        return self

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(timeout=10)

    def env(self) -> dict[str, str]:
        """PROXMOX_* variables for a module run against this simulator."""
        return {"PROXMOX_HOST": "127.0.0.1", "PROXMOX_PORT": str(self.port), "PROXMOX_TOKEN_ID": self.token_id,
                "PROXMOX_TOKEN_SECRET": self.token_secret}
