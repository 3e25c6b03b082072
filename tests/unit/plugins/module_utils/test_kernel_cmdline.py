# SPDX-License-Identifier: GPL-3.0-or-later
"""Unit tests for plugins/module_utils/kernel_cmdline.py (pure cmdline editing).

Fixtures: fixtures/boot/reference/ holds copies of ../shared/reference/boot/ (real GRUB files,
drop-ins and /etc/kernel/cmdline of Proxmox VE), fixtures/boot/adversarial/ files GRUB does not
run the way a naive reader assumes; each says what to expect in its first line.
"""
from __future__ import annotations

import os
import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ansible_collections.homelab.gpu_passthrough.plugins.module_utils import kernel_cmdline as kc

WANTED = ("intel_iommu=on", "iommu=pt")
# What roles/proxmox_vfio passes (vars/main.yml _proxmox_vfio_contrary_args).
CONTRARY = ("intel_iommu=off", "amd_iommu=off", "iommu=off")

HERE = os.path.dirname(os.path.abspath(__file__))
BOOT = os.path.join(HERE, "fixtures", "boot")
REFERENCE = os.path.join(BOOT, "reference")
ADVERSARIAL = os.path.join(BOOT, "adversarial")
REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(HERE))))
SHARED_BOOT = os.path.join(os.path.dirname(REPO), "shared", "reference", "boot")


def fixture(*parts):
    with open(os.path.join(BOOT, *parts), encoding="utf-8", newline="") as handle:
        return handle.read()


def ref(prefix):
    """A reference file by its number, e.g. ref("05")."""
    names = [n for n in os.listdir(REFERENCE) if n.startswith(prefix + "-")]
    assert len(names) == 1, names
    return fixture("reference", names[0])


def real_dropin(prefix):
    """The real drop-in inside a reference file: the lines below its '# ' source header."""
    return "\n".join(line for line in ref(prefix).split("\n") if not line.startswith("# "))


def line_of(content, start):
    """1-based number of the line of ``content`` that starts with ``start``."""
    return [n for n, line in enumerate(content.split("\n"), 1) if line.startswith(start)][0]


def replace_line(content, old, new):
    """``content`` with the whole line ``old`` (not a mention in a comment) replaced by ``new``."""
    lines = content.split("\n")
    assert lines.count(old) == 1, old
    lines[lines.index(old)] = new
    return "\n".join(lines)


def grub(files, present=WANTED, absent=CONTRARY, **kwargs):
    return kc.edit_grub_files(files, present, absent, **kwargs)


def assert_idempotent(files, result, present=WANTED, absent=CONTRARY, **kwargs):
    again = grub([(n, c) for (n, dummy), c in zip(files, result["contents"])], present, absent, **kwargs)
    assert again["contents"] == result["contents"]
    assert again["changes"] == []
    assert again["cmdline"] == again["previous_cmdline"] == result["cmdline"]


# ---------------------------------------------------------------- tokens
def test_split_respects_quotes_and_whitespace():
    assert kc.split_cmdline('  root=/dev/sda1  ro\tfoo="a b"  "x=y z" ') == [
        "root=/dev/sda1",
        "ro",
        'foo="a b"',
        '"x=y z"',
    ]


def test_split_rejects_unbalanced_quote():
    with pytest.raises(kc.CmdlineError, match="unbalanced double quote"):
        kc.split_cmdline('quiet foo="bar')


def test_keys_compare_like_the_kernel():
    assert kc.arg_key("intel-iommu=on") == kc.arg_key("intel_iommu=off") == "intel_iommu"
    assert kc.split_arg('foo="a b"') == ("foo", "a b")
    assert kc.split_arg("root=UUID=abc") == ("root", "UUID=abc")
    assert kc.split_arg("quiet") == ("quiet", None)


# ---------------------------------------------------------------- editing one line
def test_contrary_value_is_replaced_in_place_and_others_kept():
    new, changes = kc.edit_cmdline("BOOT_IMAGE=/vmlinuz root=UUID=1 ro intel_iommu=off quiet", WANTED)
    assert new == "BOOT_IMAGE=/vmlinuz root=UUID=1 ro intel_iommu=on quiet iommu=pt"
    assert changes == [
        {"action": "replaced", "arg": "intel_iommu=on", "old": "intel_iommu=off", "segment": 0},
        {"action": "added", "arg": "iommu=pt", "segment": 0},
    ]


def test_already_configured_line_is_unchanged():
    line = "quiet intel_iommu=on iommu=pt"
    assert kc.edit_cmdline(line, WANTED) == (line, [])


def test_dash_spelling_counts_as_present():
    assert kc.edit_cmdline("intel-iommu=on iommu=pt", WANTED)[1] == []


def test_duplicates_of_a_managed_key_collapse_to_one():
    new, changes = kc.edit_cmdline("intel_iommu=off quiet intel_iommu=on iommu=pt iommu=pt", WANTED)
    assert new == "intel_iommu=on quiet iommu=pt"
    assert [c["action"] for c in changes] == ["replaced", "deduplicated", "deduplicated"]


def test_unmanaged_duplicates_are_left_alone():
    line = "console=tty0 console=ttyS0,115200"
    new, dummy = kc.edit_cmdline(line, WANTED)
    assert new == line + " intel_iommu=on iommu=pt"


def test_option_list_merges_instead_of_dropping_options():
    assert kc.edit_cmdline("intel_iommu=on,sm_on", ["intel_iommu=on"]) == ("intel_iommu=on,sm_on", [])
    new, dummy = kc.edit_cmdline("intel_iommu=off,sm_on", ["intel_iommu=on"])
    assert new == "intel_iommu=on,sm_on"
    new, dummy = kc.edit_cmdline("iommu=nopt,force", ["iommu=pt"])
    assert new == "iommu=pt,force"


