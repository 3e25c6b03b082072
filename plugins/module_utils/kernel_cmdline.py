# -*- coding: utf-8 -*-
# Copyright: homelab.gpu_passthrough contributors
# SPDX-License-Identifier: GPL-3.0-or-later
"""Pure logic to edit a Linux kernel command line without losing or duplicating anything.

No AnsibleModule in here: the functions take text and return text plus a list of changes, so
they are unit-tested directly. This file is the one home of "kernel command line token": every
module that reads ``/proc/cmdline`` splits it with :func:`split_cmdline`.

Semantics (what ``edit_segments`` does):

* A command line is a list of *segments* (lists of tokens), in the order the kernel sees them.
  A plain ``/etc/kernel/cmdline`` is one segment; a GRUB setup is one segment per literal piece of
  ``GRUB_CMDLINE_LINUX`` then of ``GRUB_CMDLINE_LINUX_DEFAULT`` (10_linux puts them on the
  ``linux`` line in that order), pieces that may come from ``/etc/default/grub.d/*.cfg`` too.
* Tokens are split like the kernel does (``parse_args``/``next_arg``): on whitespace, with double
  quotes grouping. Everything from a bare ``--`` on belongs to init and is never touched.
* Keys compare like the kernel compares them: ``-`` and ``_`` are the same character.
* ``present`` args: a key already holding the wanted value is kept where it is; a key holding
  another value is replaced in place (the first occurrence); later occurrences of a managed key
  are removed, so each managed key appears exactly once; a missing key is appended to the target
  segment (before ``--``).
* Option-list keys (:data:`OPTION_LISTS`) merge: ``intel_iommu=on`` is satisfied by
  ``intel_iommu=on,sm_on``; ``intel_iommu=off,sm_on`` becomes ``intel_iommu=on,sm_on``: the
  options contrary to a wanted one are dropped, the others kept.
* ``absent`` args: ``key`` removes every occurrence of the key, ``key=value`` only that value
  (for option-list keys: that option). An absent ``key=value`` whose key is also wanted
  (``iommu=off`` next to ``iommu=pt``) counts as one more contrary value of the wanted key: the
  wanted token replaces it in place and it is gone from the result.
"""
from __future__ import annotations

import re

# Keys whose value is a comma-separated list of options, each parsed on its own by the kernel
# (kernel-parameters.txt; x86 iommu_setup() loops "p += strcspn(p, ",")", intel_iommu_setup()
# and parse_amd_iommu_options() do the same), so "intel_iommu=on,sm_on" is two options and
# satisfies a wanted intel_iommu=on. For each option: the options that undo it. "off" is
# contrary to everything that needs the IOMMU: iommu=pt,off leaves the IOMMU off (no_iommu),
# which is why "iommu=off" + wanted "iommu=pt" must become "iommu=pt", not "iommu=pt,off".
# Every other key is single-valued: a different value is replaced, never merged.
OPTION_LISTS = {
    "intel_iommu": {
        "on": frozenset(("off",)),
        "off": frozenset(("on", "sm_on")),
        "sm_on": frozenset(("off", "sm_off")),
        "sm_off": frozenset(("sm_on",)),
    },
    "amd_iommu": {
        "on": frozenset(("off",)),
        "off": frozenset(("on", "force_enable")),
        "force_enable": frozenset(("off",)),
    },
    "iommu": {
        "pt": frozenset(("nopt", "off")),
        "nopt": frozenset(("pt",)),
        "force": frozenset(("noforce", "off")),
        "noforce": frozenset(("force",)),
        "off": frozenset(("pt", "force")),
    },
}
OPTION_LIST_KEYS = frozenset(OPTION_LISTS)

# Where new arguments go when the target variable is assigned nowhere (GRUB).
_NAME_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_ASSIGN_RE = re.compile(r"^([A-Za-z_][A-Za-z0-9_]*)=")
# Builtins that can set or drop a variable without an assignment word.
_SETTERS = frozenset(
    ("unset", "read", "getopts", "mapfile", "readarray", "printf", "declare", "typeset", "local",
     "readonly", "export")
)
_SOURCERS = frozenset((".", "source", "eval"))
_OPENERS = frozenset(("if", "while", "until", "for", "select", "case", "{", "("))
_CLOSERS = {"fi": "if", "done": ("while", "until", "for", "select"), "esac": "case", "}": "{", ")": "("}
_CONTINUERS = frozenset(("then", "do", "else", "elif"))
# Why an assignment inside a block is not what GRUB gets, by the block's opening word.
_BLOCK_REASONS = {
    "if": "runs only when its condition holds",
    "case": "runs only for the pattern that matches",
    "while": "is a loop, run any number of times",
    "until": "is a loop, run any number of times",
    "for": "is a loop, run any number of times",
    "select": "is a loop, run any number of times",
    "{": "is a group of commands",
    "(": "runs in a subshell, whose assignments are lost when it ends",
    "function": "is a function body, run only where the function is called",
}

