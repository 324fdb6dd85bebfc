#!/usr/bin/env bash
# Validates and pushes every workflows/*.yaml to the registry, then the cards
# of the example agents that are running (as scripts/bootstrap.sh starts them),
# printing name, version and digest of each. Idempotent: identical content is
# not pushed again. Cards are pushed with --force, since a card records where
# its agent runs right now.
#
# Env: PALLET_REGISTRY (default localhost:5000), PALLET_BIN (the pallet binary;
# else target/release/pallet, built when missing), PALLET_AGENT_HOST (default
# 127.0.0.1), PALLET_AGENT_BASE_PORT (default 8001: plan, then build, test,
# router, security, performance, aggregate on the next ports).
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
registry="${PALLET_REGISTRY:-localhost:5000}"
agent_host="${PALLET_AGENT_HOST:-127.0.0.1}"
base_port="${PALLET_AGENT_BASE_PORT:-8001}"
agents=(plan build test router security performance aggregate)

pallet="${PALLET_BIN:-}"
if [[ -z "$pallet" ]]; then
    pallet="$root/target/release/pallet"
    if [[ ! -x "$pallet" ]]; then
        echo "building pallet (cargo build --release)" >&2
        (cd "$root" && cargo build --release --quiet)
    fi
fi

# Any http status (200, or 401: it wants credentials, which pallet handles)
# means the registry answers; https first, then plain http (loopback or
# insecure registries). -k: this probe only checks that something answers
# and sends no credentials; pallet itself verifies certificates.
registry_answers() {
    local scheme code
    for scheme in https http; do
        code="$(curl -ks -o /dev/null -w '%{http_code}' --max-time 5 "$scheme://$registry/v2/" || true)"
        if [[ -n "$code" && "$code" != 000 ]]; then
            return 0
        fi
    done
    return 1
}
if command -v curl >/dev/null && ! registry_answers; then
    echo "error: the registry at $registry does not answer (https://$registry/v2/ nor http://$registry/v2/)" >&2
    echo "hint: start one with scripts/bootstrap.sh, or set PALLET_REGISTRY=HOST:PORT" >&2
    exit 1
fi
export PALLET_REGISTRY="$registry"

shopt -s nullglob
workflows=("$root"/workflows/*.yaml)
if ((${#workflows[@]})); then
    "$pallet" validate "${workflows[@]}" >/dev/null
    "$pallet" push "${workflows[@]}"
fi

for index in "${!agents[@]}"; do
    name="${agents[$index]}"
    url="http://$agent_host:$((base_port + index))"
    if command -v curl >/dev/null && ! curl -fsS -o /dev/null --max-time 5 "$url/.well-known/agent-card.json" 2>/dev/null; then
        echo "agent $name is not running at $url: its card was not pushed" >&2
        continue
    fi
    "$pallet" agents push --force "$url"
done
