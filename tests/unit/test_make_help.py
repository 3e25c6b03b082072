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


def _make_vars() -> dict[str, list[str]]:
    res = subprocess.run(["make", "-pq", "help"], cwd=REPO, capture_output=True, text=True, check=False, timeout=60)
    found = {}
    for name in ("TEST_TARGETS", "POOL", "TEST_ORDER"):
        m = re.search(rf"^{name} :?= (.*)$", res.stdout, flags=re.M)
        assert m, f"{name} is not defined in the Makefile"
        found[name] = m.group(1).split()
    return found


def test_make_test_runs_every_test_target():
    """Each part that an mk/*.mk adds to TEST_TARGETS has its place in `make test`: in the pool, in the
    steps before it, or in the lab VM's lane (test-lab-vm runs test-vfio, then test-demo), so that no
    part runs on its own after the pool, and the lab VM lane holds exactly the two VM boots."""
    found = _make_vars()
    lane = (REPO / "Makefile").read_text(encoding="utf-8")
    lane_rule = re.search(r"^test-lab-vm:.*\n((?:\t.*\n)+)", lane, flags=re.M)
    assert lane_rule, "the Makefile has no test-lab-vm rule"
    in_lane = set(re.findall(r"\$\(MAKE\) --no-print-directory (test-[a-z-]+)", lane_rule.group(1)))
    assert in_lane == {"test-vfio", "test-demo"}, in_lane
    run = set(found["POOL"]) | set(found["TEST_ORDER"]) | in_lane
    missing = sorted(set(found["TEST_TARGETS"]) - run)
    assert not missing, f"TEST_TARGETS that make test never runs: {missing}"
    assert "test-lab-vm" in found["POOL"]
