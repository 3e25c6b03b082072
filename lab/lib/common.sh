# shellcheck shell=bash
# Sourced by lab/bin/lab with the other lib files; variables set here are read there.
# shellcheck disable=SC2034  # settings (LAB_ROOT_UUID, lab_ssh_opts) are used by the other lib files
# shellcheck disable=SC2009,SC2010  # ps/ls output is matched on full argv and fd link targets on purpose
# Shared settings and helpers of lab/bin/lab. Every setting can be overridden from the environment.

LAB_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
: "${LAB_CACHE_DIR:=/var/cache/homelab-gpu-lab}"   # base images, outside the repo
: "${LAB_STATE_DIR:=$LAB_ROOT/.state}"              # per-checkout runtime state (gitignored)
: "${LAB_NAME:=lab}"                                # prefix of netns/veth names (unique per state dir)
: "${LAB_MIRROR:=http://deb.debian.org/debian}"
: "${LAB_SUITE:=bookworm}"
# Lab host VM
: "${LAB_SSH_PORT:=2222}"        # 127.0.0.1:PORT -> VM:22
: "${LAB_VM_MEMORY:=1024}"       # MiB; keep 1024 (several helpers' VMs share the machine)
: "${LAB_VM_CPUS:=2}"
: "${LAB_VM_TB_SIZE:=256}"       # MiB of TCG translation cache (default would grow to 1 GiB)
: "${LAB_BOOT_TIMEOUT:=600}"     # seconds to wait for SSH after starting QEMU
# Guest machines (systemd-nspawn): name list; the position gives the subnet 10.213.<N>.0/30
: "${LAB_GUESTS:=whisper-guest driver-guest}"
: "${LAB_GUEST_NET:=10.213}"
: "${LAB_GUEST_LAN:=0}"          # 1: the guests share one bridge and reach each other (guests.sh)

LAB_KEY="$LAB_STATE_DIR/id_ed25519"
LAB_ROOT_UUID=5b1c0d7e-1ab0-4c1e-9d3e-0a1b2c3d4e5f

log() { printf '[lab] %s\n' "$*" >&2; }
die() { printf '[lab] ERROR: %s\n' "$*" >&2; exit 1; }

need_root() {
    [ "$(id -u)" = 0 ] || die "the lab needs root (loop-free image build, nspawn, network namespaces): run it with sudo"
}

need_cmds() {
    local missing=() c
    for c in "$@"; do command -v "$c" >/dev/null 2>&1 || missing+=("$c"); done
    [ ${#missing[@]} -eq 0 ] || die "missing commands: ${missing[*]}. Install the lab's Debian packages: lab/bin/lab deps"
}

# Hash of every file that makes an image: the recipe dir plus the builder script.
recipe_hash() {  # $1 = host|guest
    local kind=$1
    (cd "$LAB_ROOT" && find "images/$kind" "lib/image-$kind.sh" -type f -print0 | LC_ALL=C sort -z \
        | xargs -0 sha256sum; printf '%s %s\n' "$LAB_SUITE" "$LAB_MIRROR") | sha256sum | cut -c1-16
}

packages_of() {  # $1 = recipe packages file -> comma separated list
    grep -v -e '^\s*#' -e '^\s*$' "$1" | paste -sd, -
}

ensure_key() {
    mkdir -p "$LAB_STATE_DIR"
    if [ ! -f "$LAB_KEY" ]; then
        ssh-keygen -q -t ed25519 -N '' -C "homelab-gpu-lab" -f "$LAB_KEY"
        log "generated SSH key $LAB_KEY"
    fi
}

# ServerAlive*: QEMU's user-mode network never resets a connection whose guest rebooted; without
# them an SSH session open across a reboot of the lab VM waits forever.
lab_ssh_opts=(-o BatchMode=yes -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null
              -o LogLevel=ERROR -o ConnectTimeout=5 -o ServerAliveInterval=5 -o ServerAliveCountMax=6)

fmt_secs() { printf '%dm%02ds' $(($1 / 60)) $(($1 % 60)); }
# A resolved inventory of what runs now (for ad-hoc use: ansible -i lab/.state/inventory.yml ...).
# inventories/lab/ reads the same settings from the environment and needs no generated file.
write_inventory() {
    local inv="$LAB_STATE_DIR/inventory.yml" g
    mkdir -p "$LAB_STATE_DIR"
    {
        echo "# Written by lab/bin/lab up; removed by lab/bin/lab down."
        echo "all:"
        echo "  vars:"
        echo "    ansible_user: root"
        echo "    ansible_python_interpreter: /usr/bin/python3"
        echo "    ansible_ssh_private_key_file: $LAB_KEY"
        echo "    ansible_ssh_common_args: -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null -o ServerAliveInterval=5 -o ServerAliveCountMax=6"
        echo "  children:"
        if vm_pid >/dev/null; then
            echo "    proxmox_hosts:"
            echo "      hosts:"
            echo "        lab-pve: {ansible_host: 127.0.0.1, ansible_port: $LAB_SSH_PORT}"
        fi
        echo "    gpu_guests:"
        echo "      hosts:"
        for g in $LAB_GUESTS; do
            guest_pid "$g" >/dev/null && echo "        $g: {ansible_host: $(guest_addr "$g")}"
        done
    } > "$inv"
    log "inventory of the running lab: $inv"
}

lab_status() {
    local pid g up=0
    if pid=$(vm_pid); then
        up=1
        echo "lab-pve        running  pid $pid  ssh root@127.0.0.1 -p $LAB_SSH_PORT  up $(( $(date +%s) - $(cat "$VM_DIR/started_at" 2>/dev/null || date +%s) )) s"
    else
        echo "lab-pve        stopped"
    fi
    for g in $LAB_GUESTS; do
        if pid=$(guest_pid "$g"); then
            up=1; printf '%-14s running  pid %s  ssh root@%s\n' "$g" "$pid" "$(guest_addr "$g")"
        else
            printf '%-14s stopped\n' "$g"
        fi
    done
    echo "key: $LAB_KEY   state: $LAB_STATE_DIR   cache: $LAB_CACHE_DIR"
    [ "$up" = 1 ]
}

lab_ssh() {
    local name=${1:-}; shift || true
    case $name in
        lab-pve|vm) vm_ssh "$@" ;;
        '') die "usage: lab ssh lab-pve|GUEST [command...]" ;;
        *) guest_index "$name" >/dev/null || die "unknown machine '$name': lab-pve or one of LAB_GUESTS ($LAB_GUESTS)"
           guest_ssh "$name" "$@" ;;
    esac
}

