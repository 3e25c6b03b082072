# SPDX-License-Identifier: GPL-3.0-or-later
"""whisper_hub: size names, the hub's URL layout, and the resumable fetch against a local stand-in
of the hub on 127.0.0.1 (tests/hub_standin.py) serving the real tiny.en model (no huggingface.co)."""
from __future__ import annotations

import os
import urllib.request

import pytest

from ansible_collections.homelab.gpu_passthrough.plugins.module_utils import whisper_hub
from hub_standin import HubStandIn, sha256, tiny_en_model_dir

REPO_ID = "Systran/faster-whisper-tiny.en"


def opener(url, headers):
    return urllib.request.urlopen(urllib.request.Request(url, headers=headers), timeout=30)


@pytest.fixture(scope="module")
def model_dir():
    return tiny_en_model_dir()


@pytest.fixture
def hub(model_dir):
    stand_in = HubStandIn({REPO_ID: model_dir, "someone/not-a-model": model_dir.parent})
    stand_in.url = stand_in.start()
    yield stand_in
    stand_in.stop()


@pytest.mark.parametrize("name, repo", [
    ("tiny.en", "Systran/faster-whisper-tiny.en"),
    ("small", "Systran/faster-whisper-small"),
    ("large-v3", "Systran/faster-whisper-large-v3"),
    ("large", "Systran/faster-whisper-large-v3"),
    ("distil-large-v3", "Systran/faster-distil-whisper-large-v3"),
    ("large-v3-turbo", "mobiuslabsgmbh/faster-whisper-large-v3-turbo"),
    ("deepdml/faster-whisper-large-v3-turbo-ct2", "deepdml/faster-whisper-large-v3-turbo-ct2"),
])
def test_size_names_and_hub_ids(name, repo):
    assert whisper_hub.repo_id(name) == repo
    assert whisper_hub.dir_name(name) == repo.replace("/", "--")


@pytest.mark.parametrize("bad", ["huge", "", "a/b/c", "../x"])
def test_bad_names_say_what_is_accepted(bad):
    with pytest.raises(whisper_hub.HubError) as e:
        whisper_hub.repo_id(bad)
    assert "large-v3-turbo" in str(e.value) or "OWNER/NAME" in str(e.value)


def test_urls_follow_the_hub_layout():
    assert whisper_hub.api_url("https://huggingface.co/", "Systran/faster-whisper-small", "main") == \
        "https://huggingface.co/api/models/Systran/faster-whisper-small/revision/main?blobs=true"
    assert whisper_hub.file_url("https://h", "o/n", "refs/pr/1", "model.bin") == "https://h/o/n/resolve/refs%2Fpr%2F1/model.bin"


def test_only_the_model_files_are_selected():
    files = whisper_hub.select_files([
        {"rfilename": ".gitattributes", "size": 1}, {"rfilename": "README.md", "size": 2},
        {"rfilename": "model.bin", "size": 9, "lfs": {"size": 10, "sha256": "ab"}},
        {"rfilename": "config.json", "size": 3}, {"rfilename": "vocabulary.json", "size": 4},
        {"rfilename": "sub/model.bin", "size": 5},
    ])
    assert files == [{"name": "config.json", "size": 3, "sha256": None},
                     {"name": "model.bin", "size": 10, "sha256": "ab"},
                     {"name": "vocabulary.json", "size": 4, "sha256": None}]


def fetch(hub, dest, **kw):
    lines = []
    fetcher = whisper_hub.Fetcher(opener, hub.url, str(dest), progress=lines.append, report_every=0, **kw)
    sha, files = fetcher.plan(REPO_ID, "main")
    return fetcher, fetcher.fetch(REPO_ID, "main", sha, files), lines


