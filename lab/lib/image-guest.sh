# shellcheck shell=bash
# Build the lab guest root filesystem (Debian bookworm directory tree for systemd-nspawn) into the
# cache. Each running guest mounts it read-only as the lower layer of an overlayfs.

guest_image_path() { echo "$LAB_CACHE_DIR/guest-$(recipe_hash guest)"; }

build_guest_image() {
    local out; out=$(guest_image_path)
    [ -d "$out/rootfs" ] && { log "guest rootfs cached: $out/rootfs"; return 0; }
    mkdir -p "$LAB_CACHE_DIR"
    (
        flock -w 1800 9 || die "timed out waiting for $out.lock (another build of the same rootfs)"
        [ -d "$out/rootfs" ] && { log "guest rootfs cached: $out/rootfs (built by another run)"; exit 0; }
        _build_guest_image "$out"
    ) 9>"$out.lock"
}

_build_guest_image() {
    local out=$1
    need_cmds mmdebstrap
    local recipe="$LAB_ROOT/images/guest" t0=$SECONDS
    local work; work=$(mktemp -d "$LAB_CACHE_DIR/build-guest.XXXXXX")
    # shellcheck disable=SC2064
    trap "rm -rf '$work'" EXIT
    log "building guest rootfs (cold build: a few minutes) in $work"
    mmdebstrap --variant=minbase --include="$(packages_of "$recipe/packages")" \
        --aptopt='APT::Install-Recommends "false"' \
        --customize-hook="sync-in '$recipe/files' /" \
        --customize-hook='set -e
            chroot "$1" systemctl enable ssh.service
            rm -f "$1/etc/ssh/ssh_host_"*
            chroot "$1" ssh-keygen -A
            : > "$1/etc/machine-id"
            rm -rf "$1/var/cache/apt/archives/"*.deb "$1/var/lib/apt/lists/"*' \
        "$LAB_SUITE" "$work/rootfs" "deb $LAB_MIRROR $LAB_SUITE main" \
        "deb ${LAB_MIRROR%/debian}/debian-security $LAB_SUITE-security main" \
        > "$work/mmdebstrap.log" 2>&1 || { tail -n 40 "$work/mmdebstrap.log" >&2; die "mmdebstrap failed (log above)"; }
    mkdir -p "$out.tmp"; mv "$work/rootfs" "$out.tmp/rootfs"; mv "$out.tmp" "$out"
    rm -rf "$work"; trap - EXIT
    log "guest rootfs built in $((SECONDS - t0)) s: $out/rootfs ($(du -sh "$out/rootfs" | cut -f1))"
}
