# SPDX-License-Identifier: GPL-3.0-or-later
"""Parameter validation of the *simulated* Proxmox VE API.

Implements the checks of PVE's JSONSchema (pve-common src/PVE/JSONSchema.pm) against the official
schema nodes in schema/pve-apidoc-subset.json: required properties, additionalProperties, types
(booleans: a parameter is 1 or 0, as check_type wants; only inside a property string are
true/false/yes/no/on/off read first, as parse_property_string does; integers, numbers, arrays), minimum/maximum, enum,
pattern (anchored like PVE, Perl's ``(?^:`` removed), maxLength/minLength and ``format``, including
property-string formats (inline dicts in the schema, and the named ones that the schema only names:
pve-qm-hostpci, pve-vm-cpu-conf, pve-qm-ipconfig, pve-qm-boot). Error messages follow PVE's wording.
A named format the simulator does not know is refused loudly (never accepted silently).
"""
from __future__ import annotations

import ipaddress
import re
from typing import Any

# Index ranges of the "[n]" properties (qemu-server: $MAX_HOSTPCI_DEVICES, $MAX_NETS, ...).
# Those whose schema description states "(n is 0 to N)" are read from the schema itself.
INDEX_MAX = {"hostpci": 15, "net": 31, "ipconfig": 31, "numa": 7, "unused": 255, "virtiofs": 9, "usb": 13}

PCI_RE = r"[a-f0-9]{4,}:[a-f0-9]{2}:[a-f0-9]{2}(?:\.[a-f0-9])?"
_HOST_PCI_ID = r"(?:[a-f0-9]{4,}:)?[a-f0-9]{2}:[a-f0-9]{2}(?:\.[a-f0-9])?"
_HEX_ID = {"type": "string", "optional": 1, "pattern": r"^0x[0-9a-fA-F]{4}$"}
_BOOL_OPT = {"type": "boolean", "optional": 1}

# Named property-string formats the API schema only names (sources: qemu-server PCI.pm for
# pve-qm-hostpci, see the schema supplement; QemuServer/CPUConfig.pm; QemuServer.pm).
NAMED_PROPERTY_FORMATS: dict[str, dict[str, Any]] = {
    "pve-qm-hostpci": {
        "host": {"type": "string", "optional": 1, "default_key": 1,
                 "pattern": rf"{_HOST_PCI_ID}(?:;{_HOST_PCI_ID})*"},
        "mapping": {"type": "string", "optional": 1, "format": "pve-configid"},
        "pcie": _BOOL_OPT, "x-vga": _BOOL_OPT, "rombar": _BOOL_OPT, "legacy-igd": _BOOL_OPT,
        "romfile": {"type": "string", "optional": 1},
        "mdev": {"type": "string", "optional": 1},
        "driver": {"type": "string", "optional": 1, "enum": ["vfio", "keep"]},
        "vendor-id": _HEX_ID, "device-id": _HEX_ID, "sub-vendor-id": _HEX_ID, "sub-device-id": _HEX_ID,
    },
    "pve-vm-cpu-conf": {
        "cputype": {"type": "string", "optional": 1, "default_key": 1,
                    "pattern": r"(?:custom-)?[a-zA-Z0-9_.+-]+"},
        "flags": {"type": "string", "optional": 1, "pattern": r"[+-][a-zA-Z0-9_-]+(?:;[+-][a-zA-Z0-9_-]+)*"},
        "hidden": _BOOL_OPT,
        "hv-vendor-id": {"type": "string", "optional": 1, "pattern": r"[a-zA-Z0-9]{1,12}"},
        "phys-bits": {"type": "string", "optional": 1, "pattern": r"(?:[89]|[1-5][0-9]|6[0-4]|host)"},
        "guest-phys-bits": {"type": "integer", "optional": 1, "minimum": 32, "maximum": 64},
        "reported-model": {"type": "string", "optional": 1},
    },
    "pve-qm-ipconfig": {
        "ip": {"type": "string", "optional": 1, "format": "_ipv4-cidr-or-dhcp"},
        "gw": {"type": "string", "optional": 1, "format": "_ipv4"},
        "ip6": {"type": "string", "optional": 1, "format": "_ipv6-cidr-or-auto"},
        "gw6": {"type": "string", "optional": 1, "format": "_ipv6"},
    },
    "pve-qm-boot": {
        "legacy": {"type": "string", "optional": 1, "default_key": 1, "pattern": r"[acdn]{1,4}"},
        "order": {"type": "string", "optional": 1,
                  "pattern": r"(?:ide|sata|scsi|virtio|net|hostpci|usb)\d+(?:;(?:ide|sata|scsi|virtio|net|hostpci|usb)\d+)*"},
    },
}

