#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-3.0-or-later
# ansible-test sanity for the whole collection, Python 3.11, no Docker.
#
# ansible-test wants the collection at .../ansible_collections/homelab/gpu_passthrough, so the
# git-tracked files are copied into a temporary tree of that shape and the tests run there, with
# --local (the pinned ansible-core of .venv). ansible-test still builds one virtual environment
# per sanity test under ~/.ansible/test/venv and installs its pinned requirements from PyPI.
#
# Its pip bootstrap downloads get-pip.py from ci-files.testing.ansible.com, which CI cannot reach
# (only PyPI is). Unless a real script is already cached there, this seeds ansible-test's cache
# (~/.ansible/test/cache/get_pip_<version>.py) with a stand-in that does the same job: it installs
# the bundled pip with the standard library's ensurepip, then the exact pip version ansible-test
# asks for from PyPI.
# Usage (from the repository root): tests/sanity/run-sanity.sh [extra ansible-test args]
set -euo pipefail
repo=$(pwd)
# ansible-test silently skips its shellcheck test when the command is missing: install it instead.
if ! command -v shellcheck >/dev/null; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq shellcheck >/dev/null
  else
    echo "sanity: shellcheck is missing; install it (apt-get install shellcheck) and run again" >&2
    exit 1
  fi
fi
python="$repo/.venv/bin/python"
pip_version=$("$python" - <<'PY'
from ansible_test._internal.python_requirements import get_venv_packages
from ansible_test._internal.host_configs import NativePythonConfig
print(get_venv_packages(NativePythonConfig(version="3.11"))["pip"])
PY
)
cache="$HOME/.ansible/test/cache/get_pip_${pip_version//./_}.py"
if [ ! -s "$cache" ] || grep -q "homelab.gpu_passthrough tests/sanity/run-sanity.sh" "$cache"; then
  mkdir -p "$(dirname "$cache")"
  cat >"$cache" <<'PY'
# Stand-in for get-pip.py written by homelab.gpu_passthrough tests/sanity/run-sanity.sh:
# ensurepip installs the bundled pip, then pip installs the requested pinned packages from PyPI.
# ansible-test runs pip with PIP_CONFIG_FILE=/dev/null, so the bundled (older) pip would trust only
# its own certifi copy; give it the system trust store, as pip >= 24.2 uses by default.
import ensurepip
import os
import ssl
import subprocess
import sys

args = [a for a in sys.argv[1:] if a not in ("--no-setuptools", "--no-wheel")]
cafile = ssl.get_default_verify_paths().cafile
if cafile and os.path.exists(cafile):
    args = ["--cert", cafile] + args
ensurepip.bootstrap(upgrade=True)
sys.exit(subprocess.call([sys.executable, "-m", "pip", "install", "--upgrade"] + args))
PY
  echo "sanity: seeded $cache (stand-in pip bootstrap, PyPI only)"
fi
work=$(mktemp -d "${TMPDIR:-/tmp}/gpu_passthrough-sanity.XXXXXX")
trap 'rm -rf "$work"' EXIT
dest="$work/ansible_collections/homelab/gpu_passthrough"
mkdir -p "$dest"
git ls-files -z | xargs -0 cp -P --parents -t "$dest"
echo "sanity: $(git ls-files | wc -l) tracked files copied to $dest"
cd "$dest"
"$repo/.venv/bin/ansible-test" sanity --local --python 3.11 --color no "$@"
