# -*- coding: utf-8 -*-
# Copyright: homelab.gpu_passthrough contributors
# SPDX-License-Identifier: GPL-3.0-or-later
"""Pure logic to edit a Linux kernel command line without losing or duplicating anything.

No AnsibleModule in here: the functions take text and return text plus a list of changes, so
they are unit-tested directly.

Semantics (what ``edit_segments`` does):

* A command line is a list of *segments* (lists of tokens). A plain ``/etc/kernel/cmdline`` is
  one segment; ``/etc/default/grub`` is two: ``GRUB_CMDLINE_LINUX`` then
  ``GRUB_CMDLINE_LINUX_DEFAULT``, because GRUB concatenates them in that order.
* Tokens are split like the kernel does (``parse_args``/``next_arg``): on whitespace, with double
  quotes grouping. Everything from a bare ``--`` on belongs to init and is never touched.
* Keys compare like the kernel compares them: ``-`` and ``_`` are the same character.
* ``present`` args: a key already holding the wanted value is kept where it is; a key holding
  another value is replaced in place (the first occurrence); later occurrences of a managed key
  are removed, so each managed key appears exactly once; a missing key is appended to the target
  segment (before ``--``).
* Keys whose value is a comma list of options (``intel_iommu``, ``amd_iommu``, ``iommu``) merge:
  ``intel_iommu=on`` is satisfied by ``intel_iommu=on,sm_on``; ``intel_iommu=off,sm_on`` becomes
  ``intel_iommu=on,sm_on`` (the contrary option is dropped, the others kept).
* ``absent`` args: ``key`` removes every occurrence of the key, ``key=value`` only that exact one.
  An absent ``key=value`` whose key is also wanted (``intel_iommu=off`` next to ``intel_iommu=on``)
  is handled by the replacement above, so callers can pass a fixed list of contrary values.
"""
from __future__ import annotations

import re

# Keys whose value is a comma-separated list of independent options (kernel-parameters.txt).
OPTION_LIST_KEYS = frozenset(("intel_iommu", "amd_iommu", "iommu"))

# Option -> its contrary, for the merge of option-list keys.
CONTRARY_OPTIONS = {
    "on": "off",
    "off": "on",
    "pt": "nopt",
    "nopt": "pt",
    "force": "noforce",
    "noforce": "force",
}

_GRUB_ASSIGN_RE = r"^(?P<indent>[ \t]*)(?P<export>export[ \t]+)?{var}=(?P<raw>.*)$"
_GRUB_VAR_NAME_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


class CmdlineError(ValueError):
    """Input that cannot be edited safely; the message says what and how to fix it."""


# --------------------------------------------------------------------------------------------
# Tokens
# --------------------------------------------------------------------------------------------
def split_cmdline(text):
    """Split a kernel command line into tokens the way the kernel does.

    Double quotes group (``opt="a b"`` is one token, quotes kept). An unbalanced quote is an error.
    """
    tokens = []
    current = []
    in_quote = False
    started = False
    for char in text:
        if char == '"':
            in_quote = not in_quote
            current.append(char)
            started = True
        elif char.isspace() and not in_quote:
            if started:
                tokens.append("".join(current))
                current = []
                started = False
        else:
            current.append(char)
            started = True
    if in_quote:
        raise CmdlineError(
            "unbalanced double quote in kernel command line %r: close the quote by hand first" % text
        )
    if started:
        tokens.append("".join(current))
    return tokens


def join_cmdline(tokens):
    """Inverse of :func:`split_cmdline` for tokens it produced."""
    return " ".join(tokens)


def normalize_key(key):
    """Kernel parameter names treat ``-`` and ``_`` alike (kernel/params.c parameqn)."""
    return key.replace("-", "_")


def split_arg(token):
    """Return ``(key, value)`` of a token; ``value`` is None for a bare flag.

    Quotes around the whole token or around the value are not part of key/value.
    """
    bare = token
    if len(bare) >= 2 and bare.startswith('"') and bare.endswith('"'):
        bare = bare[1:-1]
    if "=" in bare:
        key, value = bare.split("=", 1)
        if len(value) >= 2 and value.startswith('"') and value.endswith('"'):
            value = value[1:-1]
        return key, value
    return bare, None


def arg_key(token):
    """Normalized key of a token (for comparisons)."""
    return normalize_key(split_arg(token)[0])


