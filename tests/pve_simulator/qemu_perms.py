# SPDX-License-Identifier: GPL-3.0-or-later
"""qemu-server's privilege checks for the *simulated* PVE API (create, config update, clone, start).

From qemu-server src/PVE/API2/Qemu.pm (shared/reference/pve/10 and 05): check_vm_modify_config_perm
(one VM.Config.* privilege per config key), the serial/hostpci checks (a mapped hostpci needs
Mapping.Use on /mapping/pci/<id> and VM.Config.HWType; host= only root@pam), check_storage_access
(Datastore.AllocateSpace on the storage of each new disk; import-from sources), check_storage_access_clone,
the drive checks of update_vm_api (cloud-init drive: VM.Config.Cloudinit and VM.Config.CDROM; CD-ROM:
VM.Config.CDROM; other disks: VM.Config.Disk), check_mapping_access; PVE::QemuServer::check_bridge_access
(SDN.Use on /sdn/zones/localnetwork/<bridge>[/<tag>]); pve-storage PVE::Storage::check_volume_access
and the directory plugin's parse_volname (``import/`` volumes end in .ova/.ovf/.qcow2/.raw/.vmdk).

Every function raises access.PermissionDenied (HTTP 403), access.AccessError (a ``die``: HTTP 500) or
ParamError (HTTP 400) like PVE. root@pam passes the per-key checks (qemu-server returns early for it).
"""
from __future__ import annotations

import re
from typing import Any

from .access import AccessControl, AccessError

# qemu-server API2/Qemu.pm (shared/reference/pve/10)
CPU_OPTIONS = {"cores", "cpu", "runningcpu", "cpulimit", "cpuunits", "numa", "smp", "sockets", "vcpus"}
MEMORY_OPTIONS = {"memory", "balloon", "shares", "allow-ksm"}
HWTYPE_OPTIONS = {"acpi", "hotplug", "kvm", "machine", "runningmachine", "scsihw", "smbios1", "tablet", "vga",
                  "watchdog", "audio0", "rng0"}
GENERAL_OPTIONS = {"agent", "autostart", "bios", "description", "keyboard", "localtime", "migrate_downtime",
                   "migrate_speed", "name", "onboot", "ostype", "protection", "reboot", "startdate", "startup", "tdf",
                   "template"}
VMPOWER_OPTIONS = {"freeze"}
DISK_OPTIONS = {"boot", "bootdisk", "vmstatestorage"}
CLOUDINIT_OPTIONS = {"cicustom", "cipassword", "citype", "ciuser", "ciupgrade", "nameserver", "searchdomain", "sshkeys"}

DRIVE_RE = re.compile(r"^(?:efidisk0|tpmstate0|(?:ide|sata|scsi|virtio)\d+)$")
NEW_DISK_RE = re.compile(r"^(([^/:\s]+):)?(\d+(\.\d+)?)$")
IMPORT_EXT_RE = r"\.(ova|ovf|qcow2|raw|vmdk)"


class ParamError(Exception):
    """raise_param_exc: HTTP 400 ``Parameter verification failed.`` with ``errors``."""

    def __init__(self, errors: dict[str, str]):
        super().__init__(str(errors))
        self.errors = errors


def parse_kv(value: str, default_key: str) -> dict[str, str]:
    res: dict[str, str] = {}
    for part in [p for p in str(value).split(",") if p]:
        k, sep, v = part.partition("=")
        if sep:
            res[k] = v
        else:
            res[default_key] = part
    return res


def split_volid(volid: str) -> tuple[str | None, str]:
    """PVE::Storage::parse_volume_id (noerr): ``storage:volname`` -> (storage, volname), else (None, volid)."""
    match = re.match(r"^([a-z][a-z0-9\-_.]*[a-z0-9]):(.+)$", volid, re.I)
    return (match.group(1), match.group(2)) if match else (None, volid)