def test_flag_and_key_value_forms():
    new, dummy = kc.edit_cmdline("quiet", ["nomodeset"])
    assert new == "quiet nomodeset"
    new, changes = kc.edit_cmdline("pcie_acs_override=downstream quiet", [], ["pcie_acs_override"])
    assert new == "quiet"
    assert changes == [{"action": "removed", "arg": "pcie_acs_override=downstream", "segment": 0}]


def test_absent_contrary_value_of_a_wanted_key_is_replaced_in_place():
    absent = ["intel_iommu=off", "amd_iommu=off", "iommu=off"]
    new, changes = kc.edit_cmdline("intel_iommu=off quiet amd_iommu=off", WANTED, absent)
    assert new == "intel_iommu=on quiet iommu=pt"
    assert [c["action"] for c in changes] == ["removed", "replaced", "added"]
    with pytest.raises(kc.CmdlineError, match="both wanted"):
        kc.edit_cmdline("quiet", ["iommu=pt"], ["iommu=pt"])


def test_absent_with_value_removes_only_that_value():
    new, dummy = kc.edit_cmdline("amd_iommu=off amd_iommu=fullflush", [], ["amd_iommu=off"])
    assert new == "amd_iommu=fullflush"


def test_tokens_by_key_records_the_original_tokens_of_the_named_keys():
    line = "BOOT_IMAGE=/vmlinuz quiet intel-iommu=off,sm_on iommu=pt iommu=nopt -- iommu=off"
    assert kc.tokens_by_key(line, ["intel_iommu=on", "iommu=pt", "amd-iommu=off"]) == {
        "intel_iommu": ["intel-iommu=off,sm_on"],
        "iommu": ["iommu=pt", "iommu=nopt"],
        "amd_iommu": [],
    }
    assert kc.tokens_by_key("quiet", []) == {}
    with pytest.raises(kc.CmdlineError, match="not a single token"):
        kc.tokens_by_key("quiet", ["a b"])


def test_exact_wanted_token_is_kept_even_with_contradicting_options():
    # intel_iommu=off,sm_on names an option "off" undoes: put back as recorded, then left alone.
    assert kc.edit_cmdline("quiet intel_iommu=off,sm_on", ["intel_iommu=off,sm_on"]) == (
        "quiet intel_iommu=off,sm_on", [])


def _restore(record):
    """The edit that puts recorded keys back (what the proxmox_vfio role does with state absent)."""
    args = [tokens[0] for tokens in record.values() if tokens]
    absent = [key for key, tokens in record.items() if not tokens]
    return args, absent


@pytest.mark.parametrize(
    "original",
    [
        "root=ZFS=rpool/ROOT/pve-1 boot=zfs quiet intel_iommu=off",
        "quiet",
        "BOOT_IMAGE=/vmlinuz-6.8 ro  intel_iommu=on,sm_on quiet  iommu=nopt",
        "intel_iommu=off,sm_on console=ttyS0,115200n8",
        "",
    ],
)
def test_recorded_tokens_take_a_configured_line_back_byte_for_byte(original):
    absent = ["intel_iommu=off", "amd_iommu=off", "iommu=off"]
    record = kc.tokens_by_key(original, list(WANTED) + absent)
    configured, changes = kc.edit_cmdline(original, WANTED, absent)
    assert changes and configured != original
    args, gone = _restore(record)
    restored, dummy = kc.edit_cmdline(configured, args, gone)
    assert restored == original
    assert kc.edit_cmdline(restored, args, gone) == (original, [])


def test_recorded_key_the_forward_edit_removed_comes_back_at_the_end():
    # amd_iommu=off is dropped by the forward edit; putting it back appends it (same tokens, not
    # the same place): the role's README says so.
    original = "amd_iommu=off quiet"
    absent = ["intel_iommu=off", "amd_iommu=off", "iommu=off"]
    record = kc.tokens_by_key(original, list(WANTED) + absent)
    configured, dummy = kc.edit_cmdline(original, WANTED, absent)
    assert configured == "quiet intel_iommu=on iommu=pt"
    restored, dummy = kc.edit_cmdline(configured, *_restore(record))
    assert restored == "quiet amd_iommu=off"


def test_init_arguments_after_double_dash_are_not_touched():
    new, dummy = kc.edit_cmdline("quiet -- intel_iommu=off single", WANTED)
    assert new == "quiet intel_iommu=on iommu=pt -- intel_iommu=off single"


def test_quoted_values_are_kept_verbatim():
    new, dummy = kc.edit_cmdline('dyndbg="file x.c +p" quiet', WANTED)
    assert new == 'dyndbg="file x.c +p" quiet intel_iommu=on iommu=pt'


def test_empty_line_gets_args():
    assert kc.edit_cmdline("", WANTED)[0] == "intel_iommu=on iommu=pt"


@pytest.mark.parametrize(
    "present,absent,message",
    [
        (["intel_iommu=on", "intel-iommu=off"], [], "wanted twice"),
        (["intel_iommu=on"], ["intel_iommu"], "both wanted"),
        (["a b"], [], "not a single token"),
        ([""], [], "empty kernel argument"),
        (["--"], [], "separates init arguments"),
        (["=on"], [], "has no key"),
    ],
)
def test_bad_input_is_refused_with_a_reason(present, absent, message):
    with pytest.raises(kc.CmdlineError, match=message):
        kc.edit_cmdline("quiet", present, absent)


def test_count_helpers_verify_proc_cmdline():
    proc = "BOOT_IMAGE=/vmlinuz ro quiet intel_iommu=on iommu=pt -- iommu=pt"
    assert kc.count_arg(proc, "intel_iommu=on") == 1
    assert kc.count_arg(proc, "iommu=pt") == 1
    assert kc.count_key(proc, "iommu") == 1
    assert kc.count_arg("intel_iommu=off", "intel_iommu=on") == 0
    assert kc.count_key("intel_iommu=off intel_iommu=on", "intel_iommu=on") == 2


