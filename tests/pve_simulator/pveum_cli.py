# SPDX-License-Identifier: GPL-3.0-or-later
"""A *simulated* `pveum` (Proxmox VE user manager CLI) for the tests: the real one runs only on a PVE
node. It takes the subcommands and options the role proxmox_api_access calls, with pveum's own syntax
(pve-docs pveum.1-synopsis), and turns each into the API call the real pveum makes (pveum is a CLI
over the same API methods), sent over HTTPS to the *simulated* PVE API with its root credentials:

  user list | user add <userid> | user token list|add|modify|remove <userid> [<tokenid>]
  role list | role add|modify <roleid> | acl list | acl modify|delete <path>
  options: --<name> <value> (the API parameter of the same name), --output-format json|json-pretty|text

So whatever it creates is real in the simulator: a token it adds authenticates API calls, and its
ACLs decide them. Environment (set by the tests): SIMULATED_PVE_ROOT, the root.json the simulator's
runner writes (host, port, CA, and the root token root@pam!simulator). Output in text format is a
plain listing, not pveum's table. Errors: the API's message on stderr, exit status 255.
"""
from __future__ import annotations

import json
import os
import ssl
import sys
import urllib.error
import urllib.parse
import urllib.request

FORMATS = ("json", "json-pretty", "text", "yaml")


def fail(message: str, code: int = 255) -> None:
    print(message, file=sys.stderr)
    sys.exit(code)


def parse(argv: list[str]) -> tuple[list[str], dict[str, str]]:
    positional: list[str] = []
    options: dict[str, str] = {}
    i = 0
    while i < len(argv):
        arg = argv[i]
        if arg.startswith("--") or (arg.startswith("-") and len(arg) > 1 and not arg[1].isdigit()):
            name = arg.lstrip("-")
            if "=" in name:
                name, value = name.split("=", 1)
            elif i + 1 < len(argv):
                value = argv[i + 1]
                i += 1
            else:
                fail(f"400 not enough arguments\npveum: option --{name} needs a value", 255)
            options[name] = value
        else:
            positional.append(arg)
        i += 1
    return positional, options


def call(method: str, path: str, params: dict[str, str] | None = None):
    root_file = os.environ.get("SIMULATED_PVE_ROOT", "")
    try:
        with open(root_file, encoding="utf-8") as fh:
            root = json.load(fh)
    except (OSError, ValueError) as exc:
        fail(f"simulated pveum: SIMULATED_PVE_ROOT must name the simulated PVE API's root.json ({exc})", 2)
    context = ssl.create_default_context(cafile=root["ca_path"])
    token_id, secret = root["token_id"], root["token_secret"]
    url = f"https://{root['host']}:{root['port']}/api2/json{path}"
    body = None
    if params and method in ("POST", "PUT"):
        body = urllib.parse.urlencode(params).encode("utf-8")
    elif params:
        url += "?" + urllib.parse.urlencode(params)
    request = urllib.request.Request(url, data=body, method=method,
                                     headers={"Authorization": f"PVEAPIToken={token_id}={secret}",
                                              "Content-Type": "application/x-www-form-urlencoded"})
    try:
        with urllib.request.urlopen(request, context=context, timeout=30) as response:  # noqa: S310 - loopback
            return json.loads(response.read() or b"{}").get("data")
    except urllib.error.HTTPError as exc:
        try:
            errors = json.loads(exc.read() or b"{}").get("errors") or {}
        except ValueError:
            errors = {}
        detail = "".join(f"\n{k}: {v}" for k, v in errors.items())
        fail(f"{exc.code} {exc.reason}{detail}")
    except urllib.error.URLError as exc:
        fail(f"simulated pveum: cannot reach the simulated PVE API: {exc.reason}", 2)


def show(data, fmt: str) -> None:
    if data is None:
        return
    if fmt == "json":
        print(json.dumps(data, separators=(",", ":")))
    elif fmt == "json-pretty":
        print(json.dumps(data, indent=4, sort_keys=True))
    elif isinstance(data, list):
        for item in data:
            print(" ".join(f"{k}={v}" for k, v in sorted(item.items())) if isinstance(item, dict) else item)
    elif isinstance(data, dict):
        for key, value in sorted(data.items()):
            print(f"{key}: {json.dumps(value) if isinstance(value, (dict, list)) else value}")
    else:
        print(data)


def quote(value: str) -> str:
    return urllib.parse.quote(value, safe="@!")


def need(positional: list[str], count: int, usage: str) -> None:
    if len(positional) != count:
        fail(f"400 wrong number of arguments\npveum {usage}")


def main(argv: list[str]) -> None:
    positional, options = parse(argv)
    fmt = options.pop("output-format", "text")
    if fmt not in FORMATS:
        fail(f"400 Parameter verification failed.\noutput-format: value '{fmt}' does not have a value in the enumeration '{', '.join(FORMATS)}'")
    words = positional[:3] if positional[:2] == ["user", "token"] else positional[:2]
    args = positional[len(words):]
    command = " ".join(words)
    if command == "user list":
        need(args, 0, "user list")
        show(call("GET", "/access/users", options), fmt)
    elif command == "user add":
        need(args, 1, "user add <userid> [OPTIONS]")
        show(call("POST", "/access/users", {"userid": args[0], **options}), fmt)
    elif command == "user token list":
        need(args, 1, "user token list <userid>")
        show(call("GET", f"/access/users/{quote(args[0])}/token"), fmt)
    elif command in ("user token add", "user token modify", "user token remove"):
        need(args, 2, f"{command} <userid> <tokenid> [OPTIONS]")
        method = {"add": "POST", "modify": "PUT", "remove": "DELETE"}[words[2]]
        show(call(method, f"/access/users/{quote(args[0])}/token/{quote(args[1])}", options), fmt)
    elif command == "role list":
        need(args, 0, "role list")
        show(call("GET", "/access/roles"), fmt)
    elif command == "role add":
        need(args, 1, "role add <roleid> [OPTIONS]")
        show(call("POST", "/access/roles", {"roleid": args[0], **options}), fmt)
    elif command == "role modify":
        need(args, 1, "role modify <roleid> [OPTIONS]")
        show(call("PUT", f"/access/roles/{quote(args[0])}", options), fmt)
    elif command == "acl list":
        need(args, 0, "acl list")
        show(call("GET", "/access/acl"), fmt)
    elif command in ("acl modify", "acl delete"):
        need(args, 1, f"{command} <path> --roles <string> [OPTIONS]")
        params = {"path": args[0], **options}
        if words[1] == "delete":
            params["delete"] = "1"
        show(call("PUT", "/access/acl", params), fmt)
    else:
        fail(f"simulated pveum: command '{' '.join(positional)}' is not simulated (see tests/pve_simulator/pveum_cli.py)", 2)


if __name__ == "__main__":
    main(sys.argv[1:])
