# shellcheck shell=bash
# Build the lab host base image (Debian bookworm, BIOS/GRUB, qcow2) into the cache.
# No loop device and no mount: mmdebstrap builds a directory tree, `mkfs.ext4 -d` writes it into
# partition 1 of a sparse raw file through `-E offset=`, GRUB's boot.img/core.img go in with dd.

host_image_path() { echo "$LAB_CACHE_DIR/host-$(recipe_hash host).qcow2"; }

build_host_image() {
    local out; out=$(host_image_path)
    [ -f "$out" ] && { log "host image cached: $out"; return 0; }
    mkdir -p "$LAB_CACHE_DIR"
    # Another checkout may be building the same image: wait for it. The lock is held only by this
    # subshell, never by the VM or a later step.
    (
        flock -w 1800 8 || die "timed out waiting for $out.lock (another build of the same image)"
        [ -f "$out" ] && { log "host image cached: $out (built by another run)"; exit 0; }
        _build_host_image "$out"
    ) 8>"$out.lock"
}

_build_host_image() {
    local out=$1
    need_cmds mmdebstrap mkfs.ext4 parted grub-mkimage qemu-img
    local recipe="$LAB_ROOT/images/host" t0=$SECONDS
    local work; work=$(mktemp -d "$LAB_CACHE_DIR/build-host.XXXXXX")
    # shellcheck disable=SC2064
    trap "rm -rf '$work'" EXIT
    log "building host image (cold build: several minutes) in $work"
    local pkgs; pkgs=$(packages_of "$recipe/packages")
    # At build time the initramfs gets an explicit module list (MODULES=dep cannot see the
    # target's disk from a directory); the image itself is left with MODULES=dep.
    mmdebstrap --variant=minbase --include="$pkgs" \
        --aptopt='APT::Install-Recommends "false"' \
        --essential-hook='mkdir -p "$1/etc/initramfs-tools/conf.d" "$1/etc/initramfs-tools/hooks"
            echo MODULES=list > "$1/etc/initramfs-tools/conf.d/zz-lab-build.conf"
            printf "%s\n" "#!/bin/sh" "[ \"\$1\" = prereqs ] && exit 0" ". /usr/share/initramfs-tools/hook-functions" \
              "manual_add_modules virtio_pci virtio_blk ext4 crc32c_generic" > "$1/etc/initramfs-tools/hooks/zz-lab-build"
            chmod 0755 "$1/etc/initramfs-tools/hooks/zz-lab-build"' \
        --customize-hook="sync-in '$recipe/files' /" \
        --customize-hook='set -e
            rm -f "$1/etc/initramfs-tools/conf.d/zz-lab-build.conf" "$1/etc/initramfs-tools/hooks/zz-lab-build"
            sed -i "s/^MODULES=.*/MODULES=dep/" "$1/etc/initramfs-tools/initramfs.conf"
            echo lab-pve > "$1/etc/hostname"
            printf "127.0.0.1 localhost\n127.0.1.1 lab-pve\n" > "$1/etc/hosts"
            echo "UUID='"$LAB_ROOT_UUID"' / ext4 errors=remount-ro 0 1" > "$1/etc/fstab"
            chroot "$1" systemctl enable systemd-networkd.service lab-ssh-key.service lab-firstboot.service ssh.service
            chroot "$1" systemctl mask systemd-networkd-wait-online.service
            echo "grub-pc grub-pc/install_devices multiselect /dev/vda" | chroot "$1" debconf-set-selections
            mkdir -p "$1/boot/grub"
            cp -a "$1/usr/lib/grub/i386-pc" "$1/boot/grub/"
            kver=$(ls "$1/boot" | sed -n "s/^vmlinuz-//p" | sort -V | tail -1)
            cat > "$1/boot/grub/grub.cfg" <<GRUB
# First-boot menu written by the lab image build; lab-firstboot.service replaces it with update-grub.
serial --unit=0 --speed=115200
terminal_input console serial
terminal_output console serial
set default=0
set timeout=1
menuentry "Debian GNU/Linux (lab first boot)" {
  insmod part_msdos
  insmod ext2
  search --no-floppy --fs-uuid --set=root '"$LAB_ROOT_UUID"'
  linux /boot/vmlinuz-$kver root=UUID='"$LAB_ROOT_UUID"' ro console=tty0 console=ttyS0,115200n8 quiet intel_iommu=off
  initrd /boot/initrd.img-$kver
}
GRUB
            rm -f "$1/etc/ssh/ssh_host_"*
            chroot "$1" ssh-keygen -A
            rm -rf "$1/var/cache/apt/archives/"*.deb "$1/var/lib/apt/lists/"*' \
        "$LAB_SUITE" "$work/root" "deb $LAB_MIRROR $LAB_SUITE main" \
        "deb ${LAB_MIRROR%/debian}/debian-security $LAB_SUITE-security main" \
        > "$work/mmdebstrap.log" 2>&1 || { tail -n 40 "$work/mmdebstrap.log" >&2; die "mmdebstrap failed (log above)"; }
    log "rootfs done after $((SECONDS - t0)) s; writing the disk"
    local raw="$work/disk.raw" size_mib=6144
    truncate -s "${size_mib}M" "$raw"
    parted -s "$raw" mklabel msdos mkpart primary ext4 1MiB 100% set 1 boot on
    mkfs.ext4 -q -F -L lab-root -U "$LAB_ROOT_UUID" -E offset=1048576 -d "$work/root" "$raw" "$((size_mib - 1))M"
    local g="$work/root/usr/lib/grub/i386-pc"
    grub-mkimage -O i386-pc -d "$g" -p '(hd0,msdos1)/boot/grub' -o "$work/core.img" biosdisk part_msdos ext2
    [ "$(stat -c %s "$work/core.img")" -lt $((2047 * 512)) ] || die "core.img does not fit before partition 1"
    dd if="$g/boot.img" of="$raw" bs=440 count=1 conv=notrunc status=none
    dd if="$work/core.img" of="$raw" bs=512 seek=1 conv=notrunc status=none
    qemu-img convert -O qcow2 "$raw" "$work/base.qcow2"
    mv "$work/base.qcow2" "$out"
    rm -rf "$work"; trap - EXIT
    log "host image built in $((SECONDS - t0)) s: $out ($(du -h "$out" | cut -f1))"
}
