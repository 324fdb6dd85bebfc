#!/usr/bin/env bash
# Installs what the integration tests need: Debian's docker-registry (a real OCI
# registry), skopeo and openssl when missing (as root, e.g. in CI), and .venv at
# the repository root with the pinned Python packages (the real A2A peer, the
# original project's kind of FastAPI agent and oras-py). Idempotent and quiet when done.
# PALLET_SETUP_PYTHON picks the interpreter that creates the venv (default python3).
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
venv="$root/.venv"
python="${PALLET_SETUP_PYTHON:-python3}"
packages=("a2a-sdk[http-server]==1.3.0" "uvicorn==0.54.0" "oras==0.2.43" "fastapi==0.165.0")
stamp="$venv/.pallet-test-env"

missing=()
command -v docker-registry >/dev/null || missing+=(docker-registry)
command -v skopeo >/dev/null || missing+=(skopeo)
command -v openssl >/dev/null || missing+=(openssl)
if ((${#missing[@]})); then
    if [[ $(id -u) != 0 ]]; then
        echo "error: the tests need ${missing[*]}: sudo apt-get install -y ${missing[*]}" >&2
        exit 1
    fi
    echo "installing ${missing[*]}" >&2
    apt-get update -qq >/dev/null
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
fi
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
