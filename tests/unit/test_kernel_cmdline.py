# SPDX-License-Identifier: GPL-3.0-or-later
"""Unit tests for plugins/module_utils/kernel_cmdline.py (pure cmdline editing)."""
from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ansible_collections.homelab.gpu_passthrough.plugins.module_utils import kernel_cmdline as kc

WANTED = ["intel_iommu=on", "iommu=pt"]


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
        {"action": "replaced", "arg": "intel_iommu=on", "old": "intel_iommu=off"},
        {"action": "added", "arg": "iommu=pt"},
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
    assert changes == [{"action": "removed", "arg": "pcie_acs_override=downstream"}]


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


def test_grub_duplicate_across_variables_is_removed_from_the_later_one():
    content = 'GRUB_CMDLINE_LINUX="iommu=pt"\nGRUB_CMDLINE_LINUX_DEFAULT="quiet iommu=pt intel_iommu=on"\n'
    new, dummy, cmdline, changes = kc.edit_grub_file(content, WANTED)
    assert cmdline == "iommu=pt quiet intel_iommu=on"
    assert changes == [{"action": "deduplicated", "arg": "iommu=pt"}]


def test_grub_last_assignment_wins_and_comment_indent_export_are_kept():
    content = (
        'GRUB_CMDLINE_LINUX_DEFAULT="old"\n'
        "  export GRUB_CMDLINE_LINUX_DEFAULT='quiet'   # local tweak\n"
    )
    new = kc.edit_grub_file(content, ["iommu=pt"])[0]
    assert new == (
        'GRUB_CMDLINE_LINUX_DEFAULT="old"\n'
        "  export GRUB_CMDLINE_LINUX_DEFAULT='quiet iommu=pt'  # local tweak\n"
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


@pytest.mark.parametrize(
    "line,message",
    [
        ('GRUB_CMDLINE_LINUX_DEFAULT="$GRUB_CMDLINE_LINUX_DEFAULT quiet"', "refers to itself"),
        ('GRUB_CMDLINE_LINUX_DEFAULT="quiet $(cat /x)"', "command substitution"),
        ('GRUB_CMDLINE_LINUX_DEFAULT="quiet', "unterminated double quote"),
        ('GRUB_CMDLINE_LINUX_DEFAULT="quiet" foo', "unexpected text"),
        ("GRUB_CMDLINE_LINUX_DEFAULT=quiet splash", "unexpected text"),
    ],
)
def test_grub_lines_we_cannot_edit_safely_are_refused(line, message):
    with pytest.raises(kc.CmdlineError, match=message):
        kc.edit_grub_file(line + "\n", WANTED)


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


# ---------------------------------------------------------------- the module, run by Ansible
MODULE_PLAYBOOK = """
- hosts: localhost
  gather_facts: false
  tasks:
    - name: check mode
      homelab.gpu_passthrough.kernel_cmdline: &opts
        path: "{{ target }}"
        format: "{{ fmt }}"
        args: [intel_iommu=on, iommu=pt]
      check_mode: true
      register: check
    - name: real run
      homelab.gpu_passthrough.kernel_cmdline: *opts
      register: real
    - name: repeat
      homelab.gpu_passthrough.kernel_cmdline: *opts
      register: repeat
    - name: bad argument is refused
      homelab.gpu_passthrough.kernel_cmdline:
        path: "{{ target }}"
        format: "{{ fmt }}"
        args: ["intel_iommu=on", "intel-iommu=off"]
      register: bad
      ignore_errors: true
    - name: results
      ansible.builtin.copy:
        dest: "{{ out }}"
        content: "{{ {'check': check, 'real': real, 'repeat': repeat, 'bad': bad} | to_json }}"
"""


@pytest.mark.parametrize(
    "fmt,before,after",
    [
        ("grub", 'GRUB_CMDLINE_LINUX_DEFAULT="intel_iommu=off quiet"\nGRUB_CMDLINE_LINUX=""\n',
         'GRUB_CMDLINE_LINUX_DEFAULT="intel_iommu=on quiet iommu=pt"\nGRUB_CMDLINE_LINUX=""\n'),
        ("plain", "root=ZFS=rpool/ROOT/pve-1 boot=zfs intel_iommu=off\n",
         "root=ZFS=rpool/ROOT/pve-1 boot=zfs intel_iommu=on iommu=pt\n"),
    ],
)
def test_module_check_real_repeat(tmp_path, fmt, before, after):
    import json
    import os
    import subprocess
    import sys

    repo = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    target = tmp_path / "cmdline"
    target.write_text(before)
    playbook = tmp_path / "play.yml"
    playbook.write_text(MODULE_PLAYBOOK)
    out = tmp_path / "out.json"
    env = dict(os.environ, ANSIBLE_CONFIG=os.path.join(repo, "ansible.cfg"))
    proc = subprocess.run(
        [os.path.join(os.path.dirname(sys.executable), "ansible-playbook"), "-i", "localhost,",
         "-c", "local", str(playbook), "-e", "target=%s fmt=%s out=%s" % (target, fmt, out),
         "-e", "ansible_python_interpreter=%s" % sys.executable],
        cwd=repo, env=env, capture_output=True, text=True, check=False,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    res = json.loads(out.read_text())
    assert res["check"]["changed"] is True and res["check"]["changes"]
    assert res["real"]["changed"] is True
    assert res["real"]["previous_cmdline"] in before
    assert res["repeat"]["changed"] is False and res["repeat"]["changes"] == []
    assert res["bad"]["failed"] is True and "wanted twice" in res["bad"]["msg"]
    assert target.read_text() == after
    backups = [p for p in tmp_path.iterdir() if p.name.startswith("cmdline.") and p.name.endswith("~")]
    assert len(backups) == 1 and backups[0].read_text() == before