NO_ROOT_MESSAGE = "No root= parameter in /etc/kernel/cmdline found!"


class CmdlineError(ValueError):
    """Input that cannot be edited safely; the message says what and how to fix it."""


# --------------------------------------------------------------------------------------------
# Tokens
# --------------------------------------------------------------------------------------------
def _token_spans(text):
    """``(start, end)`` of each token of ``text`` (see :func:`split_cmdline`)."""
    spans = []
    start = None
    in_quote = False
    for index, char in enumerate(text):
        if char == '"':
            in_quote = not in_quote
            if start is None:
                start = index
        elif char.isspace() and not in_quote:
            if start is not None:
                spans.append((start, index))
                start = None
        elif start is None:
            start = index
    if in_quote:
        raise CmdlineError(
            "unbalanced double quote in kernel command line %r: close the quote by hand first" % text
        )
    if start is not None:
        spans.append((start, len(text)))
    return spans


def split_cmdline(text):
    """Split a kernel command line into tokens the way the kernel does.

    Double quotes group (``opt="a b"`` is one token, quotes kept). An unbalanced quote is an error.
    """
    return [text[start:end] for start, end in _token_spans(text)]


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
def _options(value):
    return [opt for opt in (value or "").split(",") if opt]


def _merge_options(key, existing_value, wanted_value, removed=()):
    """Merge comma option lists; return the new value or None when ``existing`` already satisfies.

    ``removed``: further options that must go (the caller's absent values for this key).
    """
    table = OPTION_LISTS[key]
    existing = _options(existing_value)
    wanted = _options(wanted_value)
    contrary = set(removed)
    for opt in wanted:
        contrary |= table.get(opt, frozenset())
    if all(opt in existing for opt in wanted) and not any(opt in contrary for opt in existing):
        return None
    kept = [opt for opt in existing if opt not in contrary and opt not in wanted]
    return ",".join(wanted + kept)


def _satisfies(token, wanted, removed=()):
    """Return None when ``token`` already is ``wanted``, else the token that should replace it."""
    key, value = split_arg(token)
    wkey, wvalue = split_arg(wanted)
    nkey = normalize_key(wkey)
    if token == wanted:
        # Exactly the wanted token, even one whose own options contradict each other: keep it.
        return None
    if nkey in OPTION_LISTS and wvalue is not None and value is not None:
        merged = _merge_options(nkey, value, wvalue, removed)
        if merged is None:
            return None
        return "%s=%s" % (wkey, merged)
    if token == wanted or value == wvalue:
        # Same key and value, spelled differently (dash vs underscore, quoting): keep as is.
        return None
    return wanted


def _matches_absent(token, absent_arg):
    key, value = split_arg(absent_arg)
    tkey, tvalue = split_arg(token)
    if normalize_key(key) != normalize_key(tkey):
        return False
    if value is None or value == tvalue:
        return True
    return normalize_key(key) in OPTION_LISTS and value in _options(tvalue)


def _without_option(token, absent_arg):
    """``token`` minus the option ``absent_arg`` names (option-list keys), or None when empty."""
    tkey, tvalue = split_arg(token)
    value = split_arg(absent_arg)[1]
    if value is None or value == tvalue or normalize_key(tkey) not in OPTION_LISTS:
        return None
    rest = [opt for opt in _options(tvalue) if opt != value]
    return "%s=%s" % (tkey, ",".join(rest)) if rest else None


def _check_wanted(present, absent):
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
        if key in seen and (split_arg(arg)[1] is None or _satisfies(arg, seen[key]) is None
                            or _matches_absent(seen[key], arg)):
            raise CmdlineError(
                "kernel argument %r is both wanted (%r) and to be removed: drop it from one list"
                % (arg, seen[key])
            )
    return present, absent, seen


