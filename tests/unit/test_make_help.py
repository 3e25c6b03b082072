# SPDX-License-Identifier: GPL-3.0-or-later
"""`make help` is generated from the `## ` comments of the targets, and lists every public target.

Public: every target declared .PHONY in the Makefile or mk/*.mk. A new target without a description
fails here; a description on a target that no longer exists cannot appear (the list comes from the
target lines themselves)."""
from __future__ import annotations

import re
import subprocess
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
MAKEFILES = [REPO / "Makefile"] + sorted((REPO / "mk").glob("*.mk"))


def _phony_targets() -> set[str]:
    names = set()
    for path in MAKEFILES:
        for line in path.read_text(encoding="utf-8").splitlines():
            if line.startswith(".PHONY:"):
                names.update(line.split(":", 1)[1].split())
    return names


def _help() -> dict[str, str]:
    res = subprocess.run(["make", "-s", "--no-print-directory", "help"], cwd=REPO, capture_output=True,
                         text=True, check=True, timeout=60)
    listed = {}
    for line in res.stdout.splitlines()[1:]:
        m = re.match(r"^  make (\S+)\s+(\S.*)$", line)
        assert m, f"unexpected line in make help: {line!r}"
        listed[m.group(1)] = m.group(2)
    return listed


def test_every_public_target_is_listed_with_a_description():
    listed = _help()
    phony = _phony_targets()
    assert phony, "no .PHONY targets found: the Makefile layout changed"
    assert sorted(phony - set(listed)) == [], "targets without a '## description' on their rule line"
    assert sorted(set(listed) - phony) == [], "make help lists targets that are not declared .PHONY"
    assert all(len(d) > 10 for d in listed.values()), listed


def test_the_two_readme_commands_are_listed():
    listed = _help()
    assert {"demo", "test"} <= set(listed)
    assert "CI" in listed["test"]
