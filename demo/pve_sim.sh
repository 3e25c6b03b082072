#!/usr/bin/env bash
# Start/stop the SIMULATED Proxmox VE API for `make demo` (tests/pve_simulator; not Proxmox VE).
#   demo/pve_sim.sh start STATE_DIR   -> STATE_DIR/pve-env.sh (PROXMOX_* for shells) and
#                                        STATE_DIR/pve-api.yml (role variables, passed with -e @)
#   demo/pve_sim.sh stop STATE_DIR
# Node "lab-pve" answers /hardware/pci with the lab VM's real sysfs, read over SSH per request.
set -euo pipefail
REPO=$(cd "$(dirname "$0")/.." && pwd)
cmd=${1:?usage: pve_sim.sh start|stop STATE_DIR}; STATE=${2:?STATE_DIR}
PY="$REPO/.venv/bin/python"
pidfile="$STATE/pve-sim.pid"

stop() {
    if [ -f "$pidfile" ] && kill -0 "$(cat "$pidfile")" 2>/dev/null; then
        kill "$(cat "$pidfile")"; sleep 0.5
        if kill -0 "$(cat "$pidfile")" 2>/dev/null; then kill -9 "$(cat "$pidfile")"; fi
        echo "[demo] simulated PVE API stopped"
    fi
    rm -f "$pidfile"
}

case $cmd in
stop) stop ;;
start)
    mkdir -p "$STATE"; chmod 700 "$STATE"
    if [ -f "$pidfile" ] && kill -0 "$(cat "$pidfile")" 2>/dev/null; then
        echo "[demo] simulated PVE API already running (pid $(cat "$pidfile"))"; exit 0
    fi
    "$PY" - "$REPO" "$STATE" <<'PYEOF'
import json, os, secrets, sys
repo, state = sys.argv[1], sys.argv[2]
sys.path.insert(0, os.path.join(repo, "tests", "pve_simulator"))
from runner import access_config, make_certs, placeholder_values  # noqa: E402
ca, cert, key = make_certs(state)
token_id = "automation@pve!ansible"
secret_file = os.path.join(state, "token.secret")
if not os.path.exists(secret_file):
    with open(os.open(secret_file, os.O_WRONLY | os.O_CREAT, 0o600), "w") as fh:
        fh.write(secrets.token_hex(16))
secret = open(secret_file).read().strip()
root_file = os.path.join(state, "root.secret")   # root@pam!simulator: the simulated pveum's credentials
if not os.path.exists(root_file):
    with open(os.open(root_file, os.O_WRONLY | os.O_CREAT, 0o600), "w") as fh:
        fh.write(secrets.token_hex(16))
root_secret = open(root_file).read().strip()
# the token has exactly what the README tells users to grant (_proxmox_api_access_grants), with
# privilege separation, for node lab-pve and the roles' default storage and bridge
with open(os.open(os.path.join(state, "access.json"), os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), "w") as fh:
    json.dump(access_config(token_id, secret, root_secret, values=placeholder_values("lab-pve")), fh)
fixture = {
    "_comment": "make demo: simulated PVE node lab-pve = the lab VM; its /hardware/pci is read live over SSH",
    "version": {"version": "9.1.1", "release": "9.1", "repoid": "simulated"},
    "nodes": {"lab-pve": {
        "storage": {"local": {"content": ["iso", "snippets"]}, "local-lvm": {"content": ["images", "rootdir"]}},
        "pci_command": [os.path.join(repo, "lab/bin/lab"), "ssh", "lab-pve", "python3", "-"],
        "pci_command_stdin": os.path.join(repo, "demo/pve_hardware_pci.py"),
    }},
}
with open(os.path.join(state, "fixture.json"), "w") as fh:
    json.dump(fixture, fh, indent=1)
PYEOF
    rm -f "$STATE/port"
    setsid "$PY" "$REPO/tests/pve_simulator/server.py" --cert "$STATE/server.pem" --key "$STATE/server.key" \
        --access "$STATE/access.json" --fixture "$STATE/fixture.json" --ready-file "$STATE/port" \
        --log-file "$STATE/simulated-pve.log" </dev/null >>"$STATE/simulated-pve.out" 2>&1 &
    echo $! >"$pidfile"
    for _ in $(seq 100); do [ -s "$STATE/port" ] && break; sleep 0.1; done
    [ -s "$STATE/port" ] || { echo "[demo] simulated PVE API did not start; see $STATE/simulated-pve.out" >&2; stop; exit 1; }
    port=$(cat "$STATE/port"); secret=$(cat "$STATE/token.secret")
    umask 077
    cat >"$STATE/pve-env.sh" <<SH
export PROXMOX_HOST=127.0.0.1 PROXMOX_PORT=$port PROXMOX_TOKEN_ID='automation@pve!ansible'
export PROXMOX_TOKEN_SECRET=$secret PROXMOX_CA_PATH=$STATE/ca.pem
SH
    cat >"$STATE/pve-api.yml" <<YML
# Written by demo/pve_sim.sh: the simulated PVE API of this lab run.
proxmox_api_host: 127.0.0.1
proxmox_api_port: $port
proxmox_api_token_id: "automation@pve!ansible"
proxmox_api_token_secret: "$secret"
proxmox_api_ca_path: "$STATE/ca.pem"
YML
    # root.json: what the simulated pveum (tests/pve_simulator/pveum_cli.py) reads, as the tests' runner writes it
    printf '{"host": "127.0.0.1", "port": %s, "ca_path": "%s", "token_id": "root@pam!simulator", "token_secret": "%s"}\n' \
        "$port" "$STATE/ca.pem" "$(cat "$STATE/root.secret")" >"$STATE/root.json"
    echo "[demo] simulated PVE API on https://127.0.0.1:$port (log $STATE/simulated-pve.log)"
    ;;
*) echo "usage: pve_sim.sh start|stop STATE_DIR" >&2; exit 2 ;;
esac