def parse_volname(volname: str) -> tuple[str, int | None]:
    """The volume type and owner VM of a volume name (pve-storage Plugin.pm parse_volname, dir and LVM styles)."""
    if volname.startswith("import/"):
        if re.match(rf"^import/[^/]+{IMPORT_EXT_RE}$", volname) or re.match(r"^import/[^/]+\.ova/.+$", volname):
            return "import", None
        raise AccessError(f"unable to parse directory volume name '{volname}'")
    for vtype in ("iso", "vztmpl", "backup", "snippets"):
        if volname.startswith(vtype + "/"):
            return vtype, None
    match = re.match(r"^(?:(\d+)/)?(?:base|vm)-(\d+)-(?:disk-\d+|cloudinit)", volname)
    if match:
        return "images", int(match.group(2))
    raise AccessError(f"unable to parse volume name '{volname}'")


def is_cloudinit(drive: dict[str, str]) -> bool:
    """PVE::QemuServer::Drive::drive_is_cloudinit: the volume is a cloud-init image."""
    _storage, volname = split_volid(drive.get("file", ""))
    return volname == "cloudinit" or re.search(r"vm-\d+-cloudinit", volname) is not None


def is_cdrom(drive: dict[str, str], exclude_cloudinit: bool = False) -> bool:
    """PVE::QemuServer::Drive::drive_is_cdrom."""
    if exclude_cloudinit and is_cloudinit(drive):
        return False
    return drive.get("media") == "cdrom"


def check_vm_modify_config_perm(ac: AccessControl, authid: str, vmid: int, keys: list[str]) -> None:
    if authid == "root@pam":
        return
    for opt in sorted(keys):
        if DRIVE_RE.match(opt) or opt in ("cdrom", "tags") or re.match(r"^(?:unused|serial|usb|hostpci|virtiofs)\d+$", opt):
            continue  # value dependent, checked elsewhere
        if opt in CPU_OPTIONS or re.match(r"^numa\d+$", opt):
            ac.check_vm_perm(authid, vmid, ["VM.Config.CPU"])
        elif opt in MEMORY_OPTIONS:
            ac.check_vm_perm(authid, vmid, ["VM.Config.Memory"])
        elif opt in HWTYPE_OPTIONS:
            ac.check_vm_perm(authid, vmid, ["VM.Config.HWType"])
        elif opt in GENERAL_OPTIONS:
            ac.check_vm_perm(authid, vmid, ["VM.Config.Options"])
            if opt == "startup":  # changes host behaviour
                ac.check(authid, "/", ["Sys.Modify"])
        elif opt in VMPOWER_OPTIONS:
            ac.check_vm_perm(authid, vmid, ["VM.PowerMgmt"])
        elif opt in DISK_OPTIONS:
            ac.check_vm_perm(authid, vmid, ["VM.Config.Disk"])
        elif re.match(r"^net\d+$", opt) or opt == "running-nets-host-mtu":
            ac.check_vm_perm(authid, vmid, ["VM.Config.Network"])
        elif opt in CLOUDINIT_OPTIONS or re.match(r"^ipconfig\d+$", opt):
            ac.check_vm_perm(authid, vmid, ["VM.Config.Cloudinit", "VM.Config.Network"], any_of=True)
        elif opt == "vmstate":
            ac.check_vm_perm(authid, vmid, ["VM.Config.Disk", "VM.PowerMgmt"])
        else:
            raise AccessError(f"only root can set '{opt}' config")


def check_serial_perm(ac: AccessControl, authid: str, vmid: int, params: dict[str, Any],
                      old: dict[str, Any] | None = None) -> None:
    """create: check_vm_create_serial_perm; update: a socket may replace a socket (VM.Config.HWType)."""
    if authid == "root@pam":
        return
    for opt in sorted(params):
        if not re.match(r"^serial\d+$", opt):
            continue
        if params[opt] == "socket" and (old is None or old.get(opt, "socket") == "socket"):
            ac.check_vm_perm(authid, vmid, ["VM.Config.HWType"])
        elif old is None:
            raise AccessError(f"only root can set '{opt}' config for real devices")
        else:
            raise AccessError(f"only root can modify '{opt}' config for real devices")


def refuse_usb(params: dict[str, Any]) -> None:
    from .validate import NotImplementedInSimulator

    if any(re.match(r"^usb\d+$", k) for k in params):
        raise NotImplementedInSimulator("simulated PVE: usbN permission checks are not implemented")


