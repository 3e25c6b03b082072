#!/usr/bin/env bash
# `make test-vfio`: the proxmox_vfio role's Molecule scenarios on ONE boot of the lab host VM.
#   1. proxmox_vfio_systemd_boot, --destroy never: boots the VM (intel_iommu=off), tests the
#      systemd-boot path (no reboot: its proxmox-boot-tool is a recording stand-in), and its cleanup
#      gives the VM back untouched (asserted)
#   2. proxmox_vfio: the GRUB path on the same VM (check, converge with one real reboot, idempotence,
#      verify, the negative case), then destroy, which also proves nothing of the lab is left
# The VM is taken down whatever happens. Prints the wall time of each scenario.
# Environment: the lab settings of mk/vfio.mk (LAB_STATE_DIR, LAB_SSH_PORT, LAB_NAME).
set -euo pipefail
export NO_COLOR=1 ANSIBLE_NOCOLOR=1 ANSIBLE_FORCE_COLOR=0 PY_COLORS=0
cd "$(dirname "$0")/../.."
lab/bin/lab deps
# A clean start: no VM of this lab, and no Molecule state that says a VM exists (the first scenario
# ends with --destroy never, so its state would claim an instance at the next run).
lab/bin/lab down >/dev/null 2>&1 || true
for scenario in proxmox_vfio_systemd_boot proxmox_vfio; do molecule reset -s "$scenario" >/dev/null; done
on_exit() {
    local rc=$?
    [ "$rc" -eq 0 ] || lab/bin/lab down >/dev/null 2>&1 || true
    molecule reset -s proxmox_vfio_systemd_boot >/dev/null 2>&1 || true
    exit "$rc"
}
trap on_exit EXIT
t0=$SECONDS
for step in "proxmox_vfio_systemd_boot --destroy never" "proxmox_vfio"; do
    read -r scenario args <<<"$step"
    t=$SECONDS
    echo "== molecule test -s $scenario ${args:-}"
    # shellcheck disable=SC2086
    molecule test -s "$scenario" ${args:-}
    echo "== molecule scenario $scenario: $((SECONDS - t)) s wall time"
done
echo "== test-vfio: both scenarios on one boot of the lab VM in $((SECONDS - t0)) s"