# ---------------------------------------------------------------- /etc/kernel/cmdline
def test_plain_file_edits_first_line_and_keeps_newline():
    content = "root=ZFS=rpool/ROOT/pve-1 boot=zfs intel_iommu=off\n"
    new, old, new_line, changes = kc.edit_plain_file(content, WANTED)
    assert new == "root=ZFS=rpool/ROOT/pve-1 boot=zfs intel_iommu=on iommu=pt\n"
    assert old == "root=ZFS=rpool/ROOT/pve-1 boot=zfs intel_iommu=off"
    assert new_line == new.strip()
    assert len(changes) == 2
    assert kc.edit_plain_file(new, WANTED)[0] == new
    assert kc.edit_plain_file(new, WANTED)[3] == []


def test_plain_file_without_newline_gets_one():
    assert kc.edit_plain_file("quiet", WANTED)[0] == "quiet intel_iommu=on iommu=pt\n"


# ---------------------------------------------------------------- /etc/default/grub
GRUB = """# If you change this file, run 'update-grub' afterwards
GRUB_DEFAULT=0
GRUB_TIMEOUT=5
GRUB_DISTRIBUTOR=`lsb_release -i -s 2> /dev/null || echo Debian`
GRUB_CMDLINE_LINUX_DEFAULT="intel_iommu=off quiet console=ttyS0,115200"
GRUB_CMDLINE_LINUX=""
"""


def test_grub_contrary_value_replaced_rest_of_file_kept():
    new, old, new_cmdline, changes = kc.edit_grub_file(GRUB, WANTED)
    assert new == GRUB.replace(
        'GRUB_CMDLINE_LINUX_DEFAULT="intel_iommu=off quiet console=ttyS0,115200"',
        'GRUB_CMDLINE_LINUX_DEFAULT="intel_iommu=on quiet console=ttyS0,115200 iommu=pt"',
    )
    assert old == "intel_iommu=off quiet console=ttyS0,115200"
    assert new_cmdline == "intel_iommu=on quiet console=ttyS0,115200 iommu=pt"
    again = kc.edit_grub_file(new, WANTED)
    assert again[0] == new and again[3] == []


def test_grub_contrary_value_in_linux_variable_is_fixed_there():
    content = 'GRUB_CMDLINE_LINUX="intel_iommu=off"\nGRUB_CMDLINE_LINUX_DEFAULT="quiet"\n'
    new, dummy, cmdline, dummy2 = kc.edit_grub_file(content, WANTED)
    assert new == 'GRUB_CMDLINE_LINUX="intel_iommu=on"\nGRUB_CMDLINE_LINUX_DEFAULT="quiet iommu=pt"\n'
    assert cmdline == "intel_iommu=on quiet iommu=pt"


def test_grub_target_linux_still_reads_the_default_variable():
    content = 'GRUB_CMDLINE_LINUX=""\nGRUB_CMDLINE_LINUX_DEFAULT="quiet intel_iommu=off"\n'
    new, old, cmdline, dummy = kc.edit_grub_file(content, WANTED, CONTRARY, variable="GRUB_CMDLINE_LINUX")
    assert new == 'GRUB_CMDLINE_LINUX="iommu=pt"\nGRUB_CMDLINE_LINUX_DEFAULT="quiet intel_iommu=on"\n'
    assert cmdline == "iommu=pt quiet intel_iommu=on"


def test_grub_duplicate_across_variables_is_removed_from_the_later_one():
    content = 'GRUB_CMDLINE_LINUX="iommu=pt"\nGRUB_CMDLINE_LINUX_DEFAULT="quiet iommu=pt intel_iommu=on"\n'
    new, dummy, cmdline, changes = kc.edit_grub_file(content, WANTED)
    assert cmdline == "iommu=pt quiet intel_iommu=on"
    assert changes == [{"action": "deduplicated", "arg": "iommu=pt", "where": "/etc/default/grub line 2"}]


def test_grub_last_assignment_wins_and_comment_indent_export_are_kept():
    content = (
        'GRUB_CMDLINE_LINUX_DEFAULT="old"\n'
        "  export GRUB_CMDLINE_LINUX_DEFAULT='quiet'   # local tweak\n"
    )
    new = kc.edit_grub_file(content, ["iommu=pt"])[0]
    assert new == (
        'GRUB_CMDLINE_LINUX_DEFAULT="old"\n'
        "  export GRUB_CMDLINE_LINUX_DEFAULT='quiet iommu=pt'   # local tweak\n"
    )


def test_grub_unquoted_and_missing_variable():
    new = kc.edit_grub_file("GRUB_CMDLINE_LINUX_DEFAULT=quiet\n", ["iommu=pt"])[0]
    assert new == 'GRUB_CMDLINE_LINUX_DEFAULT="quiet iommu=pt"\n'
    new = kc.edit_grub_file("GRUB_TIMEOUT=5\n", ["iommu=pt"])[0]
    assert new == 'GRUB_TIMEOUT=5\nGRUB_CMDLINE_LINUX_DEFAULT="iommu=pt"\n'
    new = kc.edit_grub_file("GRUB_TIMEOUT=5", ["iommu=pt"])[0]
    assert new == 'GRUB_TIMEOUT=5\nGRUB_CMDLINE_LINUX_DEFAULT="iommu=pt"'


def test_grub_read_value():
    assert kc.read_grub_value(GRUB, "GRUB_CMDLINE_LINUX_DEFAULT") == "intel_iommu=off quiet console=ttyS0,115200"
    assert kc.read_grub_value(GRUB, "GRUB_CMDLINE_LINUX") == ""
    assert kc.read_grub_value(GRUB, "GRUB_NOPE") == ""


def test_grub_bad_variable_name():
    with pytest.raises(kc.CmdlineError, match="not a shell variable name"):
        kc.edit_grub_file(GRUB, WANTED, variable="GRUB CMDLINE")


def test_describe_changes():
    dummy, changes = kc.edit_cmdline("intel_iommu=off", WANTED)
    assert kc.describe_changes(changes) == ["replaced intel_iommu=off with intel_iommu=on", "added iommu=pt"]