def plan_edit(segments, present=(), absent=(), target=-1):
    """Work out the edit of a command line made of ``segments`` (lists of tokens).

    :returns: ``(plans, changes)``: for each segment the new list of ``(index, token)``, where
        ``index`` is the position of the original token it keeps or replaces and None marks an
        added token; ``changes`` as in :func:`edit_segments`, each with the ``segment`` index.
    """
    present, absent, seen = _check_wanted(present, absent)
    if not segments:
        raise CmdlineError("no command line segment to edit")
    target_index = target if target >= 0 else len(segments) + target
    if not 0 <= target_index < len(segments):
        raise CmdlineError("target segment %r out of range" % target)

    # heads: the kernel part of each segment as [index, token] pairs; tails: from '--' on. Once
    # a '--' is seen, every later segment belongs to init too.
    heads = []
    tails = []
    init_started = False
    for tokens in segments:
        pairs = [[index, token] for index, token in enumerate(tokens)]
        cut = len(pairs)
        if init_started:
            cut = 0
        elif "--" in tokens:
            cut = list(tokens).index("--")
            init_started = True
        heads.append(pairs[:cut])
        tails.append(pairs[cut:])

    changes = []
    # Absent values of a wanted key are contrary values of it: the wanted pass replaces them
    # in place (and drops later copies); every other absent arg is removed here.
    removed_for = {}
    for arg in absent:
        key = arg_key(arg)
        if key in seen:
            removed_for.setdefault(key, []).append(split_arg(arg)[1])
            continue
        for seg, head in enumerate(heads):
            for pair in list(head):
                if not _matches_absent(pair[1], arg):
                    continue
                rest = _without_option(pair[1], arg)
                if rest is None:
                    head.remove(pair)
                    changes.append({"action": "removed", "arg": pair[1], "segment": seg})
                else:
                    changes.append({"action": "replaced", "arg": rest, "old": pair[1], "segment": seg})
                    pair[1] = rest

    for wanted in present:
        key = arg_key(wanted)
        positions = [
            (seg, pos)
            for seg, head in enumerate(heads)
            for pos, pair in enumerate(head)
            if arg_key(pair[1]) == key
        ]
        if not positions:
            heads[target_index].append([None, wanted])
            changes.append({"action": "added", "arg": wanted, "segment": target_index})
            continue
        first_seg, first_pos = positions[0]
        old = heads[first_seg][first_pos][1]
        replacement = _satisfies(old, wanted, removed_for.get(key, ()))
        if replacement is not None:
            heads[first_seg][first_pos][1] = replacement
            changes.append({"action": "replaced", "arg": replacement, "old": old, "segment": first_seg})
        # Remove later duplicates, from the end so positions stay valid.
        for seg, pos in reversed(positions[1:]):
            dup = heads[seg].pop(pos)
            changes.append({"action": "deduplicated", "arg": dup[1], "segment": seg})

    plans = [[tuple(pair) for pair in head + tail] for head, tail in zip(heads, tails)]
    return plans, changes


def edit_segments(segments, present=(), absent=(), target=-1):
    """Edit a command line made of ``segments`` (lists of tokens).

    :param segments: list of token lists, in the order the kernel will see them.
    :param present: args (``key`` or ``key=value``) that must appear exactly once.
    :param absent: args that must not appear (``key``: any value; ``key=value``: that one).
    :param target: index of the segment that receives new args.
    :returns: ``(new_segments, changes)``; ``changes`` is a list of dicts with ``action``
        (``added``, ``replaced``, ``removed``, ``deduplicated``), ``arg``, ``segment`` and, for
        ``replaced``, ``old``.
    """
    plans, changes = plan_edit(segments, present, absent, target)
    return [[token for dummy, token in plan] for plan in plans], changes


def render_plan(text, plan):
    """Apply one segment's plan to ``text``, keeping its spacing (a trailing space stays).

    Kept tokens keep their text and the whitespace before them; a removed token takes the
    whitespace before it along; added tokens follow the token before them, one space apart.
    """
    spans = _token_spans(text)
    if not spans:
        return join_cmdline([token for dummy, token in plan])
    inserts = {}
    kept = {}
    previous = -1
    for index, token in plan:
        if index is None:
            inserts.setdefault(previous, []).append(token)
        else:
            kept[index] = token
            previous = index
    out = [[None, token] for token in inserts.get(-1, [])]
    end = spans[0][0]
    for index, (start, stop) in enumerate(spans):
        gap = text[end:start] if index else None
        end = stop
        if index in kept:
            out.append([gap, kept[index]])
        for token in inserts.get(index, []):
            out.append([" ", token])
    body = "".join((gap or " ") + token if pos else token for pos, (gap, token) in enumerate(out))
    return text[:spans[0][0]] + body + text[spans[-1][1]:]


def edit_cmdline(text, present=(), absent=()):
    """Edit a one-line command line (``/etc/kernel/cmdline``, ``/proc/cmdline`` style).

    :returns: ``(new_text, changes)``; untouched parts of ``text`` keep their spacing.
    """
    plans, changes = plan_edit([split_cmdline(text)], present, absent)
    if not changes:
        return text, changes
    return render_plan(text, plans[0]), changes


def kernel_tokens(text):
    """The tokens of ``text`` the kernel parses itself: those before a bare ``--``."""
    tokens = split_cmdline(text)
    return tokens[: tokens.index("--")] if "--" in tokens else tokens


def count_arg(text, arg):
    """How many tokens of the kernel part of ``text`` satisfy ``arg`` (used to verify /proc/cmdline)."""
    key = arg_key(arg)
    return sum(1 for token in kernel_tokens(text) if arg_key(token) == key and _satisfies(token, arg) is None)


def count_key(text, key):
    """How many tokens of the kernel part of ``text`` carry ``key`` (any value)."""
    wanted = normalize_key(split_arg(key)[0])
    return sum(1 for token in kernel_tokens(text) if arg_key(token) == wanted)


