#!/bin/sh
# Benchmark of `pallet serve` with several workers on one PostgreSQL database
# (not a test): 1, 2 and 3 workers on PostgreSQL, and one worker on SQLite, each
# configuration on a fresh database, against an echo agent that answers at
# once. Reports runs accepted and completed per second (RUNS runs of a
# STEPS-step workflow posted round-robin over the workers, 64 requests in
# flight), the median latency of a 1-step and a STEPS-step run (100 each, one
# after another) and the latency added per step. PostgreSQL 15 (`pg_config
# --bindir`) runs as a local cluster of the benchmark's own in a temp
# directory, with default durability; it and the workers are stopped at the
# end, also on Ctrl-C. See docs/service.md (Load).
#
# usage: scripts/bench-workers.sh [RUNS] [STEPS]   (defaults 2000 10)
# The table is printed and written to target/bench/workers.md (+ .json); the
# workers' output goes to target/bench/workers-logs/. Always a release build.
set -eu
cd "$(dirname "$0")/.."
cargo build --quiet --release --bin pallet --example bench_workers
exec target/release/examples/bench_workers --pallet target/release/pallet "$@"