# CPU models qemu-server accepts for cputype (QemuServer/CPUConfig.pm $cpu_vendor_list, abridged:
# the generic and x86-64 levels plus 'host'); custom-<name> models are user-defined.
CPU_MODELS = {"host", "max", "kvm32", "kvm64", "qemu32", "qemu64", "x86-64-v2", "x86-64-v2-AES",
              "x86-64-v3", "x86-64-v4", "Skylake-Server", "EPYC", "EPYC-v3", "Haswell", "Broadwell"}

_DNS_LABEL = r"[a-zA-Z0-9](?:[a-zA-Z0-9\-]*[a-zA-Z0-9])?"


class SchemaError(Exception):
    """Parameter verification failed: ``errors`` maps each parameter to PVE's message."""

    def __init__(self, errors: dict[str, str]):
        super().__init__("Parameter verification failed.")
        self.errors = errors


class NotImplementedInSimulator(Exception):
    """The simulated API meets something it cannot check: refuse instead of accepting it."""


def perl_pattern(pattern: str) -> str:
    """Turn a pattern from the schema (Perl syntax) into a Python regex anchored like PVE."""
    pattern = pattern.replace("(?^:", "(?:").replace("(?^i:", "(?i:")
    return rf"^(?:{pattern})$"


_CONTENT_TYPES = ("images", "rootdir", "vztmpl", "iso", "backup", "snippets", "import")


def _check_named_format(fmt: str, value: str) -> str | None:
    """Return an error string (PVE wording) or None for a plain named format."""
    if fmt == "pve-node":
        ok = re.match(rf"^{_DNS_LABEL}$", value) is not None
        return None if ok else "value does not look like a valid node name"
    if fmt == "pve-configid":
        return None if re.match(r"^[a-z][a-z0-9_-]+$", value, re.I) else f"invalid configuration ID '{value}'"
    if fmt == "pve-configid-list":
        for item in [x for x in re.split(r"[,; ]+", value) if x]:
            if not re.match(r"^[a-z][a-z0-9_-]+$", item, re.I):
                return f"invalid configuration ID '{item}'"
        return None
    if fmt == "pve-vmid":
        return None if re.match(r"^[1-9][0-9]{2,8}$", value) else "value does not look like a valid VM ID"
    if fmt in ("pve-storage-id",):
        ok = re.match(r"^[a-z][a-z0-9\-_.]*[a-z0-9]$", value, re.I)
        return None if ok else f"storage ID '{value}' contains illegal characters"
    if fmt == "pve-storage-content":
        # one content type (download-url's ``content``, the content listing's filter)
        return None if value in _CONTENT_TYPES else f"invalid content type '{value}'"
    if fmt == "pve-storage-content-list":
        # pve-storage verify_content: the dir plugin's types (which include all others) and 'import'
        for item in [x for x in re.split(r"[,;\s]+", value) if x]:
            if item not in _CONTENT_TYPES + ("none",):
                return f"invalid content type '{item}'"
        return None
    if fmt == "dns-name":
        ok = re.match(rf"^(?:{_DNS_LABEL}\.)*{_DNS_LABEL}$", value)
        return None if ok else "value does not look like a valid DNS name"
    if fmt == "urlencoded":
        ok = re.match(r"^[-%a-zA-Z0-9_.!~*'()]*$", value)
        return None if ok else f"invalid urlencoded string: {value}"
    if fmt == "string-list":
        return None
    if fmt in ("pve-volume-id-or-qm-path", "pve-volume-id-or-absolute-path", "pve-volume-id"):
        if value in ("none", "cdrom") and fmt == "pve-volume-id-or-qm-path":
            return None
        if value.startswith("/") or re.match(r"^[a-z][a-z0-9\-_.]*[a-z0-9]:.+$", value, re.I):
            return None
        return f"unable to parse volume ID '{value}'"
    if fmt == "pve-bridge-id":
        return None if re.match(r"^[-_.\w\d]+$", value) else f"invalid bridge ID '{value}'"
    if fmt == "mac-addr":
        ok = re.match(r"^[0-9a-f]{2}(?::[0-9a-f]{2}){5}$", value, re.I)
        if ok and int(value[:2], 16) & 1 == 0:
            return None
        return f"value '{value}' is not a valid unicast MAC address"
    if fmt == "disk-size":
        return None if re.match(r"^\d+(?:\.\d+)?[KMGT]?$", value) else f"unable to parse size '{value}'"
    if fmt == "pve-tag-list":
        ok = all(re.match(r"^[a-z0-9_][a-z0-9_\-+.]*$", t, re.I) for t in re.split(r"[,; ]+", value) if t)
        return None if ok else f"invalid tag list '{value}'"
    if fmt == "pve-poolid":
        return None if re.match(r"^[A-Za-z0-9_\-]+$", value) else f"invalid pool ID '{value}'"
    if fmt in ACCESS_FORMATS:
        for item in [x for x in re.split(r"[,;\s]+", value) if x] if fmt.endswith("-list") else [value]:
            err = ACCESS_FORMATS[fmt](item)
            if err:
                return err
        return None
    if fmt in ("_ipv4", "_ipv4-cidr-or-dhcp", "_ipv6", "_ipv6-cidr-or-auto"):
        return _check_ip(fmt, value)
    raise NotImplementedInSimulator(f"simulated PVE: format '{fmt}' is not implemented by the simulator")