# ---------------------------------------------------------------- properties
_KEYS = st.sampled_from(["quiet", "ro", "root", "intel_iommu", "intel-iommu", "iommu", "console", "amd_iommu", "x"])
_VALUES = st.one_of(st.none(), st.sampled_from(["on", "off", "pt", "nopt", "sm_on", "on,sm_on", "off,igfx_off", "1", "ttyS0"]))
_TOKENS = st.builds(lambda k, v: k if v is None else "%s=%s" % (k, v), _KEYS, _VALUES)


@settings(max_examples=300, deadline=None)
@given(st.lists(_TOKENS, max_size=12))
def test_property_wanted_exactly_once_others_kept_idempotent(tokens):
    line = " ".join(tokens)
    new, dummy = kc.edit_cmdline(line, WANTED)
    # each wanted key exactly once, satisfied
    for arg in WANTED:
        assert kc.count_key(new, arg) == 1
        assert kc.count_arg(new, arg) == 1
    # every unmanaged token kept, in order
    managed = {kc.arg_key(a) for a in WANTED}
    assert [t for t in kc.split_cmdline(new) if kc.arg_key(t) not in managed] == [
        t for t in tokens if kc.arg_key(t) not in managed
    ]
    # idempotent
    assert kc.edit_cmdline(new, WANTED) == (new, [])


def test_render_keeps_spacing_of_untouched_arguments():
    new, dummy = kc.edit_cmdline("  quiet   intel_iommu=off\tsplash ", WANTED)
    assert new == "  quiet   intel_iommu=on\tsplash iommu=pt "
    new, dummy = kc.edit_cmdline("a  pcie_acs_override=downstream  b", [], ["pcie_acs_override"])
    assert new == "a  b"
    new, dummy = kc.edit_cmdline("pcie_acs_override=x  b", [], ["pcie_acs_override"])
    assert new == "b"
    assert kc.edit_cmdline("-- single", WANTED)[0] == "intel_iommu=on iommu=pt -- single"


_SPACES = st.sampled_from([" ", "  ", "\t", " \t "])


@settings(max_examples=300, deadline=None)
@given(st.lists(st.tuples(_TOKENS, _SPACES), max_size=10), _SPACES, st.booleans())
def test_property_render_equals_the_token_edit(pairs, lead, trail):
    line = lead + "".join(token + space for token, space in pairs)
    if not trail:
        line = line.rstrip()
    new, changes = kc.edit_cmdline(line, WANTED, CONTRARY)
    tokens, changes2 = kc.edit_segments([kc.split_cmdline(line)], WANTED, CONTRARY)
    assert kc.split_cmdline(new) == tokens[0]
    assert changes == changes2
    assert kc.edit_cmdline(new, WANTED, CONTRARY) == (new, [])


# ---------------------------------------------------------------- point 2: contrary values replaced
def test_iommu_off_is_replaced_not_merged():
    # issue 13 point 2: "iommu=off" + wanted "iommu=pt" became "iommu=pt,off" (IOMMU still off)
    new, changes = kc.edit_cmdline("quiet iommu=off", WANTED, CONTRARY)
    assert new == "quiet iommu=pt intel_iommu=on"
    assert kc.describe_changes(changes) == ["added intel_iommu=on", "replaced iommu=off with iommu=pt"]
    assert kc.edit_cmdline("iommu=force,off", ["iommu=pt"])[0] == "iommu=pt,force"
    assert kc.edit_cmdline("iommu=pt,off", ["iommu=pt"])[0] == "iommu=pt"


def test_running_cmdline_with_iommu_pt_off_does_not_count_as_pt():
    # the role's /proc/cmdline check (reboot.yml, verify.yml) relies on this
    assert kc.count_arg("quiet iommu=pt,off", "iommu=pt") == 0
    assert kc.edit_cmdline("quiet intel_iommu=on iommu=pt,off", WANTED, CONTRARY)[1] != []


def test_absent_value_of_a_wanted_key_is_not_skipped():
    # an absent entry whose key is also wanted used to be skipped entirely
    new, changes = kc.edit_cmdline("intel_iommu=on,igfx_off quiet", ["intel_iommu=on"], ["intel_iommu=igfx_off"])
    assert new == "intel_iommu=on quiet"
    assert kc.describe_changes(changes) == ["replaced intel_iommu=on,igfx_off with intel_iommu=on"]
    new, dummy = kc.edit_cmdline("iommu=soft quiet iommu=off", ["iommu=pt"], ["iommu=soft"])
    assert new == "iommu=pt quiet"


def test_absent_option_of_an_unwanted_list_key_removes_that_option_only():
    assert kc.edit_cmdline("amd_iommu=fullflush,off", [], ["amd_iommu=off"])[0] == "amd_iommu=fullflush"
    assert kc.edit_cmdline("amd_iommu=off quiet", [], ["amd_iommu=off"])[0] == "quiet"


def test_single_valued_keys_are_replaced_never_merged():
    new, dummy = kc.edit_cmdline("vfio-pci.ids=10de:13f1 quiet", ["vfio-pci.ids=10de:1b80,10de:10f0"])
    assert new == "vfio-pci.ids=10de:1b80,10de:10f0 quiet"
    assert kc.edit_cmdline("pcie_aspm=off", ["pcie_aspm=force"])[0] == "pcie_aspm=force"


def test_wanted_option_that_absent_also_names_is_refused():
    with pytest.raises(kc.CmdlineError, match="both wanted"):
        kc.edit_cmdline("quiet", ["intel_iommu=on,sm_on"], ["intel_iommu=sm_on"])


