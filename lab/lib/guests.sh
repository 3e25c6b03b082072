# shellcheck shell=bash
# shellcheck disable=SC2154  # lab_ssh_opts comes from common.sh (sourced first by lab/bin/lab)
# shellcheck disable=SC2015  # `test && action || die` where the action cannot fail is intended
# Lab guest machines: systemd-nspawn containers booting systemd as PID 1 on an overlayfs over the
# cached guest rootfs, each in a network namespace the lab creates, reached over a veth pair:
#   host side  ${LAB_NAME}-g<N>  ${LAB_GUEST_NET}.<N>.1/30
#   guest side host0             ${LAB_GUEST_NET}.<N>.2/30   (N = position in LAB_GUESTS)
# LAB_GUEST_LAN=1 puts the host sides on one bridge ${LAB_NAME}-lan (which then holds the .1
# addresses) and gives each guest an on-link route to ${LAB_GUEST_NET}.0.0/16: the guests reach each
# other on one Ethernet segment (a load balancer and its backends), without the host routing.

GUESTS_DIR="$LAB_STATE_DIR/guests"

guest_index() {  # name -> 1-based position in LAB_GUESTS
    local i=0 g
    for g in $LAB_GUESTS; do i=$((i + 1)); [ "$g" = "$1" ] && { echo "$i"; return 0; }; done
    return 1
}
guest_lan() { echo "$LAB_NAME-lan"; }   # the bridge of LAB_GUEST_LAN=1
guest_addr() { echo "$LAB_GUEST_NET.$(guest_index "$1").2"; }

guest_pid() {  # nspawn pid of a guest if it runs
    local d="$GUESTS_DIR/$1" pid
    pid=$(cat "$d/nspawn.pid" 2>/dev/null) || return 1
    [ -n "$pid" ] && [ -r "/proc/$pid/cmdline" ] || return 1
    tr '\0' ' ' < "/proc/$pid/cmdline" | grep -qF -- "$d/root" || return 1
    echo "$pid"
}

guest_ssh() { local n=$1; shift; ssh "${lab_ssh_opts[@]}" -i "$LAB_KEY" "root@$(guest_addr "$n")" "$@"; }

