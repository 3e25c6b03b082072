# SPDX-License-Identifier: GPL-3.0-or-later
"""A *simulated* Proxmox VE API for tests: HTTPS on 127.0.0.1 with PVEAPIToken authentication.

This is not Proxmox VE. It keeps state for the endpoints this collection uses and validates every
request's path, method and parameters against the official API schema (pve-docs 9.1.3, copied to
schema/pve-apidoc-subset.json, see schema/SOURCE.md) before any handler runs, so a client cannot pass
by talking to a lenient fake. It answers errors like PVE does:

* 400 ``Parameter verification failed.`` with ``{"data": null, "errors": {param: message}}``;
* 401 ``authentication failure`` for a missing/unknown token or a wrong secret;
* 403 ``Permission check failed (path, privilege)`` when the token lacks a privilege, with Proxmox VE's
  privilege model (access.py: users, roles, ACLs with propagation, tokens with privilege separation)
  and, besides the schema's ``permissions``, the checks qemu-server makes per request (qemu_perms.py:
  a privilege per config key, Mapping.Use for a mapped hostpci, Datastore.AllocateSpace, SDN.Use, ...);
* 500 with PVE's message for what PVE reports with a plain ``die``: an ``sshkeys`` line that
  ``ssh-keygen -l`` cannot read ("SSH public key validation error", checked with ssh-keygen as PVE
  does), unknown node (hostname lookup),
  unknown VM/mapping, digest mismatch (qemu-server's "checksum mismatch (file change by other user?)"
  for a VM, pve-common's "detected modified configuration ..." for a mapping), ``hostpciN: host=...``
  from anyone but root@pam;
* 501 ``Method 'GET /x' not implemented`` for a path/method the schema does not define.

Behaviour taken from PVE's sources (pve-manager PVE/API2/Cluster/Mapping/PCI.pm, pve-guest-common
PVE/Mapping/PCI.pm, qemu-server): creating or updating a mapping checks only the schema; the
entry is compared with the node's hardware (``assert_valid``) by ``GET /cluster/mapping/pci?check-node``
and when a VM using it starts ("PCI device mapping invalid (hardware probably changed)").
Worker tasks (create, clone, template, start, stop, config POST) report ``running`` on their first
status poll and ``stopped`` afterwards, so clients must really wait for them; a download-url task runs
for one poll per line of its log (GET .../log shows the lines written so far). download-url never
reaches the network: it serves a URL from the local file a test maps it to (``--downloads``).
"""
from __future__ import annotations

import argparse
import copy
import hashlib
import json
import logging
import os
import random
import re
import shutil
import ssl
import subprocess
import sys
import tempfile
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, unquote, urlsplit

if __package__ in (None, ""):
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    from pve_simulator import qemu_perms as Q  # noqa: E402
    from pve_simulator import validate as V  # noqa: E402
    from pve_simulator.access import SPECIAL_ROLES, AccessControl, AccessError, PermissionDenied, priv_list  # noqa: E402
else:
    from . import qemu_perms as Q
    from . import validate as V
    from .access import SPECIAL_ROLES, AccessControl, AccessError, PermissionDenied, priv_list

HERE = os.path.dirname(os.path.abspath(__file__))
SCHEMA_FILE = os.path.join(HERE, "schema", "pve-apidoc-subset.json")
FIXTURE_FILE = os.path.join(HERE, "fixtures", "cluster.json")
LOG = logging.getLogger("simulated-pve")

DISK_RE = re.compile(r"^(?:efidisk0|tpmstate0|(?:ide|sata|scsi|virtio)\d+)$")
NET_MODELS = {"e1000", "e1000-82540em", "e1000-82544gc", "e1000-82545em", "e1000e", "i82551", "i82557b",
              "i82559er", "ne2k_isa", "ne2k_pci", "pcnet", "rtl8139", "virtio", "vmxnet3"}


class ApiError(Exception):
    """An error answered the way PVE answers it."""

    def __init__(self, status: int, message: str, errors: dict[str, str] | None = None):
        super().__init__(message)
        self.status = status
        self.message = message
        self.errors = errors


def _die(message: str) -> ApiError:
    """PVE turns a plain ``die`` in an API handler into HTTP 500 with the message."""
    return ApiError(500, message)


def _sha1(text: str) -> str:
    return hashlib.sha1(text.encode("utf-8")).hexdigest()


def _size_bytes(text: str) -> int:
    """A drive's size= (PVE's disk size: K/M/G/T suffix, plain bytes without)."""
    found = re.fullmatch(r"(\d+(?:\.\d+)?)([KMGT])?", text)
    return int(float(found.group(1)) * 1024 ** (" KMGT".index(found.group(2) or " "))) if found else 0


def _slot(path: str) -> str:
    """The card a hostpci/map path names (``dddd:bb:dd``; a function's path names its card)."""
    path = path if path.count(":") == 2 else f"0000:{path}"
    return path.split(".", 1)[0].lower()


def parse_kv(value: str, default_key: str) -> dict[str, str]:
    """Split a property string into an ordered dict (first bare item -> default_key)."""
    res: dict[str, str] = {}
    for part in [p for p in value.split(",") if p]:
        if "=" in part:
            k, v = part.split("=", 1)
        else:
            k, v = default_key, part
        res[k] = v
    return res


