#!/usr/bin/env bash
# Runs every test: sets up what the tests need (a Python venv with the official
# A2A SDK for the interop peer), then the whole cargo test suite.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup-test-env.sh
cargo test --locked "$@"