def tokens_by_key(text, args):
    """The tokens of the kernel part of ``text`` for each key that ``args`` name, in order.

    :param args: ``key`` or ``key=value`` items (a module's O(args) and O(absent)); only their keys count.
    :returns: ``{key: [token, ...]}`` with the normalized key (``-`` read as ``_``) of every item,
        an empty list for a key ``text`` does not hold. What a record of "the original command line
        for these keys" needs: put the tokens back, or remove the key when the list is empty.
    """
    keys = [arg_key(validate_arg(arg)) for arg in args]
    tokens = kernel_tokens(text)
    return {key: [token for token in tokens if arg_key(token) == key] for key in keys}


def describe_changes(changes):
    """One human line per change, for module output and messages."""
    out = []
    for change in changes:
        if change["action"] == "replaced":
            line = "replaced %s with %s" % (change["old"], change["arg"])
        else:
            line = "%s %s" % (change["action"], change["arg"])
        if change.get("where"):
            line += " (%s)" % change["where"]
        out.append(line)
    return out


# --------------------------------------------------------------------------------------------
# One-line files: /proc/cmdline, /etc/kernel/cmdline (proxmox-boot-tool)
# --------------------------------------------------------------------------------------------
def _first_line(content):
    """``(line, eol, rest)``: the first line without its line end, the line end, the rest."""
    line, newline, rest = content.partition("\n")
    eol = newline
    if newline and line.endswith("\r"):
        line, eol = line[:-1], "\r\n"
    return line, eol, rest


def _eol_of(content):
    return "\r\n" if "\r\n" in content else "\n"


def edit_plain_file(content, present=(), absent=()):
    """Edit a file whose first line is the command line; the other lines are kept untouched.

    The line end (LF or CRLF) is kept; a file without one gets one when it changes.
    :returns: ``(new_content, old_cmdline, new_cmdline, changes)``.
    """
    line, eol, rest = _first_line(content)
    new_line, changes = edit_cmdline(line, present, absent)
    old_cmdline = join_cmdline(split_cmdline(line))
    if not changes:
        return content, old_cmdline, old_cmdline, changes
    new_content = new_line + (eol or _eol_of(content)) + rest
    return new_content, old_cmdline, join_cmdline(split_cmdline(new_line)), changes


def edit_boot_tool_file(content, present=(), absent=()):
    """Edit ``/etc/kernel/cmdline`` the way ``proxmox-boot-tool refresh`` reads it.

    proxmox-boot-tool takes only the first line (``get_first_line``) and stops when it lacks
    ``root=`` (``echo ${CMDLINE} | grep -q 'root='``). Such a file is refused before any edit,
    and so is an edit that would drop ``root=``. Non-blank further lines are reported, since
    proxmox-boot-tool ignores them.
    :returns: ``(new_content, old_cmdline, new_cmdline, changes, warnings)``.
    """
    line, dummy, rest = _first_line(content)
    if "root=" not in line:
        later = [n for n, text in enumerate(rest.splitlines(), 2) if "root=" in text]
        where = "its first line is empty" if not line.strip() else "its first line has no root="
        hint = (
            "move line %d (which has root=) to line 1" % later[0] if later
            else "write the root= and other arguments of the running system (/proc/cmdline without "
                 "BOOT_IMAGE= and initrd=) on line 1"
        )
        raise CmdlineError(
            "%s, and proxmox-boot-tool reads only the first line: the next 'proxmox-boot-tool "
            "refresh' would stop with \"%s\". Nothing was changed: %s." % (where, NO_ROOT_MESSAGE, hint)
        )
    new_content, old_cmdline, new_cmdline, changes = edit_plain_file(content, present, absent)
    if "root=" not in _first_line(new_content)[0]:
        raise CmdlineError(
            "the edit would remove root= from the first line (%s), and proxmox-boot-tool would "
            "stop with \"%s\": do not remove root" % (", ".join(describe_changes(changes)), NO_ROOT_MESSAGE)
        )
    ignored = [n for n, text in enumerate(rest.splitlines(), 2) if text.strip()]
    warnings = []
    if ignored:
        warnings.append(
            "line%s %s ignored: proxmox-boot-tool reads only the first line as the kernel "
            "command line; move what is needed to line 1 and delete the rest"
            % ("s" if len(ignored) > 1 else "", _ranges(ignored) + (" are" if len(ignored) > 1 else " is"))
        )
    return new_content, old_cmdline, new_cmdline, changes, warnings


def _ranges(numbers):
    out = []
    for number in numbers:
        if out and out[-1][1] == number - 1:
            out[-1][1] = number
        else:
            out.append([number, number])
    return ", ".join("%d" % a if a == b else "%d-%d" % (a, b) for a, b in out)


# --------------------------------------------------------------------------------------------
# GRUB: /etc/default/grub and /etc/default/grub.d/*.cfg, read like grub-mkconfig
# --------------------------------------------------------------------------------------------
class _Word(object):
    """One shell word: its raw text, offsets and line, and whether it holds an expansion."""

    def __init__(self, text, start, end, line):
        self.text = text
        self.start = start
        self.end = end
        self.line = line


