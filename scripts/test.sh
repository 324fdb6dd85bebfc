#!/usr/bin/env bash
# Runs every test: sets up what the tests need (see setup-test-env.sh), then the
# whole cargo test suite of the workspace (pallet and the example agents'
# crate), and closes with one total line over all test binaries.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup-test-env.sh
# A missing or changed insta snapshot fails the run and writes nothing, also
# when the caller's environment would accept it (new snapshots are accepted
# by hand: `INSTA_UPDATE=always cargo test`, then review the diff).
export INSTA_UPDATE=no
unset INSTA_FORCE_PASS
log=$(mktemp)
trap 'rm -f "$log"' EXIT
status=0
cargo test --locked --workspace --all-targets "$@" 2>&1 | tee "$log" || status=$?
awk '/^test result:/ { passed += $4; failed += $6 } END { printf "%d passed, %d failed\n", passed, failed }' "$log"
exit "$status"