def test_fetch_from_the_local_stand_in_of_the_hub(hub, model_dir, tmp_path):
    dest = tmp_path / "m"
    dest.mkdir()
    fetcher, got, lines = fetch(hub, dest, chunk=8 << 20)
    assert sorted(got) == ["config.json", "model.bin", "tokenizer.json", "vocabulary.txt"]
    for name in got:
        assert sha256(dest / name) == sha256(model_dir / name), name
    assert not (dest / "README.md").exists() and not (dest / ".partial").exists()
    assert fetcher.downloaded == sum((model_dir / n).stat().st_size for n in got)
    # progress: bytes and percent per file while it downloads, then done
    size = whisper_hub.human((model_dir / "model.bin").stat().st_size)
    assert any(line.startswith("model.bin: ") and "%) " not in line and f"of {size} (" in line and "done" not in line
               for line in lines), lines
    assert any(line.startswith(f"model.bin: done, {size} of {size} (100%)") for line in lines), lines
    marker = whisper_hub.cached(str(dest), REPO_ID, "main")
    assert marker and marker["sha"] == hub.sha
    # a later run finds the marker: the hub is not asked again
    assert whisper_hub.cached(str(dest), REPO_ID, "v2") is None
    (dest / "tokenizer.json").write_bytes(b"{}")
    assert whisper_hub.cached(str(dest), REPO_ID, "main") is None


def test_an_interrupted_transfer_resumes_with_a_range_request(hub, model_dir, tmp_path):
    size = (model_dir / "model.bin").stat().st_size
    hub.cut_once["model.bin"] = 10 << 20
    fetcher, got, lines = fetch(hub, tmp_path)
    assert sha256(tmp_path / "model.bin") == sha256(model_dir / "model.bin")
    assert ("/%s/resolve/%s/model.bin" % (REPO_ID, hub.sha), "bytes=%d-" % (10 << 20)) in hub.requests
    assert hub.bytes_sent["model.bin"] == size          # nothing downloaded twice
    assert any("interrupted at 10.5 MB (the connection ended after 10.5 MB of 75.5 MB)" in line for line in lines), lines
    assert any("resuming at 10.5 MB" in line for line in lines), lines


def test_a_later_run_resumes_what_an_earlier_one_left(hub, model_dir, tmp_path):
    hub.cut_once["model.bin"] = 3 << 20
    with pytest.raises(whisper_hub.HubError) as e:
        fetch(hub, tmp_path, attempts=1)
    assert "run again to resume" in str(e.value)
    assert (tmp_path / ".partial" / "model.bin").stat().st_size == 3 << 20
    fetch(hub, tmp_path)
    assert sha256(tmp_path / "model.bin") == sha256(model_dir / "model.bin")
    assert hub.bytes_sent["model.bin"] == (model_dir / "model.bin").stat().st_size


def test_a_corrupt_download_is_refused_and_removed(hub, tmp_path):
    hub.wrong_sha256.add("model.bin")
    with pytest.raises(whisper_hub.HubError) as e:
        fetch(hub, tmp_path)
    assert "sha256" in str(e.value) and "run again" in str(e.value)
    assert not (tmp_path / "model.bin").exists() and not (tmp_path / ".partial" / "model.bin").exists()


def test_unknown_repo_and_non_model_repo(hub, tmp_path):
    fetcher = whisper_hub.Fetcher(opener, hub.url, str(tmp_path))
    with pytest.raises(whisper_hub.HubError) as e:
        fetcher.plan("Systran/faster-whisper-nope", "main")
    assert "Systran/faster-whisper-nope" in str(e.value) and hub.url in str(e.value)
    with pytest.raises(whisper_hub.HubError) as e:
        fetcher.plan("someone/not-a-model", "main")
    assert "not a CTranslate2 (faster-whisper) model" in str(e.value)
    assert os.listdir(tmp_path) == []


def test_the_role_ships_the_same_files_the_fetch_downloads():
    """One list, two homes that a test keeps equal: the role's copy (vars) and the fetch (module_utils)."""
    import yaml
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))))
    with open(os.path.join(root, "roles", "whisper_api", "vars", "main.yml")) as f:
        role_vars = yaml.safe_load(f)
    assert role_vars["_whisper_api_model_files"] == whisper_hub.MODEL_FILES
