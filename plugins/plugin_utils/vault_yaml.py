# -*- coding: utf-8 -*-
# Copyright (c) homelab.gpu_passthrough contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Set top-level string variables in the plaintext of a vars file (an ansible-vault file once
decrypted), keeping everything else as it was: other variables, comments, order. Pure text logic,
no vault and no file access (the action plugin vault_vars does those)."""
from __future__ import annotations

import json
import re

import yaml


class VarsFileError(Exception):
    """The plaintext is not a YAML mapping of variables; the message says what to fix."""


def parse(text: str) -> dict:
    try:
        data = yaml.safe_load(text) if text.strip() else {}
    except yaml.YAMLError as exc:
        raise VarsFileError(f"the vars file is not valid YAML: {exc}") from exc
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise VarsFileError(f"the vars file holds a {type(data).__name__}, not a mapping of variables")
    return data


def _block(lines: list[str], key: str) -> tuple[int, int] | None:
    """[start, end) of the lines of top-level ``key`` (its line and the indented or blank ones after it)."""
    head = re.compile(r"^(?:%s|'%s'|\"%s\")\s*:(?:\s|$)" % ((re.escape(key),) * 3))
    for i, line in enumerate(lines):
        if head.match(line):
            end = i + 1
            while end < len(lines) and (lines[end].startswith((" ", "\t")) or not lines[end].strip()):
                end += 1
            while end > i + 1 and not lines[end - 1].strip():  # keep the blank lines that follow
                end -= 1
            return i, end
    return None


def set_vars(text: str, values: dict[str, str]) -> tuple[str, list[str]]:
    """Return (new text, names of the variables whose value changed). Unchanged values keep their text."""
    current = parse(text)
    changed = [k for k in values if current.get(k) != values[k]]
    if not changed:
        return text, []
    lines = text.splitlines()
    if not lines:
        lines = ["---"]
    for key in changed:
        new_line = f"{key}: {json.dumps(str(values[key]))}"
        span = _block(lines, key)
        if span is None:
            lines.append(new_line)
        else:
            lines[span[0]:span[1]] = [new_line]
    new_text = "\n".join(lines) + "\n"
    try:
        check = parse(new_text)
    except VarsFileError:
        check = {}
    wrong = [k for k in values if check.get(k) != values[k]]
    if wrong:  # a layout the line edit does not understand (flow mapping, anchors, ...)
        raise VarsFileError(f"could not set {wrong} without changing other variables; edit the file with "
                            "ansible-vault edit and put each of them on a line of its own")
    others_before = {k: v for k, v in current.items() if k not in values}
    others_after = {k: v for k, v in check.items() if k not in values}
    if others_before != others_after:
        raise VarsFileError("setting the variables would change others; edit the file with ansible-vault edit")
    return new_text, changed
