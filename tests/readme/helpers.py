# SPDX-License-Identifier: GPL-3.0-or-later
"""Shared by the README tests: paths, running a README command in bash, and answering prompts on a
pseudo-terminal (``--ask-vault-pass`` reads the password from the terminal, not from stdin)."""
from __future__ import annotations

import os
import pty
import re
import select
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import readme_commands  # noqa: E402  (sibling module, not a package)

REPO = Path(__file__).resolve().parents[2]
README = REPO / "README.md"
HOMELAB_README = REPO / "inventories" / "homelab" / "README.md"
# The READMEs whose commands are accounted for: the front page and the inventory README its
# Quick start sends a reader to.
READMES = (README, HOMELAB_README)
VENV_BIN = REPO / ".venv" / "bin"
SERVICE_PY = REPO / "service" / ".venv" / "bin" / "python"
# The homelab guide's example network. Never contacted: every command that names it is either run
# against the lab (address substituted) or only parsed. refuse_example_network() guards this.
EXAMPLE_NET = "192.168.20."
VAULT_EXAMPLE_PASSWORD = "homelab-example"   # inventories/homelab/README.md


def commands(readme: Path = README) -> list[readme_commands.Command]:
    return readme_commands.extract(readme)


def open_webui_rows(text: str) -> dict[str, str]:
    """The README's Open WebUI table: environment variable -> value (the value's code span, if any)."""
    rows = {}
    for line in text.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) == 3 and cells[1].startswith("`AUDIO_STT_"):
            value = re.search(r"`([^`]+)`", cells[2])
            rows[cells[1].strip("`")] = value.group(1) if value else cells[2]
    return rows


def env(**extra: str) -> dict[str, str]:
    e = dict(os.environ)
    e["PATH"] = f"{VENV_BIN}:{e.get('PATH', '')}"
    e["ANSIBLE_CONFIG"] = str(REPO / "ansible.cfg")
    e["ANSIBLE_NOCOLOR"] = "1"
    e["ANSIBLE_FORCE_COLOR"] = "0"
    e.update(extra)
    return e


def refuse_example_network(text: str) -> None:
    if EXAMPLE_NET in text:
        raise AssertionError(f"refusing to run a command that still names the example network {EXAMPLE_NET}x "
                             f"(this machine may reach only loopback and its own lab): {text!r}")


def bash(command: str, *, cwd: Path = REPO, timeout: int = 600, **extra_env: str) -> subprocess.CompletedProcess:
    """Run one README command line in bash, as a reader would paste it."""
    refuse_example_network(command)
    return subprocess.run(["bash", "-euo", "pipefail", "-c", command], cwd=cwd, env=env(**extra_env),
                          capture_output=True, text=True, timeout=timeout, check=False)


def run_pty(argv: list[str], answers: list[tuple[str, str]], *, cwd: Path = REPO, timeout: int = 300,
            extra_env: dict[str, str] | None = None) -> tuple[int, str]:
    """Run argv on a pseudo-terminal; when the output matches answers[i][0] (a regex), type
    answers[i][1]. Returns (exit status, everything printed)."""
    refuse_example_network(" ".join(argv))
    pid, fd = pty.fork()
    if pid == 0:  # child
        try:
            os.chdir(cwd)
            os.execvpe(argv[0], argv, env(**(extra_env or {})))
        finally:
            os._exit(127)
    out = b""
    pending = list(answers)
    deadline = time.monotonic() + timeout
    status = None
    while True:
        if time.monotonic() > deadline:
            os.kill(pid, 9)
            os.waitpid(pid, 0)
            raise AssertionError(f"{argv} ran past {timeout} s; output so far:\n{out.decode(errors='replace')}")
        ready = select.select([fd], [], [], 0.5)[0]
        if ready:
            try:
                chunk = os.read(fd, 4096)
            except OSError:  # EIO: the child closed the terminal
                chunk = b""
            if not chunk:
                break
            out += chunk
            if pending and re.search(pending[0][0], out.decode(errors="replace").splitlines()[-1] if out.strip() else ""):
                os.write(fd, pending.pop(0)[1].encode() + b"\n")
        else:
            done, st = os.waitpid(pid, os.WNOHANG)
            if done:
                status = st
                # drain what is left
                while select.select([fd], [], [], 0.2)[0]:
                    try:
                        chunk = os.read(fd, 4096)
                    except OSError:
                        chunk = b""
                    if not chunk:
                        break
                    out += chunk
                break
    os.close(fd)
    if status is None:
        status = os.waitpid(pid, 0)[1]
    text = out.decode(errors="replace").replace("\r\n", "\n")
    if pending:
        raise AssertionError(f"{argv}: never asked for {pending[0][0]!r}; output:\n{text}")
    return os.waitstatus_to_exitcode(status), text
