# SPDX-License-Identifier: GPL-3.0-or-later
"""The README's model fetch command, run verbatim against a local stand-in of the hub on 127.0.0.1
(tests/hub_standin.py: the hub's URL layout, serving the real tiny.en model files under the hub id
the README's size name maps to; huggingface.co is not reachable here), plus what the whisper_api
role's preflight says when the model is missing and when the target's Python is too old.

The README's command gets two variables appended: the stand-in's URL (whisper_api_hub_url) and a
temporary controller cache (whisper_api_controller_cache_dir)."""
from __future__ import annotations

import glob
import os
import re
import shlex
import shutil
import sys

import pytest

from helpers import README, REPO, bash, commands

sys.path.insert(0, str(REPO / "tests"))
sys.path.insert(0, str(REPO / ".collections"))
from hub_standin import HubStandIn, sha256, tiny_en_model_dir  # noqa: E402
from ansible_collections.homelab.gpu_passthrough.plugins.module_utils import whisper_hub  # noqa: E402

PREFLIGHT = """\
- name: The whisper_api preflight on the controller
  hosts: localhost
  connection: local
  gather_facts: false
  tasks:
    - name: Preflight
      ansible.builtin.include_role:
        name: homelab.gpu_passthrough.whisper_api
        tasks_from: preflight.yml
"""


def readme_fetch_command() -> str:
    found = [c.text for c in commands(README) if c.text.startswith("ansible-playbook playbooks/fetch_model.yml")]
    assert len(found) == 1, found
    return found[0]


@pytest.fixture
def hub():
    model = re.search(r"-e whisper_api_model=(\S+)", readme_fetch_command()).group(1)
    stand_in = HubStandIn({whisper_hub.repo_id(model): tiny_en_model_dir()})
    stand_in.url = stand_in.start()
    stand_in.model = model
    yield stand_in
    stand_in.stop()


def recap_changed(out: str) -> int:
    return int(re.search(r"localhost\s*:\s*ok=\d+\s+changed=(\d+)", out).group(1))


def test_readme_fetch_model_command(hub, tmp_path):
    """Fetched with progress, the same bytes as the hub's; a second run downloads nothing and does not ask the hub."""
    cmd = readme_fetch_command() + f" -e whisper_api_hub_url={hub.url} -e whisper_api_controller_cache_dir={tmp_path}"
    run = bash(cmd, timeout=300)
    assert run.returncode == 0, run.stdout + run.stderr
    dest = tmp_path / "models" / whisper_hub.dir_name(hub.model)
    source = tiny_en_model_dir()
    for name in ("model.bin", "config.json", "tokenizer.json", "vocabulary.txt"):
        assert sha256(dest / name) == sha256(source / name), name
    size = whisper_hub.human((source / "model.bin").stat().st_size)
    assert f"[whisper_model_fetch] model.bin: done, {size} of {size} (100%)" in run.stdout, run.stdout
    assert recap_changed(run.stdout) == 1
    asked = len(hub.requests)

    again = bash(cmd, timeout=300)
    assert again.returncode == 0, again.stdout + again.stderr
    assert "nothing to fetch" in again.stdout and recap_changed(again.stdout) == 0, again.stdout
    assert len(hub.requests) == asked, hub.requests[asked:]

    # the role's preflight finds the model where the command put it (same whisper_api_model)
    play = tmp_path / "preflight.yml"
    play.write_text(PREFLIGHT)
    pre = bash(f"ansible-playbook {play} -e whisper_api_model={hub.model} -e whisper_api_controller_cache_dir={tmp_path}"
               f" -e ansible_python_interpreter={sys.executable} -e whisper_api_python={sys.executable}", timeout=300)
    assert re.search(r"TASK \[homelab.gpu_passthrough.whisper_api : Check that the model is on the controller "
                     r"\(air-gapped mode\)\] \*+\nok: \[localhost\]", pre.stdout), pre.stdout + pre.stderr


def test_fetch_model_in_check_mode_downloads_nothing(hub, tmp_path):
    cmd = readme_fetch_command() + f" -e whisper_api_hub_url={hub.url} -e whisper_api_controller_cache_dir={tmp_path} --check"
    run = bash(cmd, timeout=300)
    assert run.returncode == 0, run.stdout + run.stderr
    assert re.search(r"would fetch 4 file\(s\), 78\.\d MB", run.stdout), run.stdout
    assert "check mode downloads nothing" in run.stdout
    assert hub.bytes_sent == {} and all("/api/models/" in req[0] for req in hub.requests), hub.requests
    assert not (tmp_path / "models").exists()


def run_preflight(tmp_path, *extra: str):
    play = tmp_path / "preflight.yml"
    play.write_text(PREFLIGHT)
    return bash(" ".join([f"ansible-playbook {play} -e ansible_python_interpreter={sys.executable}", *extra]), timeout=300)


def fatal_message(out: str) -> str:
    m = re.search(r'fatal: \[localhost\]: FAILED! => .*?"msg": "(.*?)"\}', out)
    assert m, out
    return m.group(1)


def test_a_missing_model_is_reported_alone_with_the_fetch_command(tmp_path):
    run = run_preflight(tmp_path, "-e whisper_api_model=medium", f"-e whisper_api_controller_cache_dir={tmp_path}",
                        f"-e whisper_api_python={sys.executable}")
    assert run.returncode != 0
    msg = fatal_message(run.stdout)
    assert msg.startswith("The model medium is not on the controller"), msg
    assert f"ansible-playbook playbooks/fetch_model.yml -e whisper_api_model=medium -e whisper_api_controller_cache_dir={tmp_path}" in msg
    # alone: not inside a list of everything the role ships
    for other in ("service source", "requirements", "smoke-test audio", "pyproject"):
        assert other not in msg, msg


def test_a_model_src_without_a_model_names_the_directory(tmp_path):
    (tmp_path / "mine").mkdir()
    run = run_preflight(tmp_path, "-e whisper_api_model=tiny.en", f"-e whisper_api_model_src={tmp_path}/mine",
                        f"-e whisper_api_python={sys.executable}")
    msg = fatal_message(run.stdout)
    assert f"copies it from {tmp_path}/mine (whisper_api_model_src), which has no model.bin" in msg, msg
    assert "Put a CTranslate2 model there" in msg and "fetch_model.yml" in msg


def old_pythons() -> list[str]:
    """Real interpreters older than 3.11 on this machine (pyenv's or on PATH)."""
    found = sorted(glob.glob("/root/.pyenv/versions/3.1[0]*/bin/python3") + glob.glob("/root/.pyenv/versions/3.[89].*/bin/python3"))
    found += [p for p in (shutil.which("python3.10"), shutil.which("python3.9")) if p]
    return [p for p in dict.fromkeys(found) if os.access(p, os.X_OK)]


def test_a_python_older_than_3_11_is_refused_with_the_supported_releases(tmp_path):
    pythons = old_pythons()
    if not pythons:
        pytest.fail("no Python older than 3.11 on this machine to check the refusal with (pyenv install 3.10)")
    model = tmp_path / "model"
    model.mkdir()
    for name in ("model.bin", "config.json"):
        (model / name).write_text("{}")
    run = run_preflight(tmp_path, f"-e whisper_api_python={shlex.quote(pythons[0])}", f"-e whisper_api_model_src={model}")
    msg = fatal_message(run.stdout)
    assert re.search(r"is Python 3\.(10|9|8) ", msg), msg
    assert "needs Python 3.11 or newer" in msg and "numpy==2.4.6" in msg, msg
    assert "Debian 12 (bookworm) or newer, Ubuntu 24.04 (noble) or newer" in msg, msg