def _skip_quoted(text, index, where):
    """Index after the quoted/expanded construct starting at ``text[index]``."""
    char = text[index]
    if char == "'":
        end = text.find("'", index + 1)
        if end < 0:
            raise CmdlineError("%s: unterminated single quote: close it by hand" % where)
        return end + 1
    if char in '"`':
        pos = index + 1
        while pos < len(text):
            if text[pos] == "\\":
                pos += 2
                continue
            if text[pos] == char:
                return pos + 1
            if char == '"' and text[pos] == "`":
                pos = _skip_quoted(text, pos, where)
                continue
            if char == '"' and text.startswith("$(", pos):
                pos = _skip_quoted(text, pos, where)
                continue
            pos += 1
        raise CmdlineError("%s: unterminated %s: close it by hand" % (where, "double quote" if char == '"' else "backquote"))
    # $( ... ) or ${ ... }
    opener, closer = ("(", ")") if text[index + 1] == "(" else ("{", "}")
    depth = 0
    pos = index + 1
    while pos < len(text):
        if text[pos] == "\\":
            pos += 2
            continue
        if text[pos] in "'\"`":
            pos = _skip_quoted(text, pos, where)
            continue
        if text[pos] == opener:
            depth += 1
        elif text[pos] == closer:
            depth -= 1
            if depth == 0:
                return pos + 1
        pos += 1
    raise CmdlineError("%s: unterminated $%s: close it by hand" % (where, opener))


def _shell_commands(text, name):
    """Split shell ``text`` into simple commands: ``(words, separator_before, separator_after)``.

    Enough of POSIX sh for configuration files: quotes, ``$(...)``, ``${...}``, backquotes,
    comments, line continuations, ``;``/``&&``/``||``/``|``/``&`` and ``(``/``)`` as words.
    """
    commands = []
    words = []
    word_start = None
    sep_before = "\n"
    index = 0
    line = 1
    length = len(text)

    def end_word(at):
        if word_start is not None:
            words.append(_Word(text[word_start[0]:at], word_start[0], at, word_start[1]))

    def end_command(sep):
        commands.append((list(words), sep_before, sep))
        del words[:]

    while index < length:
        char = text[index]
        where = "%s line %d" % (name, line)
        if char in " \t\r":
            end_word(index)
            word_start = None
            index += 1
        elif char == "\n":
            end_word(index)
            word_start = None
            if words:
                end_command("\n")
            sep_before = "\n"
            line += 1
            index += 1
        elif char == "#" and word_start is None:
            while index < length and text[index] != "\n":
                index += 1
        elif char in ";&|":
            end_word(index)
            word_start = None
            sep = text[index:index + 2] if text[index:index + 2] in (";;", "&&", "||") else char
            end_command(sep)
            sep_before = sep
            index += len(sep)
        elif char in "()":
            end_word(index)
            words.append(_Word(char, index, index + 1, line))
            word_start = None
            index += 1
        else:
            if word_start is None:
                word_start = (index, line)
            if char == "\\":
                if text.startswith("\\\n", index) or text.startswith("\\\r\n", index) or index + 1 == length:
                    raise CmdlineError(
                        "%s: a backslash continues the line: join the lines into one" % where
                    )
                index += 2
            elif char in "'\"`" or (char == "$" and text[index + 1:index + 2] in ("(", "{")):
                end = _skip_quoted(text, index, where)
                line += text.count("\n", index, end)
                index = end
            else:
                if text.startswith("<<", index):
                    raise CmdlineError("%s: here-documents are not read by this module: remove it" % where)
                index += 1
    end_word(length)
    if words:
        end_command("\n")
    return commands


class _Piece(object):
    """A literal part of a cmdline variable's value, where it stands in which file."""

    def __init__(self, var, file_index, start, end, quote, line, word=None):
        self.var = var
        self.file_index = file_index
        self.start = start          # span of the literal text inside the file
        self.end = end
        self.quote = quote          # '"', "'" or '' (unquoted)
        self.line = line
        self.word = word            # (start, end) of the whole value when it is one plain literal


