#!/usr/bin/env bash
# `make test-lab`: the lab's end-to-end test, as CI runs it on a fresh clone.
#   1. install the lab's Debian packages (apt-get) if missing
#   2. build or reuse the cached images (timed)
#   3. molecule test -s lab_smoke: setup against the VM and an nspawn guest, IOMMU off verdict,
#      cmdline switch + reboot, isolated / not isolated verdicts, then lab down
#   4. prove nothing is left: no qemu/systemd-nspawn process, mount, loop device, netns or veth
# Prints the timings at the end. Exits non-zero when any step fails or anything is left behind.
set -euo pipefail
cd "$(dirname "$0")/../.."
LAB=lab/bin/lab
export NO_COLOR=1 ANSIBLE_NOCOLOR=1 ANSIBLE_FORCE_COLOR=0 PY_COLORS=0
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

t=$SECONDS
if ! molecule test -s lab_smoke >>"$log" 2>&1; then
    tail -n 80 "$log"
    echo "test-lab: molecule test -s lab_smoke failed (full log: $log)" >&2
    exit 1
fi
t_molecule=$((SECONDS - t))
grep -E 'IOMMU is off|can be passed through|is not isolated|SSH up on|reboot round trip' "$log" \
    | sed -e 's/^[^"]*"//' -e 's/",\{0,1\}$//' | cut -c1-240 | sort -u

$LAB down
echo "--- leftovers after lab down"
$LAB leftovers
state=$(cd "${LAB_STATE_DIR:-lab/.state}" && pwd)
cache=${LAB_CACHE_DIR:-/var/cache/homelab-gpu-lab}
echo "pgrep -af 'qemu-system|systemd-nspawn' | grep $state/(vm|guests)/: $(pgrep -af 'qemu-system|systemd-nspawn' | grep -cE "$state/(vm|guests)/" || true)"
echo "losetup -a | grep -e $state/ -e $cache/: $(losetup -a | grep -c -e "$state/" -e "$cache/" || true)"
echo "findmnt -rn | grep $state/guests/: $(findmnt -rn | grep -c "$state/guests/" || true)"

boot=$(grep -oE 'lab-pve: SSH up on [0-9.:]+ after [0-9]+ s' "$log" | grep -oE '[0-9]+ s$' | head -1)
reboot=$(grep -oE 'reboot round trip: [0-9]+ s' "$log" | grep -oE '[0-9]+ s$' | head -1)
cat <<EOT
--- test-lab timings
apt packages:               ${t_deps} s
host image (build/reuse):   ${t_host} s ($(grep -oE 'host image (cached|built in [0-9]+ s)' "$log" | head -1))
guest rootfs (build/reuse): ${t_guest} s ($(grep -oE 'guest rootfs (cached|built in [0-9]+ s)' "$log" | head -1))
boot to SSH (lab-pve):      ${boot:-?}
reboot round trip:          ${reboot:-?}
molecule test -s lab_smoke: ${t_molecule} s
test-lab wall time:         $((SECONDS - t_start)) s
EOT
rm -f "$log"
