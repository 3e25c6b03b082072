#!/usr/bin/env bash
# `make test-vfio`: the proxmox_vfio role's GRUB scenario on one boot of the lab host VM (check,
# converge with one real reboot, idempotence, verify, the negative cases), then destroy, which also
# proves nothing of the lab is left. The systemd-boot scenario needs no VM (make test-vfio-sdboot).
# The VM is taken down whatever happens. Prints the wall time.
# Environment: the lab settings of mk/vfio.mk (LAB_STATE_DIR, LAB_SSH_PORT, LAB_NAME).
set -euo pipefail
export NO_COLOR=1 ANSIBLE_NOCOLOR=1 ANSIBLE_FORCE_COLOR=0 PY_COLORS=0
cd "$(dirname "$0")/../.."
lab/bin/lab deps
# Molecule's state in the checkout, not in ~/.ansible/tmp (where it is keyed by the checkout's folder
# NAME, so two clones called "main" would share it).
export MOLECULE_EPHEMERAL_DIRECTORY=${MOLECULE_EPHEMERAL_DIRECTORY:-$PWD/.cache/molecule/proxmox_vfio}
# A clean start: no VM of this lab, and no Molecule state that says a VM exists.
lab/bin/lab down >/dev/null 2>&1 || true
molecule reset -s proxmox_vfio >/dev/null
on_exit() {
    local rc=$?
    [ "$rc" -eq 0 ] || lab/bin/lab down >/dev/null 2>&1 || true
    exit "$rc"
}
trap on_exit EXIT
t=$SECONDS
echo "== molecule test -s proxmox_vfio"
molecule test -s proxmox_vfio
echo "== molecule scenario proxmox_vfio: $((SECONDS - t)) s wall time (one boot of the lab VM)"
