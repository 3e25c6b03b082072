# SPDX-License-Identifier: GPL-3.0-or-later
"""Every command a reader can copy out of the README, found by the same rules each time.

What counts as a command:
- each line of a ```sh block (comments dropped, backslash continuations joined);
- a whole ```python block, and a whole ```yaml block (a client configuration);
- an inline code span in prose or a table that starts with a command word (make, ansible-playbook,
  ansible-doc, ansible-vault, curl, lspci, lab/bin/lab, ...), or with `-` (a fragment such as
  `--tags ...` or `-e var=value` that the text adds to the command before it).

Not commands: blocks without a language (diagrams, the layout tree), and the first column of the
"Step of the homelab guide" table, which quotes the guide's own shell steps that the roles replace.

tests/readme/test_readme_static.py maps each command found here to the test that runs it, and fails
on a command that no test claims: a new README command without a test is a red build.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

COMMAND_WORDS = (
    "make", "ansible-playbook", "ansible-doc", "ansible-vault", "ansible-galaxy", "ansible",
    "curl", "lspci", "lab/bin/lab", "python", "python3", "pip", "molecule", "pytest", "git", "sudo",
    "apt", "apt-get", "systemctl", "journalctl", "nvidia-smi", "dmesg", "update-grub", "reboot",
    ".",
)
# Tables whose first column quotes the homelab guide (not our commands).
QUOTING_TABLE_HEADERS = ("Step of the homelab guide",)

_FENCE = re.compile(r"^```(\w*)\s*$")
_SPAN = re.compile(r"`([^`\n]+)`")


@dataclass(frozen=True)
class Command:
    kind: str       # "sh", "python", "yaml", "inline"
    text: str
    line: int       # 1-based line in the README where it starts

    def __str__(self) -> str:
        return f"README line {self.line} ({self.kind}): {self.text}"


def _is_command_span(span: str) -> bool:
    span = span.strip()
    if span.startswith("-"):
        return True
    first = span.split()[0] if span.split() else ""
    return first in COMMAND_WORDS


def _sh_lines(block: list[tuple[int, str]]) -> list[Command]:
    out: list[Command] = []
    pending, start = "", 0
    for lineno, raw in block:
        line = raw.rstrip()
        if not pending:
            start = lineno
        if line.endswith("\\"):
            pending += line[:-1].strip() + " "
            continue
        text = (pending + line.strip()).strip()
        pending = ""
        # a trailing comment ("make demo    # build the lab") is prose, not part of the command
        text = re.sub(r"\s+#\s.*$", "", text).strip()
        if text and not text.startswith("#"):
            out.append(Command("sh", text, start))
    return out


def extract(readme: Path) -> list[Command]:
    lines = readme.read_text(encoding="utf-8").splitlines()
    commands: list[Command] = []
    i = 0
    table_quotes_guide = False
    while i < len(lines):
        m = _FENCE.match(lines[i])
        if m:
            lang, start = m.group(1), i + 1
            j = i + 1
            while j < len(lines) and not lines[j].startswith("```"):
                j += 1
            body = [(k + 1, lines[k]) for k in range(start, j)]
            if lang in ("sh", "bash", "shell", "console"):
                commands.extend(_sh_lines(body))
            elif lang in ("python", "yaml", "yml"):
                kind = "yaml" if lang in ("yaml", "yml") else "python"
                commands.append(Command(kind, "\n".join(text for _lineno, text in body).strip() + "\n", start + 1))
            i = j + 1
            continue
        line = lines[i]
        if line.startswith("|"):
            cells = line.strip().strip("|").split("|")
            if any(h in cells[0] for h in QUOTING_TABLE_HEADERS):
                table_quotes_guide = True
            if table_quotes_guide:
                line = "|".join(cells[1:])
        else:
            table_quotes_guide = False
        for span in _SPAN.findall(line):
            if _is_command_span(span):
                commands.append(Command("inline", span.strip(), i + 1))
        i += 1
    return commands


def spans(readme: Path) -> list[tuple[int, str]]:
    """Every inline code span with its line (for the checks of variables and paths)."""
    out = []
    in_fence = False
    for n, line in enumerate(readme.read_text(encoding="utf-8").splitlines(), 1):
        if line.startswith("```"):
            in_fence = not in_fence
            continue
        if not in_fence:
            out.extend((n, s) for s in _SPAN.findall(line))
    return out
