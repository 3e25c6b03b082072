# shellcheck shell=bash
# shellcheck disable=SC2154  # lab_ssh_opts comes from common.sh (sourced first by lab/bin/lab)
# The lab host VM ("lab-pve"): QEMU TCG, q35 + emulated Intel IOMMU, a throw-away qcow2 overlay on
# the cached base image, SSH forwarded to 127.0.0.1:$LAB_SSH_PORT, serial console in a log file.

VM_DIR="$LAB_STATE_DIR/vm"

# The PCI device set that gives the IOMMU groups the lab tests against (shared/LAB.md):
#   00:05.0 VGA 1234:1111 (class 0300) + 00:05.1 secondary-vga 1234:1111 (class 0380) -> one group,
#           isolated: a two-function "GPU" whose functions share its vendor, as a real card's do
#           (an NVIDIA card's HDMI audio is 10de:xxxx too)
#   00:06.0 pcie-pci-bridge with e1000 + pci-testdev + virtio-gpu 1af4:1050 behind it -> one group,
#           NOT isolated: a second "GPU" (class 03) stuck in a shared group, for the negative test
#   00:07.0 root port with edu 1234:11e8 behind it -> lone device
#   00:08.0 e1000e + 00:08.1 pci-testdev -> separate groups
#   00:09.0 virtio-gpu 1af4:1050 + 00:09.1 HDA 8086:293e -> one group: a "GPU" whose slot holds a
#           function of another vendor (like an AMD APU's PSP/USB/audio next to its iGPU): NOT isolated
vm_device_args() {
    cat <<'EOF_DEV'
-device intel-iommu,intremap=on,caching-mode=on
-vga none
-device VGA,bus=pcie.0,addr=05.0,multifunction=on
-device secondary-vga,bus=pcie.0,addr=05.1
-device pcie-pci-bridge,id=br1,bus=pcie.0,addr=06.0
-device e1000,bus=br1,addr=01.0,netdev=dummy0
-netdev user,id=dummy0,restrict=on
-device pci-testdev,bus=br1,addr=02.0
-device virtio-gpu-pci,bus=br1,addr=03.0
-device pcie-root-port,id=rp1,bus=pcie.0,addr=07.0,chassis=1
-device edu,bus=rp1
-device e1000e,bus=pcie.0,addr=08.0,multifunction=on,netdev=dummy1
-netdev user,id=dummy1,restrict=on
-device pci-testdev,bus=pcie.0,addr=08.1
-device virtio-gpu-pci,bus=pcie.0,addr=09.0,multifunction=on
-device ich9-intel-hda,bus=pcie.0,addr=09.1
EOF_DEV
}

vm_pid() {  # prints the QEMU pid of this state dir if it runs
    local pid
    [ -f "$VM_DIR/qemu.pid" ] || return 1
    pid=$(cat "$VM_DIR/qemu.pid" 2>/dev/null) || return 1
    [ -n "$pid" ] && [ -r "/proc/$pid/cmdline" ] || return 1
    tr '\0' ' ' < "/proc/$pid/cmdline" | grep -qF -- "$VM_DIR/" || return 1
    echo "$pid"
}

port_busy() { ss -Hltn "sport = :$1" 2>/dev/null | grep -q .; }

vm_ssh() { ssh "${lab_ssh_opts[@]}" -i "$LAB_KEY" -p "$LAB_SSH_PORT" root@127.0.0.1 "$@"; }