def validate_arg(arg, what="argument"):
    """Check one wanted argument; return it unchanged or raise CmdlineError."""
    if not isinstance(arg, str) or not arg:
        raise CmdlineError("empty kernel %s: give key or key=value, e.g. intel_iommu=on" % what)
    tokens = split_cmdline(arg)
    if len(tokens) != 1 or tokens[0] != arg:
        raise CmdlineError(
            "kernel %s %r is not a single token: give one key or key=value per list item" % (what, arg)
        )
    if arg == "--":
        raise CmdlineError("'--' separates init arguments and cannot be managed as a kernel %s" % what)
    key, dummy = split_arg(arg)
    if not key or key.startswith("="):
        raise CmdlineError("kernel %s %r has no key: give key or key=value" % (what, arg))
    return arg


# --------------------------------------------------------------------------------------------
# Editing
# --------------------------------------------------------------------------------------------
def _merge_options(existing_value, wanted_value):
    """Merge comma option lists; return the new value or None when ``existing`` already satisfies."""
    existing = [opt for opt in (existing_value or "").split(",") if opt]
    wanted = [opt for opt in wanted_value.split(",") if opt]
    contrary = {CONTRARY_OPTIONS[opt] for opt in wanted if opt in CONTRARY_OPTIONS}
    if all(opt in existing for opt in wanted) and not any(opt in contrary for opt in existing):
        return None
    kept = [opt for opt in existing if opt not in contrary and opt not in wanted]
    return ",".join(wanted + kept)


def _satisfies(token, wanted):
    """Return None when ``token`` already is ``wanted``, else the token that should replace it."""
    if token == wanted:
        return None
    key, value = split_arg(token)
    wkey, wvalue = split_arg(wanted)
    if normalize_key(wkey) in OPTION_LIST_KEYS and wvalue is not None and value is not None:
        merged = _merge_options(value, wvalue)
        if merged is None:
            return None
        return "%s=%s" % (wkey, merged)
    if value == wvalue:
        # Same key and value, spelled differently (dash vs underscore, quoting): keep as is.
        return None
    return wanted


def _matches_absent(token, absent_arg):
    key, value = split_arg(absent_arg)
    tkey, tvalue = split_arg(token)
    if normalize_key(key) != normalize_key(tkey):
        return False
    return value is None or value == tvalue


def edit_segments(segments, present=(), absent=(), target=-1):
    """Edit a command line made of ``segments`` (lists of tokens).

    :param segments: list of token lists, in the order the kernel will see them.
    :param present: args (``key`` or ``key=value``) that must appear exactly once.
    :param absent: args that must not appear (``key``: any value; ``key=value``: that one).
    :param target: index of the segment that receives new args.
    :returns: ``(new_segments, changes)``; ``changes`` is a list of dicts with ``action``
        (``added``, ``replaced``, ``removed``, ``deduplicated``), ``arg`` and, for
        ``replaced``, ``old``.
    """
    present = [validate_arg(arg) for arg in present]
    absent = [validate_arg(arg, "argument to remove") for arg in absent]
    seen = {}
    for arg in present:
        key = arg_key(arg)
        if key in seen:
            raise CmdlineError(
                "kernel argument key %r is wanted twice (%r and %r): keep one" % (key, seen[key], arg)
            )
        seen[key] = arg
    for arg in absent:
        key = arg_key(arg)
        if key in seen and (split_arg(arg)[1] is None or _satisfies(arg, seen[key]) is None):
            raise CmdlineError(
                "kernel argument %r is both wanted (%r) and to be removed: drop it from one list"
                % (arg, seen[key])
            )
    if not segments:
        raise CmdlineError("no command line segment to edit")
    target_index = target if target >= 0 else len(segments) + target
    if not 0 <= target_index < len(segments):
        raise CmdlineError("target segment %r out of range" % target)

    # Split every segment into the kernel part and the init part (from '--' on). Once a '--'
    # is seen, every later segment belongs to init too.
    heads = []
    tails = []
    init_started = False
    for tokens in segments:
        tokens = list(tokens)
        if init_started:
            heads.append([])
            tails.append(tokens)
            continue
        if "--" in tokens:
            cut = tokens.index("--")
            heads.append(tokens[:cut])
            tails.append(tokens[cut:])
            init_started = True
        else:
            heads.append(tokens)
            tails.append([])

    changes = []

    # absent first. A contrary value of a wanted key (absent intel_iommu=off, wanted
    # intel_iommu=on) is left to the wanted pass, which replaces it in place.
    for arg in absent:
        if arg_key(arg) in seen:
            continue
        for head in heads:
            for token in [t for t in head if _matches_absent(t, arg)]:
                head.remove(token)
                changes.append({"action": "removed", "arg": token})

    for wanted in present:
        key = arg_key(wanted)
        positions = [
            (seg, idx)
            for seg, head in enumerate(heads)
            for idx, token in enumerate(head)
            if arg_key(token) == key
        ]
        if not positions:
            heads[target_index].append(wanted)
            changes.append({"action": "added", "arg": wanted})
            continue
        first_seg, first_idx = positions[0]
        old = heads[first_seg][first_idx]
        replacement = _satisfies(old, wanted)
        if replacement is not None:
            heads[first_seg][first_idx] = replacement
            changes.append({"action": "replaced", "arg": replacement, "old": old})
        # Remove later duplicates, from the end so indexes stay valid.
        for seg, idx in reversed(positions[1:]):
            dup = heads[seg].pop(idx)
            changes.append({"action": "deduplicated", "arg": dup})

    return [head + tail for head, tail in zip(heads, tails)], changes


