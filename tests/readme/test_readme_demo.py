# SPDX-License-Identifier: GPL-3.0-or-later
"""The README's commands that need the deployed service, run for real (make test-demo).

This module runs `make demo` itself (the README's first command: lab up, the SIMULATED Proxmox API,
playbooks/site.yml, transcript), then the README's client examples (curl, the openai Python client, LibreChat's speech.stt config, Open WebUI's
STT settings) against the
API the demo deployed, and last `make demo-down`, which must leave nothing behind.

The only substitutions in the README's examples: the example address 192.168.20.30 becomes the lab
guest's address, $KEY / ${WHISPER_API_KEY} the lab's API key (inventories/lab), meeting.m4a an AAC
encoding of shared-style speech (service/tests/data/jfk.flac). Run with `pytest -s` to see progress.
That a second site.yml run changes nothing is shown by test_readme_persona.py, which runs before this
module on the same lab (its test_3), so it is not run a second time here.
"""
from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pytest
import requests
import yaml

from ansible_collections.homelab.gpu_passthrough.plugins.filter.transcript import transcript_words
from helpers import EXAMPLE_NET, README, REPO, SERVICE_PY, bash, commands, env, open_webui_rows, refuse_example_network

# The sample's reference text. Transcripts are compared by words (case and punctuation differ between
# CPUs; a changed word does not pass: tests/unit/plugins/filter/test_transcript.py).
JFK_TEXT = (REPO / "service" / "tests" / "data" / "jfk.txt").read_text(encoding="utf-8").strip()
JFK_WORDS = transcript_words(JFK_TEXT)
EXAMPLE_ADDR = EXAMPLE_NET + "30"
STATE = Path(os.environ.get("LAB_STATE_DIR", REPO / "lab" / ".state"))


@dataclass
class Demo:
    rc: int
    output: str
    seconds: int
    guest: str
    key: str
    down: bool = False


def lab_var(host: str, expr: str) -> str:
    """A variable of the lab inventory, templated by Ansible (debug runs on the controller)."""
    res = subprocess.run(["ansible", "-i", "inventories/lab", host, "-o", "-m", "ansible.builtin.debug",
                          "-a", f"msg={{{{ {expr} }}}}"], cwd=REPO, env=env(), capture_output=True, text=True,
                         check=False, timeout=120)
    assert res.returncode == 0, res.stdout + res.stderr
    return json.loads(res.stdout.split("=>", 1)[1])["msg"]


def make_demo_down() -> subprocess.CompletedProcess:
    return subprocess.run(["make", "demo-down"], cwd=REPO, env=env(), capture_output=True, text=True,
                          check=False, timeout=600)


@pytest.fixture(scope="module")
def demo():
    start = time.monotonic()
    print("\n[test-demo] make demo (its output follows)", flush=True)
    proc = subprocess.Popen(["make", "demo"], cwd=REPO, env=env(), stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, stdin=subprocess.DEVNULL)
    lines = []
    for line in proc.stdout:
        sys.stdout.write(line)
        lines.append(line)
    rc = proc.wait()
    seconds = int(time.monotonic() - start)
    print(f"[test-demo] make demo: exit {rc} after {seconds} s", flush=True)
    state = Demo(rc, "".join(lines), seconds, guest="", key="")
    if rc == 0:
        state.guest = lab_var("whisper-guest", "ansible_host")
        state.key = lab_var("whisper-guest", "whisper_api_api_keys | first")
    yield state
    if not state.down:
        res = make_demo_down()
        print(res.stdout + res.stderr)


@pytest.fixture
def up(demo):
    if demo.rc != 0:
        pytest.fail(f"make demo failed (exit {demo.rc}); its output is above, the tail:\n{demo.output[-3000:]}")
    if demo.down:
        pytest.fail("the lab is already down")
    return demo