# ---------------------------------------------------------------- point 3: grub.d drop-ins
def test_dropin_appending_a_contrary_value_is_edited_where_it_is():
    files = [
        ("/etc/default/grub", ref("02")),
        ("/etc/default/grub.d/zz.cfg", fixture("adversarial", "zz-appends-intel-iommu-off.cfg")),
    ]
    result = grub(files)
    assert result["previous_cmdline"] == "quiet intel_iommu=off"
    assert result["cmdline"] == "quiet iommu=pt intel_iommu=on"
    assert result["contents"][0] == replace_line(
        ref("02"), 'GRUB_CMDLINE_LINUX_DEFAULT="quiet"', 'GRUB_CMDLINE_LINUX_DEFAULT="quiet iommu=pt"')
    assert result["contents"][1] == files[1][1].replace("intel_iommu=off", "intel_iommu=on")
    default = line_of(ref("02"), "GRUB_CMDLINE_LINUX_DEFAULT=")
    assert kc.describe_changes(result["changes"]) == [
        "replaced intel_iommu=off with intel_iommu=on (/etc/default/grub.d/zz.cfg line 2)",
        "added iommu=pt (/etc/default/grub line %d)" % default,
    ]
    assert result["sources"] == ["/etc/default/grub line %d" % default,
                                 "/etc/default/grub line %d" % (default + 1),
                                 "/etc/default/grub.d/zz.cfg line 2"]
    assert_idempotent(files, result)


def test_dropin_that_sets_the_variable_again_decides_and_is_edited():
    files = [
        ("/etc/default/grub", ref("02")),
        ("/etc/default/grub.d/50-cloudimg.cfg", fixture("adversarial", "50-cloudimg-resets-default.cfg")),
    ]
    result = grub(files)
    assert result["previous_cmdline"] == "console=tty1 console=ttyS0"
    assert result["cmdline"] == "console=tty1 console=ttyS0 intel_iommu=on iommu=pt"
    assert result["contents"][0] == ref("02")
    assert 'GRUB_CMDLINE_LINUX_DEFAULT="console=tty1 console=ttyS0 intel_iommu=on iommu=pt"' in result["contents"][1]
    assert result["warnings"] == [
        "GRUB_CMDLINE_LINUX_DEFAULT in /etc/default/grub line %d does not count: "
        "/etc/default/grub.d/50-cloudimg.cfg line 2 sets it again after it (grub-mkconfig reads "
        "/etc/default/grub first, then the drop-ins); the arguments are managed there"
        % line_of(ref("02"), "GRUB_CMDLINE_LINUX_DEFAULT=")
    ]
    assert_idempotent(files, result)


def test_variable_only_appended_by_dropins_gets_a_line_in_the_main_file():
    files = [("/etc/default/grub", "GRUB_TIMEOUT=5\n"),
             ("/etc/default/grub.d/zz.cfg", fixture("adversarial", "zz-appends-intel-iommu-off.cfg"))]
    result = grub(files)
    assert result["contents"][0] == 'GRUB_TIMEOUT=5\nGRUB_CMDLINE_LINUX_DEFAULT="iommu=pt"\n'
    assert result["cmdline"] == "iommu=pt intel_iommu=on"
    assert_idempotent(files, result)


# ---------------------------------------------------------------- the reference files (shared/reference/boot)
@pytest.mark.skipif(not os.path.isdir(SHARED_BOOT), reason="no ../shared/reference/boot in this checkout")
@pytest.mark.parametrize("name", sorted(os.listdir(REFERENCE)))
def test_reference_copies_equal_the_shared_files(name):
    with open(os.path.join(SHARED_BOOT, name), "rb") as shared, open(os.path.join(REFERENCE, name), "rb") as copy:
        assert copy.read() == shared.read()


# Expected outcomes, read off each file: its GRUB_CMDLINE_LINUX_DEFAULT / GRUB_CMDLINE_LINUX lines.
REFERENCE_MAIN = {
    # the Debian template before debian/rules substitutes @DEFAULT_CMDLINE@
    "01": ('"@DEFAULT_CMDLINE@"', "@DEFAULT_CMDLINE@"),
    # stock PVE 8 (bookworm): quiet
    "02": ('"quiet"', "quiet"),
    # PVE 9 edited by its owner: amd_iommu=on and iommu=pt already there, intel_iommu=on is not
    "03": (None, "quiet nvme_core.default_ps_max_latency_us=0 pcie_aspm=off amd_iommu=on iommu=pt "
                 "initcall_blacklist=simpledrm_platform_driver_init video=efifb:off "
                 "vfio-pci.ids=10de:2c05,10de:22e9 module_blacklist=nvidia,nvidia_drm,nvidia_uvm,"
                 "nvidia_modeset pve_autostart=101"),
    # PVE <= 6 installer: quiet; GRUB_DISTRIBUTOR="$setup->{fullname}" is not a cmdline variable
    "04": ('"quiet"', "quiet"),
}


@pytest.mark.parametrize("number", sorted(REFERENCE_MAIN))
def test_reference_main_files(number):
    content = ref(number)
    quoted, before = REFERENCE_MAIN[number]
    files = [("/etc/default/grub", content)]
    result = grub(files)
    assert result["previous_cmdline"] == before
    if number == "03":
        assert result["cmdline"] == before + " intel_iommu=on"
        assert [c["action"] for c in result["changes"]] == ["added"]
    else:
        assert result["cmdline"] == before + " intel_iommu=on iommu=pt"
        assert result["contents"][0] == replace_line(
            content, "GRUB_CMDLINE_LINUX_DEFAULT=%s" % quoted,
            "GRUB_CMDLINE_LINUX_DEFAULT=%s" % quoted.replace(before, before + " intel_iommu=on iommu=pt"))
    assert result["contents"][0].count("\n") == content.count("\n")
    assert_idempotent(files, result)


