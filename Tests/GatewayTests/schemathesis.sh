#!/usr/bin/env bash
# Runs schemathesis against a live gateway: every operation of the served OpenAPI document,
# generated and negative inputs, all checks (no 5xx, every response matches the schema).
# Usage: schemathesis.sh BASE_URL OWNER_TOKEN   (the Swift suite GatewayTests runs it itself
# when a schemathesis binary is found; see SchemathesisTests.swift).
set -euo pipefail
base=${1:?base url, e.g. http://127.0.0.1:8080}
token=${2:?an owner token}
st=${SCHEMATHESIS:-$(dirname "$0")/../../.venv-gw/bin/schemathesis}
exec "$st" run "$base/api/v1/openapi.json" --url "$base" \
    -H "Authorization: Bearer $token" \
    --checks all -n "${SCHEMATHESIS_EXAMPLES:-25}" \
    --seed 1 --no-color "${@:3}"