class SimulatedCluster:
    """State of the simulated cluster: nodes and their PCI hardware, VMs, PCI mappings, tasks."""

    def __init__(self, fixture: dict[str, Any], access: AccessControl):
        self.lock = threading.RLock()
        self.version = fixture["version"]
        self.nodes = fixture["nodes"]
        self.vms: dict[int, dict[str, Any]] = {int(k): copy.deepcopy(v) for k, v in fixture.get("vms", {}).items()}
        self.mappings: dict[str, dict[str, Any]] = copy.deepcopy(fixture.get("mappings", {}))
        self.access = access
        self.tasks: dict[str, dict[str, Any]] = {}
        self.counter = 0x1000
        # download-url never reaches the network: a URL is "downloaded" from the local file the test maps
        # it to (--downloads); any other URL fails the task
        self.downloads: dict[str, str] = {}
        # files of file-based storages: (node, storage) -> volname (import/<file>) -> size, format, ctime
        self.volumes: dict[tuple[str, str], dict[str, dict[str, Any]]] = {}

    # ---- helpers -------------------------------------------------------------------------
    def mapping_cfg_text(self) -> str:
        out = []
        for mid in sorted(self.mappings):
            entry = self.mappings[mid]
            out.append(mid)
            for key in ("description", "mdev", "live-migration-capable"):
                if key in entry:
                    out.append(f"\t{key} {entry[key]}")
            out.extend(f"\tmap {m}" for m in entry.get("map", []))
            out.append("")
        return "\n".join(out)

    def mapping_digest(self) -> str:
        return _sha1(self.mapping_cfg_text())

    def vm_digest(self, vmid: int) -> str:
        conf = self.vms[vmid]["config"]
        return _sha1("\n".join(f"{k}: {conf[k]}" for k in sorted(conf)))

    def node_pci(self, node: str) -> list[dict[str, Any]]:
        """The node's /hardware/pci entries: from the fixture, or (``pci_command``) read live by
        running a command that prints them as JSON, as `make demo` does to report the lab VM's real
        sysfs (demo/pve_hardware_pci.py over SSH)."""
        spec = self.nodes[node]
        if "pci_command" not in spec:
            return spec["pci"]
        stdin_file = spec.get("pci_command_stdin")
        with open(stdin_file, "rb") if stdin_file else open(os.devnull, "rb") as stdin:
            proc = subprocess.run(spec["pci_command"], stdin=stdin, capture_output=True, timeout=120,  # noqa: S603
                                  check=False)
        if proc.returncode != 0:
            raise ApiError(500, f"simulated PVE: reading node {node}'s PCI devices failed: "
                                f"{proc.stderr.decode(errors='replace').strip()[-500:]}")
        return json.loads(proc.stdout)

    def pci_device(self, node: str, path: str) -> dict[str, Any] | None:
        for dev in self.node_pci(node):
            if dev["id"] == path:
                return dev
        return None

    def assert_valid(self, name: str, entry: dict[str, Any], node: str) -> None:
        """pve-guest-common PVE::Mapping::PCI::assert_valid against the node's hardware."""
        for idx, path in enumerate(entry.get("path", "").split(";")):
            if not re.search(r"\.[a-f0-9]$", path, re.I):
                path = f"{path}.0"
            info = self.pci_device(node, path if path.count(":") == 2 else f"0000:{path}")
            if info is None:
                raise _die(f"pci device '{path}' not found")
            correct = {"id": f"{info['vendor']}:{info['device']}", "iommugroup": info["iommugroup"]}
            if "subsystem_vendor" in info and "subsystem_device" in info:
                correct["subsystem-id"] = f"{info['subsystem_vendor']}:{info['subsystem_device']}"
            for prop in sorted(correct):
                if prop == "iommugroup" and idx > 0:
                    continue
                have = entry.get(prop)
                if have is None:
                    raise _die(f"no '{prop}' for device '{path}'")
                want = str(correct[prop]).replace("0x", "")
                if want != str(have).replace("0x", ""):
                    raise _die(f"'{prop}' does not match for '{name}' ({want} != {have})")

    def devices_in_use(self, node: str, exclude: int | None = None) -> set[str]:
        """PCI slots (dddd:bb:dd) that the running VMs on ``node`` hold (chosen when each started)."""
        return {slot for vmid, vm in self.vms.items()
                if vmid != exclude and vm["node"] == node and vm["status"] == "running"
                for slot in vm.get("pci_held", [])}

    def new_task(self, node: str, ttype: str, tid: str, user: str, error: str | None = None,
                 log: list[str] | None = None, on_success: Any = None) -> str:
        """A worker task. It is ``running`` until its status has been polled once per line of ``log``
        (at least once), then ``stopped`` with ``error`` or OK as exit status; each poll "writes" one
        more line of ``log`` (GET .../log). ``on_success`` runs when it stops without error."""
        self.counter += 1
        now = int(time.time())
        upid = f"UPID:{node}:{self.counter:08X}:{self.counter * 7:08X}:{now:08X}:{ttype}:{tid}:{user}:"
        self.tasks[upid] = {"node": node, "type": ttype, "id": tid, "user": user, "pid": self.counter,
                            "pstart": self.counter * 7, "starttime": now, "polls": 0,
                            "exitstatus": error or "OK", "log": list(log or []), "on_success": on_success}
        LOG.info("simulated PVE task %s -> %s", upid, error or "OK")
        return upid

    def task_stopped(self, task: dict[str, Any]) -> bool:
        return task["polls"] > max(1, len(task["log"]))

    def task_log(self, task: dict[str, Any]) -> list[str]:
        """The lines written so far; a stopped task ends with "TASK OK" or "TASK ERROR: <exit status>"
        (the form of a PVE task log's last line, as the simulator writes it)."""
        if not self.task_stopped(task):
            return task["log"][:task["polls"]]
        status = task["exitstatus"]
        return task["log"] + ["TASK OK" if status == "OK" else f"TASK ERROR: {status}"]

    def check_storage(self, node: str, storage: str) -> None:
        if storage not in self.nodes[node]["storage"]:
            raise _die(f"storage '{storage}' does not exist")

    def allocate_disks(self, node: str, vmid: int, params: dict[str, Any]) -> dict[str, Any]:
        """Turn ``STORAGE:SIZE`` / ``STORAGE:cloudinit`` into allocated volumes, like qemu-server."""
        out = dict(params)
        existing = " ".join(str(v) for v in self.vms.get(vmid, {}).get("config", {}).values())
        counter = 0
        for key in sorted(out):
            if not DISK_RE.match(key):
                continue
            kv = parse_kv(str(out[key]), "file")
            storage, _sep, vol = kv["file"].partition(":")
            if not vol or kv["file"] in ("none", "cdrom") or kv["file"].startswith("/"):
                continue
            if vol == "cloudinit":
                self.check_storage(node, storage)
                kv["file"] = f"{storage}:vm-{vmid}-cloudinit"
                kv["media"] = "cdrom"
            elif re.match(r"^\d+(?:\.\d+)?$", vol):
                self.check_storage(node, storage)
                while f"vm-{vmid}-disk-{counter}" in existing:
                    counter += 1
                kv["file"] = f"{storage}:vm-{vmid}-disk-{counter}"
                existing += f" vm-{vmid}-disk-{counter}"
                kv.pop("import-from", None)
                if key == "efidisk0":
                    kv["size"] = "4M" if kv.get("efitype") == "4m" else "528K"
                else:
                    kv["size"] = f"{vol}G" if vol != "0" else "2G"
            out[key] = ",".join([kv.pop("file")] + [f"{k}={v}" for k, v in kv.items()])
        for key in sorted(out):
            if re.match(r"^net\d+$", key):
                kv = parse_kv(str(out[key]), "model")
                model = kv.pop("model", None)
                mac = kv.pop("macaddr", None)
                for name in list(kv):
                    if name in NET_MODELS:
                        model, mac = name, kv.pop(name)
                mac = mac or "BC:24:11:%02X:%02X:%02X" % (vmid % 256, random.randint(0, 255), random.randint(0, 255))
                out[key] = ",".join([f"{model}={mac}"] + [f"{k}={v}" for k, v in sorted(kv.items())])
        return out

    @staticmethod
    def check_sshkeys(params: dict[str, Any]) -> None:
        """qemu-server (create_vm, update_vm_api) with pve-common PVE::Tools::validate_ssh_public_keys:
        each non-blank line of the URL-decoded value must be read by `ssh-keygen -l -f`."""
        if "sshkeys" not in params:
            return
        if shutil.which("ssh-keygen") is None:
            raise V.NotImplementedInSimulator("simulated PVE: sshkeys are checked with ssh-keygen like PVE does; "
                                              "install it (openssh-client)")
        for line in unquote(str(params["sshkeys"])).split("\n"):
            if not line.strip():
                continue
            with tempfile.NamedTemporaryFile("w", suffix=".pub", encoding="utf-8") as fh:
                fh.write(line)
                fh.flush()
                proc = subprocess.run(["ssh-keygen", "-l", "-f", fh.name], capture_output=True, timeout=30,  # noqa: S603,S607
                                      check=False)
            if proc.returncode != 0:
                raise _die("SSH public key validation error")

    def storage_content(self, node: str) -> dict[str, list[str]]:
        return {sid: spec.get("content", []) for sid, spec in self.nodes[node]["storage"].items()}


