#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-3.0-or-later
# Build the collection tarball, install it into a FRESH venv (pinned ansible-core only) and an empty
# collections path, then render ansible-doc for every module in plugins/modules/ from that install.
# Usage: tests/integration/modules/build_install_doc.sh WORKDIR   (run from the repository root)
set -euo pipefail
work=${1:?usage: $0 WORKDIR}
repo=$(pwd)
rm -rf "$work"
mkdir -p "$work/dist" "$work/collections"

# Build from the tracked files only, so a stray local file cannot make the tarball pass.
git ls-files -z | (mkdir -p "$work/src" && xargs -0 cp --parents -t "$work/src")
(cd "$work/src" && "$repo/.venv/bin/ansible-galaxy" collection build --output-path "$work/dist")
tarball=$(ls "$work"/dist/homelab-gpu_passthrough-*.tar.gz)
echo "built $tarball ($(du -k "$tarball" | cut -f1) KiB, $(tar tzf "$tarball" | wc -l) entries)"

python3.11 -m venv "$work/venv" 2>/dev/null || "$repo/.venv/bin/python" -m venv --without-pip "$work/venv"
[ -x "$work/venv/bin/pip" ] || "$work/venv/bin/python" -m ensurepip -q
core=$(grep -E '^ansible-core==' "$repo/requirements/constraints.txt")
"$work/venv/bin/python" -m pip install -q --disable-pip-version-check "$core" 2> >(grep -v "^WARNING: Location" >&2)

# No ansible.cfg from the checkout: the install must resolve on its own.
printf '[defaults]\ncollections_path = %s\n' "$work/collections" >"$work/ansible.cfg"
export ANSIBLE_CONFIG="$work/ansible.cfg"
export ANSIBLE_COLLECTIONS_PATH="$work/collections"
cd "$work"
"$work/venv/bin/ansible-galaxy" collection install "$tarball" -p "$work/collections"
"$work/venv/bin/ansible-galaxy" collection list homelab.gpu_passthrough -p "$work/collections"

count=0
for path in "$repo"/plugins/modules/*.py; do
  name=$(basename "$path" .py)
  out=$("$work/venv/bin/ansible-doc" "homelab.gpu_passthrough.$name")
  grep -q "$work/collections/ansible_collections/homelab/gpu_passthrough/plugins/modules/$name.py" <<<"$out" \
    || { echo "ansible-doc for $name did not come from the installed tarball" >&2; echo "$out" >&2; exit 1; }
  printf '%s\n' "$out" | head -n 12
  echo "    ... ($(wc -l <<<"$out") lines)"
  count=$((count + 1))
done
"$work/venv/bin/ansible-doc" -l homelab.gpu_passthrough
echo "ansible-doc rendered $count modules from the installed tarball"
