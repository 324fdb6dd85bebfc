#!/usr/bin/env bash
# Creates .venv at the repository root with the pinned Python packages the
# integration tests need (the real A2A peer). Idempotent and quiet when done.
# PALLET_SETUP_PYTHON picks the interpreter that creates the venv (default python3).
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
venv="$root/.venv"
python="${PALLET_SETUP_PYTHON:-python3}"
packages=("a2a-sdk[http-server]==1.3.0" "uvicorn==0.54.0")
stamp="$venv/.pallet-test-env"
wanted="${packages[*]}"

if [[ -f "$stamp" && "$(cat "$stamp")" == "$wanted" ]]; then
    exit 0
fi

if [[ ! -x "$venv/bin/python" ]]; then
    echo "creating $venv" >&2
    if ! "$python" -m venv "$venv"; then
        echo "error: cannot create $venv with $python (on Debian: apt-get install python3-venv)" >&2
        exit 1
    fi
fi
echo "installing ${packages[*]} into $venv" >&2
"$venv/bin/python" -m pip install --quiet --disable-pip-version-check "${packages[@]}"
echo "$wanted" > "$stamp"
