#!/bin/sh
# Load benchmark of `pallet serve` (not a test): RUNS runs started at once over
# HTTP against a fast in-process agent whose one skill waits AGENT_DELAY_MS.
# Prints how many completed, the memory per in-flight run and the latency the
# service adds per step. See docs/service.md (Load).
#
# usage: scripts/bench-service.sh [RUNS] [AGENT_DELAY_MS] [STEPS]   (1000 200 3)
# Set PROFILE=release to measure an optimised build (numbers in the docs are
# from a debug build unless they say otherwise).
set -eu
cd "$(dirname "$0")/.."
runs=${1:-1000}
delay=${2:-200}
steps=${3:-3}
# Each in-flight step holds one connection to the agent and one to the service.
ulimit -n 8192 2>/dev/null || true
if [ "${PROFILE:-dev}" = release ]; then
    exec cargo run --quiet --release --example bench_service -- "$runs" "$delay" "$steps"
fi
exec cargo run --quiet --example bench_service -- "$runs" "$delay" "$steps"
