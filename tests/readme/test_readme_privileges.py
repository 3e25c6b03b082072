# SPDX-License-Identifier: GPL-3.0-or-later
"""README.md's section "Proxmox API token and privileges" equals the one privilege list,
_proxmox_api_access_grants (roles/proxmox_api_access/vars/main.yml): the table between its markers is
generated from the list, and this test fails when the two differ, printing the table to paste."""
from __future__ import annotations

import re

import yaml

from helpers import README, REPO

GRANTS_FILE = REPO / "roles" / "proxmox_api_access" / "vars" / "main.yml"
BEGIN = "<!-- privileges: generated from roles/proxmox_api_access/vars/main.yml (tests/readme/test_readme_privileges.py) -->"
END = "<!-- /privileges -->"
OTHER_LISTS = [REPO / "roles" / "proxmox_pci_mapping" / "README.md", REPO / "roles" / "proxmox_gpu_vm" / "README.md",
               REPO / "inventories" / "homelab" / "group_vars" / "all" / "main.yml"]


def grants():
    return yaml.safe_load(GRANTS_FILE.read_text(encoding="utf-8"))["_proxmox_api_access_grants"]


def table(entries) -> str:
    rows = ["| path | privileges | what needs them |", "|---|---|---|"]
    for entry in entries:
        why = " ".join(entry["why"].split()).replace("|", "\\|")
        rows.append("| `%s` | %s | %s |" % (entry["path"], ", ".join("`%s`" % p for p in entry["privileges"]), why))
    return "\n".join(rows)


def section_table(text: str) -> str:
    match = re.search(re.escape(BEGIN) + r"\n(.*?)\n" + re.escape(END), text, re.S)
    assert match, f"README.md lacks the generated privilege table between {BEGIN!r} and {END!r}"
    return match.group(1)


def test_readme_privilege_section_equals_the_grants():
    text = README.read_text(encoding="utf-8")
    assert text.count("\n## Proxmox API token and privileges\n") == 1
    want = table(grants())
    assert section_table(text) == want, "README.md's privilege table differs from the list; put this there:\n" + want


def test_readme_privilege_table_changes_with_the_list():
    """The comparison has teeth: one privilege less in the list is a different table."""
    entries = grants()
    entries[0]["privileges"] = entries[0]["privileges"][1:] + ["Sys.Modify"]
    assert table(entries) != section_table(README.read_text(encoding="utf-8"))


def test_no_other_privilege_list_in_the_docs():
    """The roles' READMEs and the homelab inventory point to the section instead of listing their own."""
    for path in OTHER_LISTS:
        text = path.read_text(encoding="utf-8")
        assert "Proxmox API token and privileges" in text, f"{path} does not point to the README section"
        named = set(re.findall(r"\b(?:VM|Sys|Datastore|SDN|Mapping|Permissions)\.[A-Za-z.]*[A-Za-z]", text))
        assert len(named) <= 1, f"{path} lists privileges of its own: {sorted(named)}"
        assert "pveum acl modify /" not in text, f"{path} has grant commands of its own"