validate_guests() {
    local g i=0
    for g in $LAB_GUESTS; do
        i=$((i + 1))
        [[ $g =~ ^[a-z][a-z0-9-]{0,30}$ ]] || die "guest name '$g' in LAB_GUESTS is invalid: use lower-case letters, digits and '-', starting with a letter (max 31)"
    done
    [ "$i" -ge 1 ] && [ "$i" -le 250 ] || die "LAB_GUESTS must name 1 to 250 guests (got $i)"
    [[ $LAB_GUEST_LAN =~ ^[01]$ ]] || die "LAB_GUEST_LAN='$LAB_GUEST_LAN' must be 0 (a /30 link per guest) or 1 (also one bridge between the guests)"
    [[ $LAB_GUEST_NET =~ ^[0-9]{1,3}\.[0-9]{1,3}$ ]] || die "LAB_GUEST_NET='$LAB_GUEST_NET' must be the first two octets, e.g. 10.213"
    [ ${#LAB_NAME} -le 8 ] && [[ $LAB_NAME =~ ^[a-z][a-z0-9]*$ ]] || die "LAB_NAME='$LAB_NAME' must be 1-8 lower-case letters/digits (it prefixes interface names)"
}

guests_up() {  # [name...]: default all of LAB_GUESTS
    need_cmds systemd-nspawn ip ssh mount
    validate_guests
    local g
    for g in "$@"; do
        guest_index "$g" >/dev/null || die "unknown guest '$g': the lab's guests are LAB_GUESTS='$LAB_GUESTS'"
    done
    build_guest_image
    ensure_key
    # shellcheck disable=SC2048,SC2086  # names are validated words; LAB_GUESTS is a space-separated list
    for g in ${*:-$LAB_GUESTS}; do guest_up "$g"; done
}

guest_up() {
    local name=$1 idx d ns veth rootfs lower t0=$SECONDS
    idx=$(guest_index "$name"); d="$GUESTS_DIR/$name"
    ns="$LAB_NAME-$name"; veth="$LAB_NAME-g$idx"
    if guest_pid "$name" >/dev/null; then
        log "$name already running"
    else
        guest_teardown "$name"   # leftovers of a crashed run
        lower="$(guest_image_path)/rootfs"
        mkdir -p "$d/root" "$d/upper" "$d/work"
        echo "$idx" > "$d/index"
        mount -t overlay "lab-$name" -o "lowerdir=$lower,upperdir=$d/upper,workdir=$d/work" "$d/root"
        rootfs="$d/root"
        echo "$name" > "$rootfs/etc/hostname"
        printf '127.0.0.1 localhost\n127.0.1.1 %s\n' "$name" > "$rootfs/etc/hosts"
        install -d -m 0700 "$rootfs/root/.ssh"
        install -m 0600 "$LAB_KEY.pub" "$rootfs/root/.ssh/authorized_keys"
        ip netns add "$ns"
        ip link add "$veth" type veth peer name host0 netns "$ns"
        if [ "$LAB_GUEST_LAN" = 1 ]; then
            ip link show "$(guest_lan)" >/dev/null 2>&1 || { ip link add "$(guest_lan)" type bridge; ip link set "$(guest_lan)" up; }
            ip link set "$veth" master "$(guest_lan)"
            ip addr add "$LAB_GUEST_NET.$idx.1/30" dev "$(guest_lan)"
        else
            ip addr add "$LAB_GUEST_NET.$idx.1/30" dev "$veth"
        fi
        ip link set "$veth" up
        ip -n "$ns" link set lo up
        ip -n "$ns" addr add "$LAB_GUEST_NET.$idx.2/30" dev host0
        ip -n "$ns" link set host0 up
        ip -n "$ns" route add default via "$LAB_GUEST_NET.$idx.1"
        [ "$LAB_GUEST_LAN" != 1 ] || ip -n "$ns" route add "$LAB_GUEST_NET.0.0/16" dev host0
        setsid systemd-nspawn -D "$rootfs" -b -M "$name" --register=no --keep-unit \
            --network-namespace-path="/run/netns/$ns" --console=passive \
            </dev/null >"$d/console.log" 2>&1 &
        echo $! > "$d/nspawn.pid"
        log "$name: nspawn pid $!, $LAB_GUEST_NET.$idx.2 via $veth, console $d/console.log"
    fi
    local i
    for i in $(seq 60); do
        if guest_ssh "$name" true 2>/dev/null; then
            log "$name: SSH up on $(guest_addr "$name") after $((SECONDS - t0)) s"
            return 0
        fi
        guest_pid "$name" >/dev/null || { tail -n 30 "$d/console.log" >&2; die "$name: systemd-nspawn exited (console above)"; }
        sleep 1
    done
    tail -n 30 "$d/console.log" >&2
    die "$name: no SSH on $(guest_addr "$name") after 60 s (console above)"
}

guest_teardown() {  # stop and remove everything of one guest; safe to repeat
    local name=$1 d="$GUESTS_DIR/$1" pid idx i
    if pid=$(guest_pid "$name"); then
        kill -TERM "$pid" 2>/dev/null || true   # nspawn asks systemd in the guest to power off
        for i in $(seq 100); do [ -d "/proc/$pid" ] || break; sleep 0.2; done
        if [ -d "/proc/$pid" ]; then kill -KILL "$pid" 2>/dev/null || true; sleep 0.5; fi
        log "$name stopped (pid $pid)"
    fi
    if mountpoint -q "$d/root" 2>/dev/null; then
        umount "$d/root" || die "cannot unmount $d/root (still in use: fuser -vm $d/root)"
    fi
    idx=$(cat "$d/index" 2>/dev/null || true)
    if [ -n "$idx" ] && ip link show "$LAB_NAME-g$idx" >/dev/null 2>&1; then ip link del "$LAB_NAME-g$idx"; fi
    if [ -n "$idx" ] && ip link show "$(guest_lan)" >/dev/null 2>&1; then
        ip addr del "$LAB_GUEST_NET.$idx.1/30" dev "$(guest_lan)" 2>/dev/null || true
    fi
    if ip netns list 2>/dev/null | grep -qE "^$LAB_NAME-$name( |$)"; then ip netns del "$LAB_NAME-$name"; fi
    rm -rf "$d/upper" "$d/work" "$d/nspawn.pid"
    [ -d "$d/root" ] && rmdir "$d/root" 2>/dev/null || true
}

guests_down() {
    local d
    if [ -d "$GUESTS_DIR" ]; then
        for d in "$GUESTS_DIR"/*/; do
            [ -d "$d" ] || continue
            guest_teardown "$(basename "$d")"
        done
    fi
    if ip link show "$(guest_lan)" >/dev/null 2>&1; then ip link del "$(guest_lan)"; log "$(guest_lan) removed"; fi
}
