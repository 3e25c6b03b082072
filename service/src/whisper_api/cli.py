# SPDX-License-Identifier: GPL-3.0-or-later
"""``whisper-api``: read the settings from the environment and serve them with uvicorn."""

from __future__ import annotations

import argparse
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


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="whisper-api",
        description=f"OpenAI-compatible faster-whisper API. Configure it with {ENV_PREFIX}* environment variables "
        "(see --env-table).",
    )
    parser.add_argument("--version", action="version", version=__version__)
    parser.add_argument("--env-table", action="store_true", help="print the settings as a Markdown table and exit")
    parser.add_argument("--check", action="store_true", help="validate the settings, print them and exit")
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
        shown = settings.model_dump()
        shown["keys"] = f"<{len(settings.api_keys())} key(s)>"
        for k, v in shown.items():
            print(f"{ENV_PREFIX}{k.upper()}={'' if v is None else v}")
        return 0

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