def check_hostpci_perm(ac: AccessControl, authid: str, vmid: int, opt: str, value: str) -> None:
    if authid == "root@pam":
        return
    device = parse_kv(value, "host")
    if device.get("host"):
        raise AccessError(f"only root can set '{opt}' config for non-mapped devices")
    if device.get("mapping"):
        ac.check(authid, f"/mapping/pci/{device['mapping']}", ["Mapping.Use"])
        ac.check_vm_perm(authid, vmid, ["VM.Config.HWType"])
    else:
        raise AccessError("either 'host' or 'mapping' must be set.")
    if "romfile" in device:
        raise ParamError({opt: "only root@pam can set 'romfile' option"})


def check_create_hostpci_perm(ac: AccessControl, authid: str, vmid: int, params: dict[str, Any]) -> None:
    for opt in sorted(params):
        if re.match(r"^hostpci\d+$", opt):
            check_hostpci_perm(ac, authid, vmid, opt, str(params[opt]))


def check_bridge_access(ac: AccessControl, authid: str, conf: dict[str, Any]) -> None:
    """PVE::QemuServer::check_bridge_access -> PVE::GuestHelpers::check_vnet_access (local bridges:
    zone 'localnetwork'; a VLAN tag adds /<tag> to the path)."""
    if authid == "root@pam":
        return
    for opt in sorted(conf):
        if not re.match(r"^net\d+$", opt):
            continue
        net = parse_kv(str(conf[opt]), "model")
        bridge = net.get("bridge")
        if not bridge:
            continue
        path = f"/sdn/zones/localnetwork/{bridge}" + (f"/{net['tag']}" if net.get("tag") else "")
        ac.check(authid, path, ["SDN.Use"])


def check_cpu_model_access(ac: AccessControl, authid: str, new: dict[str, Any],
                           existing: dict[str, Any] | None = None) -> None:
    """A custom CPU model (custom-<name>) needs Sys.Audit on /nodes, unless it is unchanged."""
    if "cpu" not in new:
        return
    cputype = parse_kv(str(new["cpu"]), "cputype").get("cputype", "")
    if existing and existing.get("cpu") and parse_kv(str(existing["cpu"]), "cputype").get("cputype") == cputype:
        return
    if cputype.startswith("custom-"):
        ac.check(authid, "/nodes", ["Sys.Audit"])


def check_volume_access(ac: AccessControl, authid: str, vmid: int | None, volid: str) -> str | None:
    """pve-storage PVE::Storage::check_volume_access; returns the volume type."""
    sid, volname = split_volid(volid)
    if sid is None:
        if authid != "root@pam":
            raise AccessError("Only root can pass arbitrary filesystem paths.")
        return None
    vtype, owner = parse_volname(volname)
    if ac.check(authid, f"/storage/{sid}", ["Datastore.Allocate"], noerr=True):
        return vtype
    if vtype in ("iso", "vztmpl", "import"):
        # iso/vztmpl in pve-storage; import content is read the same way (an assumption of the simulator)
        ac.check_any(authid, f"/storage/{sid}", ["Datastore.AllocateSpace", "Datastore.Audit"])
    elif owner is not None and vmid is not None and owner == vmid:
        pass  # owner
    elif vtype == "backup" and owner is not None:
        ac.check(authid, f"/storage/{sid}", ["Datastore.AllocateSpace"])
        ac.check(authid, f"/vms/{owner}", ["VM.Backup"])
    elif vtype in ("images", "rootdir") and owner is not None:
        ac.check(authid, f"/storage/{sid}", ["Datastore.Audit"])
        ac.check(authid, f"/vms/{owner}", ["VM.Config.Disk"])
    else:
        raise AccessError(f"missing privileges to access {volid}")
    return vtype


