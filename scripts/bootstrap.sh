#!/usr/bin/env bash
# Starts what pallet needs locally: a docker-registry on 127.0.0.1:5000 and the
# example agents on 127.0.0.1:8001..8007, then pushes the workflows and the
# agents' cards. Running it twice is harmless; `stop` stops exactly what it
# started, `status` shows it. A pidfile holds the PID and the process's start
# time (field 22 of /proc/PID/stat), so a PID reused by an unrelated process is
# never taken for ours nor signalled.
#
#   scripts/bootstrap.sh [start|stop|status]
#
# Env: PALLET_REGISTRY_PORT (5000), PALLET_AGENT_BASE_PORT (8001),
# PALLET_BOOTSTRAP_DIR (state: registry data, config, pidfiles, logs; default
# ${XDG_STATE_HOME:-$HOME/.local/state}/pallet/bootstrap), PALLET_BIN.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
state="${PALLET_BOOTSTRAP_DIR:-${XDG_STATE_HOME:-$HOME/.local/state}/pallet/bootstrap}"
registry_port="${PALLET_REGISTRY_PORT:-5000}"
base_port="${PALLET_AGENT_BASE_PORT:-8001}"
registry="127.0.0.1:$registry_port"
agents=(plan build test router security performance aggregate)

pallet_binary() {
    local pallet="${PALLET_BIN:-$root/target/release/pallet}"
    if [[ ! -x "$pallet" ]]; then
        echo "building pallet (cargo build --release)" >&2
        (cd "$root" && cargo build --release --quiet)
    fi
    echo "$pallet"
}

# Prints "STATE START" of process $1: fields 3 and 22 of /proc/PID/stat.
process_state() {
    local stat fields
    stat="$(cat "/proc/$1/stat" 2>/dev/null)" || return 1
    # Field 2, the command, is in parentheses and may hold spaces: count after it.
    read -r -a fields <<<"${stat##*) }"
    [[ -n "${fields[19]:-}" ]] || return 1
    echo "${fields[0]} ${fields[19]}"
}

# The PID recorded in pidfile $1.
pid_of() {
    local pid _
    read -r pid _ <"$1" || true
    echo "$pid"
}

# Whether the process recorded in pidfile $1 is alive: same PID and same start
# time (a zombie counts as gone). A pidfile of an older bootstrap.sh holds only
# the PID: trusted when that process runs one of our commands.
running() {
    local pid start found
    [[ -f "$1" ]] || return 1
    read -r pid start <"$1" || true
    [[ -n "$pid" ]] || return 1
    if [[ -z "$start" ]]; then
        tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -qE '(^|/)(docker-registry|pallet) '
        return
    fi
    found="$(process_state "$pid")" || return 1
    [[ "${found% *}" != Z && "${found#* }" == "$start" ]]
}

# Waits until URL $1 answers, up to $2 tenths of a second.
wait_for() {
    local tries=0
    until curl -fsS -o /dev/null --max-time 2 "$1" 2>/dev/null; do
        tries=$((tries + 1))
        if ((tries > $2)); then return 1; fi
        sleep 0.1
    done
}

# Starts `$@` detached, logging to $state/$name.log, PID in $state/$name.pid.
spawn() {
    local name="$1"
    shift
    setsid "$@" >"$state/$name.log" 2>&1 </dev/null &
    local pid=$! found
    # setsid execs in place here (not a group leader): $! is the command's PID.
    found="$(process_state "$pid")" || found="gone"
    echo "$pid ${found#* }" >"$state/$name.pid"
}