@pytest.fixture(scope="module")
def meeting_m4a(tmp_path_factory):
    """meeting.m4a of the README: the sample speech as AAC in an MP4 container (PyAV, service venv)."""
    work = tmp_path_factory.mktemp("client")
    src = REPO / "service" / "tests" / "data" / "jfk.flac"
    script = (
        "import sys, av\n"
        "src, dst = sys.argv[1:]\n"
        "with av.open(src) as inp, av.open(dst, 'w', format='ipod') as out:\n"
        "    st = out.add_stream('aac', rate=16000, layout='mono')\n"
        "    rs = av.AudioResampler(format=st.codec_context.format.name, layout='mono', rate=16000)\n"
        "    for frame in inp.decode(audio=0):\n"
        "        for f in rs.resample(frame):\n"
        "            out.mux(st.encode(f))\n"
        "    for f in rs.resample(None):\n"
        "        out.mux(st.encode(f))\n"
        "    out.mux(st.encode(None))\n"
    )
    subprocess.run([str(SERVICE_PY), "-c", script, str(src), str(work / "meeting.m4a")], check=True)
    assert (work / "meeting.m4a").read_bytes()[4:8] == b"ftyp"
    return work


def on_lab(text: str, demo: Demo) -> str:
    assert EXAMPLE_ADDR in text, f"the README example no longer names {EXAMPLE_ADDR}; update this test: {text}"
    out = text.replace(EXAMPLE_ADDR, demo.guest)
    refuse_example_network(out)
    return out


def test_make_demo_prints_the_transcript(up):
    printed = re.findall(r'^\s+"([^"]*)"\s*$', up.output, flags=re.M)
    assert printed and transcript_words(printed[-1]) == JFK_WORDS, up.output[-3000:]
    assert '"status":"healthy"' in up.output.replace(" ", ""), up.output[-2000:]
    recap = re.findall(r"^(\S+)\s+: ok=\d+\s+changed=(\d+)\s+unreachable=(\d+)\s+failed=(\d+)", up.output, flags=re.M)
    assert {row[0] for row in recap} >= {"lab-pve", "whisper-guest"}, recap
    assert all(u == "0" and f == "0" for _h, _c, u, f in recap), recap
    print(f"\n[test-demo] make demo finished in {up.seconds} s; recap {recap}")


def test_lspci_on_the_node_shows_the_gpu_address(up):
    """Quick start: the GPU's address comes from `lspci -nnD` on the node."""
    cmd = next(c.text for c in commands(README) if c.text.startswith("lspci"))
    res = subprocess.run(["lab/bin/lab", "ssh", "lab-pve", cmd], cwd=REPO, env=env(), capture_output=True,
                         text=True, check=False, timeout=120)
    assert res.returncode == 0, res.stdout + res.stderr
    gpu = lab_var("lab-pve", "proxmox_vfio_gpu_address")
    line = next((ln for ln in res.stdout.splitlines() if ln.startswith(gpu + " ")), None)
    assert line, f"{gpu} (inventories/lab) is not in `{cmd}` on the node:\n{res.stdout}"
    assert re.search(r"\[03[0-9a-f]{2}\]", line), f"{gpu} is not a display controller: {line}"
    print(f"\n[test-demo] {cmd} on lab-pve: {line}")


def test_readme_curl_commands(up, meeting_m4a):
    curls = [c.text for c in commands(README) if c.text.startswith("curl ")]
    assert len(curls) == 3, curls
    for cmd in curls:
        print(f"\n[test-demo] README: {cmd}\n            ran: {on_lab(cmd, up)}")
        res = bash(on_lab(cmd, up), cwd=meeting_m4a, KEY=up.key, timeout=300)
        assert res.returncode == 0, f"{cmd}\n{res.stdout}\n{res.stderr}"
        body = json.loads(res.stdout)
        if "/health" in cmd:
            assert body["status"] == "healthy", body
        elif "/transcribe?" in cmd:
            assert transcript_words(body["text"]) == JFK_WORDS, body
            assert body["segments"] and body["segments"][0]["end"] > 0, body
        else:
            assert transcript_words(body["text"]) == JFK_WORDS, body
        print(f"            -> {res.stdout.strip()[:200]}")
        if "$KEY" in cmd:
            # the key is what lets it through (README "Security notes")
            res = bash(on_lab(cmd, up) + " -s -o /dev/null -w '%{http_code}'", cwd=meeting_m4a, KEY="wrong-key")
            assert res.stdout.strip() == "401", res.stdout + res.stderr