# Molecule's instance_config format: what the default driver turns into connection variables.
lab_instances() {
    local g first=1
    printf '['
    if vm_pid >/dev/null; then
        printf '{"instance": "lab-pve", "address": "127.0.0.1", "port": %s, "user": "root", "identity_file": "%s"}' \
            "$LAB_SSH_PORT" "$LAB_KEY"
        first=0
    fi
    for g in $LAB_GUESTS; do
        guest_pid "$g" >/dev/null || continue
        [ $first = 1 ] || printf ', '
        first=0
        printf '{"instance": "%s", "address": "%s", "port": 22, "user": "root", "identity_file": "%s"}' \
            "$g" "$(guest_addr "$g")" "$LAB_KEY"
    done
    printf ']\n'
}

# Everything this lab (this state dir, cache dir and name prefix) may leave behind. rc 1 if any.
lab_leftovers() {
    local found=0 out
    out=$(ps -eo pid=,args= | grep -E 'qemu-system|systemd-nspawn' | grep -F -e "$LAB_STATE_DIR/vm/" -e "$LAB_STATE_DIR/guests/" | grep -v grep || true)
    [ -z "$out" ] || { echo "processes:"; echo "$out"; found=1; }
    out=$(findmnt -rn -o TARGET,SOURCE,FSTYPE | grep -F -e "$LAB_STATE_DIR/guests/" -e "$LAB_CACHE_DIR/" || true)
    [ -z "$out" ] || { echo "mounts:"; echo "$out"; found=1; }
    out=$(losetup -a 2>/dev/null | grep -F -e "$LAB_STATE_DIR/" -e "$LAB_CACHE_DIR/" || true)
    [ -z "$out" ] || { echo "loop devices:"; echo "$out"; found=1; }
    out=$(ip netns list 2>/dev/null | grep -E "^$LAB_NAME-" || true)
    [ -z "$out" ] || { echo "network namespaces:"; echo "$out"; found=1; }
    out=$(ip -br link 2>/dev/null | grep -E "^$LAB_NAME-(g[0-9]+|lan)[ @]" || true)
    [ -z "$out" ] || { echo "links:"; echo "$out"; found=1; }
    if [ $found = 0 ]; then
        echo "nothing left: no qemu/systemd-nspawn process, mount, loop device, netns or veth of this lab"
    fi
    [ $found = 0 ]
}

# Remove cached images of older recipes that no running lab uses (any state dir on this machine).
lab_prune() {
    local keep_host keep_guest f used
    keep_host=$(host_image_path); keep_guest=$(guest_image_path)
    for f in "$LAB_CACHE_DIR"/host-*.qcow2 "$LAB_CACHE_DIR"/guest-*; do
        [ -e "$f" ] || continue
        case $f in "$keep_host"|"$keep_guest"|*.lock|*.tmp) continue ;; esac
        used=$( { ls -l /proc/[0-9]*/fd 2>/dev/null | grep -F -- "-> $f"; grep -F "lowerdir=$f/" /proc/mounts; } | head -1 || true)
        if [ -n "$used" ]; then log "kept (in use): $f"; continue; fi
        rm -rf -- "$f" "$f.lock"
        log "removed $f"
    done
}
