#!/usr/bin/env bash
# Benchmarks of issue 6, parts 1-3: per-step overhead against a plain reqwest
# floor, process startup and validation, registry pulls. Builds `pallet` and
# the harness (examples/bench), starts a docker-registry on a free loopback
# port, runs the harness, stops the registry. Results: target/bench/results.md
# and results.json (the table is also printed).
#
#   scripts/bench.sh            release build, 15 runs per case
#   scripts/bench.sh --runs 30  more runs
#   scripts/bench.sh --smoke    debug build, 2 runs per case: checks that every
#                               run completes with the right output; no timing
#                               assertions (for CI)
set -euo pipefail
cd "$(dirname "$0")/.."

profile=release
harness_args=()
for arg in "$@"; do
    case "$arg" in
        --smoke) profile=debug; harness_args+=(--smoke) ;;
        *) harness_args+=("$arg") ;;
    esac
done

if [[ $profile == release ]]; then
    cargo build --locked --quiet --release --bin pallet --example bench
else
    cargo build --locked --quiet --bin pallet --example bench
fi
target="${CARGO_TARGET_DIR:-target}/$profile"

if ! command -v docker-registry >/dev/null; then
    echo "error: docker-registry is not installed (scripts/setup-test-env.sh installs it)" >&2
    exit 2
fi
work="$(mktemp -d)"
registry_pid=""
cleanup() {
    if [[ -n $registry_pid ]]; then
        kill "$registry_pid" 2>/dev/null || true
        wait "$registry_pid" 2>/dev/null || true
    fi
    rm -rf "$work"
}
trap cleanup EXIT

port="$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
cat > "$work/config.yml" <<CONFIG
version: 0.1
log:
  level: error
  accesslog:
    disabled: true
storage:
  filesystem:
    rootdirectory: $work/storage
  delete:
    enabled: true
http:
  addr: 127.0.0.1:$port
  secret: pallet-bench-secret
CONFIG
docker-registry serve "$work/config.yml" >"$work/registry.log" 2>&1 &
registry_pid=$!
for _ in $(seq 200); do
    if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then break; fi
    sleep 0.05
done

mkdir -p target/bench
"$target/examples/bench" --pallet "$target/pallet" --registry "127.0.0.1:$port" \
    --out target/bench "${harness_args[@]}"
