#!/usr/bin/env bash
# Installs what the integration tests need: Debian's docker-registry (a real OCI
# registry), skopeo, openssl, node, npm, postgresql (the PostgreSQL server
# programs, which pg_config locates), chromium and chromium-driver (the headless
# browser the UI tests drive through chromedriver) when missing (as root, e.g. in CI);
# .venv at the repository root with the pinned Python packages (the real A2A
# 1.0 peer, the original project's kind of FastAPI agent and oras-py); .venv-a2a03 with the Python A2A SDK 0.3 (an A2A 0.3
# peer); and tests/peers/js/node_modules from its package-lock.json (the
# JavaScript A2A SDKs 1.3.0 and 0.3.14). Idempotent and quiet when done.
# PALLET_SETUP_PYTHON picks the interpreter that creates the venvs (default python3).
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
python="${PALLET_SETUP_PYTHON:-python3}"

missing=()
command -v docker-registry >/dev/null || missing+=(docker-registry)
command -v skopeo >/dev/null || missing+=(skopeo)
command -v openssl >/dev/null || missing+=(openssl)
command -v node >/dev/null || missing+=(nodejs)
command -v npm >/dev/null || missing+=(npm)
command -v chromium >/dev/null || missing+=(chromium)
command -v chromedriver >/dev/null || missing+=(chromium-driver)
# The server programs are not on PATH; pg_config (from libpq-dev or postgresql) names their directory.
if ! command -v pg_config >/dev/null || [[ ! -x "$(pg_config --bindir)/initdb" ]]; then
    missing+=(postgresql)
fi
if ((${#missing[@]})); then
    if [[ $(id -u) != 0 ]]; then
        echo "error: the tests need ${missing[*]}: sudo apt-get install -y ${missing[*]}" >&2
        exit 1
    fi
    echo "installing ${missing[*]}" >&2
    apt-get update -qq >/dev/null
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
fi

# install_venv DIR PACKAGE...: a venv at DIR with exactly these pinned packages.
install_venv() {
    local venv="$1"
    shift
    local stamp="$venv/.pallet-test-env"
    local wanted="$*"
    if [[ -f "$stamp" && "$(cat "$stamp")" == "$wanted" ]]; then
        return
    fi
    if [[ ! -x "$venv/bin/python" ]]; then
        echo "creating $venv" >&2
        if ! "$python" -m venv "$venv"; then
            echo "error: cannot create $venv with $python (on Debian: apt-get install python3-venv)" >&2
            exit 1
        fi
    fi
    echo "installing $* into $venv" >&2
    "$venv/bin/python" -m pip install --quiet --disable-pip-version-check "$@"
    echo "$wanted" > "$stamp"
}

install_venv "$root/.venv" "a2a-sdk[http-server]==1.3.0" "uvicorn==0.54.0" "oras==0.2.43" "fastapi==0.165.0"
install_venv "$root/.venv-a2a03" "a2a-sdk[http-server]==0.3.26" "uvicorn==0.54.0"

# The JavaScript peers: exactly what package-lock.json pins.
js="$root/tests/peers/js"
js_stamp="$js/node_modules/.pallet-test-env"
lock="$(sha256sum "$js/package-lock.json" | cut -d' ' -f1)"
if [[ ! -f "$js_stamp" || "$(cat "$js_stamp")" != "$lock" ]]; then
    echo "installing the JavaScript A2A SDKs into $js/node_modules" >&2
    (cd "$js" && npm ci --no-audit --no-fund --loglevel=error >/dev/null)
    echo "$lock" > "$js_stamp"
fi
