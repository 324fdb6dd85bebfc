#!/bin/sh
# Load benchmark of `pallet serve` (not a test): runs started at once over HTTP
# against a legacy test agent (a child process) that holds every call until all
# runs wait on it, then answers after AGENT_DELAY_MS. Reports runs accepted per
# second, the latency from `POST /workflows` to the first agent call (p50/p99),
# memory per in-flight run and the latency added per step. See docs/service.md (Load).
#
# usage: scripts/bench-service.sh [RUNS] [AGENT_DELAY_MS] [STEPS]   one size (1000 200 3)
#        scripts/bench-service.sh --sizes 1000,10000 [AGENT_DELAY_MS] [STEPS]
#                                  each size in a fresh process; a table printed
#                                  and written to target/bench/service.md (+ .json)
#        scripts/bench-service.sh --both                 the same as --sizes 1000,10000
# Set PROFILE=release to measure an optimised build (numbers in the docs are
# from a debug build unless they say otherwise). The benchmark raises its own
# soft open-file limit to the hard limit (each waiting run holds a connection).
set -eu
cd "$(dirname "$0")/.."
if [ "${1:-}" = --both ]; then
    shift
    set -- --sizes 1000,10000 "$@"
fi
if [ "${PROFILE:-dev}" = release ]; then
    exec cargo run --quiet --release --example bench_service -- "$@"
fi
exec cargo run --quiet --example bench_service -- "$@"