def _value_pieces(var, word, file_index, where):
    """Pieces and self-reference of ``VAR=value`` in ``word``.

    :returns: ``(before, after, self_ref)``: literal pieces before and after ``$VAR``, and
        whether the value expands ``$VAR`` itself (an append or prepend).
    """
    vstart = word.start + len(var) + 1
    raw = word.text[len(var) + 1:]
    simplify = " Write the arguments themselves as one quoted string, e.g. %s=\"quiet intel_iommu=on\"" % var
    if raw == "":
        return [_Piece(var, file_index, vstart, vstart, "", word.line, (vstart, word.end))], [], False
    if raw[0] == "'" and raw.index("'", 1) == len(raw) - 1:
        return [_Piece(var, file_index, vstart + 1, word.end - 1, "'", word.line, (vstart, word.end))], [], False
    if raw[0] != '"' or not raw.endswith('"') or len(raw) < 2 or '"' in raw[1:-1]:
        if re.match(r"^[^\s$`\\'\"*?\[]*$", raw):
            return [_Piece(var, file_index, vstart, word.end, "", word.line, (vstart, word.end))], [], False
        raise CmdlineError(
            "%s: %s=%s is not one plain value (quotes joined, expansions or globs outside "
            "double quotes); the module cannot tell what GRUB gets.%s" % (where, var, raw, simplify)
        )
    inner = raw[1:-1]
    base = vstart + 1
    if "\\" in inner or "`" in inner or "$(" in inner:
        raise CmdlineError(
            "%s: %s uses backslashes or command substitution (%s): GRUB gets what the command "
            "prints, which this module cannot know.%s" % (where, var, raw, simplify)
        )
    refs = list(re.finditer(r"\$(?:\{([^}]*)\}|([A-Za-z_][A-Za-z0-9_]*)|(.?))", inner))
    others = [m.group(0) for m in refs if (m.group(1) or m.group(2)) != var]
    if others:
        raise CmdlineError(
            "%s: %s expands %s, whose value this module does not follow (a variable can carry "
            "intel_iommu=off past it).%s, or as an append of itself (%s=\"$%s ...\")"
            % (where, var, ", ".join(others), simplify, var, var)
        )
    if len(refs) > 1:
        raise CmdlineError(
            "%s: %s expands itself %d times, so GRUB gets its earlier value twice: keep one $%s"
            % (where, var, len(refs), var)
        )
    if not refs:
        return [_Piece(var, file_index, base, base + len(inner), '"', word.line, (vstart, word.end))], [], False
    ref = refs[0]
    left, right = inner[:ref.start()], inner[ref.end():]
    if (left and not left[-1].isspace()) or (right and not right[0].isspace()):
        raise CmdlineError(
            "%s: %s glues $%s to other text (%s): put a space between them" % (where, var, var, raw)
        )
    before = [_Piece(var, file_index, base, base + ref.start(), '"', word.line)] if left else []
    after = [_Piece(var, file_index, base + ref.end(), base + len(inner), '"', word.line)] if right else []
    return before, after, True


def read_grub_files(files, variables):
    """Evaluate the cmdline ``variables`` over GRUB's files, the way grub-mkconfig sources them.

    :param files: ``[(name, content), ...]``: ``/etc/default/grub`` first, then every
        ``/etc/default/grub.d/*.cfg`` in the order grub-mkconfig's glob gives them.
    :returns: ``(values, assignments)``: for each variable the list of live :class:`_Piece`
        objects (its effective value is their text joined), and for each variable every
        top-level assignment as ``(file_index, line, resets)``.
    Anything that GRUB's shell would not execute the way this reading assumes is refused with
    a :class:`CmdlineError` naming the file and line.
    """
    values = dict((var, []) for var in variables)
    assignments = dict((var, []) for var in variables)
    for file_index, (name, content) in enumerate(files):
        stack = []
        for words, sep_before, sep_after in _shell_commands(content, name):
            _run_command(words, sep_before, sep_after, stack, name, file_index, variables, values, assignments)
        if stack:
            kind, line = stack[-1][:2]
            raise CmdlineError(
                "%s line %d: the %r block is never closed; fix the file by hand" % (name, line, kind)
            )
    return values, assignments


def _mentions(word, variables):
    return [var for var in variables if re.search(r"(^|[^A-Za-z0-9_])%s($|[^A-Za-z0-9_])" % var, word.text)]


