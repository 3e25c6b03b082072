# SPDX-License-Identifier: GPL-3.0-or-later
"""A new user's side of the README, shared by the tests that play it (test_install.py, the persona in
test_readme_persona.py): a COPY of the checkout as a fresh clone has it (its tracked files and the
untracked ones git does not ignore, committed into a repository of its own; never the checkout
itself), the README's controller venv in it, a user's shell (HOME of its own, the copy's venv first,
no ANSIBLE_* of the tests), and the README's commands looked up by their first words."""
from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from helpers import README, REPO, commands, refuse_example_network

LIST_ONLY = ["--list-hosts", "--list-tasks"]
STAGES = ["host", "mapping", "vm", "driver", "whisper", "lb", "verify"]
DEV_TOOLS = ("ansible-lint", "molecule", "pytest", "yamllint", "hypothesis", "antsibull-docs", "antsibull-changelog")
NEW_PASSWORD = "my-own-vault-password"
REAL_PIP_CACHE = Path(os.environ.get("PIP_CACHE_DIR", Path.home() / ".cache" / "pip"))


def readme_command(readme: Path, prefix: str, kind: str = "sh") -> str:
    """The one command of that kind (a ```sh line by default) starting with prefix."""
    found = [c.text for c in commands(readme) if c.kind == kind and c.text.startswith(prefix)]
    assert len(found) == 1, f"{readme.name}: expected one command starting with {prefix!r}, found {found}"
    return found[0]


def user_env(copy: Path, home: Path, **extra: str) -> dict[str, str]:
    """A user's shell in the copy: the copy's venv first, no checkout venv, no ANSIBLE_* of the tests."""
    e = {k: v for k, v in os.environ.items() if not k.startswith(("ANSIBLE_", "VIRTUAL_ENV", "PYTEST"))}
    e["PATH"] = f"{copy / '.venv' / 'bin'}:/usr/local/bin:/usr/bin:/bin"
    e["HOME"] = str(home)
    e["PIP_CACHE_DIR"] = str(REAL_PIP_CACHE)
    e["ANSIBLE_NOCOLOR"] = "1"
    e.update(extra)
    return e


def sh(command: str, cwd: Path, env: dict[str, str], timeout: int = 900) -> subprocess.CompletedProcess:
    refuse_example_network(command)
    return subprocess.run(["bash", "-euo", "pipefail", "-c", command], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=timeout, check=False)


def new_home(root: Path, name: str) -> Path:
    home = root / name
    (home / ".ssh").mkdir(parents=True)
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(home / ".ssh" / "id_ed25519")],
                   check=True)
    return home


@pytest.fixture(scope="module")
def work(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("user")


@pytest.fixture(scope="module")
def copy(work) -> Path:
    """The checkout's files as a fresh clone has them, in a git repository of their own."""
    src = work / "gpu_passthrough"
    files = subprocess.run(["git", "ls-files", "-co", "--exclude-standard", "-z"], cwd=REPO, capture_output=True,
                           check=True).stdout.decode().split("\0")
    for name in filter(None, files):
        if (REPO / name).is_file() or (REPO / name).is_symlink():
            (src / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(REPO / name, src / name, follow_symlinks=False)
    git = ["git", "-c", "user.name=test", "-c", "user.email=test@example.invalid", "-c", "init.defaultBranch=main"]
    subprocess.run(git + ["init", "-q"], cwd=src, check=True)
    subprocess.run(git + ["add", "-A"], cwd=src, check=True)
    subprocess.run(git + ["commit", "-q", "-m", "copy of the checkout"], cwd=src, check=True)
    return src


@pytest.fixture(scope="module")
def controller(copy, work) -> Path:
    """README: `make setup-controller && . .venv/bin/activate`, verbatim, in the copy."""
    cmd = readme_command(README, "make setup-controller")
    res = sh(cmd + " && command -v ansible-playbook && python -m pip list --format=freeze",
             copy, user_env(copy, new_home(work, "home-setup")))
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]
    assert str(copy / ".venv" / "bin" / "ansible-playbook") in res.stdout, res.stdout
    (work / "pip-freeze.txt").write_text(res.stdout, encoding="utf-8")
    return copy