def _userid_error(value: str) -> str | None:
    """pve-access-control PVE::Auth::Plugin verify_username."""
    if len(value) < 3:
        return f"user name '{value}' is too short"
    if len(value) > 64:
        return f"user name '{value}' is too long ({len(value)} > 64)"
    if not re.match(r"^[^\s:/]+@[A-Za-z][A-Za-z0-9\.\-_]+$", value):
        return f"value '{value}' does not look like a valid user name"
    return None


def _tokenid_error(value: str) -> str | None:
    """pve-access-control AccessControl.pm pve_verify_tokenid (full token id user@realm!name)."""
    user, sep, name = value.partition("!")
    if not sep or _userid_error(user) or not re.match(r"^[A-Za-z][A-Za-z0-9\.\-_]+$", name):
        return f"value '{value}' does not look like a valid token ID"
    return None


def _privname_error(value: str) -> str | None:
    from .access import VALID_PRIVS  # pylint: disable=import-outside-toplevel

    return None if value in VALID_PRIVS else f"invalid privilege '{value}'"


# the /access formats (pve-access-control AccessControl.pm register_format)
ACCESS_FORMATS = {
    "pve-userid": _userid_error,
    "pve-userid-list": _userid_error,
    "pve-tokenid-list": _tokenid_error,
    "pve-roleid": lambda v: None if re.match(r"^[A-Za-z0-9\.\-_]+$", v) else f"role name '{v}' contains invalid characters",
    "pve-roleid-list": lambda v: None if re.match(r"^[A-Za-z0-9\.\-_]+$", v) else f"role name '{v}' contains invalid characters",
    "pve-groupid-list": lambda v: None if re.match(r"^[A-Za-z0-9\.\-_]+$", v) else f"group name '{v}' contains invalid characters",
    "pve-priv-list": _privname_error,
    "email-opt": lambda v: None if v == "" or re.match(r"^[^\s@]+@[^\s@]+$", v) else f"value '{v}' does not look like a valid email address",
}


