# SPDX-License-Identifier: GPL-3.0-or-later
"""``whisper-api``: read the settings from the environment and serve them with uvicorn."""

from __future__ import annotations

import argparse
import json
import logging
import sys

from pydantic import ValidationError

from . import __version__
from .settings import ENV_PREFIX, Settings, describe_env


def env_table() -> str:
    lines = ["| Variable | Default | Meaning |", "|---|---|---|"]
    for name, default, desc in describe_env():
        lines.append(f"| `{name}` | `{default}` | {desc} |" if default else f"| `{name}` | | {desc} |")
    return "\n".join(lines)


def check(settings: Settings, as_json: bool = False) -> int:
    """Print the settings (keys hidden), where each CUDA library was found and the device decision (the
    model is not loaded, so a CUDA failure at load or warm-up is not seen here). 1 when it fails."""
    from .engine import decide_device, probe_cuda

    shown = settings.model_dump(mode="json")
    shown["keys"] = f"<{len(settings.api_keys())} key(s)>"
    probe = probe_cuda(settings)
    decision = decide_device(settings, probe)
    device, compute_type = decision.attempts[0] if decision.attempts else ("none", "none")
    if as_json:
        print(json.dumps({
            "settings": {f"{ENV_PREFIX}{k.upper()}": v for k, v in shown.items()},
            "cuda_libraries": probe.libraries,
            "cuda_devices": probe.devices,
            "device_wanted": decision.wanted,
            "device": device,
            "compute_type": compute_type,
            "device_reason": decision.reason,
            "ok": not decision.failed,
        }, indent=2))
    else:
        for k, v in shown.items():
            print(f"{ENV_PREFIX}{k.upper()}={'' if v is None else v}")
        for soname, path in probe.libraries.items():
            print(f"{soname}: found: {path}" if path else f"{soname}: missing")
        print(f"cuda_devices: {probe.devices}")
        print(f"device_wanted: {decision.wanted}")
        print(f"device: {device}")
        print(f"compute_type: {compute_type}")
        print(f"device_reason: {decision.reason or 'none'}")
    if decision.failed:
        print(f"whisper-api: WHISPER_API_REQUIRE_GPU=true but CUDA cannot be used: {decision.reason}", file=sys.stderr)
        return 1
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="whisper-api",
        description=f"OpenAI-compatible faster-whisper API. Configure it with {ENV_PREFIX}* environment variables "
        "(see --env-table).",
    )
    parser.add_argument("--version", action="version", version=__version__)
    parser.add_argument("--env-table", action="store_true", help="print the settings as a Markdown table and exit")
    parser.add_argument("--check", action="store_true",
                        help="validate the settings, print them, the CUDA libraries and the device decision, and exit "
                        "(1 when REQUIRE_GPU is set and CUDA cannot run)")
    parser.add_argument("--json", action="store_true", help="with --check: print one JSON object instead")
    args = parser.parse_args(argv)
    if args.env_table:
        print(env_table())
        return 0
    try:
        settings = Settings()
    except ValidationError as exc:
        for err in exc.errors():
            field = ".".join(str(p) for p in err["loc"]) or "settings"
            var = f"{ENV_PREFIX}{field.upper()}" if err["loc"] else "settings"
            print(f"whisper-api: invalid {var}: {err['msg']}", file=sys.stderr)
        return 2
    if args.check:
        return check(settings, as_json=args.json)

    import uvicorn

    from .app import create_app

    logging.basicConfig(level=settings.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    uvicorn.run(
        create_app(settings),
        host=settings.host,
        port=settings.port,
        log_level=settings.log_level,
        ssl_certfile=str(settings.ssl_certfile) if settings.ssl_certfile else None,
        ssl_keyfile=str(settings.ssl_keyfile) if settings.ssl_keyfile else None,
        timeout_keep_alive=30,
        proxy_headers=False,
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
