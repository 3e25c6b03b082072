#!/usr/bin/env bash
# `make test-lab`: the lab itself, as CI runs it on a fresh clone (no VM boot here: the lab VM is
# booted by test-vfio and test-demo only, which also prove that `lab down` leaves nothing).
#   1. install the lab's Debian packages (apt-get) if missing
#   2. build or reuse the cached images (timed): every later lab target reuses them
#   3. start and stop one nspawn guest, then prove nothing is left: no systemd-nspawn process,
#      mount, loop device, netns or veth of this lab
# Prints the timings at the end. Exits non-zero when any step fails or anything is left behind.
set -euo pipefail
cd "$(dirname "$0")/../.."
LAB=lab/bin/lab
export NO_COLOR=1 ANSIBLE_NOCOLOR=1 ANSIBLE_FORCE_COLOR=0 PY_COLORS=0
# A lab of its own, so it never touches another lab of this checkout.
export LAB_STATE_DIR=${LAB_STATE_DIR:-$PWD/.cache/lab-test} LAB_NAME=labtest LAB_GUEST_NET=10.219 LAB_GUESTS=driver-guest
log=$(mktemp /tmp/test-lab.XXXXXX.log)
t_start=$SECONDS

cleanup() {
    local rc=$?
    $LAB down >/dev/null 2>&1 || true
    exit "$rc"
}
trap cleanup EXIT INT TERM

t=$SECONDS; $LAB deps; t_deps=$((SECONDS - t))
t=$SECONDS; $LAB build host 2>&1 | tee -a "$log"; t_host=$((SECONDS - t))
t=$SECONDS; $LAB build guest 2>&1 | tee -a "$log"; t_guest=$((SECONDS - t))
t=$SECONDS; $LAB up guests driver-guest 2>&1 | tee -a "$log"
$LAB ssh driver-guest systemctl is-system-running --wait | tee -a "$log"
t_guest_up=$((SECONDS - t))

$LAB down
echo "--- leftovers after lab down"
$LAB leftovers
state=$(cd "$LAB_STATE_DIR" && pwd)
cache=${LAB_CACHE_DIR:-/var/cache/homelab-gpu-lab}
echo "pgrep -af 'qemu-system|systemd-nspawn' | grep $state/(vm|guests)/: $(pgrep -af 'qemu-system|systemd-nspawn' | grep -cE "$state/(vm|guests)/" || true)"
echo "losetup -a | grep -e $state/ -e $cache/: $(losetup -a | grep -c -e "$state/" -e "$cache/" || true)"
echo "findmnt -rn | grep $state/guests/: $(findmnt -rn | grep -c "$state/guests/" || true)"

cat <<EOT
--- test-lab timings
apt packages:               ${t_deps} s
host image (build/reuse):   ${t_host} s ($(grep -oE 'host image (cached|built in [0-9]+ s)' "$log" | head -1))
guest rootfs (build/reuse): ${t_guest} s ($(grep -oE 'guest rootfs (cached|built in [0-9]+ s)' "$log" | head -1))
nspawn guest up + running:  ${t_guest_up} s
test-lab wall time:         $((SECONDS - t_start)) s
EOT
rm -f "$log"