def test_readme_openai_python_example(up, meeting_m4a):
    snippet = next(c.text for c in commands(README) if c.kind == "python")
    code = "import os\nKEY = os.environ['KEY']\n" + on_lab(snippet, up)
    res = subprocess.run([str(SERVICE_PY), "-c", code], cwd=meeting_m4a, env=env(KEY=up.key),
                         capture_output=True, text=True, check=False, timeout=300)
    assert res.returncode == 0, res.stdout + res.stderr
    assert transcript_words(res.stdout) == JFK_WORDS, res.stdout
    print(f"\n[test-demo] openai client: {res.stdout.strip()}")


def test_readme_librechat_config(up, meeting_m4a):
    """LibreChat's OpenAI STT provider posts the recording as multipart (file, model) to `url` with
    `Authorization: Bearer <apiKey>` and reads `text` from the JSON answer; ${VAR} is read from its
    environment."""
    block = next(c.text for c in commands(README) if c.kind == "yaml" and c.text.startswith("speech:"))
    stt = yaml.safe_load(on_lab(block, up))["speech"]["stt"]["openai"]
    assert set(stt) == {"url", "apiKey", "model"}, stt
    api_key = re.sub(r"\$\{(\w+)\}", lambda m: {"WHISPER_API_KEY": up.key}[m.group(1)], stt["apiKey"])
    with open(meeting_m4a / "meeting.m4a", "rb") as f:
        r = requests.post(stt["url"], headers={"Authorization": f"Bearer {api_key}"},
                          files={"file": ("audio.m4a", f, "audio/mp4")}, data={"model": stt["model"]}, timeout=300)
    assert r.status_code == 200, r.text
    assert transcript_words(r.json()["text"]) == JFK_WORDS, r.text
    print(f"\n[test-demo] LibreChat speech.stt request: {r.json()['text'].strip()}")


def test_readme_open_webui_settings(up, meeting_m4a):
    """Open WebUI's OpenAI STT engine posts the recording as multipart (file, model) to
    `<AUDIO_STT_OPENAI_API_BASE_URL>/audio/transcriptions` with `Authorization: Bearer
    <AUDIO_STT_OPENAI_API_KEY>` and reads `text` from the JSON answer: that request, with the README
    table's values (the key is the lab's)."""
    rows = open_webui_rows(README.read_text(encoding="utf-8"))
    assert rows["AUDIO_STT_ENGINE"] == "openai", rows
    base = on_lab(rows["AUDIO_STT_OPENAI_API_BASE_URL"], up)
    with open(meeting_m4a / "meeting.m4a", "rb") as f:
        r = requests.post(f"{base}/audio/transcriptions", headers={"Authorization": f"Bearer {up.key}"},
                          files={"file": ("audio.m4a", f, "audio/mp4")}, data={"model": rows["AUDIO_STT_MODEL"]},
                          timeout=300)
    assert r.status_code == 200, r.text
    assert transcript_words(r.json()["text"]) == JFK_WORDS, r.text
    print(f"\n[test-demo] Open WebUI STT request: {r.json()['text'].strip()}")


def test_make_demo_down_leaves_nothing(demo):
    """Last in this module: `make demo-down` removes the lab and the simulated API."""
    res = make_demo_down()
    demo.down = True
    out = res.stdout + res.stderr
    print(f"\n[test-demo] make demo-down:\n{out}")
    assert res.returncode == 0, out
    assert "nothing left" in out, out
    assert not (STATE / "demo" / "pve-sim.pid").exists()