class Handler(BaseHTTPRequestHandler):
    """HTTP handler of the simulated PVE API (JSON format, /api2/json)."""

    server_version = "pve-api-daemon/3.0 (simulated)"
    protocol_version = "HTTP/1.1"

    # quiet default access log: our own logger records requests without headers
    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
        return

    @property
    def sim(self) -> SimulatedCluster:
        return self.server.sim  # type: ignore[attr-defined]

    def do_GET(self) -> None:
        self._handle("GET")

    def do_POST(self) -> None:
        self._handle("POST")

    def do_PUT(self) -> None:
        self._handle("PUT")

    def do_DELETE(self) -> None:
        self._handle("DELETE")

    def _send(self, status: int, body: dict[str, Any], reason: str | None = None) -> None:
        data = json.dumps(body).encode("utf-8")
        self.send_response(status, reason)
        self.send_header("Content-Type", "application/json;charset=UTF-8")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _authenticate(self) -> str:
        header = self.headers.get("Authorization", "")
        match = re.match(r"^PVEAPIToken=([^!=\s]+@[^!=\s]+)!([A-Za-z][A-Za-z0-9._-]*)[=:](\S+)$", header)
        if not match:
            raise ApiError(401, "authentication failure")
        token_id = f"{match.group(1)}!{match.group(2)}"
        if not self.sim.access.authenticate(token_id, match.group(3)):
            raise ApiError(401, "authentication failure")
        return token_id

    def _params(self, query: str) -> dict[str, Any]:
        pairs = parse_qsl(query, keep_blank_values=True)
        length = int(self.headers.get("Content-Length") or 0)
        if length:
            body = self.rfile.read(length).decode("utf-8")
            ctype = self.headers.get("Content-Type", "")
            if "json" in ctype:
                for k, v in json.loads(body).items():
                    for item in v if isinstance(v, list) else [v]:
                        # a JSON true/false passes PVE's boolean check (JSON::is_bool); as 1/0 it does here
                        pairs.append((k, str(int(item)) if isinstance(item, bool) else str(item)))
            else:
                pairs.extend(parse_qsl(body, keep_blank_values=True))
        params: dict[str, Any] = {}
        for key, value in pairs:
            if key in params:
                params[key] = params[key] + [value] if isinstance(params[key], list) else [params[key], value]
            else:
                params[key] = value
        return params

    def _handle(self, method: str) -> None:
        url = urlsplit(self.path)
        user = "-"
        try:
            if not url.path.startswith("/api2/json/"):
                raise ApiError(501, f"Unsupported format '{url.path.split('/')[2] if url.path.count('/') > 2 else ''}'")
            api_path = "/" + url.path[len("/api2/json/"):].strip("/")
            user = self._authenticate()
            node, path_params = self.server.router.match(api_path)  # type: ignore[attr-defined]
            if node is None or method not in node["info"]:
                raise ApiError(501, f"Method '{method} {api_path}' not implemented")
            info = node["info"][method]
            params = self._params(url.query)
            for key in path_params:
                if key in params:
                    raise ApiError(400, "Parameter verification failed.",
                                   {key: "duplicate parameter (path and request)"})
            params.update(path_params)
            try:
                params = V.validate(info.get("parameters", {}), params)
            except V.SchemaError as exc:
                raise ApiError(400, "Parameter verification failed.", exc.errors) from None
            self.sim.access.check_api2(info.get("permissions"), user, params)
            if info.get("proxyto") == "node" and params["node"] not in self.sim.nodes:
                name = params["node"]
                raise _die(f"hostname lookup '{name}' failed - failed to get address info for: "
                           f"{name}: Name or service not known")
            handler = getattr(self, "h_" + re.sub(r"[^a-z0-9]+", "_", f"{method} {node['path']}".lower()).strip("_"),
                              None)
            if handler is None:
                raise V.NotImplementedInSimulator(f"simulated PVE: {method} {node['path']} is in the schema but "
                                                  "not implemented by the simulator")
            with self.sim.lock:
                data = handler(params, user)
            LOG.info("simulated PVE %s %s by %s -> 200", method, api_path, user)
            self._send(200, {"data": data})
        except PermissionDenied as exc:
            LOG.info("simulated PVE %s %s by %s -> 403 %s", method, url.path, user, exc.message)
            self._send(403, {"data": None, "message": exc.message + "\n"}, exc.message)
        except Q.ParamError as exc:
            LOG.info("simulated PVE %s %s by %s -> 400 %s", method, url.path, user, json.dumps(exc.errors))
            self._send(400, {"data": None, "errors": exc.errors}, "Parameter verification failed.")
        except AccessError as exc:
            LOG.info("simulated PVE %s %s by %s -> 500 %s", method, url.path, user, exc)
            self._send(500, {"data": None, "message": f"{exc}\n"}, str(exc))
        except (V.NotImplementedInSimulator, NotImplementedError) as exc:
            LOG.error("simulated PVE %s %s -> 501 %s", method, url.path, exc)
            self._send(501, {"data": None, "message": str(exc)}, str(exc))
        except ApiError as exc:
            LOG.info("simulated PVE %s %s by %s -> %s %s %s", method, url.path, user, exc.status, exc.message,
                     json.dumps(exc.errors) if exc.errors else "")
            body: dict[str, Any] = {"data": None}
            if exc.errors:
                body["errors"] = exc.errors
            else:
                body["message"] = exc.message + "\n"
            self._send(exc.status, body, exc.message.replace("\n", " "))

    # ---- simple endpoints --------------------------------------------------------------------
    def h_get_version(self, params: dict[str, Any], user: str) -> Any:
        return self.sim.version

    def h_get_nodes(self, params: dict[str, Any], user: str) -> Any:
        return [{"node": n, "status": "online", "type": "node", "id": f"node/{n}"} for n in sorted(self.sim.nodes)]

    def h_get_cluster_nextid(self, params: dict[str, Any], user: str) -> Any:
        if "vmid" in params:
            if params["vmid"] in self.sim.vms:
                raise ApiError(400, "Parameter verification failed.", {"vmid": f"VM {params['vmid']} already exists"})
            return str(params["vmid"])
        vmid = 100
        while vmid in self.sim.vms:
            vmid += 1
        return str(vmid)

    def h_get_nodes_node_hardware_pci(self, params: dict[str, Any], user: str) -> Any:
        blacklist = [c for c in str(params.get("pci-class-blacklist", "05;06;0b")).split(";") if c]
        out = []
        for dev in self.sim.node_pci(params["node"]):
            cls = dev["class"].replace("0x", "")
            if any(cls.startswith(b) for b in blacklist):
                continue
            entry = dict(dev)
            if not params.get("verbose", 1):
                entry = {k: v for k, v in entry.items() if not k.endswith("_name")}
            out.append(entry)
        return out

    def h_get_nodes_node_tasks_upid_status(self, params: dict[str, Any], user: str) -> Any:
        task = self.sim.tasks.get(params["upid"])
        if task is None or task["node"] != params["node"]:
            raise _die("no such task")
        if task["user"] != user:  # pve-manager Tasks.pm: the owner, or Sys.Audit on /nodes/<node>
            self.sim.access.check(user, f"/nodes/{params['node']}", ["Sys.Audit"])
        task["polls"] += 1
        res = {k: task[k] for k in ("node", "type", "id", "user", "pid", "pstart", "starttime")}
        res["upid"] = params["upid"]
        if not self.sim.task_stopped(task):
            res["status"] = "running"
        else:
            if task["on_success"] is not None and task["exitstatus"] == "OK":
                task["on_success"]()
            task["on_success"] = None
            res["status"] = "stopped"
            res["exitstatus"] = task["exitstatus"]
        return res

    def h_get_nodes_node_tasks_upid_log(self, params: dict[str, Any], user: str) -> Any:
        """pve-manager Tasks.pm read_task_log: lines {n, t} from ``start`` (0-based), at most ``limit``."""
        task = self.sim.tasks.get(params["upid"])
        if task is None or task["node"] != params["node"]:
            raise _die("no such task")
        if task["user"] != user:
            self.sim.access.check(user, f"/nodes/{params['node']}", ["Sys.Audit"])
        if params.get("download"):
            raise V.NotImplementedInSimulator("simulated PVE: task log download is not implemented")
        start, limit = int(params.get("start", 0)), int(params.get("limit", 50))
        lines = self.sim.task_log(task)
        return [{"n": i + 1, "t": text} for i, text in enumerate(lines) if i >= start][:limit or None]

    # ---- storage content and download-url (pve-manager/pve-storage; the texts of the failures are the
    # simulator's own: shared/reference/pve has no source text of download_url) ------------------------
    def _storage(self, node: str, storage: str) -> dict[str, Any]:
        spec = self.sim.nodes[node]["storage"].get(storage)
        if spec is None:
            raise _die(f"storage '{storage}' does not exist")
        return spec

    def h_get_nodes_node_storage_storage_content(self, params: dict[str, Any], user: str) -> Any:
        """The storage's volumes (the schema checked Datastore.Audit or AllocateSpace on /storage/{storage}).
        Only the files download-url wrote are simulated (import/ and iso/ volumes)."""
        node, storage = params["node"], params["storage"]
        self._storage(node, storage)
        if "vmid" in params:
            raise V.NotImplementedInSimulator("simulated PVE: listing a VM's images is not implemented")
        out = []
        for volname, vol in sorted(self.sim.volumes.get((node, storage), {}).items()):
            if params.get("content") and params["content"] != vol["content"]:
                continue
            out.append({"volid": f"{storage}:{volname}", "content": vol["content"], "format": vol["format"],
                        "size": vol["size"], "ctime": vol["ctime"]})
        return out

    def h_post_nodes_node_storage_storage_download_url(self, params: dict[str, Any], user: str) -> Any:
        """download-url (the schema checked Datastore.AllocateTemplate on the storage and Sys.AccessNetwork
        on the node, or Sys.Audit and Sys.Modify on /): a worker task that "downloads" the URL from the
        local file the test gave for it (never the network), checks the checksum, and writes the file."""
        node, storage, content = params["node"], params["storage"], params["content"]
        spec = self._storage(node, storage)
        if spec.get("type", "dir") not in ("dir", "nfs", "cifs", "cephfs", "glusterfs", "btrfs"):
            raise _die(f"can't upload to storage type '{spec['type']}', not a file based storage!")
        if content not in spec.get("content", []):
            raise _die(f"storage '{storage}' is not configured for content-type '{content}'")
        if "compression" in params:
            raise V.NotImplementedInSimulator("simulated PVE: download-url compression is not implemented")
        filename = re.sub(r"[^-a-zA-Z0-9_.]", "_", params["filename"])  # "This will be normalized!"
        extensions = {"import": Q.IMPORT_EXT_RE, "iso": r"\.(iso|img)", "vztmpl": r"\.tar\.(gz|xz|zst|bz2)"}
        if not re.fullmatch(rf"[^/]+{extensions[content]}", filename, re.I):
            raise ApiError(400, "Parameter verification failed.", {"filename": "wrong file extension"})
        volname = f"{content}/{filename}"
        if volname in self.sim.volumes.get((node, storage), {}):
            raise _die(f"refusing to override existing file '{filename}'")
        path = f"{spec.get('path', '/var/lib/vz')}/{content if content != 'vztmpl' else 'template/cache'}/{filename}"
        log = [f"downloading {params['url']} to {path}"]
        source = self.sim.downloads.get(params["url"])
        if source is None:
            return self.sim.new_task(node, "download", storage, user, log=log,
                                     error="download failed: 404 Not Found (simulated: no local file for this URL)")
        with open(source, "rb") as fh:
            data = fh.read()
        total = len(data)
        log += [f"{total * pct // 100} of {total} bytes ({pct}%)" for pct in (25, 50, 75, 100)]
        if params.get("checksum"):
            got = hashlib.new(params["checksum-algorithm"], data).hexdigest()
            log.append(f"calculating checksum of {filename} ({params['checksum-algorithm']})")
            if got != params["checksum"].lower():
                return self.sim.new_task(node, "download", storage, user, log=log,
                                         error=f"checksum mismatch: got '{got}' != expect '{params['checksum']}'")
        log.append(f"download of '{params['url']}' to '{path}' finished")
        volume = {"content": content, "format": filename.rsplit(".", 1)[-1].lower(), "size": total,
                  "ctime": int(time.time())}
        files = self.sim.volumes.setdefault((node, storage), {})
        return self.sim.new_task(node, "download", storage, user, log=log,
                                 on_success=lambda: files.__setitem__(volname, volume))

    # ---- PCI mappings ------------------------------------------------------------------------
    def h_get_cluster_mapping_pci(self, params: dict[str, Any], user: str) -> Any:
        check_node = params.get("check-node")
        if check_node is not None and check_node not in self.sim.nodes:
            raise _die(f"hostname lookup '{check_node}' failed - failed to get address info for: "
                       f"{check_node}: Name or service not known")
        res = []
        for mid in sorted(self.sim.mappings):
            # "Only lists entries where you have 'Mapping.Modify', 'Mapping.Use' or 'Mapping.Audit'"
            visible = ["Mapping.Modify", "Mapping.Use", "Mapping.Audit"]
            if not self.sim.access.check_any(user, f"/mapping/pci/{mid}", visible, noerr=True):
                continue
            entry = copy.deepcopy(self.sim.mappings[mid])
            entry["id"] = mid
            entry["digest"] = self.sim.mapping_digest()
            if check_node is not None:
                entry["checks"] = []
                mine = []
                for raw in entry.get("map", []):
                    parsed = parse_kv(raw, "node")
                    if parsed.get("node") == check_node:
                        mine.append(parsed)
                if not mine:
                    entry["checks"].append({"severity": "warning", "message": f"No mapping for node {check_node}."})
                for parsed in mine:
                    try:
                        self.sim.assert_valid(mid, parsed, check_node)
                    except ApiError as exc:
                        entry["checks"].append({"severity": "error", "message": f"Invalid configuration: {exc.message}\n"})
            res.append(entry)
        return res

    def h_get_cluster_mapping_pci_id(self, params: dict[str, Any], user: str) -> Any:
        entry = self.sim.mappings.get(params["id"])
        if entry is None:
            raise _die(f"mapping '{params['id']}' not found")
        data = copy.deepcopy(entry)
        data["digest"] = self.sim.mapping_digest()
        return data

    def h_post_cluster_mapping_pci(self, params: dict[str, Any], user: str) -> Any:
        mid = params.pop("id")
        if mid in self.sim.mappings:
            raise _die(f"create hardware mapping failed: pci ID '{mid}' already defined")
        entry: dict[str, Any] = {"type": "pci"}
        entry.update(params)
        self.sim.mappings[mid] = entry
        return None

    def h_put_cluster_mapping_pci_id(self, params: dict[str, Any], user: str) -> Any:
        mid = params.pop("id")
        digest = params.pop("digest", None)
        delete = [d for d in re.split(r"[,; ]+", params.pop("delete", "")) if d]
        if digest is not None and digest != self.sim.mapping_digest():
            # pve-manager Mapping/PCI.pm: PVE::Tools::assert_if_modified inside lock_pci_config
            raise _die("update hardware mapping failed: detected modified configuration - "
                       "file changed by other user? Try again.")
        entry = self.sim.mappings.get(mid)
        if entry is None:
            raise _die(f"update hardware mapping failed: pci ID '{mid}' does not exist")
        for key in delete:
            if key in params:
                raise _die(f"update hardware mapping failed: cannot set and delete property '{key}' at the same time")
            if key == "map":
                raise _die("update hardware mapping failed: cannot delete required option 'map'")
            entry.pop(key, None)
        entry.update(params)
        return None

    def h_delete_cluster_mapping_pci_id(self, params: dict[str, Any], user: str) -> Any:
        self.sim.mappings.pop(params["id"], None)
        return None

    # ---- /access: users, tokens, roles, ACLs (pve-access-control API2/User.pm, Role.pm, ACL.pm) ---------
    def h_get_access_users(self, params: dict[str, Any], user: str) -> Any:
        ac = self.sim.access
        owner = user.split("!", 1)[0]
        out = []
        for userid in sorted(ac.users):
            # "restricted to users where you have 'User.Modify' or 'Sys.Audit' permissions on
            # '/access/groups' ... it always includes the current (authenticated) user"
            if userid != owner and not ac.check_any(user, "/access/groups", ["User.Modify", "Sys.Audit"], noerr=True):
                continue
            entry = {k: v for k, v in ac.users[userid].items() if k != "tokens"}
            entry["userid"] = userid
            if params.get("enabled") is not None and int(entry.get("enable", 1)) != int(params["enabled"]):
                continue
            if params.get("full"):
                entry["tokens"] = [self._token_info(name, tok) for name, tok in sorted(ac.users[userid]["tokens"].items())]
            out.append(entry)
        return out

    def h_get_access_users_userid(self, params: dict[str, Any], user: str) -> Any:
        entry = self._user(params["userid"])
        data = {k: v for k, v in entry.items() if k != "tokens"}
        data["tokens"] = {name: self._token_info(None, tok) for name, tok in sorted(entry["tokens"].items())}
        return data

    def h_post_access_users(self, params: dict[str, Any], user: str) -> Any:
        if params.get("groups"):
            raise V.NotImplementedInSimulator("simulated PVE: user groups are not implemented")
        userid = params.pop("userid")
        params.pop("password", None)  # no password database in the simulator
        self.sim.access.add_user(userid, **params)
        return None

    def _user(self, userid: str) -> dict[str, Any]:
        entry = self.sim.access.users.get(userid)
        if entry is None:
            raise _die(f"no such user ('{userid}')")
        return entry

    @staticmethod
    def _token_info(name: str | None, token: dict[str, Any]) -> dict[str, Any]:
        info = {k: v for k, v in token.items() if k != "secret"}
        if name is not None:
            info["tokenid"] = name
        return info

    def h_get_access_users_userid_token(self, params: dict[str, Any], user: str) -> Any:
        entry = self._user(params["userid"])
        return [self._token_info(name, tok) for name, tok in sorted(entry["tokens"].items())]

    def h_get_access_users_userid_token_tokenid(self, params: dict[str, Any], user: str) -> Any:
        token = self._user(params["userid"])["tokens"].get(params["tokenid"])
        if token is None:
            raise _die(f"no such token '{params['tokenid']}' for user '{params['userid']}'")
        return self._token_info(None, token)

    def h_post_access_users_userid_token_tokenid(self, params: dict[str, Any], user: str) -> Any:
        userid, name = params["userid"], params["tokenid"]
        self._user(userid)
        token = self.sim.access.add_token(userid, name, privsep=int(params.get("privsep", 1)),
                                          comment=params.get("comment"), expire=int(params.get("expire", 0)))
        return {"full-tokenid": f"{userid}!{name}", "info": self._token_info(None, token), "value": token["secret"]}

    def h_delete_access_users_userid_token_tokenid(self, params: dict[str, Any], user: str) -> Any:
        tokens = self._user(params["userid"])["tokens"]
        if params["tokenid"] not in tokens:
            raise _die(f"no such token '{params['tokenid']}' for user '{params['userid']}'")
        tokenid = f"{params['userid']}!{params['tokenid']}"
        del tokens[params["tokenid"]]
        for node in self.sim.access.acl.values():  # PVE removes the token's ACL entries with it
            node["tokens"].pop(tokenid, None)
        return None

    def h_get_access_roles(self, params: dict[str, Any], user: str) -> Any:
        return [{"roleid": rid, "privs": ",".join(sorted(privs)), "special": 1 if rid in SPECIAL_ROLES else 0}
                for rid, privs in sorted(self.sim.access.roles.items())]

    def h_get_access_roles_roleid(self, params: dict[str, Any], user: str) -> Any:
        privs = self.sim.access.roles.get(params["roleid"])
        if privs is None:
            raise _die(f"role '{params['roleid']}' does not exist")
        return {p: 1 for p in sorted(privs)}

    def h_post_access_roles(self, params: dict[str, Any], user: str) -> Any:
        self.sim.access.add_role(params["roleid"], priv_list(params.get("privs", "")))
        return None

    def h_put_access_roles_roleid(self, params: dict[str, Any], user: str) -> Any:
        self.sim.access.add_role(params["roleid"], priv_list(params.get("privs", "")), modify=True,
                                 append=bool(params.get("append")))
        return None

    def h_get_access_acl(self, params: dict[str, Any], user: str) -> Any:
        # "restricted to objects where you have rights to modify permissions"
        return [e for e in self.sim.access.acl_list() if self.sim.access.check_perm_modify(user, e["path"], noerr=True)]

    def h_put_access_acl(self, params: dict[str, Any], user: str) -> Any:
        if not (params.get("users") or params.get("tokens") or params.get("groups")):
            raise _die("either 'users', 'groups' or 'tokens' is required.")
        if params.get("groups"):
            raise V.NotImplementedInSimulator("simulated PVE: user groups are not implemented")
        self.sim.access.set_acl(params["path"], priv_list(params["roles"]), users=priv_list(params.get("users", "")),
                                tokens=priv_list(params.get("tokens", "")), propagate=int(params.get("propagate", 1)),
                                delete=bool(params.get("delete")))
        return None

    def h_get_access_permissions(self, params: dict[str, Any], user: str) -> Any:
        ac = self.sim.access
        target = params.get("userid") or user
        if target != user and target.split("!", 1)[0] != user:
            ac.check(user, "/access", ["Sys.Audit"])
        paths = {"/", "/access", "/access/groups", "/nodes", "/pool", "/sdn", "/storage", "/vms"} | set(ac.acl)
        if params.get("path"):
            paths = {params["path"]}
        out = {}
        for path in sorted(paths):
            privs = ac.permissions(target, path)
            if privs:
                out[path] = {p: 1 for p in sorted(privs)}
        return out

    # ---- QEMU VMs ------------------------------------------------------------------------------
    def _vm(self, node: str, vmid: int) -> dict[str, Any]:
        vm = self.sim.vms.get(vmid)
        if vm is None or vm["node"] != node:
            raise _die(f"Configuration file 'nodes/{node}/qemu-server/{vmid}.conf' does not exist")
        return vm

    def h_get_nodes_node_qemu(self, params: dict[str, Any], user: str) -> Any:
        return [{"vmid": vmid, "name": vm["config"].get("name", f"VM {vmid}"), "status": vm["status"],
                 "template": vm["config"].get("template", 0)}
                for vmid, vm in sorted(self.sim.vms.items()) if vm["node"] == params["node"]
                # "Only list VMs where you have VM.Audit permissions on /vms/<vmid>."
                and self.sim.access.check(user, f"/vms/{vmid}", ["VM.Audit"], noerr=True)]

    def h_post_nodes_node_qemu(self, params: dict[str, Any], user: str) -> Any:
        node, vmid = params.pop("node"), params.pop("vmid")
        start = params.pop("start", 0)
        for key in ("archive", "force", "unique", "live-restore", "bwlimit", "pool", "storage"):
            if key in params:
                raise V.NotImplementedInSimulator(f"simulated PVE: create option '{key}' not implemented")
        self.sim.check_sshkeys(params)
        ac = self.sim.access
        if not ac.check(user, f"/vms/{vmid}", ["VM.Allocate"], noerr=True):
            raise PermissionDenied()  # qemu-server create_vm: raise_perm_exc() without a path
        Q.refuse_usb(params)
        Q.check_storage_access(ac, user, vmid, params, self.sim.storage_content(node))
        Q.check_vm_modify_config_perm(ac, user, vmid, list(params))
        Q.check_serial_perm(ac, user, vmid, params)
        Q.check_create_hostpci_perm(ac, user, vmid, params)
        Q.check_bridge_access(ac, user, params)
        Q.check_cpu_model_access(ac, user, params)
        if vmid in self.sim.vms:
            raise _die(f"unable to create VM {vmid} - VM {vmid} already exists on node '{self.sim.vms[vmid]['node']}'")
        conf = self.sim.allocate_disks(node, vmid, params)
        conf.setdefault("smbios1", f"uuid={_sha1(str(vmid) + str(time.time()))[:8]}-0000-4000-8000-000000000000")
        conf.setdefault("vmgenid", "00000000-0000-4000-8000-%012x" % random.getrandbits(48))
        conf["meta"] = f"creation-qemu=9.2.0,ctime={int(time.time())}"
        self.sim.vms[vmid] = {"node": node, "status": "running" if start else "stopped", "config": conf}
        return self.sim.new_task(node, "qmcreate", str(vmid), user)

    def h_get_nodes_node_qemu_vmid(self, params: dict[str, Any], user: str) -> Any:
        self._vm(params["node"], params["vmid"])
        return [{"subdir": s} for s in ("config", "status", "clone", "template")]

    def h_get_nodes_node_qemu_vmid_config(self, params: dict[str, Any], user: str) -> Any:
        vm = self._vm(params["node"], params["vmid"])
        data = dict(vm["config"])
        data["digest"] = self.sim.vm_digest(params["vmid"])
        return data

    def _update_config(self, params: dict[str, Any], user: str, background: bool) -> Any:
        """qemu-server update_vm_api: PUT answers after the change, POST starts a worker task; the checks
        of the change itself (drives, hostpci, serial) run inside it, so for POST they fail the task."""
        node, vmid = params.pop("node"), params.pop("vmid")
        self.sim.check_sshkeys(params)  # update_vm_api checks them first
        digest = params.pop("digest", None)
        delete = [d for d in re.split(r"[,; ]+", params.pop("delete", "")) if d]
        for key in ("revert", "skiplock", "background_delay"):
            params.pop(key, None)
        for key in delete:
            if key in params:
                raise _die(f"cannot set and delete property '{key}' at the same time")
        ac = self.sim.access
        Q.refuse_usb(params)
        Q.check_vm_modify_config_perm(ac, user, vmid, delete)
        Q.check_vm_modify_config_perm(ac, user, vmid, list(params))
        Q.check_storage_access(ac, user, vmid, params, self.sim.storage_content(node))
        Q.check_bridge_access(ac, user, params)
        vm = self._vm(node, vmid)
        Q.check_cpu_model_access(ac, user, params, vm["config"])
        if digest and digest != self.sim.vm_digest(vmid):
            # qemu-server update_vm_api's own text (PVE::Tools::assert_if_modified is not used there)
            raise _die("checksum mismatch (file change by other user?)")
        if vm["config"].get("template") and any(DISK_RE.match(k) for k in params):
            raise _die("you can't change the disks of a template")

        def change() -> None:
            conf = vm["config"]
            for key in delete:
                old = conf.get(key)
                if old is not None and DISK_RE.match(key):
                    Q.check_drive_perms(ac, user, vmid, str(old))
                elif old is not None and re.match(r"^hostpci\d+$", key):
                    Q.check_hostpci_perm(ac, user, vmid, key, str(old))
            for key in sorted(params):
                if DISK_RE.match(key):
                    Q.check_drive_perms(ac, user, vmid, str(params[key]))
                elif re.match(r"^hostpci\d+$", key):
                    if conf.get(key) is not None:
                        Q.check_hostpci_perm(ac, user, vmid, key, str(conf[key]))
                    Q.check_hostpci_perm(ac, user, vmid, key, str(params[key]))
            Q.check_serial_perm(ac, user, vmid, params, old=conf)
            for key in delete:
                conf.pop(key, None)
            conf.update(self.sim.allocate_disks(node, vmid, params))

        if not background:
            change()
            return None
        try:
            change()
        except PermissionDenied as exc:
            return self.sim.new_task(node, "qmconfig", str(vmid), user, exc.message)
        except (ApiError, AccessError) as exc:
            return self.sim.new_task(node, "qmconfig", str(vmid), user, str(exc))
        return self.sim.new_task(node, "qmconfig", str(vmid), user)

    def h_put_nodes_node_qemu_vmid_config(self, params: dict[str, Any], user: str) -> Any:
        return self._update_config(params, user, background=False)

    def h_post_nodes_node_qemu_vmid_config(self, params: dict[str, Any], user: str) -> Any:
        return self._update_config(params, user, background=True)

    def h_post_nodes_node_qemu_vmid_clone(self, params: dict[str, Any], user: str) -> Any:
        node, vmid, newid = params["node"], params["vmid"], params["newid"]
        src = self._vm(node, vmid)
        for key in ("target", "snapname", "pool", "bwlimit"):
            if key in params:
                raise V.NotImplementedInSimulator(f"simulated PVE: clone option '{key}' not implemented")
        if newid in self.sim.vms:
            raise _die(f"unable to create VM {newid}: config file already exists")
        if not src["config"].get("template") and params.get("full") == 0:
            raise _die("Linked clone feature is not supported for drive 'scsi0'")
        # qemu-server clone_vm ($load_and_check, before the worker): storage, mappings, bridges
        ac = self.sim.access
        Q.check_storage_access_clone(ac, user, src["config"], params.get("storage"))
        Q.check_mapping_access(ac, user, src["config"])
        Q.check_bridge_access(ac, user, src["config"])
        conf = {}
        counter = 0
        for key, value in src["config"].items():
            if key in ("template", "meta", "vmgenid", "smbios1", "digest"):
                continue
            if DISK_RE.match(key):
                kv = parse_kv(str(value), "file")
                storage, _sep, vol = kv["file"].partition(":")
                if "cloudinit" in vol:
                    kv["file"] = f"{storage}:vm-{newid}-cloudinit"
                else:
                    kv["file"] = f"{params.get('storage', storage)}:vm-{newid}-disk-{counter}"
                    counter += 1
                value = ",".join([kv.pop("file")] + [f"{k}={v}" for k, v in kv.items()])
            if re.match(r"^net\d+$", key):
                value = re.sub(r"=([0-9A-F]{2}:){5}[0-9A-F]{2}", "", str(value), count=1)
            conf[key] = value
        if "name" in params:
            conf["name"] = params["name"]
        if "description" in params:
            conf["description"] = params["description"]
        conf = self.sim.allocate_disks(node, newid, conf)
        conf["smbios1"] = f"uuid={_sha1(str(newid))[:8]}-0000-4000-8000-000000000000"
        conf["vmgenid"] = "00000000-0000-4000-8000-%012x" % random.getrandbits(48)
        conf["meta"] = f"creation-qemu=9.2.0,ctime={int(time.time())}"
        self.sim.vms[newid] = {"node": node, "status": "stopped", "config": conf}
        return self.sim.new_task(node, "qmclone", str(vmid), user)

    def h_post_nodes_node_qemu_vmid_template(self, params: dict[str, Any], user: str) -> Any:
        node, vmid = params["node"], params["vmid"]
        vm = self._vm(node, vmid)
        if vm["status"] == "running":
            raise _die("you can't convert a running VM to a template")
        for key, value in list(vm["config"].items()):
            if DISK_RE.match(key):
                vm["config"][key] = str(value).replace(f"vm-{vmid}-disk-", f"base-{vmid}-disk-")
        vm["config"]["template"] = 1
        return self.sim.new_task(node, "qmtemplate", str(vmid), user)

    def h_get_nodes_node_qemu_vmid_status_current(self, params: dict[str, Any], user: str) -> Any:
        vm = self._vm(params["node"], params["vmid"])
        res = {"vmid": params["vmid"], "name": vm["config"].get("name"), "status": vm["status"],
               "qmpstatus": vm["status"], "uptime": 42 if vm["status"] == "running" else 0,
               "cpus": int(vm["config"].get("cores", 1)), "ha": {"managed": 0}}
        if vm["config"].get("template"):
            res["template"] = 1
        return res

    def h_post_nodes_node_qemu_vmid_status_start(self, params: dict[str, Any], user: str) -> Any:
        node, vmid = params["node"], params["vmid"]
        vm = self._vm(node, vmid)
        Q.check_mapping_access(self.sim.access, user, vm["config"])  # shared/reference/pve/05
        error = None
        try:
            if vm["config"].get("template"):
                raise _die("you can't start a vm if it's a template")
            if vm["status"] == "running":
                raise _die(f"VM {vmid} already running")
            held = self._check_start(node, vm["config"], vmid)
        except ApiError as exc:
            error = exc.message
        if error is None:
            vm["status"] = "running"
            vm["pci_held"] = held
        return self.sim.new_task(node, "qmstart", str(vmid), user, error)

    def _check_start(self, node: str, conf: dict[str, Any], vmid: int | None = None) -> list[str]:
        """What qemu-server checks about hostpci devices when the VM starts, and which device each
        mapped hostpciN gets: the mapping's entries for this node, their paths in order ("the first
        available will then be chosen on guest start", the map format's ``path``), skipping a device
        that another hostpciN of this VM or a running VM on the node already holds."""
        used = self.sim.devices_in_use(node, exclude=vmid)
        held: list[str] = []
        for key in sorted(conf, key=lambda k: (len(k), k)):
            if not re.match(r"^hostpci\d+$", key):
                continue
            dev = parse_kv(str(conf[key]), "host")
            if dev.get("pcie") == "1" and "q35" not in str(conf.get("machine", "")):
                raise _die("q35 machine model is not enabled")
            mid = dev.get("mapping")
            if mid is None:
                held.extend(_slot(p) for p in dev.get("host", "").split(";") if p)
                used.update(held)
                continue
            entry = self.sim.mappings.get(mid)
            mine = [parse_kv(m, "node") for m in (entry or {}).get("map", [])]
            mine = [m for m in mine if m.get("node") == node]
            if not mine:
                raise _die(f"PCI device mapping not found for '{mid}'")
            for m in mine:
                try:
                    self.sim.assert_valid(mid, m, node)
                except ApiError as exc:
                    raise _die(f"PCI device mapping invalid (hardware probably changed): {exc.message}") from None
            free = [p for m in mine for p in m.get("path", "").split(";") if _slot(p) not in used]
            if not free:
                # the simulator's wording (the reference gives the rule, not qemu-server's text)
                raise _die(f"simulated PVE: {key}: every device of mapping '{mid}' on node '{node}' is "
                           f"already in use ({', '.join(sorted(used))})")
            used.add(_slot(free[0]))
            held.append(_slot(free[0]))
        return held

    def h_post_nodes_node_qemu_vmid_status_stop(self, params: dict[str, Any], user: str) -> Any:
        vm = self._vm(params["node"], params["vmid"])
        vm["status"] = "stopped"
        return self.sim.new_task(params["node"], "qmstop", str(params["vmid"]), user)

    def h_put_nodes_node_qemu_vmid_resize(self, params: dict[str, Any], user: str) -> Any:
        """qemu-server resize_vm (the schema checked VM.Config.Disk on /vms/{vmid}): the disk must exist
        and hold a volume, Datastore.AllocateSpace on its storage, never smaller; a worker task."""
        node, vmid, disk = params["node"], params["vmid"], params["disk"]
        vm = self._vm(node, vmid)
        if params.get("digest") and params["digest"] != self.sim.vm_digest(vmid):
            raise _die("checksum mismatch (file change by other user?)")
        if disk not in vm["config"]:
            raise _die(f"disk '{disk}' does not exist")
        kv = parse_kv(str(vm["config"][disk]), "file")
        if kv.get("media") == "cdrom":
            raise _die("you can't resize a cdrom")
        storeid = kv["file"].partition(":")[0]
        self.sim.access.check(user, f"/storage/{storeid}", ["Datastore.AllocateSpace"])
        size = _size_bytes(kv.get("size", "0"))
        found = re.fullmatch(r"(\+)?(\d+(?:\.\d+)?)([KMGT])?", params["size"])
        newsize = float(found.group(2)) * 1024 ** (" KMGT".index(found.group(3) or " "))
        newsize = int(newsize + (size if found.group(1) else 0))
        if newsize < size:
            raise _die("shrinking disks is not supported")
        if newsize != size:
            kv["size"] = f"{newsize // 1024 ** 3}G" if newsize % 1024 ** 3 == 0 else str(newsize)
            vm["config"][disk] = ",".join([kv.pop("file")] + [f"{k}={v}" for k, v in kv.items()])
        return self.sim.new_task(node, "resize", str(vmid), user)

    def h_get_nodes_node_storage(self, params: dict[str, Any], user: str) -> Any:
        """pvesm's list: only storages the caller has Datastore.Audit or Datastore.AllocateSpace on."""
        wanted = [c for c in re.split(r"[,; ]+", params.get("content", "")) if c]
        out = []
        for sid, spec in sorted(self.sim.nodes[params["node"]]["storage"].items()):
            content = spec.get("content", [])
            if wanted and not set(wanted) & set(content):
                continue
            if params.get("storage") and params["storage"] != sid:
                continue
            if not self.sim.access.check_any(user, f"/storage/{sid}", ["Datastore.Audit", "Datastore.AllocateSpace"],
                                             noerr=True):
                continue
            out.append({"storage": sid, "type": spec.get("type", "dir"), "content": ",".join(sorted(content)),
                        "active": 1, "enabled": 1, "shared": 0,
                        "total": 500 * 1024 ** 3, "used": 100 * 1024 ** 3, "avail": 400 * 1024 ** 3})
        return out

    def h_delete_nodes_node_qemu_vmid(self, params: dict[str, Any], user: str) -> Any:
        """qemu-server's destroy_vm: dies on a running VM before any change (its "early tests"), else a
        worker task removes the VM, its disks and its config (the schema check did VM.Allocate)."""
        vmid = params["vmid"]
        vm = self._vm(params["node"], vmid)
        if str(vm["config"].get("protection", "0")) == "1":
            raise _die(f"can't remove VM {vmid} - protection mode enabled")
        if vm["status"] == "running":
            raise _die(f"VM {vmid} is running - destroy failed")
        del self.sim.vms[vmid]
        return self.sim.new_task(params["node"], "qmdestroy", str(vmid), user)