def _check_ip(fmt: str, value: str) -> str | None:
    try:
        if fmt == "_ipv4":
            ipaddress.IPv4Address(value)
        elif fmt == "_ipv6":
            ipaddress.IPv6Address(value)
        elif fmt == "_ipv4-cidr-or-dhcp":
            if value != "dhcp":
                if "/" not in value:
                    return f"value '{value}' is not a valid IPv4 address with CIDR mask"
                ipaddress.IPv4Interface(value)
        elif value not in ("dhcp", "auto"):
            if "/" not in value:
                return f"value '{value}' is not a valid IPv6 address with CIDR mask"
            ipaddress.IPv6Interface(value)
    except ValueError:
        return f"value '{value}' is not a valid IP address"
    return None


def parse_boolean(text: str) -> int | None:
    """pve-common JSONSchema.pm parse_boolean: 1/on/yes/true -> 1, 0/off/no/false -> 0, else None."""
    if re.match(r"^(?:1|on|yes|true)$", text, re.I):
        return 1
    if re.match(r"^(?:0|off|no|false)$", text, re.I):
        return 0
    return None


def check_scalar(schema: dict[str, Any], value: Any, in_property_string: bool = False) -> tuple[Any, str | None]:
    """Check one scalar against its schema; return (normalised value, error or None).

    Booleans follow pve-common JSONSchema.pm: check_type takes only '1' and '0' (a request's 'true',
    'yes' or Python's 'True' is refused); parse_property_string first turns a key's
    true/false/yes/no/on/off into 1/0 (``in_property_string``).
    """
    ptype = schema.get("type", "string")
    if isinstance(value, list):
        return value, "duplicate parameter (not an array)"
    sval = str(value)
    if ptype == "boolean":
        if in_property_string and parse_boolean(sval) is not None:
            sval = str(parse_boolean(sval))
        if sval in ("1", "0"):
            return int(sval), None
        return value, f"type check ('boolean') failed - got '{sval}'"
    if ptype == "integer":
        if not re.match(r"^-?\d+$", sval):
            return value, f"type check ('integer') failed - got '{sval}'"
        num: float = int(sval)
    elif ptype == "number":
        if not re.match(r"^-?\d+(?:\.\d+)?(?:[eE][+-]?\d+)?$", sval):
            return value, f"type check ('number') failed - got '{sval}'"
        num = float(sval)
    else:
        num = None  # type: ignore[assignment]
    if num is not None:
        if "minimum" in schema and num < float(schema["minimum"]):
            return value, f"value must have a minimum value of {schema['minimum']}"
        if "maximum" in schema and num > float(schema["maximum"]):
            return value, f"value must have a maximum value of {schema['maximum']}"
        return (int(sval) if ptype == "integer" else num), None
    if "maxLength" in schema and len(sval) > int(schema["maxLength"]):
        return value, f"value may only be {schema['maxLength']} characters long"
    if "minLength" in schema and len(sval) < int(schema["minLength"]):
        return value, f"value must be at least {schema['minLength']} characters long"
    if schema.get("enum") is not None and sval not in schema["enum"]:
        return value, f"value '{sval}' does not have a value in the enumeration '{', '.join(schema['enum'])}'"
    if "pattern" in schema and not re.match(perl_pattern(schema["pattern"]), sval):
        return value, "value does not match the regex pattern"
    fmt = schema.get("format")
    if isinstance(fmt, dict):
        try:
            parse_property_string(fmt, sval)
        except SchemaError as exc:
            return value, "invalid format - " + "; ".join(f"{k}: {v}" for k, v in exc.errors.items())
    elif isinstance(fmt, str):
        if fmt in NAMED_PROPERTY_FORMATS:
            try:
                parsed = parse_property_string(NAMED_PROPERTY_FORMATS[fmt], sval)
                _named_format_semantics(fmt, parsed)
            except SchemaError as exc:
                return value, "invalid format - " + "; ".join(f"{k}: {v}" for k, v in exc.errors.items())
        else:
            err = _check_named_format(fmt, sval)
            if err:
                return value, f"invalid format - {err}"
    return sval, None