def check_storage_access(ac: AccessControl, authid: str, vmid: int, settings: dict[str, Any],
                         storage_content: dict[str, list[str]], default_storage: str | None = None) -> None:
    """qemu-server $check_storage_access: each drive of ``settings`` (create and update)."""
    for opt in sorted(settings):
        if not DRIVE_RE.match(opt):
            continue
        drive = parse_kv(str(settings[opt]), "file")
        volid = drive.get("file", "")
        sid, volname = split_volid(volid)
        cdrom = is_cdrom(drive)
        if not volid or volid in ("none", "cloudinit") or volname == "cloudinit":
            pass  # nothing to check
        elif cdrom and volid == "cdrom":
            ac.check(authid, "/", ["Sys.Console"])
        elif not cdrom and NEW_DISK_RE.match(volid):
            storeid = NEW_DISK_RE.match(volid).group(2) or default_storage
            if not storeid:
                raise AccessError("no storage ID specified (and no default storage)")
            ac.check(authid, f"/storage/{storeid}", ["Datastore.AllocateSpace"])
            if storeid in storage_content and "images" not in storage_content[storeid]:
                raise ParamError({"storage": f"storage '{storeid}' does not support vm images"})
        else:
            vtype = check_volume_access(ac, authid, vmid, volid)
            if sid is not None and vtype not in ("images", "iso"):
                raise ParamError({opt: "content type needs to be 'images' or 'iso'"})
        source = drive.get("import-from")
        if source:
            src_sid, src_volname = split_volid(source)
            src_owner = None
            if src_sid is not None:  # a PVE-managed volume
                vtype, src_owner = parse_volname(src_volname)
                if vtype not in ("images", "import"):
                    raise ParamError({opt: f"{source} has wrong type '{vtype}' - not an image"})
            if src_owner is not None:
                ac.check(authid, f"/vms/{src_owner}", ["VM.Clone"])
            else:
                check_volume_access(ac, authid, vmid, source)
    if settings.get("vmstatestorage") is not None:
        ac.check(authid, f"/storage/{settings['vmstatestorage']}", ["Datastore.AllocateSpace"])


def check_storage_access_clone(ac: AccessControl, authid: str, conf: dict[str, Any], storage: str | None) -> None:
    """qemu-server $check_storage_access_clone: Datastore.AllocateSpace on the target of every disk."""
    for opt in sorted(conf):
        if not DRIVE_RE.match(opt):
            continue
        drive = parse_kv(str(conf[opt]), "file")
        volid = drive.get("file", "")
        if not volid or volid == "none":
            continue
        if is_cdrom(drive):
            if volid == "cdrom":
                ac.check(authid, "/", ["Sys.Console"])
            continue  # a CD-ROM image is simply allowed
        sid, _volname = split_volid(volid)
        ac.check(authid, f"/storage/{storage or sid}", ["Datastore.AllocateSpace"])
    if conf.get("vmstatestorage") is not None:
        ac.check(authid, f"/storage/{conf['vmstatestorage']}", ["Datastore.AllocateSpace"])


def check_mapping_access(ac: AccessControl, authid: str, conf: dict[str, Any]) -> None:
    """PVE::QemuServer::check_mapping_access (clone, start; shared/reference/pve/05)."""
    if authid == "root@pam":
        return
    for opt in sorted(conf):
        if not re.match(r"^hostpci\d+$", opt):
            continue
        device = parse_kv(str(conf[opt]), "host")
        if device.get("host"):
            raise AccessError(f"only root can set '{opt}' config for non-mapped devices")
        if device.get("mapping"):
            ac.check(authid, f"/mapping/pci/{device['mapping']}", ["Mapping.Use"])
        else:
            raise AccessError("either 'host' or 'mapping' must be set.")


def check_drive_perms(ac: AccessControl, authid: str, vmid: int, value: str) -> None:
    """update_vm_api $check_drive_perms (a drive set or deleted)."""
    drive = parse_kv(value, "file")
    if is_cloudinit(drive):
        ac.check_vm_perm(authid, vmid, ["VM.Config.Cloudinit", "VM.Config.CDROM"])
    elif is_cdrom(drive, exclude_cloudinit=True):
        ac.check_vm_perm(authid, vmid, ["VM.Config.CDROM"])
    else:
        ac.check_vm_perm(authid, vmid, ["VM.Config.Disk"])