def edit_cmdline(text, present=(), absent=()):
    """Edit a one-line command line (``/etc/kernel/cmdline``, ``/proc/cmdline`` style).

    :returns: ``(new_text, changes)``; ``new_text`` has single spaces between tokens.
    """
    segments, changes = edit_segments([split_cmdline(text)], present, absent)
    return join_cmdline(segments[0]), changes


def count_arg(text, arg):
    """How many tokens of the kernel part of ``text`` satisfy ``arg`` (used to verify /proc/cmdline)."""
    tokens = split_cmdline(text)
    if "--" in tokens:
        tokens = tokens[: tokens.index("--")]
    key = arg_key(arg)
    return sum(1 for token in tokens if arg_key(token) == key and _satisfies(token, arg) is None)


def count_key(text, key):
    """How many tokens of the kernel part of ``text`` carry ``key`` (any value)."""
    tokens = split_cmdline(text)
    if "--" in tokens:
        tokens = tokens[: tokens.index("--")]
    wanted = normalize_key(split_arg(key)[0])
    return sum(1 for token in tokens if arg_key(token) == wanted)


# --------------------------------------------------------------------------------------------
# /etc/kernel/cmdline (systemd-boot via proxmox-boot-tool)
# --------------------------------------------------------------------------------------------
def edit_plain_file(content, present=(), absent=()):
    """Edit the content of ``/etc/kernel/cmdline``: the command line is its first line.

    Further lines are kept untouched (proxmox-boot-tool only reads the first line).
    :returns: ``(new_content, old_cmdline, new_cmdline, changes)``.
    """
    lines = content.split("\n")
    first = lines[0] if lines else ""
    new_first, changes = edit_cmdline(first, present, absent)
    if not changes:
        return content, first.strip(), first.strip(), changes
    lines[0] = new_first
    new_content = "\n".join(lines)
    if not new_content.endswith("\n"):
        new_content += "\n"
    return new_content, join_cmdline(split_cmdline(first)), new_first, changes


# --------------------------------------------------------------------------------------------
# /etc/default/grub
# --------------------------------------------------------------------------------------------
def _parse_shell_value(raw, variable, lineno):
    """Parse the right-hand side of ``VAR=...`` in a shell file.

    :returns: ``(value, quote, comment)`` where quote is ``'"'``, ``"'"`` or ``''`` and comment
        is a trailing ``# ...`` ('' when none).
    Only the forms GRUB files use are accepted; anything else is a clear error.
    """
    where = "%s on line %d" % (variable, lineno)
    raw = raw.rstrip()
    if raw.startswith('"'):
        end = raw.find('"', 1)
        if end < 0:
            raise CmdlineError("%s: unterminated double quote; fix the file by hand" % where)
        value = raw[1:end]
        rest = raw[end + 1:]
        quote = '"'
        if "\\" in value or "`" in value or "$(" in value:
            raise CmdlineError(
                "%s uses backslashes or command substitution (%s): this role only edits plain "
                "values; simplify the line by hand" % (where, raw)
            )
    elif raw.startswith("'"):
        end = raw.find("'", 1)
        if end < 0:
            raise CmdlineError("%s: unterminated single quote; fix the file by hand" % where)
        value = raw[1:end]
        rest = raw[end + 1:]
        quote = "'"
    else:
        match = re.match(r"^([^\s#'\"`\\;]*)(.*)$", raw)
        value, rest = match.group(1), match.group(2)
        quote = ""
    rest = rest.strip()
    if rest and not rest.startswith("#"):
        raise CmdlineError(
            "%s: unexpected text after the value (%r); put one plain assignment on the line"
            % (where, rest)
        )
    if re.search(r"\$(\{)?%s\b" % re.escape(variable), value):
        raise CmdlineError(
            "%s refers to itself (%s): its value depends on earlier lines; merge them into one "
            "plain assignment first" % (where, raw)
        )
    return value, quote, rest