def _run_command(words, sep_before, sep_after, stack, name, file_index, variables, values, assignments):
    position = 0
    while position < len(words):
        word = words[position]
        where = "%s line %d" % (name, word.line)
        text = word.text
        if stack and stack[-1][0] == "case" and text not in ("esac", "case"):
            # Patterns and commands of a case arm: only managed assignments matter here.
            _refuse_in_block(words[position:], stack, name, variables)
            return
        if text in _OPENERS:
            function = position > 0 and words[position - 1].text in (")", "function") or (
                position > 1 and words[position - 2].text == "function")
            stack.append((text, word.line, "function" if function else text))
            position += 1
            if text in ("for", "select", "case"):
                _refuse_in_block(words[position:], stack, name, variables)
                return
            continue
        if text in _CLOSERS:
            expected = _CLOSERS[text]
            if not stack or stack[-1][0] not in (expected if isinstance(expected, tuple) else (expected,)):
                raise CmdlineError("%s: %r without its opening keyword; fix the file by hand" % (where, text))
            stack.pop()
            position += 1
            continue
        if text in _CONTINUERS:
            position += 1
            continue
        if words[position + 1:position + 3] and [w.text for w in words[position + 1:position + 3]] == ["(", ")"]:
            # name () compound-command: a function body is a block.
            position += 3
            continue
        if text == "function":
            position += 2
            continue
        break
    rest = words[position:]
    closing = [i for i, w in enumerate(rest) if w.text == ")"]
    if closing:
        # "( X=1 )": the command ends at the ')', which closes the subshell.
        cut = closing[0]
        _run_command(rest[:cut], sep_before, ")", stack, name, file_index, variables, values, assignments)
        _run_command(rest[cut:], ")", sep_after, stack, name, file_index, variables, values, assignments)
        return
    if not rest:
        return
    if stack:
        _refuse_in_block(rest, stack, name, variables)
        return
    command = rest
    exported = False
    if command[0].text == "export":
        command = command[1:]
        exported = True
    assigns = []
    for word in command:
        match = _ASSIGN_RE.match(word.text)
        if not match:
            break
        assigns.append((match.group(1), word))
    tail = command[len(assigns):]
    if exported:
        tail = [w for w in tail if not _NAME_RE.fullmatch(w.text)]
    managed = [(var, word) for var, word in assigns if var in variables]
    if tail:
        first = tail[0].text
        if first in _SOURCERS:
            raise CmdlineError(
                "%s line %d: '%s' runs other shell code, which may set %s where this module cannot "
                "see it: put its assignments into this file" % (name, tail[0].line, first, " or ".join(variables))
            )
        hits = [var for w in tail for var in _mentions(w, variables)]
        if (first in _SETTERS or exported) and hits:
            raise CmdlineError(
                "%s line %d: '%s' changes %s without a plain assignment: write "
                "%s=\"...\" on a line of its own instead" % (name, tail[0].line, first, hits[0], hits[0])
            )
        if managed:
            var, word = managed[0]
            raise CmdlineError(
                "%s line %d: %s= is a prefix of the command %r, so it only holds for that command: "
                "put the assignment on a line of its own" % (name, word.line, var, first)
            )
        return
    for var, word in managed:
        where = "%s line %d" % (name, word.line)
        if sep_before in ("&&", "||", "|") or sep_after in ("&&", "||", "|", "&"):
            raise CmdlineError(
                "%s: %s= is part of a '%s' list, so GRUB's shell may skip it or run it in a "
                "subshell: put the assignment on a line of its own"
                % (where, var, sep_after if sep_after in ("&&", "||", "|", "&") else sep_before)
            )
        before, after, self_ref = _value_pieces(var, word, file_index, where)
        if self_ref:
            values[var] = before + values[var] + after
        else:
            values[var] = before + after
        assignments[var].append((file_index, word.line, not self_ref))


def _refuse_in_block(words, stack, name, variables):
    for word in words:
        match = _ASSIGN_RE.match(word.text)
        hits = [match.group(1)] if match and match.group(1) in variables else []
        if not hits and word.text in _SOURCERS:
            hits = ["(%s)" % word.text]
        if not hits and word is words[0] and word.text in _SETTERS:
            hits = [v for w in words[1:] for v in _mentions(w, variables)]
        if hits:
            kind, line, label = stack[-1]
            variable = hits[0] if hits[0][0] != "(" else "VARIABLE"
            raise CmdlineError(
                "%s line %d: %s is set inside the %r block opened on line %d, which %s: this "
                "module cannot tell what GRUB gets. Move the assignment out of the block, as one "
                "plain %s=\"...\" line" % (name, word.line, hits[0], kind, line, _BLOCK_REASONS[label], variable)
            )


def _quote_for(text, quote):
    """The quote that can hold ``text`` literally, preferring ``quote``; None when none can."""
    fits = {'"': not re.search(r'["$`\\]', text), "'": "'" not in text}
    if quote in fits and fits[quote]:
        return quote
    for other in ('"', "'"):
        if fits[other]:
            return other
    return None


GRUB_CMDLINE_VARIABLES = ("GRUB_CMDLINE_LINUX", "GRUB_CMDLINE_LINUX_DEFAULT")