def _named_format_semantics(fmt: str, parsed: dict[str, Any]) -> None:
    """Checks qemu-server does beyond the key schema."""
    if fmt == "pve-qm-hostpci":
        if "host" not in parsed and "mapping" not in parsed:
            raise SchemaError({"hostpci": "either 'host' or 'mapping' must be set."})
        if "host" in parsed and "mapping" in parsed:
            raise SchemaError({"hostpci": "'host' and 'mapping' cannot be set at the same time"})
    if fmt == "pve-vm-cpu-conf":
        cputype = parsed.get("cputype", "kvm64")
        if not cputype.startswith("custom-") and cputype not in CPU_MODELS:
            raise SchemaError({"cputype": f"Built-in cputype '{cputype}' is not defined (missing 'custom-' prefix?)"})


def parse_property_string(fmt: dict[str, Any], value: str) -> dict[str, Any]:
    """Parse ``k=v,k2=v2`` (with a default key and aliases) and check each key like PVE."""
    errors: dict[str, str] = {}
    res: dict[str, Any] = {}
    default_key = next((k for k, s in fmt.items() if s.get("default_key")), None)
    for part in value.split(","):
        if part == "":
            continue
        if "=" in part:
            key, val = part.split("=", 1)
        elif default_key is not None and default_key not in res:
            key, val = default_key, part
        else:
            raise SchemaError({"value": f"value without key, but schema does not define a default key: '{part}'"})
        spec = fmt.get(key)
        if spec is None:
            raise SchemaError({key: f"invalid key in comma-separated list property: {key}"})
        if "alias" in spec:
            if "keyAlias" in spec:  # e.g. net0 'virtio=MAC' means model=virtio,macaddr=MAC
                res[spec["keyAlias"]] = key
            key, spec = spec["alias"], fmt[spec["alias"]]
        if key in res:
            raise SchemaError({key: f"duplicate key in comma-separated list property: {key}"})
        norm, err = check_scalar(spec, val, in_property_string=True)
        if err:
            errors[key] = err
        res[key] = norm
    for key, spec in fmt.items():
        if "alias" in spec or spec.get("optional") or key in res:
            continue
        errors[key] = "property is missing and it is not optional"
    if errors:
        raise SchemaError(errors)
    return res


def _schema_for(properties: dict[str, Any], name: str) -> dict[str, Any] | None:
    if name in properties:
        return properties[name]
    match = re.match(r"^([a-z]+)(\d+)$", name)
    if not match or f"{match.group(1)}[n]" not in properties:
        return None
    base, idx = match.group(1), int(match.group(2))
    spec = properties[f"{base}[n]"]
    found = re.search(r"\(n is 0 to (\d+)", spec.get("description", ""))
    top = int(found.group(1)) if found else INDEX_MAX.get(base)
    if top is None:
        raise NotImplementedInSimulator(f"simulated PVE: index range of '{base}[n]' unknown")
    return spec if idx <= top else None


def validate(parameters: dict[str, Any], params: dict[str, Any]) -> dict[str, Any]:
    """Validate request ``params`` against an endpoint's ``parameters`` schema; return normalised values."""
    properties = parameters.get("properties", {})
    errors: dict[str, str] = {}
    out: dict[str, Any] = {}
    for name, value in params.items():
        spec = _schema_for(properties, name)
        if spec is None:
            if not parameters.get("additionalProperties", 1):
                errors[name] = "property is not defined in schema and the schema does not allow additional properties"
            else:
                out[name] = value
            continue
        if spec.get("type") == "array":
            items = value if isinstance(value, list) else [value]
            norm = []
            for item in items:
                nv, err = check_scalar(spec.get("items", {}), item)
                if err:
                    errors[name] = err
                    break
                norm.append(nv)
            out[name] = norm
            continue
        nv, err = check_scalar(spec, value)
        if err:
            errors[name] = err
        out[name] = nv
    for name, spec in properties.items():
        # "requires": the property needs another one (download-url's checksum and checksum-algorithm);
        # the message is the simulator's wording
        if name in params and isinstance(spec.get("requires"), str) and spec["requires"] not in params:
            errors.setdefault(spec["requires"], f"missing property - '{name}' requires this property")
        if "[n]" in name or spec.get("optional") or name in params:
            continue
        errors[name] = "property is missing and it is not optional"
    if errors:
        raise SchemaError(errors)
    return out