@pytest.mark.parametrize("real", [False, True], ids=["fixture", "real-file"])
def test_reference_zfs_and_installer_dropins(real):
    """PVE installer drop-ins (05 zfs.cfg, 06 installer.cfg), Debian's init-select.cfg (07) and a
    kernel pin (08): they append to GRUB_CMDLINE_LINUX with "$GRUB_CMDLINE_LINUX ...", which GRUB
    runs as the module reads it. Sorted as grub-mkconfig's glob gives them."""
    load = real_dropin if real else ref
    files = [
        ("/etc/default/grub", ref("02")),
        ("/etc/default/grub.d/init-select.cfg", load("07")),
        ("/etc/default/grub.d/installer.cfg", load("06")),
        ("/etc/default/grub.d/proxmox-kernel-pin.cfg", load("08")),
        ("/etc/default/grub.d/zfs.cfg", load("05")),
    ]
    if real:
        assert files[4][1] == 'GRUB_CMDLINE_LINUX="$GRUB_CMDLINE_LINUX root=ZFS=rpool/ROOT/pve-1 boot=zfs"'
    result = grub(files)
    assert result["previous_cmdline"] == "console=ttyS0,115200 root=ZFS=rpool/ROOT/pve-1 boot=zfs quiet"
    assert result["cmdline"] == "console=ttyS0,115200 root=ZFS=rpool/ROOT/pve-1 boot=zfs quiet intel_iommu=on iommu=pt"
    assert result["contents"][1:] == [content for dummy, content in files[1:]]
    assert result["sources"][-2:] == [
        "/etc/default/grub.d/installer.cfg line %d" % line_of(files[2][1], "GRUB_CMDLINE_LINUX="),
        "/etc/default/grub.d/zfs.cfg line %d" % line_of(files[4][1], "GRUB_CMDLINE_LINUX="),
    ]
    assert_idempotent(files, result)


def test_reference_zfs_dropin_contrary_value_is_fixed_in_the_dropin():
    files = [("/etc/default/grub", ref("02")),
             ("/etc/default/grub.d/zfs.cfg", real_dropin("05").replace("boot=zfs", "boot=zfs iommu=off"))]
    result = grub(files)
    assert result["contents"][1] == 'GRUB_CMDLINE_LINUX="$GRUB_CMDLINE_LINUX root=ZFS=rpool/ROOT/pve-1 boot=zfs iommu=pt"'
    assert result["cmdline"] == "root=ZFS=rpool/ROOT/pve-1 boot=zfs iommu=pt quiet intel_iommu=on"
    assert_idempotent(files, result)


@pytest.mark.parametrize("real", [False, True], ids=["fixture", "real-file"])
def test_reference_kernel_cmdline_installer_default_keeps_its_trailing_space(real):
    content = ref("09")
    if real:
        content = content.split("\n")[0] + "\n"
    assert content.startswith("root=ZFS=rpool/ROOT/pve-1 boot=zfs \n")
    new, old, cmdline, changes, warnings = kc.edit_boot_tool_file(content, WANTED, CONTRARY)
    assert new == content.replace("boot=zfs \n", "boot=zfs intel_iommu=on iommu=pt \n", 1)
    assert old == "root=ZFS=rpool/ROOT/pve-1 boot=zfs"
    assert cmdline == "root=ZFS=rpool/ROOT/pve-1 boot=zfs intel_iommu=on iommu=pt"
    # the fixture's source notes sit on lines 2-4, which proxmox-boot-tool ignores
    assert warnings == ([] if real else [
        "lines 2-4 are ignored: proxmox-boot-tool reads only the first line as the kernel command "
        "line; move what is needed to line 1 and delete the rest"])
    again = kc.edit_boot_tool_file(new, WANTED, CONTRARY)
    assert again[0] == new and again[3] == []


def test_reference_kernel_cmdline_user_edited():
    content = ref("10")
    new, dummy, cmdline, changes, warnings = kc.edit_boot_tool_file(content, WANTED, CONTRARY)
    assert cmdline == ("root=ZFS=rpool/ROOT/pve-1 boot=zfs intel_iommu=on i915.enable_guc=3 "
                       "i915.max_vfs=7 module_blacklist=xe iommu=pt")
    assert kc.describe_changes(changes) == ["added iommu=pt"]
    assert new.split("\n")[1:] == content.split("\n")[1:]
    assert len(warnings) == 1 and warnings[0].startswith("lines 2-5 are ignored")
    assert kc.edit_boot_tool_file(new, WANTED, CONTRARY)[3] == []


# ---------------------------------------------------------------- point 4: what GRUB does not run as read
ADVERSARIAL_REFUSED = sorted(n for n in os.listdir(ADVERSARIAL) if n.endswith(".grub") and
                             fixture("adversarial", n).startswith("# expect-refused:"))


@pytest.mark.parametrize("name", ADVERSARIAL_REFUSED)
def test_grub_constructs_gruB_does_not_run_as_read_are_refused(name):
    content = fixture("adversarial", name)
    expected = content.split("\n")[0][len("# expect-refused: "):]
    with pytest.raises(kc.CmdlineError) as err:
        grub([("/etc/default/grub", content)])
    message = str(err.value)
    assert re.search(expected, message), message
    assert re.match(r"^/etc/default/grub line \d+: ", message), message


@pytest.mark.parametrize("name,expected", [
    ("if-block.grub", "inside the 'if' block opened on line 5"),
    ("extra-variable.grub", "expands \\$EXTRA"),
    ("case-block.grub", "inside the 'case' block"),
    ("and-list.grub", "part of a '&&' list"),
])
def test_grub_file_edit_refuses_what_grub_does_not_run_as_read(name, expected):
    """The single-file entry point too: an if block was edited and reported changed, $EXTRA
    holding intel_iommu=off passed silently."""
    with pytest.raises(kc.CmdlineError, match=expected):
        kc.edit_grub_file(fixture("adversarial", name), WANTED, CONTRARY)


def test_grub_refusal_names_the_dropin_and_its_line():
    with pytest.raises(kc.CmdlineError, match=r"^/etc/default/grub.d/x.cfg line 6: .* 'if' block opened on line 5"):
        grub([("/etc/default/grub", ref("02")), ("/etc/default/grub.d/x.cfg", fixture("adversarial", "if-block.grub"))])


def test_grub_extra_variable_message_says_what_to_simplify():
    with pytest.raises(kc.CmdlineError) as err:
        grub([("/etc/default/grub", fixture("adversarial", "extra-variable.grub"))])
    assert str(err.value) == (
        "/etc/default/grub line 3: GRUB_CMDLINE_LINUX_DEFAULT expands $EXTRA, whose value this module "
        "does not follow (a variable can carry intel_iommu=off past it). Write the arguments themselves "
        "as one quoted string, e.g. GRUB_CMDLINE_LINUX_DEFAULT=\"quiet intel_iommu=on\", or as an append "
        "of itself (GRUB_CMDLINE_LINUX_DEFAULT=\"$GRUB_CMDLINE_LINUX_DEFAULT ...\")")


