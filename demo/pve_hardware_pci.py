# SPDX-License-Identifier: GPL-3.0-or-later
"""Print a host's PCI devices the way Proxmox VE's GET /nodes/{node}/hardware/pci returns them.

PVE builds that answer from sysfs (PVE::SysFSTools::lspci reads /sys/bus/pci/devices/*): ids as
0x-prefixed hex, `iommugroup` -1 when the device has no group. `make demo` runs this script on the
lab VM over SSH each time the *simulated* PVE API is asked for the node's hardware, so the
simulated node reports the lab VM's real, current PCI devices and IOMMU groups.
Runs with the Python standard library only (it is piped to `python3 -` on the host).
"""
import json
import os

SYS = "/sys/bus/pci/devices"


def read(path, name):
    try:
        with open(os.path.join(path, name), encoding="ascii") as fh:
            return fh.read().strip()
    except OSError:
        return None


def main():
    out = []
    for addr in sorted(os.listdir(SYS)):
        path = os.path.join(SYS, addr)
        group = os.path.join(path, "iommu_group")
        entry = {
            "id": addr,
            "class": read(path, "class"),
            "vendor": read(path, "vendor"),
            "device": read(path, "device"),
            "iommugroup": int(os.path.basename(os.readlink(group))) if os.path.islink(group) else -1,
        }
        for key in ("subsystem_vendor", "subsystem_device"):
            value = read(path, key)
            if value:
                entry[key] = value
        out.append(entry)
    print(json.dumps(out))


main()