vm_up() {
    need_cmds qemu-system-x86_64 qemu-img ssh ssh-keygen ss
    build_host_image
    ensure_key
    mkdir -p "$VM_DIR"
    if vm_pid >/dev/null; then
        log "lab-pve already running (pid $(vm_pid)); waiting for SSH"
    else
        port_busy "$LAB_SSH_PORT" && die "127.0.0.1:$LAB_SSH_PORT is already in use (another lab?). Stop it, or pick another port: LAB_SSH_PORT=2223 lab/bin/lab up vm (and the same variable for ansible)"
        local base; base=$(host_image_path)
        rm -f "$VM_DIR/disk.qcow2" "$VM_DIR/serial.log" "$VM_DIR/monitor.sock"
        qemu-img create -q -f qcow2 -b "$base" -F qcow2 "$VM_DIR/disk.qcow2"
        local -a dev; mapfile -t dev < <(vm_device_args | tr ' ' '\n' | grep -v '^$')
        # shellcheck disable=SC2046
        qemu-system-x86_64 -name lab-pve -nodefaults -display none \
            -machine q35,kernel-irqchip=split \
            -accel "tcg,thread=multi,tb-size=$LAB_VM_TB_SIZE" -cpu max \
            -smp "$LAB_VM_CPUS" -m "$LAB_VM_MEMORY" \
            "${dev[@]}" \
            -netdev "user,id=net0,restrict=on,hostfwd=tcp:127.0.0.1:$LAB_SSH_PORT-:22" \
            -device virtio-net-pci,netdev=net0,bus=pcie.0,addr=02.0 \
            -drive "file=$VM_DIR/disk.qcow2,if=none,id=disk0,format=qcow2,cache=unsafe,discard=unmap" \
            -device virtio-blk-pci,drive=disk0,bus=pcie.0,addr=03.0 \
            -fw_cfg "name=opt/homelab/authorized_keys,file=$LAB_KEY.pub" \
            -chardev "file,id=serial0,path=$VM_DIR/serial.log" -serial chardev:serial0 \
            -monitor "unix:$VM_DIR/monitor.sock,server=on,wait=off" \
            -pidfile "$VM_DIR/qemu.pid" -daemonize \
            || die "QEMU did not start (command line above)"
        date +%s > "$VM_DIR/started_at"
        log "lab-pve started (pid $(cat "$VM_DIR/qemu.pid")), serial console: $VM_DIR/serial.log"
    fi
    vm_wait_ssh
}

serial_tail() { [ -f "$VM_DIR/serial.log" ] && tr -d '\r' < "$VM_DIR/serial.log" | sed 's/\x1b\[[0-9;?]*[A-Za-z]//g' | tail -n "${1:-40}"; }

vm_wait_ssh() {
    local t0=$SECONDS last=0 now line
    while :; do
        if vm_ssh true 2>/dev/null; then
            log "lab-pve: SSH up on 127.0.0.1:$LAB_SSH_PORT after $((SECONDS - t0)) s"
            return 0
        fi
        now=$((SECONDS - t0))
        if ! vm_pid >/dev/null; then
            log "QEMU exited before SSH came up; serial console tail:"; serial_tail >&2
            die "lab-pve failed to boot"
        fi
        if [ "$now" -ge "$LAB_BOOT_TIMEOUT" ]; then
            log "no SSH after $LAB_BOOT_TIMEOUT s; serial console tail ($VM_DIR/serial.log):"; serial_tail >&2
            die "lab-pve: SSH timeout (raise LAB_BOOT_TIMEOUT on a loaded machine; LAB_KEEP_ON_FAILURE=1 keeps the VM for inspection)"
        fi
        if [ $((now - last)) -ge 15 ]; then
            last=$now
            line=$(serial_tail 1 | cut -c1-70)
            log "waiting for SSH on 127.0.0.1:$LAB_SSH_PORT: ${now}s/${LAB_BOOT_TIMEOUT}s, console: ${line:-<nothing yet>}"
        fi
        sleep 3
    done
}

vm_down() {
    local pid
    if pid=$(vm_pid); then
        kill -TERM "$pid" 2>/dev/null || true
        for _ in $(seq 50); do [ -d "/proc/$pid" ] || break; sleep 0.2; done
        if [ -d "/proc/$pid" ]; then kill -KILL "$pid" 2>/dev/null || true; sleep 0.5; fi
        log "lab-pve stopped (pid $pid)"
    fi
    rm -f "$VM_DIR/disk.qcow2" "$VM_DIR/qemu.pid" "$VM_DIR/monitor.sock" "$VM_DIR/started_at"
}