def _render_shell_value(value, quote, variable):
    if quote == "'" and "'" not in value:
        return "'%s'" % value
    if '"' in value or "\\" in value or "`" in value:
        if "'" in value:
            raise CmdlineError(
                "cannot quote the new %s value %r safely for /etc/default/grub" % (variable, value)
            )
        return "'%s'" % value
    return '"%s"' % value


def find_grub_assignment(lines, variable):
    """Index of the last line assigning ``variable`` (the one the shell keeps), or None."""
    if not _GRUB_VAR_NAME_RE.match(variable):
        raise CmdlineError("%r is not a shell variable name" % variable)
    regex = re.compile(_GRUB_ASSIGN_RE.format(var=re.escape(variable)))
    found = None
    for index, line in enumerate(lines):
        if regex.match(line):
            found = index
    return found


def read_grub_value(content, variable):
    """Return the value of ``variable`` in an ``/etc/default/grub`` text ('' when unset)."""
    lines = content.split("\n")
    index = find_grub_assignment(lines, variable)
    if index is None:
        return ""
    regex = re.compile(_GRUB_ASSIGN_RE.format(var=re.escape(variable)))
    return _parse_shell_value(regex.match(lines[index]).group("raw"), variable, index + 1)[0]


def edit_grub_file(
    content,
    present=(),
    absent=(),
    variable="GRUB_CMDLINE_LINUX_DEFAULT",
    also_read=("GRUB_CMDLINE_LINUX",),
):
    """Edit ``/etc/default/grub`` text.

    The effective command line is ``also_read`` variables then ``variable`` (GRUB's order);
    contrary values are replaced where they are, new args go into ``variable``.

    :returns: ``(new_content, old_cmdline, new_cmdline, changes)`` where the cmdlines are the
        concatenation of all managed variables.
    """
    variables = [v for v in also_read if v != variable] + [variable]
    lines = content.split("\n")
    segments = []
    meta = []
    for var in variables:
        index = find_grub_assignment(lines, var)
        if index is None:
            segments.append([])
            meta.append((var, None, '"', None, ""))
            continue
        regex = re.compile(_GRUB_ASSIGN_RE.format(var=re.escape(var)))
        match = regex.match(lines[index])
        value, quote, comment = _parse_shell_value(match.group("raw"), var, index + 1)
        segments.append(split_cmdline(value))
        meta.append((var, index, quote, match, comment))

    old_cmdline = join_cmdline([t for seg in segments for t in seg])
    new_segments, changes = edit_segments(segments, present, absent, target=len(variables) - 1)
    if not changes:
        return content, old_cmdline, old_cmdline, changes

    appended = []
    for (var, index, quote, match, comment), old, new in zip(meta, segments, new_segments):
        if old == new:
            continue
        rendered = _render_shell_value(join_cmdline(new), quote, var)
        if index is None:
            appended.append("%s=%s" % (var, rendered))
            continue
        lines[index] = "%s%s%s=%s%s" % (
            match.group("indent"),
            match.group("export") or "",
            var,
            rendered,
            "  " + comment if comment else "",
        )
    if appended:
        # Keep a final newline: insert before a trailing empty string from split.
        if lines and lines[-1] == "":
            lines = lines[:-1] + appended + [""]
        else:
            lines = lines + appended
    new_content = "\n".join(lines)
    new_cmdline = join_cmdline([t for seg in new_segments for t in seg])
    return new_content, old_cmdline, new_cmdline, changes


def describe_changes(changes):
    """One human line per change, for module output and messages."""
    out = []
    for change in changes:
        if change["action"] == "replaced":
            out.append("replaced %s with %s" % (change["old"], change["arg"]))
        else:
            out.append("%s %s" % (change["action"], change["arg"]))
    return out