start_registry() {
    if ! command -v docker-registry >/dev/null; then
        if [[ $(id -u) == 0 ]]; then
            echo "installing docker-registry" >&2
            apt-get update -qq >/dev/null
            DEBIAN_FRONTEND=noninteractive apt-get install -y -qq docker-registry >/dev/null
        else
            echo "error: docker-registry is not installed" >&2
            echo "hint: sudo apt-get install -y docker-registry" >&2
            exit 1
        fi
    fi
    if running "$state/registry.pid"; then
        echo "registry already running at $registry (pid $(pid_of "$state/registry.pid"))"
        return
    fi
    if curl -fsS -o /dev/null --max-time 2 "http://$registry/v2/" 2>/dev/null; then
        echo "a registry not started by this script answers at $registry: using it"
        return
    fi
    mkdir -p "$state/registry"
    cat >"$state/registry.yml" <<CONFIG
version: 0.1
log:
  level: warn
storage:
  filesystem:
    rootdirectory: $state/registry
  delete:
    enabled: true
http:
  addr: $registry
  secret: pallet-bootstrap-$RANDOM$RANDOM
CONFIG
    spawn registry docker-registry serve "$state/registry.yml"
    if ! wait_for "http://$registry/v2/" 100; then
        echo "error: the registry did not answer at http://$registry/v2/; log: $state/registry.log" >&2
        exit 1
    fi
    echo "started registry at $registry (pid $(pid_of "$state/registry.pid"), data in $state/registry)"
}

start_agents() {
    local pallet="$1" index name port
    for index in "${!agents[@]}"; do
        name="${agents[$index]}"
        port=$((base_port + index))
        if running "$state/agent-$name.pid"; then
            echo "agent $name already running at http://127.0.0.1:$port (pid $(pid_of "$state/agent-$name.pid"))"
            continue
        fi
        spawn "agent-$name" "$pallet" agent serve "$root/agents/$name.yaml" --addr "127.0.0.1:$port"
        if ! wait_for "http://127.0.0.1:$port/.well-known/agent-card.json" 100; then
            echo "error: agent $name did not start; log: $state/agent-$name.log" >&2
            exit 1
        fi
        echo "started agent $name at http://127.0.0.1:$port (pid $(pid_of "$state/agent-$name.pid"))"
    done
}

start() {
    mkdir -p "$state"
    local pallet
    pallet="$(pallet_binary)"
    start_registry
    start_agents "$pallet"
    PALLET_BIN="$pallet" PALLET_REGISTRY="$registry" PALLET_AGENT_BASE_PORT="$base_port" \
        bash "$root/scripts/push_workflows.sh"
    cat <<NEXT

ready: state, pidfiles and logs in $state
next:
  export PALLET_REGISTRY=$registry
  $pallet run --workflow code-generation-v1 "Create a factorial function"
  $pallet list
stop everything with: scripts/bootstrap.sh stop
NEXT
}

stop_one() {
    local pidfile="$1" pid tries=0
    [[ -f "$pidfile" ]] || return 0
    pid="$(pid_of "$pidfile")"
    if running "$pidfile"; then
        kill -TERM "$pid" 2>/dev/null || true
        while running "$pidfile" && ((tries < 100)); do
            sleep 0.1
            tries=$((tries + 1))
        done
        if running "$pidfile"; then kill -KILL "$pid" 2>/dev/null || true; fi
        echo "stopped $(basename "$pidfile" .pid) (pid $pid)"
    else
        echo "$(basename "$pidfile" .pid) is not running (pid $pid is gone or another process now): removing its pidfile"
    fi
    rm -f "$pidfile"
}

stop() {
    local name
    for name in "${agents[@]}"; do
        stop_one "$state/agent-$name.pid"
    done
    stop_one "$state/registry.pid"
}

status() {
    local pidfile found=0
    shopt -s nullglob
    for pidfile in "$state"/*.pid; do
        found=1
        if running "$pidfile"; then
            echo "$(basename "$pidfile" .pid): running (pid $(pid_of "$pidfile"))"
        else
            echo "$(basename "$pidfile" .pid): not running (stale pidfile; pid $(pid_of "$pidfile") is gone or another process now)"
        fi
    done
    ((found)) || echo "nothing started (state: $state)"
}

case "${1:-start}" in
start) start ;;
stop) stop ;;
status) status ;;
*)
    echo "usage: scripts/bootstrap.sh [start|stop|status]" >&2
    exit 2
    ;;
esac