class Router:
    """Match a request path to a schema node (``{param}`` segments become path parameters)."""

    def __init__(self, endpoints: dict[str, Any]):
        self.routes = []
        for path, node in endpoints.items():
            regex = "^" + re.sub(r"\\\{([\w-]+)\\\}", lambda m: f"(?P<{m.group(1).replace('-', '_')}>[^/]+)",
                                 re.escape(path)) + "$"
            names = re.findall(r"\{([\w-]+)\}", path)
            self.routes.append((re.compile(regex), names, node))

    def match(self, path: str) -> tuple[dict[str, Any] | None, dict[str, str]]:
        for regex, names, node in self.routes:
            found = regex.match(path)
            if found:
                return node, {n: unquote(found.group(n.replace("-", "_"))) for n in names}
        return None, {}


def make_server(host: str, port: int, certfile: str, keyfile: str, fixture: dict[str, Any],
                access: dict[str, Any]) -> ThreadingHTTPServer:
    """Build the simulated PVE HTTPS server (not started)."""
    with open(SCHEMA_FILE, encoding="utf-8") as fh:
        schema = json.load(fh)
    server = ThreadingHTTPServer((host, port), Handler)
    server.daemon_threads = True
    server.sim = SimulatedCluster(fixture, AccessControl.from_config(access))  # type: ignore[attr-defined]
    server.router = Router(schema["endpoints"])  # type: ignore[attr-defined]
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(certfile, keyfile)
    server.socket = ctx.wrap_socket(server.socket, server_side=True)
    return server


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Simulated Proxmox VE API (tests only; not Proxmox VE)")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--cert", required=True)
    parser.add_argument("--key", required=True)
    parser.add_argument("--access", required=True,
                        help="JSON file: users (with their tokens: secret, privsep), roles, acl (see access.py)")
    parser.add_argument("--fixture", default=FIXTURE_FILE)
    parser.add_argument("--ready-file", required=True, help="written with the port once listening")
    parser.add_argument("--log-file")
    parser.add_argument("--downloads", help="JSON file: {url: local file} served by download-url (no network)")
    args = parser.parse_args(argv)
    logging.basicConfig(filename=args.log_file, level=logging.INFO,
                        format="%(asctime)s simulated-pve %(levelname)s %(message)s")
    with open(args.fixture, encoding="utf-8") as fh:
        fixture = json.load(fh)
    with open(args.access, encoding="utf-8") as fh:
        access = json.load(fh)
    server = make_server("127.0.0.1", args.port, args.cert, args.key, fixture, access)
    if args.downloads:
        with open(args.downloads, encoding="utf-8") as fh:
            server.sim.downloads = json.load(fh)  # type: ignore[attr-defined]
    port = server.server_address[1]
    tmp = args.ready_file + ".tmp"
    with open(tmp, "w", encoding="utf-8") as fh:
        fh.write(str(port))
    os.replace(tmp, args.ready_file)
    LOG.info("simulated PVE API listening on https://127.0.0.1:%s", port)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