def test_grub_constructs_that_grub_runs_as_read_are_accepted():
    content = fixture("adversarial", "accepted-constructs.grub")
    expected = content.split("\n")[0][len("# expect-cmdline: "):]
    files = [("/etc/default/grub", content)]
    result = grub(files)
    assert result["cmdline"] == expected
    assert "GRUB_CMDLINE_LINUX_DEFAULT=\"quiet intel_iommu=on iommu=pt\"\n" in result["contents"][0]
    assert_idempotent(files, result)


def test_grub_self_append_in_the_main_file_is_understood():
    content = 'GRUB_CMDLINE_LINUX_DEFAULT="quiet"\nGRUB_CMDLINE_LINUX_DEFAULT="$GRUB_CMDLINE_LINUX_DEFAULT iommu=off"\n'
    new, old, cmdline, changes = kc.edit_grub_file(content, WANTED, CONTRARY)
    assert old == "quiet iommu=off"
    assert cmdline == "quiet intel_iommu=on iommu=pt"
    assert new == 'GRUB_CMDLINE_LINUX_DEFAULT="quiet intel_iommu=on"\nGRUB_CMDLINE_LINUX_DEFAULT="$GRUB_CMDLINE_LINUX_DEFAULT iommu=pt"\n'


def test_grub_quoting_switches_when_a_value_needs_it():
    new = kc.edit_grub_file('GRUB_CMDLINE_LINUX_DEFAULT="quiet"\n', ['dyndbg="file x.c +p"'])[0]
    assert new == "GRUB_CMDLINE_LINUX_DEFAULT='quiet dyndbg=\"file x.c +p\"'\n"
    with pytest.raises(kc.CmdlineError, match="cannot be written inside its"):
        kc.edit_grub_file('GRUB_CMDLINE_LINUX_DEFAULT="$GRUB_CMDLINE_LINUX_DEFAULT quiet"\n', ['dyndbg="x +p"'])


# ---------------------------------------------------------------- point 5: /etc/kernel/cmdline without root=
@pytest.mark.parametrize(
    "content,where,hint",
    [
        ("\nroot=ZFS=rpool/ROOT/pve-1 boot=zfs\n", "its first line is empty", "move line 2 (which has root=) to line 1"),
        ("", "its first line is empty", "write the root="),
        ("   \n", "its first line is empty", "write the root="),
        ("quiet intel_iommu=off\n", "its first line has no root=", "write the root="),
        ("quiet\nroot=UUID=abc\n", "its first line has no root=", "move line 2"),
    ],
)
def test_boot_tool_file_without_root_on_line_one_is_refused(content, where, hint):
    with pytest.raises(kc.CmdlineError) as err:
        kc.edit_boot_tool_file(content, WANTED, CONTRARY)
    message = str(err.value)
    assert message.startswith(where)
    assert '"No root= parameter in /etc/kernel/cmdline found!"' in message
    assert hint in message and "Nothing was changed" in message


def test_boot_tool_file_edit_that_removes_root_is_refused():
    with pytest.raises(kc.CmdlineError, match="would remove root="):
        kc.edit_boot_tool_file("root=ZFS=rpool/ROOT/pve-1 boot=zfs\n", [], ["root"])


def test_boot_tool_file_warns_about_ignored_lines_and_keeps_them():
    content = "root=UUID=1 quiet\nintel_iommu=off\n\n# note\n"
    new, dummy, cmdline, changes, warnings = kc.edit_boot_tool_file(content, WANTED, CONTRARY)
    assert new == "root=UUID=1 quiet intel_iommu=on iommu=pt\nintel_iommu=off\n\n# note\n"
    assert warnings == ["lines 2, 4 are ignored: proxmox-boot-tool reads only the first line as the "
                        "kernel command line; move what is needed to line 1 and delete the rest"]


# ---------------------------------------------------------------- point 7: CRLF
def test_crlf_grub_files_keep_their_line_endings():
    main = ref("02").replace("\n", "\r\n")
    dropin = fixture("adversarial", "zz-appends-intel-iommu-off.cfg").replace("\n", "\r\n")
    files = [("/etc/default/grub", main), ("/etc/default/grub.d/zz.cfg", dropin)]
    result = grub(files)
    assert result["contents"][0] == main.replace('GRUB_CMDLINE_LINUX_DEFAULT="quiet"\r\n',
                                                 'GRUB_CMDLINE_LINUX_DEFAULT="quiet iommu=pt"\r\n')
    assert result["contents"][1] == dropin.replace("intel_iommu=off", "intel_iommu=on")
    assert result["cmdline"] == "quiet iommu=pt intel_iommu=on"
    assert_idempotent(files, result)


def test_crlf_single_grub_file_keeps_its_line_endings():
    content = 'GRUB_TIMEOUT=5\r\nGRUB_CMDLINE_LINUX_DEFAULT="quiet intel_iommu=off"\r\nGRUB_CMDLINE_LINUX=""\r\n'
    new = kc.edit_grub_file(content, WANTED, CONTRARY)[0]
    assert new == 'GRUB_TIMEOUT=5\r\nGRUB_CMDLINE_LINUX_DEFAULT="quiet intel_iommu=on iommu=pt"\r\nGRUB_CMDLINE_LINUX=""\r\n'
    added = kc.edit_grub_file("GRUB_TIMEOUT=5\r\n", WANTED)[0]
    assert added == 'GRUB_TIMEOUT=5\r\nGRUB_CMDLINE_LINUX_DEFAULT="intel_iommu=on iommu=pt"\r\n'


