# SPDX-License-Identifier: GPL-3.0-or-later
"""async_progress: the progress line and the probe command, the probe run for real in bash on a
file and a log (the whole action runs on real async jobs in tests/integration/modules/async_progress.yml)."""
from __future__ import annotations

import subprocess

from ansible_collections.homelab.gpu_passthrough.plugins.action.async_progress import probe_command, progress_line


def test_progress_line():
    assert progress_line("pip download", 75, 69_000_000, 138_874_494, "") == \
        "pip download: 1 min 15 s, 69.0 MB of about 138.9 MB (49%)"
    assert progress_line("apt", 5, None, 0, "Building initial module for 6.1.0-28-amd64") == \
        "apt: 0 min 05 s, Building initial module for 6.1.0-28-amd64"
    # never 100 % while the job runs; a size above the estimate is not an error
    assert progress_line("x", 1, 200, 100, "").endswith("(99%)")


def test_probe_reads_the_size_and_the_new_log_lines(tmp_path):
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "a.whl").write_bytes(b"x" * 5000)
    log = tmp_path / "term.log"
    log.write_bytes(b"old line\n")
    offset = log.stat().st_size
    with open(log, "ab") as f:
        f.write(b"Setting up dkms\r\nBuilding for 6.1.0-28-amd64\r\n\n")
    out = subprocess.run(["sh", "-c", probe_command(str(tmp_path / "out"), str(log), offset)],
                         capture_output=True, text=True, check=True).stdout.split("\n")
    assert int(out[0]) >= 5000 and out[1] == "Building for 6.1.0-28-amd64"
    # nothing new in the log, a path that does not exist yet: an empty size, no line
    out = subprocess.run(["sh", "-c", probe_command(str(tmp_path / "nope"), str(log), log.stat().st_size)],
                         capture_output=True, text=True, check=True).stdout.split("\n")
    assert out[0] == "" and out[1] == ""


def test_a_job_delegated_to_the_controller_from_a_host_reached_as_root_is_found(tmp_path):
    """Regression (found by the persona test): the job's file goes to $HOME/.ansible_async of the user
    running Ansible; the action once expanded the folder as "~root" (the connection's user, from the
    host's ansible_user: root) and answered "could not find job" whenever that HOME was not /root."""
    import os
    import sys
    from pathlib import Path

    repo = Path(__file__).resolve().parents[4]
    home = tmp_path / "home"
    home.mkdir()
    # node is never contacted: both tasks are delegated to the controller
    (tmp_path / "hosts.yml").write_text(
        "all:\n  hosts:\n    node:\n      ansible_host: 127.0.0.1\n      ansible_user: root\n", encoding="utf-8")
    (tmp_path / "play.yml").write_text(
        "- hosts: node\n  gather_facts: false\n  tasks:\n"
        "    - ansible.builtin.command: sleep 2\n      async: 60\n      poll: 0\n      register: job\n"
        "      delegate_to: localhost\n"
        "    - homelab.gpu_passthrough.async_progress:\n        jid: '{{ job.ansible_job_id }}'\n"
        "        what: sleep\n        poll: 1\n      delegate_to: localhost\n", encoding="utf-8")
    env = {"PATH": os.path.dirname(sys.executable) + ":/usr/bin:/bin", "HOME": str(home),
           "ANSIBLE_CONFIG": str(repo / "ansible.cfg"), "ANSIBLE_NOCOLOR": "1",
           "ANSIBLE_LOCALHOST_WARNING": "False"}
    res = subprocess.run([os.path.join(os.path.dirname(sys.executable), "ansible-playbook"), "-i",
                          str(tmp_path / "hosts.yml"), str(tmp_path / "play.yml")], env=env, cwd=repo,
                         capture_output=True, text=True, timeout=300, check=False)
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]
    assert "could not find job" not in res.stdout
    assert list((home / ".ansible_async").iterdir()) == [], "the action removes the job's file when it ends"