def edit_grub_files(files, present=(), absent=(), variable="GRUB_CMDLINE_LINUX_DEFAULT",
                    also_read=GRUB_CMDLINE_VARIABLES):
    """Edit the kernel arguments over ``/etc/default/grub`` and its drop-ins.

    :param files: ``[(name, content), ...]``, the main file first, then the drop-ins in the
        order grub-mkconfig sources them.
    :param variable: where new arguments go. ``also_read``: the variables 10_linux puts on the
        kernel line, in its order (``variable`` comes last when it is not one of them). Contrary
        values are replaced in the file and line that hold them.
    New arguments go into the main file's assignment of ``variable`` while that still counts;
    when a drop-in resets the variable, into that drop-in's assignment (where the value is
    decided); when the variable is assigned nowhere, into a new line at the end of the main file.
    :returns: dict with ``contents`` (new content per file, same order), ``previous_cmdline``,
        ``cmdline``, ``changes`` (each with ``where``), ``sources`` (``name line N`` of every
        assignment in effect, in the order grub-mkconfig reads them) and ``warnings``.
    """
    if not _NAME_RE.fullmatch(variable or ""):
        raise CmdlineError("%r is not a shell variable name" % variable)
    variables = list(also_read) + ([variable] if variable not in also_read else [])
    values, assignments = read_grub_files(files, variables)
    names = [name for name, dummy in files]
    pieces = [piece for var in variables for piece in values[var]]
    segments = [split_cmdline(files[p.file_index][1][p.start:p.end]) for p in pieces]

    target_pieces = values[variable]
    in_main = [i for i, p in enumerate(pieces) if p.var == variable and p.file_index == 0]
    resets = [a for a in assignments[variable] if a[2]]
    warnings = []
    virtual = None
    if in_main:
        target = in_main[0]
    elif target_pieces and resets:
        target = pieces.index(target_pieces[0])
        main_lines = [line for index, line, dummy in assignments[variable] if index == 0]
        if main_lines:
            warnings.append(
                "%s in %s line %s does not count: %s line %d sets it again after it (grub-mkconfig "
                "reads %s first, then the drop-ins); the arguments are managed there"
                % (variable, names[0], main_lines[-1], names[resets[-1][0]], resets[-1][1], names[0])
            )
    else:
        # Assigned nowhere, or only appended to: a new assignment at the end of the main file,
        # which grub-mkconfig reads before every drop-in.
        virtual = _Piece(variable, 0, None, None, '"', None)
        target = next((i for i, p in enumerate(pieces) if p.var == variable), len(pieces))
        pieces.insert(target, virtual)
        segments.insert(target, [])
    plans, changes = plan_edit(segments, present, absent, target=target)
    for change in changes:
        piece = pieces[change.pop("segment")]
        change["where"] = "%s line %s" % (names[piece.file_index], piece.line) if piece.line else (
            "new %s line in %s" % (piece.var, names[0]))

    old_cmdline = join_cmdline([t for segment in segments for t in segment])
    new_cmdline = join_cmdline([t for plan in plans for dummy, t in plan])
    contents = [content for dummy, content in files]
    edits = dict((i, []) for i in range(len(files)))
    for index, piece in enumerate(pieces):
        if list(segments[index]) == [t for dummy, t in plans[index]] and piece is not virtual:
            continue
        if piece is virtual:
            if not plans[index]:
                continue
            text = join_cmdline([t for dummy, t in plans[index]])
            quote = _quote_for(text, '"')
            if quote is None:
                raise CmdlineError("cannot quote the new %s value %r safely" % (variable, text))
            content = contents[0]
            eol = _eol_of(content)
            line = "%s=%s%s%s" % (variable, quote, text, quote)
            if content and not content.endswith("\n"):
                line = eol + line
            elif content:
                line = line + eol
            else:
                line = line + "\n"
            edits[0].append((len(content), len(content), line))
            continue
        content = files[piece.file_index][1]
        text = render_plan(content[piece.start:piece.end], plans[index])
        quote = _quote_for(text, piece.quote or '"')
        where = "%s line %d" % (names[piece.file_index], piece.line)
        if quote == piece.quote:
            edits[piece.file_index].append((piece.start, piece.end, text))
        elif piece.word is not None and quote is not None:
            edits[piece.file_index].append((piece.word[0], piece.word[1], quote + text + quote))
        else:
            raise CmdlineError(
                "%s: the new %s value %r cannot be written inside its %s quotes; quote the "
                "value the other way by hand" % (where, piece.var, text, piece.quote or "missing")
            )
    for file_index, spans in edits.items():
        content = contents[file_index]
        for start, end, text in sorted(spans, reverse=True):
            content = content[:start] + text + content[end:]
        contents[file_index] = content
    live = sorted(set((index, line) for var in variables
                      for index, line, dummy in _live_assignments(assignments[var])))
    sources = ["%s line %d" % (names[index], line) for index, line in live]
    return {
        "contents": contents,
        "previous_cmdline": old_cmdline,
        "cmdline": new_cmdline,
        "changes": changes,
        "sources": sources,
        "warnings": warnings,
    }


def _live_assignments(assignments):
    """The assignments whose text is still in the value: from the last reset on."""
    live = []
    for assignment in assignments:
        if assignment[2]:
            live = []
        live.append(assignment)
    return live


def edit_grub_file(content, present=(), absent=(), variable="GRUB_CMDLINE_LINUX_DEFAULT",
                   also_read=GRUB_CMDLINE_VARIABLES, name="/etc/default/grub"):
    """Edit one ``/etc/default/grub`` text (no drop-ins); see :func:`edit_grub_files`.

    :returns: ``(new_content, old_cmdline, new_cmdline, changes)``.
    """
    result = edit_grub_files([(name, content)], present, absent, variable, also_read)
    return result["contents"][0], result["previous_cmdline"], result["cmdline"], result["changes"]


def read_grub_value(content, variable, name="/etc/default/grub"):
    """Return the value of ``variable`` in an ``/etc/default/grub`` text ('' when unset)."""
    values = read_grub_files([(name, content)], [variable])[0][variable]
    return join_cmdline([t for p in values for t in split_cmdline(content[p.start:p.end])])