def test_crlf_kernel_cmdline_keeps_its_line_ending():
    content = "root=ZFS=rpool/ROOT/pve-1 boot=zfs intel_iommu=off\r\n"
    new = kc.edit_plain_file(content, WANTED, CONTRARY)[0]
    assert new == "root=ZFS=rpool/ROOT/pve-1 boot=zfs intel_iommu=on iommu=pt\r\n"
    assert kc.edit_boot_tool_file(content, WANTED, CONTRARY)[0] == new
    assert kc.edit_boot_tool_file(new, WANTED, CONTRARY)[3] == []


# ---------------------------------------------------------------- GRUB properties
_PIECE = st.lists(_TOKENS, max_size=4).map(" ".join)


@settings(max_examples=200, deadline=None)
@given(_PIECE, _PIECE, st.lists(st.tuples(st.sampled_from(["GRUB_CMDLINE_LINUX", "GRUB_CMDLINE_LINUX_DEFAULT"]),
                                          _PIECE, st.booleans()), max_size=3))
def test_property_grub_effective_cmdline_is_what_the_files_say(linux, default, dropins):
    files = [("/etc/default/grub", 'GRUB_CMDLINE_LINUX="%s"\nGRUB_CMDLINE_LINUX_DEFAULT="%s"\n' % (linux, default))]
    expected = {"GRUB_CMDLINE_LINUX": linux, "GRUB_CMDLINE_LINUX_DEFAULT": default}
    for number, (var, value, append) in enumerate(dropins):
        files.append(("/etc/default/grub.d/%02d.cfg" % number,
                      '%s="%s%s"\n' % (var, "$%s " % var if append else "", value)))
        expected[var] = (expected[var] + " " + value) if append else value
    effective = " ".join(kc.split_cmdline(expected["GRUB_CMDLINE_LINUX"] + " " + expected["GRUB_CMDLINE_LINUX_DEFAULT"]))
    result = grub(files)
    assert result["previous_cmdline"] == effective
    for arg in WANTED:
        assert kc.count_arg(result["cmdline"], arg) == kc.count_key(result["cmdline"], arg) == 1
    for arg in CONTRARY:
        assert kc.count_arg(result["cmdline"], arg) == 0
    reread = grub([(n, c) for (n, dummy), c in zip(files, result["contents"])], [], [])
    assert reread["previous_cmdline"] == result["cmdline"]
    assert_idempotent(files, result)


# ---------------------------------------------------------------- against grub-mkconfig's own sourcing
SOURCE_SH = os.path.join(REPO, "tests", "integration", "kernel_cmdline", "grub-mkconfig-source.sh")
TREES = {
    "pve8-stock": [("grub", ("reference", "02"))],
    "debian-template": [("grub", ("reference", "01"))],
    "pve9-edited": [("grub", ("reference", "03"))],
    "pve6-installer": [("grub", ("reference", "04"))],
    "pve8-zfs-serial-pin": [("grub", ("reference", "02")), ("grub.d/zfs.cfg", ("reference", "05")),
                            ("grub.d/installer.cfg", ("reference", "06")),
                            ("grub.d/init-select.cfg", ("reference", "07")),
                            ("grub.d/proxmox-kernel-pin.cfg", ("reference", "08"))],
    "dropin-appends-off": [("grub", ("reference", "03")), ("grub.d/zfs.cfg", ("reference", "05")),
                           ("grub.d/zz.cfg", ("adversarial", "zz-appends-intel-iommu-off.cfg"))],
    "dropin-resets": [("grub", ("reference", "02")),
                      ("grub.d/50-cloudimg.cfg", ("adversarial", "50-cloudimg-resets-default.cfg"))],
    "accepted-constructs": [("grub", ("adversarial", "accepted-constructs.grub"))],
}


def _load(where):
    return ref(where[1]) if where[0] == "reference" else fixture(*where)


@pytest.mark.skipif(not os.path.exists("/bin/sh"), reason="no /bin/sh")
@pytest.mark.parametrize("tree", sorted(TREES))
def test_effective_cmdline_is_what_grub_mkconfig_sources(tmp_path, tree):
    import subprocess

    default = tmp_path / "etc" / "default"
    (default / "grub.d").mkdir(parents=True)
    for rel, where in TREES[tree]:
        (default / rel).write_text(_load(where), newline="")

    def sourced():
        out = subprocess.run(["/bin/sh", SOURCE_SH, str(tmp_path / "etc")], capture_output=True,
                             text=True, check=True, env={"PATH": "/usr/bin:/bin"})
        return out.stdout.strip()

    names = [str(default / rel) for rel, dummy in TREES[tree]]
    files = [(names[0], (default / "grub").read_text())] + sorted(
        (name, open(name, encoding="utf-8").read()) for name in names[1:])
    result = grub(files)
    assert result["previous_cmdline"] == sourced()
    for (name, dummy), content in zip(files, result["contents"]):
        with open(name, "w", encoding="utf-8", newline="") as handle:
            handle.write(content)
    assert result["cmdline"] == sourced()


_SHELL_BITS = st.sampled_from([
    "GRUB_CMDLINE_LINUX=", "GRUB_CMDLINE_LINUX_DEFAULT=", "X=", "export ", '"', "'", "$", "${", "}", "(", ")",
    "$(", "`", "\\", ";", "&&", "|", " ", "\t", "\n", "\r\n", "#", "if ", "then ", "fi", "case ", "esac",
    "{ ", "intel_iommu=off", "iommu=pt", "quiet", "$GRUB_CMDLINE_LINUX", "$GRUB_CMDLINE_LINUX_DEFAULT ",
])


@settings(max_examples=500, deadline=None)
@given(st.lists(_SHELL_BITS, max_size=25).map("".join))
def test_property_any_text_is_edited_consistently_or_refused(text):
    files = [("/etc/default/grub", text)]
    try:
        result = grub(files)
    except kc.CmdlineError:
        return
    reread = grub([("/etc/default/grub", result["contents"][0])], [], [])
    assert reread["previous_cmdline"] == result["cmdline"]
    assert_idempotent(files, result)
