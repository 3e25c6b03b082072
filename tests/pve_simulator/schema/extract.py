# SPDX-License-Identifier: GPL-3.0-or-later
"""Regenerate pve-apidoc-subset.json (the schema the simulated PVE API validates against).

Source: shared/data/proxmox/pve-apidoc.json, the official API schema of pve-docs 9.1.3
(github.com/proxmox/pve-docs api-viewer/apidata.js), and the '_supplement' of
shared/data/proxmox/pve-api-subset.json (formats the schema only names). See SOURCE.md.

Each kept node is copied verbatim (info, path, text, leaf) without its children, so the
simulator validates against exactly what PVE publishes. Usage:
    python tests/pve_simulator/schema/extract.py ../shared/data/proxmox
    python tests/pve_simulator/schema/extract.py --check ../shared/data/proxmox   # is the copy current?
"""
from __future__ import annotations

import json
import os
import sys

PATHS = [
    "/version",
    "/nodes",
    "/cluster/nextid",
    "/cluster/mapping/pci",
    "/cluster/mapping/pci/{id}",
    "/nodes/{node}/hardware/pci",
    "/nodes/{node}/qemu",
    "/nodes/{node}/qemu/{vmid}",
    "/nodes/{node}/qemu/{vmid}/config",
    "/nodes/{node}/qemu/{vmid}/clone",
    "/nodes/{node}/qemu/{vmid}/template",
    "/nodes/{node}/qemu/{vmid}/status/current",
    "/nodes/{node}/qemu/{vmid}/status/start",
    "/nodes/{node}/qemu/{vmid}/status/stop",
    "/nodes/{node}/qemu/{vmid}/resize",
    "/nodes/{node}/storage",
    "/nodes/{node}/storage/{storage}/content",
    "/nodes/{node}/storage/{storage}/download-url",
    "/nodes/{node}/tasks/{upid}/status",
    "/nodes/{node}/tasks/{upid}/log",
    "/access/users",
    "/access/users/{userid}",
    "/access/users/{userid}/token",
    "/access/users/{userid}/token/{tokenid}",
    "/access/roles",
    "/access/roles/{roleid}",
    "/access/acl",
    "/access/permissions",
]


def main(src_dir: str, check: bool = False) -> int:
    with open(os.path.join(src_dir, "pve-apidoc.json"), encoding="utf-8") as fh:
        tree = json.load(fh)
    with open(os.path.join(src_dir, "pve-api-subset.json"), encoding="utf-8") as fh:
        subset = json.load(fh)
    index = {}

    def walk(node):
        index[node["path"]] = node
        for child in node.get("children") or []:
            walk(child)

    for top in tree:
        walk(top)
    out = {
        "_source": {
            "file": "shared/data/proxmox/pve-apidoc.json (pve-docs 9.1.3, api-viewer/apidata.js)",
            "provenance": subset["_source"],
            "how": "tests/pve_simulator/schema/extract.py: nodes copied verbatim minus children",
        },
        "endpoints": {p: {k: v for k, v in index[p].items() if k != "children"} for p in PATHS},
        "supplement": subset["_supplement"],
    }
    dest = os.path.join(os.path.dirname(os.path.abspath(__file__)), "pve-apidoc-subset.json")
    text = json.dumps(out, indent=1, sort_keys=True) + "\n"
    if check:
        with open(dest, encoding="utf-8") as fh:
            if fh.read() != text:
                print(f"{dest} differs from {src_dir}: regenerate it with {sys.argv[0]} {src_dir}")
                return 1
        print(f"{dest} matches {src_dir}")
        return 0
    with open(dest, "w", encoding="utf-8") as fh:
        fh.write(text)
    print(f"wrote {dest}: {len(PATHS)} endpoints")
    return 0


if __name__ == "__main__":
    args = [a for a in sys.argv[1:] if a != "--check"]
    sys.exit(main(args[0] if args else "../shared/data/proxmox", check="--check" in sys.argv[1:]))
