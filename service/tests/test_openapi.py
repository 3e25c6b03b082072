# SPDX-License-Identifier: GPL-3.0-or-later
"""The OpenAPI document is a contract: schemathesis (the ``st`` CLI, every check) against the service.

The app is served by uvicorn on a loopback port in this process, with the STAND-IN engine (standin.py,
for HTTP-layer tests only: every answer it gives about audio is fixed), so the run takes seconds and
exercises every route, status and content type the HTTP layer has. API keys are on (401 is part of the
contract); the key is given to schemathesis, which also checks that requests without it are refused.

Two runs, each with `--checks all`:
- GET /v1/models, /v1/models/{id}, /health, /metrics: every check.
- the POST routes (/v1/audio/transcriptions, /v1/audio/translations, /transcribe, /transcribe/url): every
  check but positive_data_acceptance. A request that fits the schema can still get a documented 400
  there, because what makes it acceptable cannot be written in OpenAPI: the upload must be decodable
  audio (the real engine's check; the stand-in takes anything), /transcribe/url's url must be http(s) to a
  public address (and is never fetched here: private addresses are refused and nothing else is named),
  `language` takes an ISO-639-1 code or an English name in any case, `timestamp_granularities[]` needs
  response_format=verbose_json, stream=true needs json or text.
No other check is excluded. A smaller run of the same two does the same against a real `whisper-api`
process with the real model (the `server` fixture, no keys): there every upload schemathesis makes is
refused by the real decoder with a documented 400."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import pytest
import uvicorn
from conftest import free_port
from standin import StandInEngine

from whisper_api.app import create_app
from whisper_api.settings import Settings

KEY = "sk-openapi-test-0123456789"


@pytest.fixture(scope="module")
def standin_url():
    # /transcribe/url's url is a plain string (no format), so schemathesis sends no http(s) URLs; one
    # to a private address would be refused anyway (no ALLOW_PRIVATE_URLS, no URL_ALLOWED_NETWORKS).
    settings = Settings(model="/nonexistent", served_model_name="tiny.en", keys=[KEY], max_upload_mb=1)
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(create_app(settings, StandInEngine()), host="127.0.0.1", port=port,
                                           log_level="warning", lifespan="on"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            if httpx.get(url + "/health", timeout=1).status_code == 200:
                break
        except httpx.HTTPError:
            time.sleep(0.05)
    yield url
    server.should_exit = True
    thread.join(10)


def schemathesis(url: str, tmp_path: Path, *args: str, examples: int = 30) -> subprocess.CompletedProcess:
    st = Path(sys.executable).parent / "st"
    cmd = [str(st), "run", url + "/openapi.json", "--checks", "all", *args, "--header", f"Authorization: Bearer {KEY}",
           "--seed", "1", "--max-examples", str(examples), "--no-color"]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600, cwd=tmp_path, check=False,
                          env={**os.environ, "NO_COLOR": "1"})
    print(proc.stdout[-3000:])
    return proc


def assert_passed(proc: subprocess.CompletedProcess, min_cases: int) -> None:
    assert proc.returncode == 0, proc.stdout[-12000:] + proc.stderr[-3000:]
    tested = re.search(r"Tested: (\d+)", proc.stdout)
    assert tested and int(tested.group(1)) == 4, proc.stdout[-3000:]
    cases = re.search(r"(\d+) generated, (\d+) passed", proc.stdout)
    assert cases and cases.group(1) == cases.group(2) and int(cases.group(1)) >= min_cases, proc.stdout[-3000:]


RUNS = [("GET", ()), ("POST", ("--exclude-checks", "positive_data_acceptance"))]


@pytest.mark.parametrize("method, excluded", RUNS, ids=["GET", "POST"])
def test_schemathesis_all_checks(standin_url, tmp_path, method, excluded):
    assert_passed(schemathesis(standin_url, tmp_path, "--include-method", method, *excluded), 50)


@pytest.mark.parametrize("method, excluded", RUNS, ids=["GET", "POST"])
def test_schemathesis_all_checks_real_model(server, tmp_path, method, excluded):
    assert_passed(schemathesis(server.url, tmp_path, "--include-method", method, *excluded, examples=10), 20)
